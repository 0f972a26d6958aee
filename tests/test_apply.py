"""tfae encode and tfae reconstruct: every image of a folder, .npz file or tfds data set through
a run or an export, written with its id and label; hostile outputs and files refused or survived."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pyarrow.parquet
import pytest
import tensorflow as tf
from click.testing import CliRunner

from tfae.apply import encode, reconstruct
from tfae.data.splits import conform
from tfae.errors import TfaeError
from tfae.exports import export_saved_model
from tfae.families import build_model
from tfae.opened import open_model
from tfae_cli.main import tfae


@pytest.fixture(scope="module")
def small_export(tmp_path_factory):
    """An untrained dense export that takes 8x8 grayscale images and gives 4-number codes."""
    folder = tmp_path_factory.mktemp("export") / "small"
    export_saved_model(build_model("deep", (8, 8, 1), hidden=(16,), latent_dim=4), folder)
    return folder


@pytest.fixture
def photos(tmp_path):
    """A folder of two classes of colour images of different sizes, PNG and JPEG, and one
    unlabelled image at its top."""
    rng = np.random.default_rng(0)
    files = {"cat/1.png": (10, 12), "cat/2.jpg": (16, 16), "dog/1.png": (9, 9),
             "dog/deeper/3.png": (8, 8), "loose.png": (20, 10)}
    for name, (height, width) in files.items():
        path = tmp_path / "photos" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        encoded = tf.io.encode_png(image) if name.endswith(".png") else tf.io.encode_jpeg(image)
        tf.io.write_file(str(path), encoded)
    return tmp_path / "photos"


def _expected(endpoint, folder, ids):
    """What the model gives for the files ``ids`` of ``folder``, decoded (to grayscale by the
    decoder, as tfae.data.folder does) and resized here."""
    images = [conform(tf.io.decode_image(tf.io.read_file(str(folder / image_id)), channels=1,
                                         expand_animations=False), (8, 8)) for image_id in ids]
    return endpoint(tf.cast(tf.stack(images), tf.float32) / 255.0).numpy()


def _invoke(*args):
    return CliRunner().invoke(tfae, [*map(str, args), "--quiet"])


def test_encode_writes_every_image_of_a_folder_with_its_path_and_label(
        small_export, photos, tmp_path):
    applied = encode(small_export, tmp_path / "codes.npz", dataset=photos, verbose=False)
    with np.load(tmp_path / "codes.npz") as saved:
        ids, codes, labels = saved["ids"].tolist(), saved["codes"], saved["labels"].tolist()
        class_names = saved["class_names"].tolist()
    assert ids == ["cat/1.png", "cat/2.jpg", "dog/1.png", "dog/deeper/3.png", "loose.png"]
    assert class_names == ["cat", "dog"] and labels == [0, 0, 1, 1, -1]
    assert applied.images == 5 and applied.skipped == () and applied.shape == (4,)
    endpoints = open_model(small_export)
    np.testing.assert_allclose(codes, _expected(endpoints.encode, photos, ids), atol=1e-5)


def test_csv_and_parquet_hold_the_same_codes_as_npz(small_export, photos, tmp_path):
    for name in ("codes.npz", "codes.csv", "codes.parquet"):
        encode(small_export, tmp_path / name, dataset=photos, verbose=False)
    with np.load(tmp_path / "codes.npz") as saved:
        codes = saved["codes"]
    table = pyarrow.parquet.read_table(tmp_path / "codes.parquet").to_pydict()
    assert list(table)[:4] == ["id", "split", "label", "class"]
    assert table["class"] == ["cat", "cat", "dog", "dog", None]
    np.testing.assert_array_equal(np.stack([table[f"code_{i}"] for i in range(4)], 1), codes)
    lines = (tmp_path / "codes.csv").read_text().splitlines()
    assert lines[0].split(",")[:5] == ['"id"', '"split"', '"label"', '"class"', '"code_0"']
    row = lines[5].split(",")
    assert row[:4] == ['"loose.png"', '"train"', "-1", ""]
    np.testing.assert_allclose([float(value) for value in row[4:]], codes[4], rtol=1e-6)


def test_reconstruct_writes_pngs_named_as_the_images(small_export, photos, tmp_path):
    (photos / "cat/1.jpg").write_bytes((photos / "cat/2.jpg").read_bytes())  # beside 1.png
    applied = reconstruct(small_export, tmp_path / "out", dataset=photos, verbose=False)
    written = sorted(path.relative_to(tmp_path / "out").as_posix()
                     for path in (tmp_path / "out").rglob("*.png"))
    assert written == ["cat/1.jpg.png", "cat/1.png.png", "cat/2.png", "dog/1.png",
                       "dog/deeper/3.png", "loose.png"]
    assert applied.shape == (8, 8, 1)
    expected = _expected(open_model(small_export).reconstruct, photos, ["dog/1.png"])[0]
    png = tf.io.decode_png(tf.io.read_file(str(tmp_path / "out/dog/1.png"))).numpy()
    np.testing.assert_array_equal(png, np.round(np.clip(expected, 0, 1) * 255).astype(np.uint8))
    reconstruct(small_export, tmp_path / "all.npz", dataset=photos, verbose=False)
    with np.load(tmp_path / "all.npz") as saved:
        assert saved["reconstructions"].shape == (6, 8, 8, 1)
        assert saved["reconstructions"].dtype == np.float32


def test_a_file_that_does_not_decode_is_skipped_and_named(small_export, photos, tmp_path):
    (photos / "cat/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = _invoke("encode", small_export, "--dataset", photos, "--out", tmp_path / "c.npz")
    assert result.exit_code == 0, result.output
    assert "skipped 1 files that do not decode: cat/broken.png" in result.stderr
    with np.load(tmp_path / "c.npz") as saved:
        assert "cat/broken.png" not in saved["ids"].tolist() and len(saved["ids"]) == 5


def test_a_folder_of_only_broken_files_is_one_line(small_export, tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad/a.png").write_bytes(b"nope")
    result = _invoke("encode", small_export, "--dataset", tmp_path / "bad", "--out",
                     tmp_path / "c.npz")
    assert result.exit_code == 1 and "none of the 1 images of bad decode" in result.output
    assert not any(tmp_path.glob("*c.npz*"))  # nothing half-written left


def test_a_tfds_data_set_by_split_with_ids_and_labels(small_export, tmp_path):
    from tfae.data import load

    model = tmp_path / "mnist-small"
    export_saved_model(build_model("deep", (28, 28, 1), hidden=(8,), latent_dim=3), model)
    result = _invoke("encode", model, "--split", "test", "--limit", "300", "--out",
                     tmp_path / "c.npz")
    assert result.exit_code == 0, result.output
    assert "wrote 300 codes of mnist images (3 numbers each)" in result.stdout
    with np.load(tmp_path / "c.npz") as saved:
        assert saved["ids"][0] == "test/0000" and saved["ids"][-1] == "test/0299"
        labels = saved["labels"]
    expected = np.array([int(label) for _, label in load("mnist", limit=300).test])
    np.testing.assert_array_equal(labels, expected)


def test_an_npz_file_encodes_x_then_x_test(small_export, tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "d.npz", x=rng.random((5, 8, 8)).astype(np.float32),
             y=np.array(["a", "b", "a", "b", "a"]), x_test=rng.random((3, 8, 8)),
             y_test=np.array(["b", "a", "a"]))
    encode(small_export, tmp_path / "c.npz", dataset=tmp_path / "d.npz", verbose=False)
    with np.load(tmp_path / "c.npz") as saved:
        assert saved["ids"].tolist() == [f"x/{i}" for i in range(5)] + [
            f"x_test/{i}" for i in range(3)]
        assert saved["labels"].tolist() == [0, 1, 0, 1, 0, 1, 0, 0]
    # The test split is x_test's; of a file without one, the rows fit held out by its seed.
    assert encode(small_export, dataset=tmp_path / "d.npz", split="test",
                  verbose=False).ids.tolist() == [f"x_test/{i}" for i in range(3)]
    np.savez(tmp_path / "only-x.npz", x=np.zeros((20, 8, 8), np.uint8))
    held_out = encode(small_export, dataset=tmp_path / "only-x.npz", split="test", verbose=False)
    assert held_out.ids.tolist() == ["x/04", "x/19"] and set(held_out.splits) == {"test"}


@pytest.mark.parametrize("out, message", [
    ("codes.txt", "--out must end in .npz, .csv, .parquet"),
    ("missing/codes.npz", "folder"),
])
def test_an_output_encode_cannot_write_is_one_line(small_export, photos, tmp_path, out, message):
    result = _invoke("encode", small_export, "--dataset", photos, "--out", tmp_path / out)
    assert result.exit_code == 1 and message in result.output
    assert "Traceback" not in result.output


def test_reconstruct_never_writes_into_a_folder_that_holds_files(small_export, photos, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out/keep.txt").write_text("mine")
    result = _invoke("reconstruct", small_export, "--dataset", photos, "--out", tmp_path / "out")
    assert result.exit_code == 1 and "already holds files" in result.output
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["keep.txt"]
    result = _invoke("reconstruct", small_export, "--dataset", photos, "--out", tmp_path / "r.png")
    assert result.exit_code == 1 and "a folder (for PNG files) or an .npz file" in result.output


def test_a_failure_midway_keeps_the_old_output_and_leaves_no_temporary_files(
        small_export, photos, tmp_path, monkeypatch):
    from tfae import files

    out = tmp_path / "codes.parquet"
    out.write_bytes(b"the old codes")
    calls = []

    def full_disk(self, *args):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return add(self, *args)

    add = files.TableWriter.add
    monkeypatch.setattr(files.TableWriter, "add", full_disk)
    with pytest.raises(TfaeError, match=f"cannot write {out}: No space left on device"):
        encode(small_export, out, dataset=photos, batch_size=2, verbose=False)
    assert out.read_bytes() == b"the old codes"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["codes.parquet", "photos"]


def test_an_output_left_by_a_killed_process_is_removed(small_export, photos, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    left = tmp_path / f".codes.npz.{dead}.partial.raw"
    left.write_bytes(b"half")
    mine = tmp_path / f".codes.npz.{os.getpid()}.partial-of-a-live-process"
    mine.write_bytes(b"in progress elsewhere")
    encode(small_export, tmp_path / "codes.npz", dataset=photos, verbose=False)
    assert not left.exists() and mine.exists()


@pytest.mark.slow
def test_a_run_encodes_its_own_folder_by_default(photos, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(tfae, [
        "fit", "--model", "deep", "--hidden", "16", "--latent-dim", "4", "--dataset", "photos",
        "--image-size", "8,8", "--channels", "1", "--resize", "crop", "--epochs", "1",
        "--no-export", "--out", "run", "--quiet"])
    assert result.exit_code == 0, result.output
    monkeypatch.chdir(pathlib.Path("/"))  # the run's folder is found from anywhere
    result = _invoke("encode", tmp_path / "run", "--out", tmp_path / "codes.npz")
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "codes.npz") as saved:
        ids, codes = saved["ids"].tolist(), saved["codes"]
    assert len(ids) == 5
    endpoints = open_model(tmp_path / "run")
    image = conform(tf.io.decode_image(tf.io.read_file(str(photos / "loose.png")), channels=1,
                                       expand_animations=False), (8, 8), resize="crop")
    expected = endpoints.encode(tf.cast(image[tf.newaxis], tf.float32) / 255.0).numpy()
    np.testing.assert_allclose(codes[ids.index("loose.png")], expected[0], atol=1e-5)


def test_an_output_that_names_its_input_or_lies_inside_it_is_refused(small_export, photos,
                                                                       tmp_path):
    np.savez(tmp_path / "x.npz", x=np.zeros((10, 8, 8), np.uint8))
    before = (tmp_path / "x.npz").read_bytes()
    for command, dataset, out, where in (
            ("encode", tmp_path / "x.npz", tmp_path / "x.npz", "is the images"),
            ("reconstruct", tmp_path / "x.npz", tmp_path / "x.npz", "is the images"),
            ("encode", photos, photos / "codes.npz", "is inside the images"),
            ("reconstruct", photos, photos / "cat" / "out", "is inside the images")):
        result = _invoke(command, small_export, "--dataset", dataset, "--out", out)
        assert result.exit_code == 1 and f"--out {out} {where} it is made from" in result.output
    assert (tmp_path / "x.npz").read_bytes() == before
    assert not (photos / "codes.npz").exists() and not (photos / "cat" / "out").exists()


def test_reconstructions_whose_names_would_collide_are_each_written(small_export, tmp_path):
    folder = tmp_path / "same"
    folder.mkdir()
    for name in ("a.png", "a.jpg", "a.png.png"):
        image = np.full((8, 8, 1), len(name) * 20, np.uint8)
        encoded = tf.io.encode_jpeg(image) if name.endswith(".jpg") else tf.io.encode_png(image)
        (folder / name).write_bytes(encoded.numpy())
    applied = reconstruct(small_export, tmp_path / "out", dataset=folder, verbose=False)
    written = sorted(path.name for path in (tmp_path / "out").iterdir())
    assert applied.images == 3 and len(written) == 3, written
