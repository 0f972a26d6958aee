"""End-to-end runs of the ``tfae`` command on small real MNIST subsets."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from tfae_cli.main import tfae
from conftest import run_tfae

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A two-epoch shallow run on 1,000 images, exported to ``saved_models/shallow``."""
    work = tmp_path_factory.mktemp("fit")
    result = run_tfae("fit", "--model", "shallow", "--latent-dim", "16", "--epochs", "2",
                      "--limit", "1000", "--out", "run", cwd=work)
    return work, result


def test_fit_writes_a_complete_run_folder(finished_run):
    work, result = finished_run
    run = work / "run"
    assert {"config.json", "history.json", "history.csv", "model.keras", "run.json", "logs"} <= \
        {path.name for path in run.iterdir()}
    assert not (run / "checkpoint").exists()  # BackupAndRestore cleans up after a finished run
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "shallow" and config["model_options"]["latent_dim"] == 16
    history = json.loads((run / "history.json").read_text())
    assert len(history["loss"]) == 2 and history["val_loss"][1] < history["val_loss"][0]
    info = json.loads((run / "run.json").read_text())
    assert info["data"]["dataset"] == "mnist" and info["epochs_finished"] == 2
    assert info["export"] == "saved_models/shallow/1"
    assert {"tfae", "tensorflow", "keras"} <= set(info["versions"])
    assert (work / "saved_models/shallow/1/saved_model.pb").is_file()
    assert "exported: saved_models/shallow/1" in result.stdout
    # Written to a pipe, Keras' progress is a plain line an epoch: no colour codes, no redraws.
    assert "Epoch 2/2" in result.stdout and not {"\x1b", "\x08", "\r"} & set(result.stdout)


def test_export_command_adds_a_version(finished_run):
    work, _ = finished_run
    result = run_tfae("export", "run", "--export-dir", "exports/mine", cwd=work)
    assert (work / "exports/mine/1/saved_model.pb").is_file()
    assert "exports/mine/1" in result.stdout
    assert json.loads((work / "run/run.json").read_text())["export"] == "exports/mine/1"


def test_more_epochs_continue_a_finished_run(finished_run):
    work, _ = finished_run
    config = json.loads((work / "run/config.json").read_text())
    # XLA and steps per execution are how to train, not what: a run extends under them.
    result = run_tfae("fit", "--model", "shallow", "--latent-dim", "16", "--epochs", "3",
                      "--limit", "1000", "--out", "run", "--no-export", "--no-jit-compile",
                      "--steps-per-execution", "2", cwd=work)
    assert "Epoch 3/3" in result.stdout and "Epoch 1/3" not in result.stdout
    history = json.loads((work / "run/history.json").read_text())
    assert len(history["loss"]) == 3 and history["loss"][2] < history["loss"][0]
    assert json.loads((work / "run/config.json").read_text()) == {**config, "epochs": 3}


def test_same_seed_repeats_a_run(tmp_path):
    losses = []
    for out in ("a", "b"):
        run_tfae("fit", "--model", "deep", "--hidden", "64", "--epochs", "2", "--limit", "1000",
                 "--seed", "5", "--out", out, "--no-export", cwd=tmp_path)
        losses.append(json.loads((tmp_path / out / "history.json").read_text())["val_loss"])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-6)


def test_killed_run_resumes_from_its_last_finished_epoch(tmp_path):
    command = [sys.executable, "-m", "tfae_cli.main", "fit", "--model", "deep", "--hidden", "256,64",
               "--latent-dim", "16", "--epochs", "4",
               "--batch-size", "32", "--limit", "12000", "--out", "run", "--no-export"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    history = tmp_path / "run/history.csv"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if history.exists() and len(history.read_text().splitlines()) >= 3:  # header + 2 epochs
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "run/model.keras").exists(), "the run finished before it was killed"

    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Epoch 1/4" not in result.stdout and "Epoch 4/4" in result.stdout
    history = json.loads((tmp_path / "run/history.json").read_text())
    assert len(history["loss"]) == 4
    assert history["loss"][3] < history["loss"][0]


def test_run_killed_while_writing_its_first_backup_starts_afresh(tmp_path):
    args = ["fit", "--model", "shallow", "--latent-dim", "8", "--epochs", "2", "--limit", "500",
            "--no-export"]
    run_tfae(*args, "--out", "reference", cwd=tmp_path)
    (tmp_path / "run/checkpoint").mkdir(parents=True)  # as a kill leaves it, before any epoch ends
    (tmp_path / "run/config.json").write_text((tmp_path / "reference/config.json").read_text())
    (tmp_path / "run/checkpoint/latest.weights.h5").write_bytes(b"\x89HDF\r\n")
    result = run_tfae(*args, "--out", "run", cwd=tmp_path)
    assert "Epoch 1/2" in result.stdout and (tmp_path / "run/model.keras").exists()
    history = [json.loads((tmp_path / name / "history.json").read_text())["loss"]
               for name in ("reference", "run")]
    np.testing.assert_allclose(history[0], history[1], rtol=1e-6)  # as if never interrupted


def _fails(args, cwd, monkeypatch=None):
    monkeypatch.chdir(cwd)
    result = CliRunner().invoke(tfae, args)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    # click adds its usage hint to option errors, and the stages run before the error show on
    # stderr (tfae.progress); the error itself must be one line.
    lines = [line for line in result.output.splitlines()
             if line.strip() and not line.startswith(("Usage:", "Try '"))
             and not re.search(r"( \.\.\.|: ([\d,]+ \w+ )?in \d+\.\d s)$", line)]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


@pytest.mark.parametrize("args, words", [
    (["fit", "--model", "huge"], "'huge' is not one of 'shallow', 'deep'"),
    (["fit", "--dataset", "no_such_images", "--limit", "10"], "unknown data set 'no_such_images'"),
    (["fit", "--epochs", "0"], "'--epochs': 0 is not in the range x>=1"),
    (["fit", "--batch-size", "-5"], "'--batch-size': -5 is not in the range x>=1"),
    (["fit", "--latent-dim", "0"], "'--latent-dim': 0 is not in the range x>=1"),
    (["fit", "--limit", "0"], "'--limit': 0 is not in the range x>=1"),
    (["fit", "--activation", "nope"], "'nope' is not one of 'relu'"),
    (["fit", "--model", "contractive", "--lambda", "nan"], "--lambda must be a finite number"),
    (["fit", "--noise", "gaussian:inf"], "must be a finite number"),
    (["tune", "--model", "randomized"], "'randomized' is not one of 'shallow'"),
    (["tune", "--tuner", "random", "--max-trials", "0"], "'--max-trials': 0 is not in the range"),
    (["tune", "--max-trials", "3"], "--max-trials does not apply to hyperband"),
    (["serve", ".", "--port", "99999"], "99999 is not in the range 0<=x<=65535"),
    (["fit", "--hidden", "500,abc"], "not a comma-separated list"),
    (["fit", "--hidden", "500,0"], "every size must be positive"),
    (["fit", "--model", "shallow", "--hidden", "100"],
     "--hidden does not apply to model 'shallow' (it takes --latent-dim, --activation)"),
    (["fit", "--noise", "blur:3"], "KIND:AMOUNT"),
    (["fit", "--noise", "occlusion:40", "--limit", "10"], "does not fit"),
    (["fit", "--config", "missing.json"], "cannot read missing.json"),
    (["export", "nowhere"], "holds no finished run"),
    (["fit", "--model", "deep", "--filters", "32"], "--filters does not apply to model 'deep'"),
    (["fit", "--model", "deep", "--lambda", "0.1"], "--lambda does not apply to model 'deep'"),
    (["fit", "--model", "conv", "--solver", "sgd"], "--solver does not apply to model 'conv'"),
    (["fit", "--model", "conv", "--filters", "8,16"], "one block"),
    (["fit", "--model", "contractive", "--projections", "0"], "0 is not in the range x>=1"),
    (["fit", "--model", "deep", "--hidden", "none", "--activation", "tanh"],
     "--activation tanh sets hidden layers and --hidden is empty; use --latent-activation"),
])
def test_bad_input_is_one_clear_line(args, words, tmp_path, monkeypatch):
    assert words in _fails(args, tmp_path, monkeypatch)


@pytest.mark.parametrize("config, words", [
    # Named as the file's keys, not as flags: the values came from the file.
    ({"epochs": "abc"}, "config config.json: epochs must be a whole number, got 'abc'"),
    ({"limit": "2000"}, "config config.json: limit must be a whole number, got '2000'"),
    ({"learning_rate": True}, "config config.json: learning_rate must be a number, got True"),
    ({"model_options": 5}, "model_options must be a mapping"),
    ({"model": "deep", "model_options": {"hidden": "abc"}},
     "config config.json: hidden must be a list of whole"),
    ({"model": "deep", "model_options": {"depth": 3}},
     "config config.json: depth does not apply to model 'deep'"),
    ({"batches": 3}, "unknown config keys: batches"),
])
def test_a_config_file_of_wrong_types_is_one_clear_line(config, words, tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert words in _fails(["fit", "--config", "config.json", "--limit", "10"], tmp_path,
                           monkeypatch)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("content", [b"", b"not a zip file", b"PK\x03\x04\x14\x00truncated"])
@pytest.mark.parametrize("command", ["export", "evaluate"])
def test_a_corrupt_model_file_is_named_in_one_line(command, content, tmp_path, monkeypatch):
    (tmp_path / "run").mkdir()
    (tmp_path / "run/config.json").write_text(json.dumps({"model": "deep"}))
    (tmp_path / "run/model.keras").write_bytes(content)
    line = _fails([command, "run"], tmp_path, monkeypatch)
    assert "run/model.keras is corrupt or not a Keras model" in line


def test_unwritable_out_is_one_clear_line(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("not a folder")
    line = _fails(["fit", "--limit", "10", "--out", "a-file/run"], tmp_path, monkeypatch)
    assert "cannot write to --out a-file/run" in line


def test_out_holding_another_models_run_is_refused_and_kept(finished_run, monkeypatch):
    work, _ = finished_run
    before = {path.name: path.stat().st_mtime_ns for path in (work / "run").iterdir()}
    line = _fails(["fit", "--model", "deep", "--limit", "10", "--out", "run"], work, monkeypatch)
    assert "holds a run of model 'shallow', not 'deep'" in line
    assert {path.name: path.stat().st_mtime_ns for path in (work / "run").iterdir()} == before


def test_corrupt_bundled_file_is_one_clear_line(tmp_path, monkeypatch):
    from tfae.data import catalog

    corrupt = tmp_path / "mnist-files"
    corrupt.mkdir()
    for name in catalog.MNIST_MD5:
        (corrupt / name).write_bytes(b"not mnist")
    monkeypatch.setattr(catalog, "BUNDLED_MNIST", corrupt)
    line = _fails(["fit", "--limit", "10", "--data-dir", str(tmp_path / "empty")], tmp_path,
                  monkeypatch)
    assert "is corrupt" in line and "reinstall tfae" in line


def test_a_folder_of_something_else_is_refused_without_a_trace(tmp_path, monkeypatch):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos/cat.png").write_bytes(b"not really a cat")
    line = _fails(["fit", "--model", "shallow", "--limit", "10", "--out", "photos", "--no-export"],
                  tmp_path, monkeypatch)
    assert "--out photos is not empty and holds no tfae run" in line
    assert [path.name for path in (tmp_path / "photos").iterdir()] == ["cat.png"]


def test_a_run_folder_in_use_is_refused_at_once_and_left_as_it_was(finished_run, monkeypatch):
    from tfae.runs import RunFolder

    work, _ = finished_run
    before = (work / "run/history.csv").read_text()
    with RunFolder(work / "run").in_use():  # as a fit running into it holds it
        line = _fails(["fit", "--model", "shallow", "--latent-dim", "16", "--epochs", "3",
                       "--limit", "1000", "--out", "run", "--no-export"], work, monkeypatch)
    assert f"--out run is in use by another tfae process (pid {os.getpid()})" in line
    assert (work / "run/history.csv").read_text() == before


def test_a_killed_runs_lock_is_taken_over(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from tfae.runs import RunFolder\n"
        "with RunFolder('run').in_use():\n    print('held', flush=True); time.sleep(600)")],
        cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    run_tfae("fit", "--model", "shallow", "--latent-dim", "4", "--epochs", "1", "--limit", "300",
             "--out", "run", "--no-export", "--quiet", cwd=tmp_path)
    assert (tmp_path / "run/model.keras").is_file()


def test_a_failed_export_is_redone_by_the_rerun_without_training_again(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    args = ["fit", "--model", "shallow", "--latent-dim", "4", "--epochs", "1", "--limit", "300",
            "--out", "run", "--quiet"]
    failed = run_tfae(*args, "--export-dir", "a-file/exports", cwd=tmp_path, check=False)
    assert failed.returncode == 1 and "cannot write to export folder a-file/exports" in failed.stderr
    history = (tmp_path / "run/history.csv").read_text()
    killed = tmp_path / "exports/.export-999999999-stale"  # a killed export's, marked as tfae's
    killed.mkdir(parents=True)
    (killed / ".tfae-staging").write_text("999999999\n")
    mine = tmp_path / "exports/.export-99999-mybackup"  # the user's own, of a name alike
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    result = run_tfae(*args, "--export-dir", "exports", cwd=tmp_path)
    assert "exported: exports/1" in result.stdout
    assert (tmp_path / "run/history.csv").read_text() == history  # not trained again
    assert json.loads((tmp_path / "run/run.json").read_text())["export"] == "exports/1"
    assert sorted(path.name for path in (tmp_path / "exports").iterdir()) == [
        ".export-99999-mybackup", "1"]
    assert (mine / "notes.txt").read_text() == "keep me"
    assert not (tmp_path / "exports/1/.tfae-staging").exists()
