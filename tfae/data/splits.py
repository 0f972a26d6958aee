"""``Splits``, what every data source gives: train, validation and test images as ``tf.data``.

Sources that hold their images as arrays (folders, ``.npz`` files, arrays from Python) end in
``make_splits``, which shapes the images (``conform``), holds out a seeded test split when there is
none and carves validation from the end of the training images, as the tfds source does.

Examples:
    >>> import numpy as np
    >>> splits = make_splits(np.zeros((20, 8, 8, 1), np.uint8), name="blank")
    >>> [int(split.cardinality()) for split in (splits.train, splits.validation, splits.test)]
    [16, 2, 2]
    >>> splits.num_classes, splits.labelled
    (0, False)
"""

import dataclasses
import hashlib
import json

import numpy as np
import tensorflow as tf

from tfae.errors import TfaeError

VALIDATION_FRACTION = 0.1
# Seeds the held-out test images of a folder or array: one split for every run and command.
SPLIT_SEED = 0


@dataclasses.dataclass
class Splits:
    """A data set's splits as unbatched ``tf.data`` datasets of ``(image, int64 label)``.

    Images are uint8, or float32 in [0, 1] for float arrays; a label is -1 for an unlabelled image.

    Attributes:
        name: the data set's name (the tfds name, or the folder's or file's name).
        image_shape: ``(height, width, channels)``.
        num_classes: the number of classes, or 0 for a data set without labels.
        train, validation, test: the splits; validation is the end of the training images.
        source: where the data came from, with a ``fingerprint`` of its content; a run records it.
        class_names: the name of each label.

    Examples:
        >>> from tfae.data import load
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
    class_names: tuple = ()

    @property
    def labelled(self):
        """Whether there are labels: at least one class."""
        return self.num_classes > 0


class Streamed:
    """A split read from its files as it is used, never held whole: a prepared folder's
    (``tfae.data.shards.Shards``) or a tfds data set's past the memory budget
    (``tfae.data.catalog.TfdsSplit``). ``tfae.data.pipeline`` streams it.

    A subclass has ``count``, its number of images, and ``dataset(shuffle, seed)``, the images
    in order or shuffled anew every epoch; it may read faster ``batches``. It stands in for a
    split's ``tf.data.Dataset``: ``cardinality()`` is ``count``, and any other dataset method
    (``take``, ``shard``, ``element_spec``) applies to ``dataset()``.

    Examples:
        >>> from tfae.data import load
        >>> streamed = load("mnist", limit=64, memory_budget=1e-9).train
        >>> isinstance(streamed, Streamed), int(streamed.cardinality())
        (True, 64)
    """

    def cardinality(self):
        """The number of images, as ``tf.data.Dataset.cardinality`` gives it."""
        return tf.constant(self.count, tf.int64)

    def batches(self, batch_size, shuffle=False, seed=0):
        """``dataset(shuffle, seed)`` in batches of ``(images, labels)``."""
        return self.dataset(shuffle, seed).batch(batch_size)

    def __iter__(self):
        return iter(self.dataset())

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.dataset(), name)


def fingerprint(*parts):
    """A short hex digest of byte strings or numpy arrays (their dtype, shape and contents, hashed
    where they lie, not copied), for telling data sets apart.

    Examples:
        >>> len(fingerprint(b"images")), fingerprint(b"cats") == fingerprint(b"dogs")
        (16, False)
        >>> fingerprint(np.zeros((2, 3), np.uint8)) == fingerprint(np.zeros((3, 2), np.uint8))
        False
    """
    return joined_fingerprint(part_digest(part) for part in parts)


def part_digest(part):
    """The sha256 digest of one part of a ``fingerprint``: bytes, or a numpy array's dtype, shape
    and contents.

    Examples:
        >>> len(part_digest(b"cat"))
        32
    """
    if isinstance(part, np.ndarray):
        one = hashlib.sha256(json.dumps([str(part.dtype), part.shape]).encode())
        one.update(np.ascontiguousarray(part).reshape(-1).view(np.uint8))
        return one.digest()
    return hashlib.sha256(part).digest()


def joined_fingerprint(digests):
    """The ``fingerprint`` of parts from their ``part_digest``s, in order: parts hashed as they
    are read need not be held until the end.

    Examples:
        >>> joined_fingerprint(map(part_digest, [b"a", b"b"])) == fingerprint(b"a", b"b")
        True
    """
    digest = hashlib.sha256()
    for one in digests:
        digest.update(one)
    return digest.hexdigest()[:16]


def validation_start(total, fraction=None):
    """Where validation begins among ``total`` training images.

    Examples:
        >>> validation_start(60000)
        54000
    """
    share = VALIDATION_FRACTION if fraction is None else fraction
    return total - max(1, int(round(total * share)))  # a small data set still validates


def conform(image, image_size=None, channels=None, resize="stretch"):
    """Converts one image (or a batch) to ``channels`` and resizes it to ``image_size``, as
    TensorFlow ops, keeping its dtype (uint8 stays uint8, rounded).

    ``resize`` says how an image of another aspect ratio fits: ``stretch`` it, ``crop`` its
    centre to the aspect ratio first (Keras' ``crop_to_aspect_ratio``), or ``pad`` it with black
    to the aspect ratio first (``pad_to_aspect_ratio``).

    Examples:
        >>> conform(tf.zeros((30, 20, 1), tf.uint8), (15, 10), 3).shape
        TensorShape([15, 10, 3])
        >>> wide = tf.concat([tf.zeros((4, 4, 1)), tf.ones((4, 4, 1)), tf.zeros((4, 4, 1))], 1)
        >>> float(tf.reduce_mean(conform(wide, (2, 2), resize="crop")))  # the white middle
        1.0
        >>> float(tf.reduce_mean(conform(wide, (6, 6), resize="pad")))  # black bars above, below
        0.1111111119389534
    """
    image = tf.convert_to_tensor(image)
    present = image.shape[-1]
    if channels and present != channels:
        colour = image[..., :3] if present >= 3 else None  # an alpha channel is dropped
        if channels == 1:
            image = tf.image.rgb_to_grayscale(colour) if colour is not None else image[..., :1]
        else:
            image = colour if colour is not None else tf.image.grayscale_to_rgb(image[..., :1])
    if image_size and tuple(image.shape[-3:-1]) != tuple(image_size):
        dtype = image.dtype
        if resize == "crop":
            image = _centre_crop(image, image_size)
        if resize == "pad":
            image = _fitted_and_padded(image, image_size)
        else:
            image = tf.image.resize(image, image_size, antialias=True)
        if dtype == tf.uint8:
            image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        else:
            image = tf.cast(tf.clip_by_value(image, 0.0, 1.0), dtype)
    return image


def decode(content, channels=None):
    """An encoded image (PNG, JPEG, BMP, or a GIF's first frame) as a uint8 tensor, with
    ``channels`` (1 or 3; ``None`` as stored), as TensorFlow ops.

    TensorFlow's decoders make grayscale from PNG and JPEG only; a BMP or GIF is decoded in colour
    and converted.

    Examples:
        >>> gif = open("cat.gif", "rb").read()  # doctest: +SKIP
        >>> decode(gif, channels=1).shape  # doctest: +SKIP
        TensorShape([None, None, 1])
    """
    if channels != 1:
        return tf.io.decode_image(content, channels=channels or 0, expand_animations=False)
    grayscale_decoder = tf.logical_or(tf.io.is_jpeg(content),
                                      tf.strings.substr(content, 0, 4) == b"\x89PNG")
    return tf.cond(
        grayscale_decoder,
        lambda: tf.io.decode_image(content, channels=1, expand_animations=False),
        lambda: tf.image.rgb_to_grayscale(
            tf.io.decode_image(content, channels=3, expand_animations=False)))


def _fitted_and_padded(image, image_size):
    """``image`` resized to the largest size of its aspect ratio inside ``image_size``, centred
    on black. The size is reckoned in whole numbers: ``tf.image.resize_with_pad`` reckons it in
    float32, and in a graph (an export's signature) made 40x30 into 11x10 and a black row where
    eager TensorFlow made 12x9."""
    shape = tf.shape(image)
    height, width = shape[-3], shape[-2]
    wanted_height, wanted_width = image_size
    fitted_height = tf.clip_by_value((2 * height * wanted_width + width) // (2 * width), 1,
                                     wanted_height)
    fitted_width = tf.clip_by_value((2 * width * wanted_height + height) // (2 * height), 1,
                                    wanted_width)
    fitted = tf.image.resize(image, tf.stack([fitted_height, fitted_width]), antialias=True)
    return tf.image.pad_to_bounding_box(fitted, (wanted_height - fitted_height) // 2,
                                        (wanted_width - fitted_width) // 2, wanted_height,
                                        wanted_width)


def _centre_crop(image, image_size):
    """The largest centred part of ``image`` with the aspect ratio of ``image_size``."""
    shape = tf.shape(image)
    height, width = shape[-3], shape[-2]
    wanted_height, wanted_width = image_size
    crop_height = tf.minimum(height, width * wanted_height // wanted_width)
    crop_width = tf.minimum(width, height * wanted_width // wanted_height)
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    return image[..., top:top + crop_height, left:left + crop_width, :]


def make_splits(images, labels=None, test_images=None, test_labels=None, *, name, source=None,
                class_names=(), image_size=None, channels=None, resize="stretch",
                test_fraction=0.1, limit=None, **_):
    """Splits checked image arrays into ``Splits``.

    Args:
        images: ``(N, H, W, C)``, uint8 or float32 in [0, 1].
        labels: ``(N,)`` class indices, -1 for unlabelled; ``None`` for none.
        test_images, test_labels: the test split; ``None`` holds out ``test_fraction`` of
            ``images`` chosen by the fixed ``SPLIT_SEED``.
        name, source, class_names: as in ``Splits``.
        image_size, channels, resize: shape every image (``conform``).
        test_fraction: the share held out when there are no ``test_images``.
        limit: keep only the first ``limit`` images of each split.

    Raises:
        TfaeError: for too few images to make three splits.

    Examples:
        >>> splits = make_splits(np.zeros((50, 4, 4, 3), np.uint8), np.arange(50) % 2, name="toy",
        ...                      channels=1, limit=8)
        >>> splits.image_shape, int(splits.train.cardinality())
        ((4, 4, 1), 8)
    """
    labels = _labels_or_unlabelled(labels, len(images))
    # Each split as the rows of its array it takes, so that only the first ``limit`` of each are
    # copied: a large array is not copied whole to make a small run.
    rows = split_rows(len(images), None if test_images is None else len(test_images),
                      test_fraction, name)
    if test_images is None:
        test_images, test_labels = images, labels
    else:
        test_labels = _labels_or_unlabelled(test_labels, len(test_images))
    arrays = {"train": (images, labels, rows["train"]),
              "validation": (images, labels, rows["validation"]),
              "test": (test_images, test_labels, rows["test"])}
    datasets = {split: _conformed(split_images[_index(taken[:limit])],
                                  split_labels[_index(taken[:limit])], image_size, channels, resize)
                for split, (split_images, split_labels, taken) in arrays.items()}
    num_classes = len(class_names) or int(max(labels.max(), test_labels.max()) + 1)
    return Splits(name, tuple(datasets["train"].element_spec[0].shape), num_classes,
                  source=source or {}, class_names=tuple(class_names), **datasets)


def split_rows(count, test_count=None, test_fraction=0.1, name="data"):
    """Which images make each split: ``{"train", "validation", "test"}`` -> rows (a ``range``
    or an index array). Without a test split of its own (``test_count`` ``None``), all three
    are rows of the ``count`` images, ``test_fraction`` of them held out by ``SPLIT_SEED``;
    otherwise the test rows are those of the ``test_count`` test images. Validation is the end
    of the training rows.

    Raises:
        TfaeError: for too few images to give every split one.

    Examples:
        >>> rows = split_rows(20)
        >>> [len(rows[split]) for split in ("train", "validation", "test")]
        [16, 2, 2]
        >>> split_rows(5, test_count=3)["test"]
        range(0, 3)
    """
    if test_count is None:
        order = np.random.default_rng(SPLIT_SEED).permutation(count)
        held_out = max(1, int(round(count * test_fraction)))
        test, training = order[:held_out], order[held_out:]
    else:
        test, training = range(test_count), range(count)
    start = validation_start(len(training))
    rows = {"train": training[:start], "validation": training[start:], "test": test}
    empty = [split for split, taken in rows.items() if len(taken) == 0]
    if empty:
        raise TfaeError(f"{name}: {len(training) + len(test)} images are too few for training, "
                        f"validation and test splits (none left for {empty[0]})")
    return rows


def _index(rows):
    """Rows as numpy takes them without a copy where it can: a ``range`` as a slice (a view)."""
    return slice(rows.start, rows.stop) if isinstance(rows, range) else rows


def _labels_or_unlabelled(labels, count):
    return np.full(count, -1, np.int64) if labels is None else np.asarray(labels, np.int64)


def _conformed(images, labels, image_size, channels, resize):
    if image_size or channels:  # shaped once, here, not on every pass of every epoch
        shaped = tf.data.Dataset.from_tensor_slices(images).map(
            lambda image: conform(image, image_size, channels, resize),
            num_parallel_calls=tf.data.AUTOTUNE).batch(1024)
        images = np.concatenate([batch.numpy() for batch in shaped])
    return tf.data.Dataset.from_tensor_slices((images, labels))
