"""The data sources: image folders, .npz files, arrays in Python and tfds names, good and bad.

The images are written here (``tf.io.encode_png``, Pillow for BMP and GIF), grey and colour,
labelled and not; nothing comes from outside the tests but MNIST and, where Debian's
dataset-fashion-mnist package is installed, Fashion-MNIST.
"""

import io
import pathlib
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from conftest import write_images
from tfae import data
from tfae.data import arrays, catalog
from tfae.errors import TfaeError

FASHION_FILES = pathlib.Path("/usr/share/datasets/fashion-mnist")


def _sizes(splits):
    return [int(split.cardinality()) for split in (splits.train, splits.validation, splits.test)]


def _all(split):
    images, labels = zip(*split.as_numpy_iterator())
    return np.stack(images), np.array(labels)


def test_class_folders_give_labels_and_a_seeded_test_split(tmp_path):
    write_images(tmp_path / "photos/cat", 20, seed=1)
    write_images(tmp_path / "photos/dog/puppies", 20, seed=2)  # deeper files belong to dog
    splits = data.load(str(tmp_path / "photos"))
    assert splits.class_names == ("cat", "dog") and splits.num_classes == 2
    assert _sizes(splits) == [32, 4, 4]  # 10% test, then 10% of the rest for validation
    assert splits.source["kind"] == "folder" and len(splits.source["fingerprint"]) == 16
    again = data.load(str(tmp_path / "photos"))
    np.testing.assert_array_equal(_all(splits.test)[0], _all(again.test)[0])
    labels = np.concatenate([_all(split)[1] for split in (splits.train, splits.validation,
                                                           splits.test)])
    assert sorted(labels.tolist()) == [0] * 20 + [1] * 20
    assert _sizes(data.load(str(tmp_path / "photos"), test_fraction=0.5)) == [18, 2, 20]


def test_train_and_test_folders_are_the_splits(tmp_path):
    test_images = write_images(tmp_path / "scans/test/a", 5, seed=3)
    write_images(tmp_path / "scans/train/a", 10)
    write_images(tmp_path / "scans/train/b", 10, seed=4)
    splits = data.load(str(tmp_path / "scans"))
    assert _sizes(splits) == [18, 2, 5]
    np.testing.assert_array_equal(_all(splits.test)[0], test_images)


def test_images_without_a_class_folder_are_unlabelled(tmp_path):
    write_images(tmp_path / "plain", 12)
    splits = data.load(str(tmp_path / "plain"))
    assert splits.num_classes == 0 and not splits.labelled and splits.class_names == ()
    assert set(_all(splits.train)[1]) == {-1}
    write_images(tmp_path / "plain/cat", 12, seed=5)  # beside class folders: still unlabelled
    labels = np.concatenate([_all(split)[1] for split in (data.load(
        str(tmp_path / "plain")).train, data.load(str(tmp_path / "plain")).test)])
    assert set(labels) == {-1, 0}


# A GIF of 30 pixels fits its palette of 256 colours; JPEG is lossy.
@pytest.mark.parametrize("suffix, exact", [(".png", True), (".bmp", True), (".gif", True),
                                           (".jpg", False)])
def test_every_image_format_is_read_with_tensorflows_decoder(tmp_path, suffix, exact):
    images = write_images(tmp_path / "pictures", 10, shape=(6, 5, 3), suffix=suffix)
    splits = data.load(str(tmp_path / "pictures"), test_fraction=0.2)
    assert splits.image_shape == (6, 5, 3)
    decoded = np.concatenate([_all(split)[0] for split in (splits.train, splits.validation,
                                                             splits.test)])
    assert (sorted(map(bytes, decoded)) == sorted(map(bytes, images))) is exact


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".gif", ".jpg"])
def test_every_image_format_decodes_to_grayscale(tmp_path, suffix):
    # TensorFlow's BMP and GIF decoders refuse channels=1: they are decoded in colour, converted.
    write_images(tmp_path / "pictures", 10, shape=(6, 5, 3), suffix=suffix)
    splits = data.load(str(tmp_path / "pictures"), channels=1)
    images = _all(splits.train)[0]
    assert splits.image_shape == (6, 5, 1) and images.std() > 10
    records = data.load_records(str(tmp_path / "pictures"), channels=1, image_size=(6, 5))
    assert len(list(records.dataset)) == 10


def test_a_folder_is_decoded_once_and_held_in_memory(tmp_path):
    write_images(tmp_path / "once", 10)
    splits = data.load(str(tmp_path / "once"))
    shutil.rmtree(tmp_path / "once")  # later epochs must not read (or decode) the files again
    first = list(data.pipeline(splits.train, 4, shuffle=True))
    second = list(data.pipeline(splits.train, 4, shuffle=True))
    assert len(first) == len(second) == 2


def test_image_size_and_channels_shape_every_source(tmp_path):
    write_images(tmp_path / "mixed", 6, shape=(8, 8, 1))
    write_images(tmp_path / "mixed/big", 6, shape=(12, 9, 3), seed=7)
    splits = data.load(str(tmp_path / "mixed"), image_size=(10, 10), channels=3)
    assert splits.image_shape == (10, 10, 3)
    assert _all(splits.train)[0].dtype == np.uint8
    np.savez(tmp_path / "colour.npz", x=np.random.default_rng(0).random((20, 9, 7, 3)))
    grey = data.load(str(tmp_path / "colour.npz"), channels=1, image_size=(4, 4))
    images = _all(grey.train)[0]
    assert grey.image_shape == (4, 4, 1) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 1
    assert data.load("mnist", limit=8, channels=3, image_size=(20, 20)).image_shape == (20, 20, 3)


@pytest.mark.parametrize("resize, middle, corners", [("stretch", 255, 0), ("crop", 255, 255),
                                                     ("pad", 255, 0)])
def test_resize_stretches_crops_or_pads_images_of_another_aspect_ratio(tmp_path, resize, middle,
                                                                        corners):
    # Wide images, black on the left and right thirds and white in the middle third: cropped to
    # a square they are all white; padded, black bars lie above and below; stretched, black sides.
    wide = np.zeros((12, 36, 1), np.uint8)
    wide[:, 12:24] = 255
    folder = tmp_path / "wide"
    folder.mkdir()
    for index in range(12):
        tf.io.write_file(str(folder / f"{index:02d}.png"), tf.io.encode_png(wide))
    splits = data.load(str(folder), image_size=(12, 12), resize=resize)
    image = _all(splits.train)[0][0, ..., 0].astype(int)
    assert splits.image_shape == (12, 12, 1)
    assert image[6, 6] == middle and image[0, 0] == corners
    if resize == "pad":  # the rows above and below the image are bars
        assert image[:4].max() == 0 and image[6, 6] == 255 and image[6, 0] == 0
    if resize == "stretch":
        assert image[0, 6] == 255 and image[6, 0] == 0


def test_an_unknown_resize_mode_is_refused_by_name():
    with pytest.raises(TfaeError, match="resize must be one of stretch, crop, pad"):
        data.load("mnist", limit=8, image_size=(20, 20), resize="squash")


def test_npz_files_hold_images_labels_and_a_test_split(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "set.npz", x=rng.integers(0, 256, (30, 5, 6), dtype=np.uint8),
             y=np.array(["ant", "bee", "cow"] * 10),
             x_test=rng.integers(0, 256, (7, 5, 6), dtype=np.uint8),
             y_test=np.array(["bee"] * 7))
    splits = data.load(str(tmp_path / "set.npz"))
    assert splits.name == "set" and splits.image_shape == (5, 6, 1)
    assert splits.class_names == ("ant", "bee", "cow") and _sizes(splits) == [27, 3, 7]
    assert set(_all(splits.test)[1]) == {1}
    assert splits.source["kind"] == "npz"


def test_arrays_and_datasets_from_python(tmp_path):
    images = np.random.default_rng(0).random((40, 7, 7, 3)).astype(np.float32)
    labels = np.arange(40) % 4
    from_pair = data.as_splits((images, labels))
    assert from_pair.num_classes == 4 and from_pair.image_shape == (7, 7, 3)
    from_dataset = data.as_splits(tf.data.Dataset.from_tensor_slices((images, labels)))
    np.testing.assert_array_equal(_all(from_pair.test)[0], _all(from_dataset.test)[0])
    as_dicts = tf.data.Dataset.from_tensor_slices({"image": images})
    assert not data.as_splits(as_dicts).labelled
    assert data.as_splits(from_pair) is from_pair
    assert data.as_splits({"x": images, "y": labels}).source["fingerprint"] == \
        from_pair.source["fingerprint"]


def test_the_fingerprint_follows_the_content(tmp_path):
    write_images(tmp_path / "pics", 6)
    before = data.load(str(tmp_path / "pics")).source["fingerprint"]
    assert data.load(str(tmp_path / "pics")).source["fingerprint"] == before
    write_images(tmp_path / "pics", 1, seed=9)  # one image changed
    assert data.load(str(tmp_path / "pics")).source["fingerprint"] != before
    mnist_print = data.load("mnist", limit=10).source["fingerprint"]
    assert data.load("mnist", limit=20).source["fingerprint"] == mnist_print  # same data


def _corrupt_folder(path):
    write_images(path, 5)
    png = (path / "002.png").read_bytes()
    (path / "002.png").write_bytes(png[: len(png) // 2])


BAD_SOURCES = [
    ("empty folder", lambda path: path.mkdir(), {}, "is empty"),
    ("no images", lambda path: (path.mkdir(), (path / "notes.txt").write_text("hi")), {},
     "holds no images"),
    ("corrupt image", _corrupt_folder, {}, r"002\.png: not a readable image"),
    ("sizes differ", lambda path: (write_images(path, 2), write_images(path / "c", 2, (9, 8, 1))),
     {}, r"images differ in size: .*images/000\.png is 8x8 \(HxW\), .*c/000\.png is 9x8; give "
     r"image_size"),
    ("channels differ", lambda path: (write_images(path, 2),
                                      write_images(path / "c", 2, (8, 8, 3))), {},
     r"images differ in channels: .* has 1, .* has 3; give channels"),
    ("train without test", lambda path: (write_images(path / "train", 4),
                                         (path / "test").mkdir()), {}, r"test holds no images"),
    ("too few images", lambda path: write_images(path, 2), {}, "2 images are too few"),
    ("manual_dir on a folder", lambda path: write_images(path, 4),
     {"manual_dir": "/tmp"}, "manual_dir applies to tensorflow-datasets names"),
    ("image_size of three", lambda path: write_images(path, 4), {"image_size": (1, 2, 3)},
     "image_size must be two sizes"),
    ("image_size zero", lambda path: write_images(path, 4), {"image_size": (0, 5)},
     "image_size sizes must be positive"),
    ("channels two", lambda path: write_images(path, 4), {"channels": 2},
     "channels must be one of 1, 3"),
    ("test_fraction one", lambda path: write_images(path, 4), {"test_fraction": 1.0},
     "test_fraction must be below 1"),
]
BAD_NPZ = [
    ("no x", {"images": np.zeros((3, 4, 4))}, r"has no array 'x' of images \(it has: images\)"),
    ("x of rank 2", {"x": np.zeros((3, 4))}, r"x must have shape \(N, H, W\)"),
    ("x of rank 5", {"x": np.zeros((3, 4, 4, 1, 1))}, r"got shape \(3, 4, 4, 1, 1\)"),
    ("no images", {"x": np.zeros((0, 4, 4))}, "x holds no images"),
    ("y too short", {"x": np.zeros((3, 4, 4)), "y": np.zeros(2, int)}, "y has 2 labels for 3"),
    ("float y", {"x": np.zeros((3, 4, 4)), "y": np.zeros(3)}, "y must hold whole numbers"),
    ("x above one", {"x": np.full((3, 4, 4), 2.0)}, r"float in \[0, 1\]; its values run from 2"),
    ("x with NaN", {"x": np.full((3, 4, 4), np.nan)}, "holds NaN or infinity"),
    ("x of int64", {"x": np.zeros((3, 4, 4), np.int64)}, "must be uint8, or float"),
    ("y_test alone", {"x": np.zeros((3, 4, 4)), "y_test": np.zeros(3, int)},
     "y_test without x_test"),
    ("test shape differs", {"x": np.zeros((3, 4, 4)), "x_test": np.zeros((3, 5, 4))},
     "x_test's images are"),
    ("labels for one split", {"x": np.zeros((3, 4, 4)), "y": np.zeros(3, int),
                              "x_test": np.zeros((3, 4, 4))}, "labels for both splits"),
]


@pytest.mark.parametrize("make, settings, message", [case[1:] for case in BAD_SOURCES],
                         ids=[case[0] for case in BAD_SOURCES])
def test_a_bad_folder_or_setting_is_one_clear_error(tmp_path, make, settings, message):
    make(tmp_path / "images")
    with pytest.raises(TfaeError, match=message) as error:
        data.load(str(tmp_path / "images"), **settings)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("arrays_, message", [case[1:] for case in BAD_NPZ],
                         ids=[case[0] for case in BAD_NPZ])
def test_a_bad_npz_file_is_one_clear_error_naming_it(tmp_path, arrays_, message):
    np.savez(tmp_path / "bad.npz", **arrays_)
    with pytest.raises(TfaeError, match=message) as error:
        data.load(str(tmp_path / "bad.npz"))
    assert "bad.npz" in str(error.value) and "\n" not in str(error.value)


def test_an_npz_declaring_more_than_memory_holds_is_refused_before_reading(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": (10**6, 10**4, 10**4)})
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w") as archive:
        archive.writestr("x.npy", header.getvalue())  # 100 TB declared, nothing behind it
    with pytest.raises(TfaeError, match=r"bomb.npz: its arrays hold 100,000.0 GB \(x is "
                                        r"1000000x10000x10000 uint8\), more than this machine's"):
        data.load(str(tmp_path / "bomb.npz"))


def test_a_truncated_npz_is_called_damaged_not_foreign(tmp_path):
    np.savez(tmp_path / "whole.npz", x=np.zeros((10, 4, 4), np.uint8))
    (tmp_path / "cut.npz").write_bytes((tmp_path / "whole.npz").read_bytes()[:200])
    with pytest.raises(TfaeError, match=r"cut.npz is not a readable .npz file \(a damaged or "
                                        r"truncated zip\)"):
        data.load(str(tmp_path / "cut.npz"))


def test_a_small_run_of_a_large_npz_copies_only_the_images_it_takes(tmp_path):
    # 120 MB of images in a file of a few hundred KB; --limit 100 must not copy them again.
    np.savez_compressed(tmp_path / "large.npz", x=np.zeros((120_000, 32, 32), np.uint8))
    measured = subprocess.run([sys.executable, "-c", """
import resource, sys
from tfae.data.arrays import load
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
splits = load(sys.argv[1], limit=100)
assert int(splits.train.cardinality()) == 100
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
""", str(tmp_path / "large.npz")], capture_output=True, text=True, timeout=120)
    assert measured.returncode == 0, measured.stderr[-2000:]
    grown = int(measured.stdout.split()[-1])
    assert grown < 1.5 * 120_000 * 32 * 32  # the array once (decompressed), not three times


@pytest.mark.parametrize("name, content, message", [
    ("", None, "dataset is empty"),
    ("text.npz", b"hello", r"is not an \.npz file"),
    ("missing.npz", None, r"no such \.npz file"),
    ("./nowhere", None, r"no such folder or \.npz file"),
])
def test_a_missing_or_foreign_file_is_one_clear_error(tmp_path, monkeypatch, name, content,
                                                      message):
    monkeypatch.chdir(tmp_path)
    if content is not None:
        pathlib.Path(name).write_bytes(content)
    with pytest.raises(TfaeError, match=message):
        data.load(name)


def test_python_data_of_another_kind_is_refused():
    with pytest.raises(TfaeError, match="data must be Splits, a tf.data.Dataset"):
        arrays.as_splits("not images")
    with pytest.raises(TfaeError, match="unknown arrays labels"):
        arrays.as_splits({"x": np.zeros((4, 3, 3)), "labels": np.zeros(4)})


def test_a_download_offline_says_to_use_manual_dir(tmp_path, monkeypatch):
    # A proxy that refuses every connection stands for a machine without network.
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(TfaeError, match="kmnist.*cannot be reached.*manual_dir") as error:
        data.load("kmnist", data_dir=str(tmp_path))
    assert "\n" not in str(error.value)


def test_a_manual_dir_without_the_files_names_them(tmp_path):
    (tmp_path / "files").mkdir()
    with pytest.raises(TfaeError, match="lacks t10k-images-idx3-ubyte.gz.*fashion_mnist"):
        data.load("fashion_mnist", data_dir=str(tmp_path / "tfds"),
                  manual_dir=str(tmp_path / "files"))
    with pytest.raises(TfaeError, match="is not a folder"):
        data.load("fashion_mnist", data_dir=str(tmp_path / "tfds"),
                  manual_dir=str(tmp_path / "nowhere"))


def test_a_manual_file_of_other_content_is_refused_by_name(tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    for name in catalog.MNIST_MD5:  # MNIST's files where Fashion-MNIST's belong
        shutil.copy(catalog.BUNDLED_MNIST / name, files / name)
    with pytest.raises(TfaeError, match=r"is not fashion_mnist's .*-ubyte\.gz: its sha256"):
        data.load("fashion_mnist", data_dir=str(tmp_path / "tfds"), manual_dir=str(files))


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_FILES.is_dir(), reason="Debian's dataset-fashion-mnist is absent")
def test_fashion_mnist_builds_offline_from_debians_files_beside_mnist(tmp_path):
    # MNIST first, in the same folder: its files have Fashion-MNIST's names, and tfds once reused
    # their extraction, building "fashion_mnist" out of MNIST's digits.
    digits = data.load("mnist", data_dir=str(tmp_path), limit=50)
    # What a build killed with -9 leaves: its extraction folder and tfds' incomplete one.
    version = tfds.builder("fashion_mnist", data_dir=str(tmp_path)).version
    leftovers = [tmp_path / ".tfae-extract-fashion_mnist-killed",
                 tmp_path / f"fashion_mnist/incomplete.ABC123_{version}"]
    # Another data set's extraction, in use by a process preparing it under its own lock.
    busy = tmp_path / ".tfae-extract-cifar10-busy"
    for leftover in [*leftovers, busy]:
        (leftover / "part").mkdir(parents=True)
    splits = data.load("fashion_mnist", data_dir=str(tmp_path), manual_dir=str(FASHION_FILES),
                       limit=50)
    assert not any(leftover.exists() for leftover in leftovers)
    assert (busy / "part").is_dir()
    busy.joinpath("part").rmdir()
    busy.rmdir()
    assert splits.image_shape == (28, 28, 1) and splits.num_classes == 10
    assert splits.class_names[0] == "T-shirt/top" and _sizes(splits) == [50, 50, 50]
    clothes, digit_images = _all(splits.train)[0], _all(digits.train)[0]
    assert not np.array_equal(clothes, digit_images)
    # Digits are mostly black background; clothes fill much more of the frame.
    assert clothes.mean() > 1.5 * digit_images.mean()
    assert not list(tmp_path.glob(".tfae-extract-*"))  # the extraction folders are removed


@pytest.mark.slow  # a fresh interpreter's native stderr: the full tier
@pytest.mark.parametrize("quiet", [False, True])
def test_libjpegs_warnings_show_unless_quiet(tmp_path, quiet):
    from PIL import Image

    rng = np.random.default_rng(0)
    for index in range(12):
        content = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(content, "JPEG")
        flawed = content.getvalue()[:-2] + b"\0\0" + content.getvalue()[-2:]  # before EOI
        (tmp_path / f"{index}.jpg").write_bytes(flawed)
    level = "WARNING" if quiet else "INFO"  # what the command line's --quiet sets
    loaded = subprocess.run([sys.executable, "-c", f"""
import logging, sys
logging.getLogger("tfae").setLevel(logging.{level})
from tfae import data
print(data.load(sys.argv[1]).image_shape)
""", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0 and "(8, 8, 3)" in loaded.stdout, loaded.stderr[-2000:]
    assert ("Corrupt JPEG data" in loaded.stderr) != quiet
