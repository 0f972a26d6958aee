"""tf.distribute and keras-tuner's parallel search, on loopback, bounded in time.

Two ``tfae fit --strategy multi-worker`` processes with ``TF_CONFIG`` must train what one
process trains with the same global batch: MultiWorkerMirroredStrategy splits every global batch
between the workers and sums their gradients, so only float rounding may differ. The losses agree
closely; weights agree to 1e-4 on these small models, not bit for bit, because Adam divides each
step by the gradient's running size and so turns rounding noise on near-zero gradients into steps
of up to the learning rate (on the 500-200-100-10 default, up to 2.5e-3 after 64 steps).
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_tfae, write_images
from tfae.data import shards
from tfae.distribute import (is_chief, make_strategy, reducible_logs, sum_across_workers,
                             worker_shard)
from tfae.errors import TfaeError
from tfae.runs import load_model


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for each in sockets:
        each.bind(("127.0.0.1", 0))
    ports = [each.getsockname()[1] for each in sockets]
    for each in sockets:
        each.close()
    return ports


def start_workers(args, cwd, count=2):
    """Starts ``count`` ``tfae`` processes as the workers of one TF_CONFIG cluster on loopback."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(count)]}
    (cwd / "tmp").mkdir(exist_ok=True)
    processes = []
    for index in range(count):
        env = {**os.environ, "TMPDIR": str(cwd / "tmp"), "TF_CONFIG": json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "tfae_cli.main", *map(str, args)], cwd=cwd, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return processes


def finish(processes, timeout=300):
    outputs = [process.communicate(timeout=timeout) for process in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    return [stdout for stdout, _ in outputs]


def max_difference(first, second):
    return max(float(np.abs(a - b).max()) for a, b in zip(first.get_weights(), second.get_weights()))


def test_default_strategy_is_one_chief_with_all_the_data():
    strategy = make_strategy("default")
    assert is_chief(strategy) and worker_shard(strategy) == (1, 0)
    assert sum_across_workers([np.arange(3.0)])[0].tolist() == [0.0, 1.0, 2.0]
    assert reducible_logs({"loss": tf.constant(1.0)})["loss"].shape == ()


@pytest.mark.parametrize("tf_config, words", [
    (None, "needs the TF_CONFIG environment variable"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}',
     "does not name this task"),
    ("not json", "does not name this task"),
])
def test_multi_worker_without_a_usable_tf_config_is_refused(tf_config, words, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    if tf_config:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(TfaeError, match=words):
        make_strategy("multi-worker")


def test_unknown_strategy_is_one_clear_line(tmp_path):
    result = run_tfae("fit", "--strategy", "multi-worker", "--limit", "100", "--out", "run",
                      cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("Error: --strategy multi-worker needs")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("model, options", [
    ("deep", ["--hidden", "64,32", "--latent-dim", "8"]),
    ("contractive", ["--hidden", "64", "--latent-dim", "8", "--lambda", "1e-3"]),
    ("randomized", ["--hidden", "64,32"]),
])
def test_two_workers_train_what_one_process_trains(model, options, tmp_path):
    common = ["fit", "--model", model, *options, "--epochs", "2", "--limit", "1000", "--quiet"]
    workers = start_workers([*common, "--strategy", "multi-worker", "--batch-size", "32",
                             "--out", "run", "--export-dir", "exported"], tmp_path)
    # Compiled as multi-worker compiles (no XLA, a batch per call), so only the split differs.
    run_tfae(*common, "--batch-size", "64", "--out", "single", "--no-export",
             "--no-jit-compile", "--steps-per-execution", "1", cwd=tmp_path)
    finish(workers)

    together, alone = load_model(tmp_path / "run/model.keras"), load_model(tmp_path / "single/model.keras")
    assert max_difference(together, alone) < 1e-4
    if model != "randomized":  # trained by Model.fit, with a history of losses
        histories = [json.loads((tmp_path / name / "history.json").read_text())
                     for name in ("run", "single")]
        np.testing.assert_allclose(histories[0]["val_loss"], histories[1]["val_loss"], rtol=1e-5)
    assert (tmp_path / "exported/1/saved_model.pb").is_file()  # by the chief, once
    assert sorted(path.name for path in tmp_path.iterdir()) == ["exported", "run", "single", "tmp"]
    assert not any((tmp_path / "tmp").iterdir())  # the other worker's folder is gone


@pytest.mark.slow
def test_two_workers_each_read_their_own_shards_of_a_prepared_folder(tmp_path):
    write_images(tmp_path / "photos/cat", 60, seed=1)
    write_images(tmp_path / "photos/dog", 60, seed=2)
    prepared = shards.prepare(tmp_path / "photos", tmp_path / "prepared",
                              shard_bytes=8 * 8 * 1 * 25)  # 97 training images in 4 shards
    workers = start_workers(["fit", "--model", "deep", "--hidden", "16", "--latent-dim", "4",
                             "--dataset", prepared, "--epochs", "2", "--batch-size", "8",
                             "--strategy", "multi-worker", "--out", "run",
                             "--export-dir", "exported"], tmp_path)
    outputs = [process.communicate(timeout=300) for process in workers]
    read = []
    for process, (_, stderr) in zip(workers, outputs):
        assert process.returncode == 0, stderr[-3000:]
        said = re.search(r"worker \d of 2 reads 48 images of 2 shard\(s\): (\S+), (\S+)\n", stderr)
        read.append(set(said.groups()))
    assert read[0].isdisjoint(read[1])
    assert read[0] | read[1] == {path.name for path in prepared.glob("train-*.tfrecord")}
    history = json.loads((tmp_path / "run/history.json").read_text())
    assert len(history["loss"]) == 2 and all(np.isfinite(history["val_loss"]))
    assert sorted(path.name for path in (tmp_path / "exported").iterdir()) == ["1"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["exported", "photos", "prepared",
                                                                "run", "tmp"]


@pytest.mark.slow
def test_killed_workers_resume_from_the_last_finished_epoch(tmp_path):
    args = ["fit", "--model", "deep", "--hidden", "256", "--latent-dim", "16", "--epochs", "3",
            "--limit", "6000", "--batch-size", "32", "--strategy", "multi-worker",
            "--out", "run", "--no-export"]
    workers = start_workers(args, tmp_path)
    backup = tmp_path / "run/checkpoint/training_metadata.json"  # written last, after the weights
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and all(worker.poll() is None for worker in workers):
        if backup.exists() and '"epoch": 1' in backup.read_text():
            break
        time.sleep(0.05)
    workers[1].send_signal(signal.SIGKILL)  # one worker dies; the job is restarted as a whole
    workers[0].send_signal(signal.SIGKILL)
    for worker in workers:
        worker.communicate()
    assert not (tmp_path / "run/model.keras").exists(), "the run finished before it was killed"

    chief_output, _ = finish(start_workers(args, tmp_path))
    assert "Epoch 1/3" not in chief_output and "Epoch 3/3" in chief_output
    assert len(json.loads((tmp_path / "run/history.json").read_text())["loss"]) == 3


@pytest.mark.slow
def test_parallel_search_with_a_chief_and_two_workers(tmp_path):
    port, = free_ports(1)
    args = [sys.executable, "-m", "tfae_cli.main", "tune", "--model", "shallow", "--tuner", "random",
            "--max-trials", "2", "--epochs", "1", "--limit", "1000", "--out", "search",
            "--export-dir", "exported", "--distributed", "--quiet"]
    processes = []
    for tuner_id in ("chief", "tuner0", "tuner1"):
        env = {**os.environ, "KERASTUNER_TUNER_ID": tuner_id,
               "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(port)}
        processes.append(subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
    chief_output, *worker_outputs = finish(processes)
    assert "exported: exported/1" in chief_output
    assert all("worker: the search is finished" in output for output in worker_outputs)
    best = json.loads((tmp_path / "search/best.json").read_text())
    assert len(best) == 2


def test_keras_tuner_variables_without_distributed_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    result = run_tfae("tune", "--model", "shallow", "--tuner", "random", "--out", "search",
                      cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert "pass --distributed" in result.stderr.strip().splitlines()[-1]
