"""The tensorflow-datasets source: an image data set by its tfds name, prepared once per data folder.

MNIST ships inside the package: on a machine with no prepared copy and no network, tfds builds its
``mnist`` data set from the bundled files, after tfae has checked their md5 sums. Any other data
set is downloaded by tfds, or, offline, built from its original files in a ``manual_dir`` (tfds'
``DownloadConfig(manual_dir=...)``). Files that a distribution re-compressed (Debian's
``dataset-fashion-mnist`` package) fail tfds' checksums of the compressed files; tfae accepts them
when their decompressed contents are the ones it knows (``KNOWN_CONTENTS``).

Examples:
    >>> splits = load("mnist", limit=100)
    >>> splits.image_shape, splits.class_names[:3]
    ((28, 28, 1), ('0', '1', '2'))
    >>> load("fashion_mnist", manual_dir="/usr/share/datasets/fashion-mnist")  # doctest: +SKIP
"""

import contextlib
import dataclasses
import functools
import math
import os
import gzip
import hashlib
import io
import json
import logging
import pathlib
import re
import shutil
import socket
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import zipfile

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from tfae.data.records import Records, chosen_rows, limited_rows, numbered_ids
from tfae.data.shards import SHUFFLE_IMAGES, budget_bytes
from tfae.data.splits import Splits, Streamed, conform, fingerprint, validation_start
from tfae.compat import require
from tfae.errors import TfaeError

# Used to build a data set from files of its own (_accepting_manual_files).
require(tfds.core.registered, ("skip_registration",), "tensorflow-datasets")

LOG = logging.getLogger("tfae")  # the command line shows its info lines unless --quiet
BUNDLED_MNIST = pathlib.Path(__file__).parent.parent / "mnist"
# tfds keeps images encoded (MNIST's as PNGs) and decoding a whole split cost every MNIST run
# seconds ("Figures behind the code's choices" in docs/performance.md), so the decoded splits are
# kept in this folder beside tfds' own files, for data sets whose splits fit in this many bytes.
DECODED_FOLDER = "tfae-decoded"
MAX_DECODED_BYTES = 1 << 30
# A temporary copy older than this was left by a run killed while writing it: no write takes
# so long.
STALE_SECONDS = 3600
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
# sha256 of the decompressed original files, for copies compressed anew (Debian's
# dataset-fashion-mnist 0.0~git20200523 holds the originals re-gzipped).
KNOWN_CONTENTS = {
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz":
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte.gz":
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte.gz":
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte.gz":
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}


def verify_bundled_mnist(folder=None):
    """Checks the bundled MNIST files against their md5 sums.

    Raises:
        TfaeError: naming the first missing or corrupt file.

    Examples:
        >>> verify_bundled_mnist()
    """
    folder = pathlib.Path(folder or BUNDLED_MNIST)
    for filename, expected in MNIST_MD5.items():
        path = folder / filename
        if not path.is_file():
            raise TfaeError(f"bundled MNIST file {path} is missing; reinstall tfae")
        actual = hashlib.md5(path.read_bytes()).hexdigest()
        if actual != expected:
            raise TfaeError(
                f"bundled MNIST file {path} is corrupt (md5 {actual}, expected {expected}); "
                "reinstall tfae")


def prepared_builder(name, data_dir=None, manual_dir=None):
    """Returns the tfds builder of ``name`` with its data prepared in ``data_dir``.

    ``data_dir`` defaults to tfds' own (``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``). An
    unprepared data set is built from ``manual_dir`` when given, MNIST from the bundled files,
    and any other is downloaded by tfds.

    Examples:
        >>> prepared_builder("mnist").info.splits["test"].num_examples
        10000
    """
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise TfaeError(f"unknown data set {name!r}: not a tensorflow-datasets name, an image "
                        "folder or an .npz file") from None
    except AssertionError as error:  # tfds' way of refusing a version it does not have
        reason = re.search(r"(Dataset \S+ cannot be loaded at version .*)", str(error))
        raise TfaeError(f"--dataset {name}: "
                        f"{reason[1] if reason else str(error).splitlines()[0]}") from None
    if builder.is_prepared():
        return builder
    if manual_dir is None and name == "mnist":
        verify_bundled_mnist()
        manual_dir = BUNDLED_MNIST
    # Checked before the data folder is touched: a refused data set leaves nothing behind.
    if manual_dir is not None:
        preparing = _accepting_manual_files(builder, pathlib.Path(manual_dir).expanduser())
    else:
        _check_reachable(name, type(builder).url_infos or {})
        preparing = builder
    with _exclusive(pathlib.Path(builder.data_dir).parent / ".tfae-prepare.lock"):
        # Another process may have prepared it while this one waited for the lock.
        if not tfds.builder(name, data_dir=data_dir).is_prepared():
            _prepare(name, preparing, manual_dir)
    return tfds.builder(name, data_dir=data_dir)


def _prepare(name, builder, manual_dir):
    # A preparation killed before its end leaves its extraction folder and tfds' incomplete.*
    # folder behind; the caller holds this data set's preparation lock, so its own are no one's
    # now. Another data set's may be in use: it is prepared under a lock of its own.
    version_dir = pathlib.Path(builder.data_dir)
    prefix = f".tfae-extract-{name}-"
    for leftover in [*version_dir.parents[1].glob(f"{prefix}*"),
                     *version_dir.parent.glob(f"incomplete.*_{version_dir.name}")]:
        shutil.rmtree(leftover, ignore_errors=True)
    LOG.info(f"preparing tfds data set {name!r} in {builder.data_dir} (once per data folder)")
    tfds.display_progress_bar(False)  # tfds draws one bar per file and split: a screenful
    # tfds extracts a manual file to downloads/extracted/GZIP.<file name> and reuses whatever is
    # there: MNIST's and Fashion-MNIST's files share their names, so the second data set built in
    # a folder got the first one's images. Each preparation extracts into a folder of its own.
    extracted = tempfile.TemporaryDirectory(prefix=prefix,
                                            dir=pathlib.Path(builder.data_dir).parents[1])
    try:
        # tfds prints its own lines on stdout, which is for a command's results.
        with extracted as extract_dir, contextlib.redirect_stdout(
                sys.stderr if LOG.isEnabledFor(logging.INFO) else io.StringIO()):
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
                manual_dir=None if manual_dir is None else str(manual_dir),
                extract_dir=extract_dir))
    except Exception as error:  # tfds raises many kinds: network, checksum, missing extras
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        hint = ("" if manual_dir is not None else "; offline, put its original files in a folder "
                "and give it with {manual_dir} (mnist ships with tfae)")
        raise TfaeError(f"could not prepare data set {name!r} in {builder.data_dir}: "
                        f"{reason}{hint}", options=["manual_dir"]) from None
    finally:
        tfds.display_progress_bar(True)


def _accepting_manual_files(builder, manual_dir):
    """``builder``, checked against the files in ``manual_dir``: all there, and each either
    tfds' own or a re-compressed copy of known contents, which a builder of the same data set
    then accepts (tfds checks the compressed files' checksums only)."""
    if not manual_dir.is_dir():
        raise TfaeError(f"{{manual_dir}} {manual_dir} is not a folder", options=["manual_dir"])
    expected = type(builder).url_infos or {}
    missing = [info.filename for info in expected.values()
               if not (manual_dir / info.filename).is_file()]
    if missing:
        raise TfaeError(f"{{manual_dir}} {manual_dir} lacks {', '.join(sorted(missing))}: the "
                        f"original files of {builder.name}", options=["manual_dir"])
    accepted, known = {}, KNOWN_CONTENTS.get(builder.name, {})
    for url, info in expected.items():
        path = manual_dir / info.filename
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest == info.checksum:
            accepted[url] = info
        elif known.get(info.filename) == _decompressed_sha256(path):
            accepted[url] = tfds.download.checksums.UrlInfo(
                size=path.stat().st_size, checksum=digest, filename=info.filename)
        else:
            raise TfaeError(f"{path} is not {builder.name}'s {info.filename}: its sha256 "
                            f"{digest} is not tfds' {info.checksum}, nor a known copy's")
    if accepted == expected:
        return builder
    with tfds.core.registered.skip_registration():
        copy = type(type(builder).__name__, (type(builder),), {
            "name": builder.name, "url_infos": accepted, "code_path": type(builder).code_path,
            "__module__": type(builder).__module__})
    return copy(data_dir=str(pathlib.Path(builder.data_dir).parents[1]))


def _check_reachable(name, url_infos, timeout=5):
    """Refuses at once a download that cannot start: offline, tfds retries for minutes."""
    for url in sorted(url_infos)[:1]:
        parts = urllib.parse.urlsplit(url)
        proxy = urllib.request.getproxies().get(parts.scheme)
        target = urllib.parse.urlsplit(proxy) if proxy else parts
        port = target.port or (443 if target.scheme == "https" else 80)
        try:
            socket.create_connection((target.hostname, port), timeout=timeout).close()
        except OSError as error:
            raise TfaeError(
                f"data set {name!r} must be downloaded from {parts.hostname}, which cannot be "
                f"reached ({error.strerror or error}); offline, put its original files in a "
                "folder and give it with {manual_dir} (mnist ships with tfae)",
                options=["manual_dir"]) from None


def _decompressed_sha256(path):
    try:
        digest = hashlib.sha256()
        with gzip.open(path) as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()
    except (OSError, EOFError):
        return None


@contextlib.contextmanager
def _exclusive(lock_path):
    """Holds an exclusive lock on ``lock_path``, so that processes preparing one data folder
    (parallel runs, parallel tests) take turns instead of racing tfds' final rename."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, as before
        yield
        return
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(lock_path, "w")
    except OSError as error:
        raise TfaeError(f"cannot write to data folder {lock_path.parent}: {error.strerror}") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def claims(dataset):
    """Every name the other sources leave: tfds says whether it knows it.

    Examples:
        >>> claims("fashion_mnist")
        True
    """
    return True


@dataclasses.dataclass(frozen=True, eq=False)
class TfdsSplit(Streamed):
    """A split of a tfds data set read from tfds' own files as it is used (a ``Streamed``
    split): for data sets whose decoded images pass the memory budget.

    Attributes:
        builder: the prepared tfds builder.
        split: tfds' split, such as ``train[:54000]``.
        count: its number of images.
        label: the ``ClassLabel`` feature, or ``None``.
        shaping: ``(image_size, channels, resize)`` for ``conform``.

    Examples:
        >>> split = load("mnist", limit=100, memory_budget=1e-9).test
        >>> split.split, split.count
        ('test[:100]', 100)
    """

    builder: object
    split: str
    count: int
    label: object
    shaping: tuple

    def dataset(self, shuffle=False, seed=0):
        """The images in tfds' order, or with ``shuffle`` in a new seeded order every epoch:
        tfds' files in a shuffled order, through a buffer of ``SHUFFLE_IMAGES``."""
        images = _decoded(self.builder, self.split, self.label, *self.shaping, shuffle=shuffle,
                          seed=seed)
        if shuffle:
            images = images.shuffle(min(self.count, SHUFFLE_IMAGES), seed=seed,
                                    reshuffle_each_iteration=True)
        return images.apply(tf.data.experimental.assert_cardinality(self.count))


def load(name, *, data_dir=None, manual_dir=None, image_size=None, channels=None,
         resize="stretch", limit=None, validation_fraction=None, memory_budget=None, **_):
    """Loads a tfds image data set's train, validation and test splits.

    The validation split is the end of tfds' ``train`` split, so the two never overlap. Splits
    whose decoded images pass ``memory_budget`` GB (``tfae.data.shards.budget_bytes``) are
    ``TfdsSplit``s, streamed from tfds' files: tfds keeps a data set in shards already.

    Args:
        name: a tfds image data set, such as ``mnist``, ``fashion_mnist`` or ``kmnist``.
        data_dir: a folder of prepared tfds data; ``None`` for tfds' default.
        manual_dir: a folder of the data set's original files, to build it without a download.
        image_size, channels, resize: resize and convert every image
            (``tfae.data.splits.conform``).
        limit: if given, keep only the first ``limit`` images of each split.
        validation_fraction: the share of tfds' ``train`` split held out for validation.
        memory_budget: decoded GB above which the splits are streamed.

    Returns:
        A ``Splits``.

    Examples:
        >>> load("mnist", limit=100, channels=3).image_shape
        (28, 28, 3)
    """
    builder, image_shape, label = _image_builder(name, data_dir, manual_dir, image_size)
    splits = builder.info.splits
    if "train" not in splits or "test" not in splits:
        raise TfaeError(f"data set {name!r} needs 'train' and 'test' splits, has {list(splits)}")
    total = splits["train"].num_examples
    start = validation_start(total, validation_fraction)
    sizes = [start, total - start, splits["test"].num_examples]
    train_size, validation_size, test_size = [min(limit or size, size) for size in sizes]
    split_names = {
        "train": f"train[:{train_size}]",
        "validation": f"train[{start}:{start + validation_size}]",
        "test": f"test[:{test_size}]",
    }

    def decoded(tfds_split):
        return _decoded(builder, tfds_split, label, image_size, channels, resize)

    stored = pathlib.Path(builder.data_dir) / DECODED_FOLDER
    shape = (*(image_size or image_shape[:2]), channels or image_shape[2])
    taken = (train_size, validation_size, test_size)
    if sum(taken) * math.prod(shape) > budget_bytes(memory_budget):
        datasets = {split: TfdsSplit(builder, tfds_split, count, label,
                                     (image_size, channels, resize))
                    for (split, tfds_split), count in zip(split_names.items(), taken)}
    # Even a --limit run decodes the whole of a small data set once (docs/performance.md), so that
    # every later run, and each trial of a search, reads it instead.
    elif _keeps_decoded(image_shape, image_size, channels, sizes):
        arrays = {split: stored_split(stored, split, splits[split].num_examples, lambda split=split:
                                      _as_arrays(decoded(split))) for split in ("train", "test")}
        bounds = {"train": ("train", 0, train_size), "test": ("test", 0, test_size),
                  "validation": ("train", start, start + validation_size)}
        datasets = {split: tf.data.Dataset.from_tensor_slices(
            tuple(array[first:last] for array in arrays[whole]))
            for split, (whole, first, last) in bounds.items()}
    else:
        datasets = {split: decoded(tfds_split) for split, tfds_split in split_names.items()}
    version = str(builder.info.version)
    source = {
        "kind": "tfds",
        "dataset": name,
        "version": version,
        "data_dir": str(builder.data_dir),
        "splits": split_names,
        "bundled_files": name == "mnist" and manual_dir is None,
        # The data, not how much of it a run took: a --limit changes the splits, not the data.
        "fingerprint": fingerprint(json.dumps([name, version]).encode()),
    }
    return Splits(name, tuple(datasets["train"].element_spec[0].shape), label.num_classes if label
                  else 0, source=source, class_names=tuple(label.names) if label else (),
                  **datasets)


def records(name, *, data_dir=None, manual_dir=None, split="all", image_size=None,
            channels=None, resize="stretch", limit=None, classes=None, **_):
    """The images of tfds' ``train`` and ``test`` splits of ``name`` as
    ``tfae.data.records.Records``, all of them or those of one of ``load``'s splits (validation
    the end of tfds' ``train``), in tfds' order; an image's id is its tfds split and index,
    ``test/0042``. ``classes`` keep only those classes' training and validation
    images (a run trained with ``--classes``).

    Examples:
        >>> records("mnist", split="train", limit=2).ids
        ('train/00000', 'train/00001')
        >>> records("mnist", split="validation", limit=1).ids
        ('train/54000',)
    """
    builder, image_shape, label = _image_builder(name, data_dir, manual_dir, image_size)
    sizes = {part: info.num_examples for part, info in builder.info.splits.items()
             if part in ("train", "test")}
    kept_decoded = _keeps_decoded(image_shape, None, None, sizes.values())

    @functools.cache  # read once a part: its labels (classes) and its images
    def stored(part):  # the decoded copy load() keeps
        return stored_split(pathlib.Path(builder.data_dir) / DECODED_FOLDER, part, sizes[part],
                            lambda: _as_arrays(_decoded(builder, part, label)))

    labels = None
    if classes is not None:
        labels = {part: stored(part)[1] if kept_decoded
                  else _as_arrays(_decoded(builder, part, label))[1] for part in sizes}
    chosen = chosen_rows(list(sizes.items()), split, where=f"data set {name!r}", labels=labels,
                         classes=classes, class_names=label.names if label else ())
    dataset, ids, names = None, (), ()
    for part, rows, split_names in limited_rows(chosen, limit):
        part_ids = numbered_ids(part, sizes[part])
        if kept_decoded:
            images, part_labels = stored(part)
            images = tf.data.Dataset.from_tensor_slices((images[rows], part_labels[rows]))
        else:  # read from tfds' files in order, from the first row taken to the last
            first, last = int(rows.min()), int(rows.max()) + 1
            images = _decoded(builder, f"{part}[{first}:{last}]", label)
            if len(rows) < last - first:  # some classes only (kept): the others skipped
                wanted = np.zeros(last - first, bool)
                wanted[rows - first] = True
                wanted = tf.constant(wanted)
                images = images.enumerate().filter(
                    lambda index, _: tf.gather(wanted, index)).map(lambda _, example: example)
        images = images.map(lambda image, image_label: (
            conform(image, image_size, channels, resize), image_label),
            num_parallel_calls=tf.data.AUTOTUNE)
        named = tf.data.Dataset.zip(tf.data.Dataset.from_tensor_slices(
            [part_ids[row] for row in rows]), images).map(lambda image_id, example: (
                image_id, *example))
        dataset = named if dataset is None else dataset.concatenate(named)
        ids += tuple(part_ids[row] for row in rows)
        names += tuple(split_names)
    return Records(name, dataset, ids, tuple(label.names) if label else (), names)


def _image_builder(name, data_dir, manual_dir, image_size):
    """``(builder, image shape, ClassLabel feature or None)`` of the tfds image data set
    ``name``, prepared."""
    builder = prepared_builder(name, data_dir, manual_dir)
    features = builder.info.features
    image_feature = features["image"] if "image" in features else None
    if not isinstance(image_feature, tfds.features.Image):
        raise TfaeError(f"data set {name!r} has no 'image' feature: it is not an image data set")
    image_shape = tuple(image_feature.shape)
    if None in image_shape[:2] and image_size is None:
        raise TfaeError(f"data set {name!r} has images of varying size; give {{image_size}}",
                        options=["image_size"])
    label = features["label"] if "label" in features else None
    return builder, image_shape, label if isinstance(label, tfds.features.ClassLabel) else None


def _decoded(builder, tfds_split, label, image_size=None, channels=None, resize="stretch",
             shuffle=False, seed=0):
    """tfds' ``tfds_split`` as ``(image, label)``, shaped (``conform``); labels -1 without a
    ``label`` feature; with ``shuffle`` its files in a seeded order, new every epoch."""
    def example(record):
        image = conform(record["image"], image_size, channels, resize)
        return image, record["label"] if label else tf.constant(-1, tf.int64)

    read_config = tfds.ReadConfig(shuffle_seed=seed, shuffle_reshuffle_each_iteration=True)
    return builder.as_dataset(split=tfds_split, shuffle_files=shuffle,
                              read_config=read_config).map(
        example, num_parallel_calls=tf.data.AUTOTUNE)


def _keeps_decoded(image_shape, image_size, channels, sizes):
    """Whether a data set's decoded splits are kept: images as stored (not resized or converted)
    of one size, and small enough to hold in memory as tfae's pipeline does anyway."""
    if image_size is not None or channels is not None or None in image_shape:
        return False
    return sum(sizes) * math.prod(image_shape) <= MAX_DECODED_BYTES


def _as_arrays(dataset):
    images, labels = dataset.batch(int(dataset.cardinality())).get_single_element()
    return images.numpy(), labels.numpy()


def stored_split(folder, split, count, decode):
    """``decode()``'s ``(images, labels)`` of ``split``, kept in ``folder/<split>.npz`` after the
    first call, and read from there by later ones.

    The file is written under a temporary name and renamed, so a run killed while writing, or two
    writing at once, never leave half a file; a file that cannot be read, or holds other than
    ``count`` images, is decoded and written again; a folder that cannot be written is left alone.

    Examples:
        >>> import numpy as np, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> decode = lambda: (np.zeros((2, 4, 4, 1), np.uint8), np.array([3, 5]))
        >>> images, labels = stored_split(folder, "train", 2, decode)
        >>> images, labels = stored_split(folder, "train", 2, None)  # read, not decoded again
        >>> images.shape, labels.tolist()
        ((2, 4, 4, 1), [3, 5])
    """
    path = pathlib.Path(folder) / f"{split}.npz"
    try:
        with np.load(path) as kept:
            images, labels = kept["images"], kept["labels"]
        if len(images) == len(labels) == count:
            return images, labels
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        pass  # not kept yet, or unreadable: decoded and kept again below
    images, labels = decode()
    try:
        path.parent.mkdir(exist_ok=True)
        for left in path.parent.glob(f".{split}-*.npz"):  # by runs killed while writing
            if time.time() - left.stat().st_mtime > STALE_SECONDS:
                left.unlink(missing_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{split}-", suffix=".npz",
                                         delete=False) as temporary:
            try:
                np.savez(temporary, images=images, labels=labels)
            except BaseException:
                os.unlink(temporary.name)
                raise
        os.replace(temporary.name, path)
    except OSError:
        pass  # a read-only data folder: decoded every run, as before
    return images, labels
