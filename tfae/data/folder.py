"""The image-folder source: PNG, JPEG, BMP and GIF files, labelled by their class subfolders.

The layout is the one of tfds' ``ImageFolder`` and ``keras.utils.image_dataset_from_directory``:

- ``photos/cat/1.png``, ``photos/dog/2.png``: class subfolders give the labels (sorted names
  give the label numbers); files deeper inside a class folder belong to it;
- ``photos/1.png``: an image with no class folder is unlabelled;
- ``photos/train/...`` and ``photos/test/...``: the splits; without them ``test_fraction`` of the
  images, chosen by a fixed seed, are held out for testing.

Files are read once, fingerprinted, and decoded by TensorFlow's ``tf.io.decode_image`` in parallel;
the decoded images are held in memory, so epochs never decode again. Images of different sizes
need ``image_size``, of different channel counts ``channels``.

Examples:
    >>> splits = load("my_photos", image_size=(64, 64), channels=3)  # doctest: +SKIP
    >>> splits.image_shape, splits.class_names  # doctest: +SKIP
    ((64, 64, 3), ('cat', 'dog'))
"""

import logging
import os
import pathlib

import numpy as np
import tensorflow as tf

from tfae.data.records import Records, chosen_parts
from tfae.data.splits import conform, decode, fingerprint, make_splits
from tfae.errors import TfaeError, op_error_message
from tfae.startup import native_stderr_hidden

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
SPLIT_FOLDERS = ("train", "test")


def claims(dataset):
    """Whether ``dataset`` names an existing folder.

    Examples:
        >>> claims("/"), claims("mnist")
        (True, False)
    """
    return pathlib.Path(dataset).expanduser().is_dir()


def load(dataset, *, image_size=None, channels=None, resize="stretch", test_fraction=0.1,
         limit=None, **_):
    """Reads the folder ``dataset`` into ``Splits``.

    Raises:
        TfaeError: for an empty folder, one with no images, a file that does not decode (named),
            and sizes or channel counts that differ without ``image_size`` or ``channels``.

    Examples:
        >>> load("scans", image_size=(32, 32)).image_shape  # doctest: +SKIP
        (32, 32, 1)
    """
    root = pathlib.Path(dataset).expanduser()
    listings, class_names = _listings(root)
    index = {name: number for number, name in enumerate(class_names)}
    contents, parts = {}, []
    for split, listing in listings.items():
        contents[split] = [path.read_bytes() for path, _ in listing]
        parts += [f"{split}/{path.relative_to(root)}".encode() for path, _ in listing]
        parts += contents[split]
    decoded = _decode(listings, contents, image_size, channels, resize)
    arrays = {split: (images, np.array([index.get(label, -1) for _, label in listings[split]],
                                       np.int64))
              for split, images in decoded.items()}
    train_images, train_labels = arrays.get("train", arrays.get("all"))
    test_images, test_labels = arrays.get("test", (None, None))
    source = {"kind": "folder", "dataset": str(root.resolve()),
              "images": sum(len(listing) for listing in listings.values()),
              "fingerprint": fingerprint(*parts)}
    return make_splits(train_images, train_labels, test_images, test_labels, name=root.name,
                       source=source, class_names=class_names, test_fraction=test_fraction,
                       limit=limit)


def records(dataset, *, split="all", image_size=None, channels=None, resize="stretch",
            limit=None, **_):
    """Every image file under the folder ``dataset`` as ``tfae.data.records.Records``, read and
    decoded as the records are; an image's id is its path in the folder, ``cat/1.jpg``.

    ``split`` ``train`` or ``test`` takes the ``train/`` or ``test/`` folder's images; ``limit``
    the first ``limit`` files in order. A file that does not decode is left out of the dataset.

    Examples:
        >>> records("my_photos", image_size=(64, 64), channels=3).ids[:2]  # doctest: +SKIP
        ('cat/1.jpg', 'cat/2.jpg')
    """
    root = pathlib.Path(dataset).expanduser()
    listings, class_names = _listings(root)
    parts = chosen_parts(list(listings.items()), split, f"folder {root}")
    listing = [entry for _, part in parts for entry in part][:limit]
    index = {name: number for number, name in enumerate(class_names)}
    ids = tuple(path.relative_to(root).as_posix() for path, _ in listing)

    def decoded(image_id, path, label):
        image = decode(tf.io.read_file(path), channels)
        return image_id, conform(image, image_size, channels, resize), label

    dataset = tf.data.Dataset.from_tensor_slices((
        list(ids), [str(path) for path, _ in listing],
        tf.constant([index.get(label, -1) for _, label in listing], tf.int64)))
    dataset = dataset.map(decoded, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return Records(root.name, dataset.ignore_errors(), ids, tuple(class_names))


def _listings(root):
    """``({split: [(path, class name or None)]}, sorted class names)`` of the folder ``root``:
    its ``train`` and ``test`` folders' images, or all of them as ``all``."""
    if not any(root.iterdir()):
        raise TfaeError(f"folder {root} is empty")
    if all((root / split).is_dir() for split in SPLIT_FOLDERS):
        listings = {split: _images_in(root / split) for split in SPLIT_FOLDERS}
    else:
        listings = {"all": _images_in(root)}
    for split, listing in listings.items():
        if not listing:
            where = root if split == "all" else root / split
            raise TfaeError(f"folder {where} holds no images "
                            f"({', '.join(suffix[1:].upper() for suffix in IMAGE_SUFFIXES)})")
    class_names = sorted({label for listing in listings.values() for _, label in listing
                          if label is not None})
    return listings, class_names


def _images_in(folder):
    """``[(path, class name or None)]`` of the image files under ``folder``, in sorted order;
    hidden files and folders are skipped, as are files that are not images."""
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES:
            found.append((entry, None))
        elif entry.is_dir():
            for parent, folders, files in os.walk(entry):
                folders[:] = sorted(name for name in folders if not name.startswith("."))
                found += [(pathlib.Path(parent) / name, entry.name) for name in sorted(files)
                          if not name.startswith(".")
                          and pathlib.Path(name).suffix.lower() in IMAGE_SUFFIXES]
    return found


def _decode(listings, contents, image_size, channels, resize):
    """The images of each split as one array, decoded and shaped in parallel by tf.data."""
    def shaped(content):
        return conform(decode(content, channels), image_size, resize=resize)

    decoded = {}
    for split, listing in listings.items():
        batches = tf.data.Dataset.from_tensor_slices(tf.constant(contents[split])).map(
            shaped, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        try:
            # libjpeg warns of harmless flaws ("Corrupt JPEG data: 2 extraneous bytes") from C,
            # past Python; --quiet hides them.
            with native_stderr_hidden(not logging.getLogger("tfae").isEnabledFor(logging.INFO)):
                decoded[split] = list(batches.as_numpy_iterator())
        except tf.errors.InvalidArgumentError:
            raise _unreadable(listing, contents[split]) from None
    _check_alike([(path, image) for split, listing in listings.items()
                  for (path, _), image in zip(listing, decoded[split])])
    return {split: np.stack(images) for split, images in decoded.items()}


def _unreadable(listing, contents):
    """The error naming the first file that TensorFlow's decoder refuses."""
    for (path, _), content in zip(listing, contents):
        try:
            tf.io.decode_image(content, expand_animations=False)
        except tf.errors.InvalidArgumentError as error:
            return TfaeError(f"{path}: not a readable image, corrupt or truncated "
                             f"({op_error_message(error)})")
    return TfaeError(f"an image in {listing[0][0].parent} does not decode")


def _check_alike(images):
    """Refuses images of different sizes or channel counts, naming two of them."""
    first_path, first = images[0]
    for path, image in images[1:]:
        if image.shape[:2] != first.shape[:2]:
            raise TfaeError(
                f"images differ in size: {first_path} is {first.shape[0]}x{first.shape[1]} "
                f"(HxW), {path} is {image.shape[0]}x{image.shape[1]}; give {{image_size}} "
                "HEIGHT,WIDTH",
                options=["image_size"])
        if image.shape[2] != first.shape[2]:
            raise TfaeError(
                f"images differ in channels: {first_path} has {first.shape[2]}, {path} has "
                f"{image.shape[2]}; give {{channels}} 1 or 3", options=["channels"])
