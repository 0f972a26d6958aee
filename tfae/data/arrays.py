"""The array sources: ``.npz`` files, and numpy arrays or ``tf.data`` datasets given in Python.

An ``.npz`` file holds ``x``, images of shape ``(N, H, W)`` or ``(N, H, W, C)``, uint8 or float in
[0, 1]; optionally ``y``, one integer or string label per image; and optionally ``x_test`` and
``y_test``, the test split (otherwise ``test_fraction`` of ``x`` is held out by a fixed seed).
It is read with ``allow_pickle=False``: an archive of Python objects is refused.

Examples:
    >>> import numpy as np
    >>> splits = from_arrays(np.zeros((30, 9, 7), np.uint8), np.arange(30) % 2)
    >>> splits.image_shape, splits.class_names
    ((9, 7, 1), ('0', '1'))
    >>> load("digits.npz", channels=3).image_shape  # doctest: +SKIP
    (28, 28, 3)
"""

import math
import os
import pathlib
import zipfile

import numpy as np
import tensorflow as tf

from tfae.data.records import Records, chosen_rows, limited_rows, numbered_ids
from tfae.data.splits import Splits, conform, fingerprint, make_splits
from tfae.errors import TfaeError, first_line

ARRAY_NAMES = ("x", "y", "x_test", "y_test")


def claims(dataset):
    """Whether ``dataset`` names an ``.npz`` file (which must then exist).

    Examples:
        >>> claims("digits.npz"), claims("mnist")
        (True, False)
    """
    return str(dataset).lower().endswith(".npz")


def load(dataset, **settings):
    """Reads the ``.npz`` file ``dataset`` into ``Splits``; ``settings`` as for ``from_arrays``.

    Raises:
        TfaeError: naming the file, for a missing or unreadable file, no ``x``, arrays of the
            wrong rank, type or range, or labels of another length than their images.

    Examples:
        >>> np.savez("/tmp/tfae-example.npz", x=np.zeros((10, 8, 8), np.uint8))
        >>> load("/tmp/tfae-example.npz").image_shape
        (8, 8, 1)
    """
    path = pathlib.Path(dataset).expanduser()
    arrays = _read(path)
    source = {"kind": "npz", "dataset": str(path.resolve())}
    return from_arrays(**arrays, name=path.stem, source=source, where=str(path), **settings)


def records(dataset, *, split="all", image_size=None, channels=None, resize="stretch",
            limit=None, test_fraction=0.1, classes=None, **_):
    """The images of the ``.npz`` file ``dataset`` as ``tfae.data.records.Records``: ``x``'s
    then ``x_test``'s, or those of one of ``load``'s splits; an image's id is its array and
    row, ``x_test/0042``. ``classes`` keep only those classes' training and
    validation images (a run trained with ``--classes``).

    Examples:
        >>> np.savez("/tmp/tfae-example.npz", x=np.zeros((10, 8, 8), np.uint8))
        >>> records("/tmp/tfae-example.npz", limit=2).ids
        ('x/0', 'x/1')
        >>> records("/tmp/tfae-example.npz", split="test").ids  # held out by the fixed seed
        ('x/4',)
    """
    path = pathlib.Path(dataset).expanduser()
    images, labels, test_images, test_labels, class_names = _checked(**_read(path),
                                                                     prefix=f"{path}: ")
    arrays = {"train": ("x", images, labels)}
    if test_images is not None:
        arrays["test"] = ("x_test", test_images, test_labels)
    chosen = chosen_rows([(part, len(array)) for part, (_, array, _) in arrays.items()], split,
                         test_fraction=test_fraction, where=str(path), classes=classes, class_names=class_names,
                         labels={part: np.full(len(array), -1) if part_labels is None
                                 else part_labels
                                 for part, (_, array, part_labels) in arrays.items()})
    dataset, ids, names = None, (), ()
    for part, rows, split_names in limited_rows(chosen, limit):
        name, array, part_labels = arrays[part]
        part_ids = numbered_ids(name, len(array))
        taken_ids = tuple(part_ids[row] for row in rows)
        part = tf.data.Dataset.from_tensor_slices((
            list(taken_ids), array[rows],
            np.full(len(rows), -1, np.int64) if part_labels is None else part_labels[rows]))
        dataset = part if dataset is None else dataset.concatenate(part)
        ids, names = ids + taken_ids, names + tuple(split_names)
    dataset = dataset.map(lambda image_id, image, label: (
        image_id, conform(image, image_size, channels, resize), label),
        num_parallel_calls=tf.data.AUTOTUNE)
    return Records(path.stem, dataset, ids, class_names, names)


def _read(path):
    """The arrays of the ``.npz`` file at ``path``, ``x`` among them."""
    if not path.is_file():
        raise TfaeError(f"{path}: no such .npz file")
    if not zipfile.is_zipfile(path):
        with path.open("rb") as file:
            damaged = file.read(2) == b"PK"  # a zip's start, without its end: cut short
        raise TfaeError(f"{path} is not a readable .npz file (a damaged or truncated zip)"
                        if damaged else f"{path} is not an .npz file (numpy.savez writes them)")
    _check_fits(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise TfaeError(f"{path} is not a readable .npz file ({first_line(error)})") from None
    except MemoryError:
        raise TfaeError(f"{path}: its arrays do not fit in this machine's memory") from None
    if "x" not in arrays:
        raise TfaeError(f"{path} has no array 'x' of images (it has: "
                        f"{', '.join(sorted(arrays)) or 'nothing'})")
    return {name: arrays.get(name) for name in ARRAY_NAMES}


def from_arrays(x, y=None, x_test=None, y_test=None, *, name="arrays", source=None, where=None,
                **settings):
    """``Splits`` of numpy images ``x`` (and labels ``y``, test split ``x_test``, ``y_test``).

    Args:
        x, y, x_test, y_test: as in an ``.npz`` file (the module docstring).
        name: the data set's name.
        source: what the run records; default ``{"kind": "arrays"}``, with a fingerprint.
        where: the file the arrays came from, for error messages.
        **settings: ``image_size``, ``channels``, ``test_fraction``, ``limit``
            (``tfae.data.splits.make_splits``).

    Examples:
        >>> from_arrays(np.zeros((10, 4, 4)), y=np.zeros(3))
        Traceback (most recent call last):
        ...
        tfae.errors.TfaeError: y has 3 labels for 10 images in x
    """
    images, labels, test_images, test_labels, class_names = _checked(
        x, y, x_test, y_test, prefix=f"{where}: " if where else "")
    arrays = [array for array in (images, labels, test_images, test_labels) if array is not None]
    source = {"kind": "arrays", **(source or {}),
              "fingerprint": fingerprint(*arrays)}
    return make_splits(images, labels, test_images, test_labels, name=name, source=source,
                       class_names=class_names, **settings)


def _checked(x, y, x_test, y_test, prefix):
    """``(images, labels, test_images, test_labels, class_names)``: the arrays checked, images
    4-D, and labels numbered (``None`` where not given)."""
    if x_test is None and y_test is not None:
        raise TfaeError(f"{prefix}y_test without x_test")
    images = _images(x, "x", prefix)
    test_images = None if x_test is None else _images(x_test, "x_test", prefix)
    if test_images is not None and test_images.shape[1:] != images.shape[1:]:
        raise TfaeError(f"{prefix}x_test's images are {test_images.shape[1:]}, x's "
                        f"{images.shape[1:]}")
    labels = _checked_labels(y, images, "y", "x", prefix)
    test_labels = None if test_images is None else _checked_labels(
        y_test, test_images, "y_test", "x_test", prefix)
    if (labels is None) != (test_labels is None) and test_images is not None:
        raise TfaeError(f"{prefix}give labels for both splits (y and y_test) or for neither")
    class_names, labels, test_labels = _numbered(labels, test_labels)
    return images, labels, test_images, test_labels, class_names


def from_dataset(dataset, **settings):
    """``Splits`` of an unbatched ``tf.data.Dataset`` of images, ``(image, label)`` pairs or
    ``{"image": ..., "label": ...}`` dicts (as tfds gives), read into memory once.

    Examples:
        >>> images = tf.data.Dataset.from_tensor_slices(tf.zeros((20, 6, 6, 3), tf.uint8))
        >>> from_dataset(images).image_shape
        (6, 6, 3)
    """
    elements = list(dataset.as_numpy_iterator())
    if not elements:
        raise TfaeError("the dataset given as data is empty")
    first = elements[0]
    if isinstance(first, dict):
        if "image" not in first:
            raise TfaeError(f"the dataset's elements have no 'image' (they have: "
                            f"{', '.join(sorted(first))})")
        images = [element["image"] for element in elements]
        labels = [element["label"] for element in elements] if "label" in first else None
    elif isinstance(first, tuple):
        images, labels = [element[0] for element in elements], [element[1] for element in elements]
    else:
        images, labels = elements, None
    return from_arrays(np.stack(images), None if labels is None else np.stack(labels),
                       name=settings.pop("name", "dataset"), **settings)


def as_splits(value, **settings):
    """``Splits`` of whatever ``tfae.fit``'s ``data`` holds: ``Splits`` (used as they are), a
    ``tf.data.Dataset``, an array of images, an ``(x, y)`` pair or a dict of ``ARRAY_NAMES``.

    Examples:
        >>> as_splits((np.zeros((12, 5, 5)), np.arange(12) % 3)).num_classes
        3
    """
    if isinstance(value, Splits):
        return value
    if isinstance(value, tf.data.Dataset):
        return from_dataset(value, **settings)
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(ARRAY_NAMES))
        if unknown:
            raise TfaeError(f"data holds unknown arrays {', '.join(unknown)}; expected "
                            f"{', '.join(ARRAY_NAMES)}")
        return from_arrays(**value, **settings)
    if isinstance(value, tuple) and len(value) == 2:
        return from_arrays(*value, **settings)
    if isinstance(value, (np.ndarray, tf.Tensor, list)):
        return from_arrays(value, **settings)
    raise TfaeError(f"data must be Splits, a tf.data.Dataset, an array of images, an (x, y) pair "
                    f"or a dict of arrays, got {type(value).__name__}")


def _images(array, name, prefix):
    """``array`` checked: 4-D (a 3-D one gains a channel axis), uint8 or float32 in [0, 1]."""
    try:
        images = np.asarray(array)
    except (ValueError, TypeError):
        raise TfaeError(f"{prefix}{name} is not an array of images") from None
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4 or images.shape[-1] not in (1, 2, 3, 4):
        raise TfaeError(f"{prefix}{name} must have shape (N, H, W) or (N, H, W, C) with C from 1 "
                        f"to 4, got shape {tuple(np.shape(array))}")
    if len(images) == 0:
        raise TfaeError(f"{prefix}{name} holds no images")
    if images.dtype == np.uint8:
        return images
    if not np.issubdtype(images.dtype, np.floating):
        raise TfaeError(f"{prefix}{name} must be uint8, or float in [0, 1], got {images.dtype}")
    if not np.all(np.isfinite(images)):
        raise TfaeError(f"{prefix}{name} must be uint8, or float in [0, 1]; it holds NaN or "
                        "infinity")
    if images.min() < 0 or images.max() > 1:
        raise TfaeError(f"{prefix}{name} must be uint8, or float in [0, 1]; its values run from "
                        f"{images.min():g} to {images.max():g}")
    return images.astype(np.float32)


def _check_fits(path):
    """Refuses, before anything is decompressed, an ``.npz`` whose arrays declare more bytes than
    this machine has free (a 2 MB file can declare terabytes of zeros)."""
    declared = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if member.endswith(".npy"):
                    with archive.open(member) as file:
                        read_header = (np.lib.format.read_array_header_1_0
                                       if np.lib.format.read_magic(file) == (1, 0)
                                       else np.lib.format.read_array_header_2_0)
                        shape, _, dtype = read_header(file)
                    declared[member.removesuffix(".npy")] = (shape, dtype)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise TfaeError(f"{path} is not a readable .npz file ({first_line(error)})") from None
    total = sum(math.prod(shape) * dtype.itemsize for shape, dtype in declared.values())
    free = _free_memory_bytes()
    if total > free:
        name, (shape, dtype) = max(declared.items(),
                                   key=lambda item: math.prod(item[1][0]) * item[1][1].itemsize)
        raise TfaeError(f"{path}: its arrays hold {total / 1e9:,.1f} GB ({name} is "
                        f"{'x'.join(map(str, shape))} {dtype}), more than this machine's "
                        f"{free / 1e9:,.1f} GB of free memory")


def _free_memory_bytes():
    """The memory this machine can still give, as the kernel estimates it (MemAvailable)."""
    try:
        for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def _checked_labels(labels, images, name, images_name, prefix):
    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(images):
        raise TfaeError(f"{prefix}{name} has {labels.size if labels.ndim else 1} labels for "
                        f"{len(images)} images in {images_name}")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype.kind in "USb"):
        raise TfaeError(f"{prefix}{name} must hold whole numbers or strings, got {labels.dtype}")
    return labels


def _numbered(labels, test_labels):
    """Class names (the sorted distinct labels, as strings) and the labels as their numbers."""
    present = [array for array in (labels, test_labels) if array is not None]
    if not present:
        return (), None, None
    values = np.unique(np.concatenate(present))
    numbered = [None if array is None else np.searchsorted(values, array).astype(np.int64)
                for array in (labels, test_labels)]
    return tuple(str(value) for value in values), *numbered
