"""Folders larger than memory: prepared into shards once, streamed, resumable, shared safely.

The folders are small, written here; ``memory_budget`` and ``shard_bytes`` are made tiny so that
they take the path a large folder takes, with several shards a split.
"""

import fcntl
import json
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from conftest import run_tfae, write_images
from tfae import data
from tfae.data import pipeline, shards
from tfae.data.shards import Shards
from tfae.errors import TfaeError

IMAGE_BYTES = 8 * 8 * 1
SPLITS = ("train", "validation", "test")


@pytest.fixture
def photos(tmp_path):
    write_images(tmp_path / "photos/cat", 30, seed=1)
    write_images(tmp_path / "photos/dog", 30, seed=2)
    return tmp_path / "photos"


def _images(split, **options):
    batches = [inputs.numpy() for inputs, _, _ in pipeline(split, 7, with_labels=True, **options)]
    return np.concatenate(batches)


def _labels(split):
    return np.concatenate([labels.numpy() for _, _, labels in pipeline(split, 7,
                                                                       with_labels=True)])


def _rows(images):
    return sorted(bytes(row) for row in (images * 255).astype(np.uint8).reshape(len(images), -1))


def test_a_folder_past_the_budget_streams_the_same_splits_as_held_in_memory(photos, tmp_path):
    held = data.load(str(photos))
    streamed = data.load(str(photos), memory_budget=1e-9, prepared_dir=str(tmp_path / "cache"))
    assert all(isinstance(getattr(streamed, split), Shards) for split in SPLITS)
    assert not isinstance(held.train, Shards)
    assert streamed.source["fingerprint"] == held.source["fingerprint"]
    assert streamed.class_names == held.class_names and streamed.image_shape == (8, 8, 1)
    for split in SPLITS:
        np.testing.assert_array_equal(_images(getattr(streamed, split)),
                                      _images(getattr(held, split)))
        np.testing.assert_array_equal(_labels(getattr(streamed, split)),
                                      _labels(getattr(held, split)))
    limited = data.load(str(photos), memory_budget=1e-9, prepared_dir=str(tmp_path / "cache"),
                        limit=5)
    assert int(limited.train.cardinality()) == 5
    assert int(pipeline(limited.train, 2).cardinality()) == 3  # Keras knows an epoch's steps
    np.testing.assert_array_equal(_images(limited.train), _images(held.train)[:5])


def test_streamed_training_batches_are_shuffled_seeded_and_new_every_epoch(photos, tmp_path):
    prepared = shards.prepare(photos, tmp_path / "prepared", shard_bytes=IMAGE_BYTES * 4)
    train = shards.load(prepared).train
    assert len(train.files) == 13  # 49 training images, 4 a shard
    in_order = _images(train)
    batches = pipeline(train, 7, shuffle=True, seed=3)
    first, second = (np.concatenate([inputs.numpy() for inputs, _ in batches]) for _ in "12")
    assert _rows(first) == _rows(in_order) == _rows(second)  # every image once an epoch
    assert not np.array_equal(first, in_order) and not np.array_equal(first, second)
    again = np.concatenate([inputs.numpy() for inputs, _ in pipeline(train, 7, shuffle=True,
                                                                     seed=3)])
    np.testing.assert_array_equal(first, again)


def test_each_worker_reads_shards_of_its_own_and_as_many_images(photos, tmp_path):
    prepared = shards.prepare(photos, tmp_path / "prepared", shard_bytes=IMAGE_BYTES * 5)
    train = shards.load(prepared).train
    assert train.counts == (5,) * 9 + (4,)  # 49 images, the shards equal to an image
    in_order = _images(train)

    first, second = train.part(2, 0), train.part(2, 1)  # ten shards, five each
    assert first.files == train.files[:5] and second.files == train.files[5:]
    assert first.count == second.count == 24
    for moved in second.files:  # worker 1 reads without worker 2's shards
        pathlib.Path(moved).rename(moved + ".away")
    epochs = [_images(first, shuffle=True, seed=seed) for seed in (1, 2)]
    for epoch in epochs:
        assert len(epoch) == 24 and set(_rows(epoch)) <= set(_rows(in_order[:25]))
    for moved in second.files:
        pathlib.Path(moved + ".away").rename(moved)

    thirds = [train.part(3, index) for index in range(3)]  # 10 shards do not divide by 3
    assert [part.count for part in thirds] == [16, 16, 16]
    np.testing.assert_array_equal(np.concatenate([_images(part) for part in thirds]),
                                  in_order[:48])
    assert thirds[1].files == train.files[3:7] and thirds[1].skip == 1
    with pytest.raises(TfaeError, match="a split of 49 image.s. cannot be shared by 50 workers"):
        train.part(50, 0)


def test_a_prepared_folder_is_a_data_set_and_keeps_its_settings(photos, tmp_path):
    prepared = shards.prepare(photos, tmp_path / "prepared", image_size=(6, 4), channels=3)
    splits = data.load(str(prepared))
    assert splits.image_shape == (6, 4, 3) and splits.name == "photos"
    assert splits.source["prepared"] == str(prepared.resolve())
    with pytest.raises(TfaeError, match=r"prepared at 6x4 \(HxW\), 3 channel\(s\); prepare its "
                                        r"folder again with image_size instead"):
        data.load(str(prepared), image_size=(8, 8))
    records = data.load_records(str(prepared))  # names come from the folder it was made of
    assert records.ids[0] == "cat/000.png" and len(records) == 60


def test_a_shard_cut_short_or_deleted_is_one_line_and_preparing_again_mends_it(photos,
                                                                               tmp_path):
    out = shards.prepare(photos, tmp_path / "prepared", shard_bytes=IMAGE_BYTES * 10)
    shard = sorted(out.glob("train-*.tfrecord"))[1]
    shard.write_bytes(shard.read_bytes()[:-5])
    with pytest.raises(TfaeError, match=f"{shard} is missing or not the file that was written"):
        data.load(str(out))
    shard.unlink()
    with pytest.raises(TfaeError, match="prepare its folder again"):
        data.load(str(out))
    shards.prepare(photos, out, shard_bytes=IMAGE_BYTES * 10)  # the manifest no longer holds
    assert int(data.load(str(out)).train.cardinality()) == 49


def test_preparing_again_writes_nothing_unless_the_folder_changed(photos, tmp_path):
    out = tmp_path / "prepared"
    shards.prepare(photos, out, shard_bytes=IMAGE_BYTES * 10)
    written = {path.name: path.stat().st_mtime_ns for path in out.glob("*.tfrecord")}
    time.sleep(0.01)
    shards.prepare(photos, out, shard_bytes=IMAGE_BYTES * 10)
    assert {path.name: path.stat().st_mtime_ns for path in out.glob("*.tfrecord")} == written
    write_images(photos / "dog", 31, seed=5)  # rewrites the dogs and adds one
    shards.prepare(photos, out, shard_bytes=IMAGE_BYTES * 10)
    changed = shards.load(out)
    assert changed.source["images"] == 61
    assert changed.source["fingerprint"] == data.load(str(photos)).source["fingerprint"]


@pytest.mark.slow  # kill -9 of a preparing process: the full tier
def test_a_preparation_killed_midway_keeps_its_finished_shards(photos, tmp_path):
    out = tmp_path / "prepared"
    killed = textwrap.dedent(f"""
        import os, signal
        from tfae.data import shards
        from tfae.progress import Progress

        class Killing(Progress):
            def stage(self, *args, **kwargs):
                stage = super().stage(*args, **kwargs)
                done = [0]
                class Ticking:
                    def __enter__(self):
                        tick = stage.__enter__()
                        def counted(count=1):
                            done[0] += count
                            if done[0] == 30:
                                os.kill(os.getpid(), signal.SIGKILL)
                            tick(count)
                        return counted
                    def __exit__(self, *exc):
                        return stage.__exit__(*exc)
                return Ticking()

        shards.prepare({str(photos)!r}, {str(out)!r}, shard_bytes={IMAGE_BYTES * 8},
                       progress=Killing(enabled=False))
    """)
    result = subprocess.run([sys.executable, "-c", killed], capture_output=True)
    assert result.returncode == -signal.SIGKILL
    finished = {path.name: path.stat().st_mtime_ns for path in out.glob("*.tfrecord")}
    assert len(finished) == 4 and list(out.glob(".*.partial"))  # 28 images whole, 2 begun
    assert not (out / shards.MANIFEST).exists()
    shards.prepare(photos, out, shard_bytes=IMAGE_BYTES * 8)
    assert {name: stamp for name, stamp in (
        (path.name, path.stat().st_mtime_ns) for path in out.glob("*.tfrecord"))
        if name in finished} == finished
    assert not list(out.glob(".*.partial"))
    held = data.load(str(photos))
    resumed = shards.load(out)
    assert resumed.source["fingerprint"] == held.source["fingerprint"]
    np.testing.assert_array_equal(_images(resumed.train), _images(held.train))


@pytest.mark.slow  # two preparing processes: the full tier
def test_a_second_process_waits_for_the_first(photos, tmp_path):
    out = tmp_path / "prepared"
    out.mkdir()
    with open(out / shards.LOCK, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a process preparing it holds it
        second = subprocess.Popen(
            [sys.executable, "-m", "tfae_cli.main", "prepare", str(photos), "--out", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Until it says it waits (however long TensorFlow takes to start on a busy machine).
        said = ""
        while "waiting for another process" not in said and second.poll() is None:
            said += second.stderr.readline()
        assert f"waiting for another process preparing {photos}" in said
        time.sleep(2)
        assert second.poll() is None and not list(out.glob("*.tfrecord"))
    output, errors = second.communicate(timeout=120)
    assert second.returncode == 0, errors
    assert "prepared 60 images" in output


def test_prepare_on_the_command_line(photos, tmp_path):
    result = run_tfae("prepare", photos, "--image-size", "4,4", "--out", tmp_path / "small",
                      cwd=tmp_path)
    assert result.stdout.startswith(f"prepared 60 images of {photos} (train 49, validation 5, "
                                    f"test 6; 4x4x1, HxWxC) in {tmp_path / 'small'}: 3 shards")
    manifest = json.loads((tmp_path / "small" / shards.MANIFEST).read_text())
    assert manifest["settings"]["image_size"] == [4, 4]
    refused = run_tfae("prepare", photos, "--out", photos, cwd=tmp_path, check=False)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert f"{photos} is not empty and was not made by tfae prepare" in refused.stderr


def test_prepare_removes_only_files_tfae_marked_as_its_own(photos, tmp_path):
    # Names that end as tfae's do are not tfae's: a folder it did not make is refused whole.
    users = tmp_path / "mine"
    users.mkdir()
    for name in ("holiday.tfrecord", "notes.sha256", "draft.partial"):
        (users / name).write_text("the user's")
    with pytest.raises(TfaeError, match="not empty and was not made by tfae prepare"):
        shards.prepare(photos, users, image_size=(4, 4))
    assert sorted(path.name for path in users.iterdir()) == [
        "draft.partial", "holiday.tfrecord", "notes.sha256"]
    # In its own folder, preparing again at another size replaces its shards and nothing else.
    out = tmp_path / "prepared"
    shards.prepare(photos, out, image_size=(4, 4))
    (out / "README.txt").write_text("the user's note")
    (out / "train.tfrecord").write_text("the user's, named like a shard")
    shards.prepare(photos, out, image_size=(5, 5))
    assert (out / "README.txt").read_text() == "the user's note"
    assert (out / "train.tfrecord").read_text() == "the user's, named like a shard"
    assert json.loads((out / shards.MANIFEST).read_text())["settings"]["image_size"] == [5, 5]


def test_a_preparation_killed_while_writing_its_plan_is_taken_up_again(photos, tmp_path):
    out = tmp_path / "prepared"
    shards.prepare(photos, out, image_size=(4, 4))
    for path in out.iterdir():
        if path.name not in (shards.MARK, shards.LOCK):
            path.unlink()
    (out / f".{shards.PLAN}.999999.partial").write_text('{"half')  # a kill inside write_json
    shards.prepare(photos, out, image_size=(4, 4))
    assert (out / shards.MANIFEST).is_file()
    assert not list(out.glob("*.partial"))


def test_a_file_that_does_not_decode_is_named_and_leaves_no_partial_shard(photos, tmp_path):
    (photos / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "prepared"
    with pytest.raises(TfaeError, match="broken.png: not a readable image"):
        shards.prepare(photos, out)
    assert not list(out.glob(".*.partial")) and not (out / shards.MANIFEST).exists()


def test_the_held_folder_reader_keeps_one_file_at_a_time(photos, tmp_path):
    """The in-memory path fills one array as files decode: no list of every file's bytes (as
    large as the images here: noise does not compress), no list of decoded images stacked at the
    end. What is left is the array and the splits' copies of it (``make_splits``), 2.7x."""
    import tracemalloc

    big = tmp_path / "big"
    write_images(big, 200, shape=(64, 64, 3))
    decoded_bytes = 200 * 64 * 64 * 3
    # What a first load allocates once for any folder (modules imported, caches filled) is not
    # this folder's: it alone took the peak past the bound when this test ran first in its
    # process, and passed after any other.
    write_images(tmp_path / "first", 4, shape=(64, 64, 3))
    data.load(str(tmp_path / "first"))
    tracemalloc.start()
    try:
        data.load(str(big))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * decoded_bytes, f"peak {peak:,} bytes for {decoded_bytes:,} decoded"


def test_a_shard_corrupted_in_place_stops_training_with_one_line(photos, tmp_path):
    out = shards.prepare(photos, tmp_path / "prepared")
    shard = next(out.glob("train-*.tfrecord"))
    content = bytearray(shard.read_bytes())
    content[1000:1010] = b"\xff" * 10  # same size: only the records' checksums tell
    shard.write_bytes(bytes(content))
    result = run_tfae("fit", "--model", "deep", "--hidden", "16", "--latent-dim", "4",
                      "--dataset", out, "--epochs", "1", "--no-export", "--out", "run",
                      cwd=tmp_path, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        "Error: a data file is corrupt (corrupted record at")


def test_prepared_folders_go_under_tfae_cache_dir_when_it_is_set(tmp_path, monkeypatch):
    monkeypatch.setenv("TFAE_CACHE_DIR", str(tmp_path / "cache"))
    assert shards.prepared_folder("/data/photos").parent == tmp_path / "cache" / "prepared"
    assert shards.prepared_folder("/data/photos", str(tmp_path / "mine")).parent == \
        tmp_path / "mine"


def test_a_run_on_a_prepared_folder_uses_and_records_the_settings_it_was_prepared_with(
        photos, tmp_path, capfd):
    import tfae

    prepared = shards.prepare(photos, tmp_path / "prepared", image_size=(6, 6), resize="pad",
                              test_fraction=0.2)
    run = tfae.fit(tfae.FitConfig(model="deep", dataset=str(prepared), resize="crop",
                                  epochs=1, model_options={"hidden": (8,), "latent_dim": 2}),
                   tmp_path / "run", export=True, export_dir=tmp_path / "export", verbose=0)
    warning = capfd.readouterr().err
    assert f"warning: {prepared} was prepared with --image-size 6,6, --resize pad, " \
           "--test-fraction 0.2; the run uses and records these" in warning
    config = json.loads((run.run_dir / "config.json").read_text())
    assert (config["resize"], config["test_fraction"], config["image_size"]) == ("pad", 0.2,
                                                                                [6, 6])
    assert run.model.image_shape == (6, 6, 1)


def test_preparing_again_mends_a_shard_damaged_in_place_and_only_it(photos, tmp_path):
    out = shards.prepare(photos, tmp_path / "prepared", shard_bytes=IMAGE_BYTES * 10)
    damaged, *intact = sorted(out.glob("train-*.tfrecord"))
    kept = {path.name: path.stat().st_mtime_ns for path in intact}
    content = bytearray(damaged.read_bytes())
    content[100:110] = b"\xff" * 10  # the same size: loading cannot tell
    damaged.write_bytes(bytes(content))
    shards.prepare(photos, out, shard_bytes=IMAGE_BYTES * 10)
    assert damaged.read_bytes() == bytes(content)  # not verified unless asked
    shards.prepare(photos, out, shard_bytes=IMAGE_BYTES * 10, verify=True)
    assert damaged.read_bytes() != bytes(content)
    assert {path.name: path.stat().st_mtime_ns for path in intact} == kept
    np.testing.assert_array_equal(_rows(_images(shards.load(out).train)),
                                  _rows(_images(data.load(str(photos)).train)))


def _said_by_tfae(work):
    """The messages tfae logs at INFO while ``work()`` runs, read by a handler on tfae's own
    logger: pytest's ``caplog`` listens at the root, which a command run earlier in the same
    worker cut tfae's logger off from (``propagate = False``, cli/main.py)."""
    import logging

    said = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())
    logger = logging.getLogger("tfae")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        work()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return said


def test_preparing_a_folder_waits_while_its_lock_is_held_for_reading(photos, tmp_path):
    import threading

    # The fast tier's test of the wait: a second open file description of the lock conflicts
    # with the first as another process's would (flock), so no process need start.
    out = shards.prepare(photos, tmp_path / "prepared")
    reader = open(out / shards.LOCK)
    fcntl.flock(reader, fcntl.LOCK_SH)
    threading.Timer(1.0, reader.close).start()
    began = time.monotonic()
    said = _said_by_tfae(lambda: shards.prepare(photos, out, image_size=(4, 4)))
    assert time.monotonic() - began > 0.9 and reader.closed
    assert f"waiting for another process preparing or reading {out}" in said
    assert shards.load(out).image_shape == (4, 4, 1)


@pytest.mark.slow  # a process of its own: a real reader's lock, held until it exits
def test_preparing_a_folder_a_process_reads_waits_for_it(photos, tmp_path):
    out = shards.prepare(photos, tmp_path / "prepared")
    reader = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from tfae.data import shards
        shards.load({str(out)!r})
        print("loaded", flush=True)
        time.sleep(3)
    """)], stdout=subprocess.PIPE, text=True)
    assert reader.stdout.readline() == "loaded\n"
    began = time.monotonic()
    said = _said_by_tfae(lambda: shards.prepare(photos, out, image_size=(4, 4)))
    # Its shards were not replaced while it could read them: preparing waited for it to end.
    assert time.monotonic() - began > 2.5 and reader.wait(timeout=30) == 0
    assert f"waiting for another process preparing or reading {out}" in said
    assert shards.load(out).image_shape == (4, 4, 1)


def test_a_run_is_not_resumed_on_a_folder_prepared_again_at_another_size(photos, tmp_path):
    import tfae

    prepared = shards.prepare(photos, tmp_path / "prepared")
    config = tfae.FitConfig(model="deep", dataset=str(prepared), epochs=1,
                            model_options={"hidden": (8,), "latent_dim": 2})
    tfae.fit(config, tmp_path / "run", verbose=0)
    shards.prepare(photos, prepared, image_size=(4, 4))
    with pytest.raises(TfaeError, match="image_size"):
        tfae.fit(config.merged({"epochs": 2}), tmp_path / "run", verbose=0)
