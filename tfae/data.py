"""Image data sets by name through tensorflow-datasets, the bundled MNIST, and tf.data pipelines.

``load`` gives deterministic train / validation / test splits of ``(image, label)`` pairs, the
validation split carved from the end of the data set's training split so the two never overlap.
``pipeline`` holds a split in memory as tensors, batches, shuffles (seeded), converts to float32
in [0, 1], corrupts and prefetches it for training and evaluation, all as ``tf.data`` ops.

MNIST ships inside the package: on a machine with no prepared copy and no network, tfds builds
its ``mnist`` data set from the bundled files, after tfae has checked their md5 sums.

Examples:
    >>> from tfae import data
    >>> splits = data.load("mnist", limit=256)
    >>> splits.image_shape
    (28, 28, 1)
    >>> batches = data.pipeline(splits.train, batch_size=64, shuffle=True, seed=0)
    >>> inputs, targets = next(iter(batches))
    >>> inputs.shape
    TensorShape([64, 28, 28, 1])
"""

import contextlib
import dataclasses
import hashlib
import pathlib
import sys

import tensorflow as tf
import tensorflow_datasets as tfds

from tfae.errors import TfaeError

BUNDLED_MNIST = pathlib.Path(__file__).parent / "mnist"
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
VALIDATION_FRACTION = 0.1


@dataclasses.dataclass
class Splits:
    """A data set's splits as unbatched ``tf.data`` datasets of ``(uint8 image, int64 label)``.

    Attributes:
        name: the tfds name.
        image_shape: ``(height, width, channels)``.
        num_classes: number of labels, or 0 for a data set without labels.
        train, validation, test: the splits; validation is the end of tfds' ``train``.
        source: where the data came from, for a run's ``run.json``.

    Examples:
        >>> splits = load("mnist", limit=100)
        >>> splits.image_shape, int(splits.test.cardinality())
        ((28, 28, 1), 100)
    """

    name: str
    image_shape: tuple
    num_classes: int
    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    source: dict


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


def prepared_builder(name, data_dir=None):
    """Returns the tfds builder of ``name`` with its data prepared in ``data_dir``.

    ``data_dir`` defaults to tfds' own (``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).
    MNIST is built from the bundled files; any other data set is downloaded by tfds.

    Examples:
        >>> prepared_builder("mnist").info.splits["test"].num_examples
        10000
    """
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise TfaeError(f"unknown data set {name!r}: not a tensorflow-datasets name") from None
    if builder.is_prepared():
        return builder
    with _exclusive(pathlib.Path(builder.data_dir).parent / ".tfae-prepare.lock"):
        # Another process may have prepared it while this one waited for the lock.
        builder = tfds.builder(name, data_dir=data_dir)
        if not builder.is_prepared():
            _prepare(name, builder)
    return builder


def _prepare(name, builder):
    download_config = None
    if name == "mnist":
        verify_bundled_mnist()
        download_config = tfds.download.DownloadConfig(manual_dir=str(BUNDLED_MNIST))
    print(f"tfae: preparing tfds data set {name!r} in {builder.data_dir} (once per data folder)",
          file=sys.stderr)
    tfds.display_progress_bar(False)  # tfds draws one bar per file and split: a screenful
    try:
        builder.download_and_prepare(download_config=download_config)
    except Exception as error:  # tfds raises many kinds: network, checksum, missing extras
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TfaeError(
            f"could not prepare data set {name!r} in {builder.data_dir}: {reason} "
            "(offline, only mnist ships with tfae; --data-dir can point at prepared tfds data)"
        ) from None
    finally:
        tfds.display_progress_bar(True)


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


def load(name="mnist", data_dir=None, limit=None, validation_fraction=VALIDATION_FRACTION):
    """Loads an image data set's train, validation and test splits through tfds.

    Args:
        name: a tfds image data set, such as ``mnist``, ``fashion_mnist`` or ``kmnist``.
        data_dir: a folder of prepared tfds data; ``None`` for tfds' default.
        limit: if given, keep only the first ``limit`` images of each split.
        validation_fraction: the share of tfds' ``train`` split held out for validation.

    Returns:
        A ``Splits``.

    Examples:
        >>> splits = load("mnist", limit=100)
        >>> splits.num_classes
        10
    """
    if limit is not None and limit < 1:
        raise TfaeError(f"--limit must be a positive number of images, got {limit}")
    builder = prepared_builder(name, data_dir)
    features = builder.info.features
    image_feature = features["image"] if "image" in features else None
    if not isinstance(image_feature, tfds.features.Image):
        raise TfaeError(f"data set {name!r} has no 'image' feature: it is not an image data set")
    image_shape = tuple(image_feature.shape)
    if None in image_shape:
        raise TfaeError(f"data set {name!r} has images of varying shape {image_shape}")
    splits = builder.info.splits
    if "train" not in splits or "test" not in splits:
        raise TfaeError(f"data set {name!r} needs 'train' and 'test' splits, has {list(splits)}")
    total = splits["train"].num_examples
    start = total - int(round(total * validation_fraction))  # where validation begins
    sizes = [start, total - start, splits["test"].num_examples]
    train_size, validation_size, test_size = [min(limit or size, size) for size in sizes]
    split_names = {
        "train": f"train[:{train_size}]",
        "validation": f"train[{start}:{start + validation_size}]",
        "test": f"test[:{test_size}]",
    }
    has_labels = "label" in features
    datasets = {
        split: builder.as_dataset(split=tfds_split, shuffle_files=False).map(
            _image_and_label if has_labels else _image_only, num_parallel_calls=tf.data.AUTOTUNE)
        for split, tfds_split in split_names.items()
    }
    source = {
        "dataset": name,
        "version": str(builder.info.version),
        "data_dir": str(builder.data_dir),
        "splits": split_names,
        "bundled_files": name == "mnist",
    }
    num_classes = features["label"].num_classes if has_labels else 0
    return Splits(name, image_shape, num_classes, source=source, **datasets)


def _image_and_label(example):
    return example["image"], example["label"]


def _image_only(example):
    return example["image"], tf.constant(-1, tf.int64)


def pipeline(dataset, batch_size, *, shuffle=False, seed=0, corruption=None,
             fresh_corruption=True, with_labels=False):
    """Makes training or evaluation batches from a split of ``load``.

    Yields ``(inputs, targets)`` with float32 images in [0, 1]: the inputs corrupted by
    ``corruption`` when given, the targets always clean. With ``with_labels`` it yields
    ``(inputs, targets, labels)`` instead, for evaluation.

    Args:
        dataset: an unbatched split of ``(uint8 image, label)``.
        batch_size: images per batch.
        shuffle: reshuffle each epoch, seeded by ``seed``.
        seed: seeds the shuffle and the corruption.
        corruption: a ``tfae.corruptions.Corruption`` (or any ``fn(images, seed)``).
        fresh_corruption: draw new corruption every epoch (training); ``False`` repeats the same
            corruption every epoch, so that validation losses are comparable.

    Examples:
        >>> from tfae.corruptions import parse_corruption
        >>> splits = load("mnist", limit=64)
        >>> batches = pipeline(splits.test, 32, corruption=parse_corruption("gaussian:0.5"))
        >>> noisy, clean = next(iter(batches))
    """
    if batch_size < 1:
        raise TfaeError(f"--batch-size must be positive, got {batch_size}")
    # Hold the split as two tensors and shuffle indices, gathering whole batches: per-image
    # shuffling and conversion cost a few percent of a dense epoch on two cores; this costs none.
    size = int(dataset.cardinality())
    images, labels = dataset.batch(size).get_single_element()
    indices = tf.data.Dataset.range(size)
    if shuffle:
        indices = indices.shuffle(size, seed=seed, reshuffle_each_iteration=True)
    dataset = indices.batch(batch_size).map(
        lambda batch: (tf.gather(images, batch), tf.gather(labels, batch)),
        num_parallel_calls=tf.data.AUTOTUNE)
    if corruption is None:
        dataset = dataset.map(_clean_batch, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        if fresh_corruption:
            seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        else:
            # (seed, batch index): unlike Dataset.random, this ignores the global seed, which
            # training sets, so an evaluation corrupts the same way in any process.
            seeds = tf.data.Dataset.counter().map(
                lambda index: tf.stack([tf.constant(seed, tf.int64), index]))
        dataset = tf.data.Dataset.zip(dataset, seeds).map(
            lambda batch, batch_seed: _corrupted_batch(batch, batch_seed, corruption),
            num_parallel_calls=tf.data.AUTOTUNE)
    if not with_labels:
        dataset = dataset.map(lambda inputs, targets, labels: (inputs, targets))
    # Under a multi-worker strategy each worker takes its part of every batch; there are no
    # files to shard by.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    # tf.data's autotuner left both cores idle for seconds at the start of some epochs (TF 2.21,
    # measured in docs/performance.md); gathers and elementwise noise need no tuning.
    options.autotune.enabled = False
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def _clean_batch(images, labels):
    images = tf.cast(images, tf.float32) / 255.0
    return images, images, labels


def _corrupted_batch(batch, batch_seed, corruption):
    images, labels = batch
    images = tf.cast(images, tf.float32) / 255.0
    return corruption(images, tf.cast(batch_seed, tf.int32)), images, labels
