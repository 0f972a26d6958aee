"""An image folder's files: listed with their class folders, and decoded one file at a time.

The folder sources read their images through here: ``tfae.data.folder`` into memory,
``tfae.data.shards`` into shards on disk, and ``records`` for ``tfae encode``. The layout is
``tfae.data.folder``'s.

Examples:
    >>> listings, class_names = listed(pathlib.Path("photos"))  # doctest: +SKIP
    >>> digest, image = next(decoded_files([listings["all"][0][0]], (64, 64)))  # doctest: +SKIP
"""

import collections
import hashlib
import logging
import os
import pathlib
import sys

import numpy as np
import tensorflow as tf

from tfae.data.records import Records, chosen_rows, limited_rows
from tfae.data.splits import conform, decode, joined_fingerprint, part_digest
from tfae.errors import TfaeError, op_error_message

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# Image formats a folder may hold that TensorFlow's decoder does not read: counted when skipped.
OTHER_IMAGE_SUFFIXES = (".tif", ".tiff", ".webp", ".heic", ".heif", ".avif", ".jp2", ".ppm",
                        ".pgm", ".pbm", ".ico", ".svg")
# An image file larger than this is skipped, not read: no photograph is, and a sparse or
# endless file named .png would be read whole.
MAX_FILE_BYTES = 256 << 20
SPLIT_FOLDERS = ("train", "test")


def quiet():
    """Whether the command line was told ``--quiet``: then libjpeg's warnings of harmless flaws
    ("Corrupt JPEG data: 2 extraneous bytes"), written from C past Python, are hidden too.

    Examples:
        >>> with native_stderr_hidden(quiet()):  # doctest: +SKIP
        ...     images = [image for _, image in decoded_files(paths)]
    """
    return not logging.getLogger("tfae").isEnabledFor(logging.INFO)


def records(dataset, *, split="all", image_size=None, channels=None, resize="stretch",
            limit=None, test_fraction=0.1, classes=None, **_):
    """Every image file under the folder ``dataset`` as ``tfae.data.records.Records``, read and
    decoded as the records are; an image's id is its path in the folder, ``cat/1.jpg``.

    ``split`` takes the images of one of ``load``'s splits (``tfae.data.records.chosen_rows``:
    the ``test/`` folder's, or those held out by the fixed seed; ``classes`` keep
    only those classes' training and validation images); ``limit`` the first ``limit`` files in
    order. A file that does not decode is left out of the dataset.

    Examples:
        >>> records("my_photos", image_size=(64, 64), channels=3).ids[:2]  # doctest: +SKIP
        ('cat/1.jpg', 'cat/2.jpg')
    """
    root = pathlib.Path(dataset).expanduser()
    listings, class_names = listed(root)
    index = {name: number for number, name in enumerate(class_names)}
    chosen = chosen_rows([(part, len(listing)) for part, listing in listings.items()], split,
                         test_fraction=test_fraction, where=f"folder {root}", classes=classes, class_names=class_names,
                         labels={part: np.array([index.get(label, -1) for _, label in listing])
                                 for part, listing in listings.items()})
    listing, names = [], ()
    for part, rows, split_names in limited_rows(chosen, limit):
        listing += [listings[part][row] for row in rows]
        names += tuple(split_names)
    ids = tuple(path.relative_to(root).as_posix() for path, _ in listing)

    def decoded(image_id, path, label):
        image = decode(tf.io.read_file(path), channels)
        return image_id, conform(image, image_size, channels, resize), label

    dataset = tf.data.Dataset.from_tensor_slices((
        list(ids), [str(path) for path, _ in listing],
        tf.constant([index.get(label, -1) for _, label in listing], tf.int64)))
    dataset = dataset.map(decoded, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return Records(root.name, dataset.ignore_errors(), ids, tuple(class_names), names)


def listed(root):
    """``({split: [(path, class name or None)]}, sorted class names)`` of the folder ``root``:
    its ``train`` and ``test`` folders' images, or all of them as ``all``.

    Raises:
        TfaeError: for an empty folder, or a split of no images.

    Examples:
        >>> listings, class_names = listed(pathlib.Path("photos"))  # doctest: +SKIP
        >>> listings["all"][0], class_names  # doctest: +SKIP
        ((PosixPath('photos/cat/1.jpg'), 'cat'), ['cat', 'dog'])
    """
    if not any(root.iterdir()):
        raise TfaeError(f"folder {root} is empty")
    others = collections.Counter()
    if all((root / split).is_dir() for split in SPLIT_FOLDERS):
        listings = {split: _images_in(root / split, others) for split in SPLIT_FOLDERS}
    else:
        listings = {"all": _images_in(root, others)}
    if others:
        print(f"warning: skipped {sum(others.values()):,} file(s) of image formats tfae does not "
              "decode (" + ", ".join(f"{suffix} {count:,}" for suffix, count in
                                     others.most_common()) + "): convert them to PNG to use them",
              file=sys.stderr, flush=True)
    for split, listing in listings.items():
        if not listing:
            where = root if split == "all" else root / split
            raise TfaeError(f"folder {where} holds no images "
                            f"({', '.join(suffix[1:].upper() for suffix in IMAGE_SUFFIXES)})")
    class_names = sorted({label for listing in listings.values() for _, label in listing
                          if label is not None})
    return listings, class_names


def _images_in(folder, others):
    """``[(path, class name or None)]`` of the image files under ``folder``, in sorted order;
    hidden files and folders are skipped, as are files that are not images (those of image
    formats tfae does not decode counted in ``others`` by suffix), and, with a line on stderr
    each, entries that cannot be read as one (``skipped_entry``)."""
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            for parent, folders, files in os.walk(entry, onerror=_unlisted):
                folders[:] = sorted(name for name in folders if not name.startswith("."))
                found += [(pathlib.Path(parent) / name, entry.name) for name in sorted(files)
                          if _is_image_file(pathlib.Path(parent) / name, others)]
        elif _is_image_file(entry, others):
            found.append((entry, None))
    return found


def _is_image_file(path, others):
    if path.name.startswith("."):
        return False
    suffix = path.suffix.lower()
    if suffix in OTHER_IMAGE_SUFFIXES:
        others[suffix] += 1
    return suffix in IMAGE_SUFFIXES and _readable_image_file(path)


def skipped_entry(path):
    """Why the folder entry ``path``, named as an image, cannot be read as one (``None`` if it
    can): a name that is not UTF-8, a link to nothing, a FIFO, device or other file that is not a
    regular one, a file over ``MAX_FILE_BYTES``, or one this user may not read.

    Examples:
        >>> skipped_entry(pathlib.Path("/dev/null"))
        'not a regular file'
        >>> skipped_entry(pathlib.Path("/nonexistent/cat.png"))
        'a link to nothing, or gone'
    """
    import stat

    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not UTF-8"
    try:
        status = path.stat()
    except OSError:
        return "a link to nothing, or gone"
    if not stat.S_ISREG(status.st_mode):
        return "not a regular file"
    if status.st_size > MAX_FILE_BYTES:
        return f"{status.st_size / 2**20:,.0f} MB, over the limit of {MAX_FILE_BYTES >> 20} MB"
    if not os.access(path, os.R_OK):
        return "not readable by this user"
    return None


def _readable_image_file(path):
    why = skipped_entry(path)
    if why is not None:
        shown = str(path).encode("utf-8", "replace").decode()  # a name not UTF-8 prints too
        print(f"warning: skipped {shown}: {why}", file=sys.stderr, flush=True)
    return why is None


def _unlisted(error):
    print(f"warning: skipped folder {error.filename}: {error.strerror}", file=sys.stderr,
          flush=True)


def decoded_files(paths, image_size=None, channels=None, resize="stretch", shape=None,
                  first=None):
    """Yields ``(sha256 digest of the file, image)`` for each of ``paths`` in order, the image
    a uint8 numpy array decoded and shaped (``conform``) by tf.data in parallel; one file's bytes
    at a time reach Python, so a folder of any size streams.

    Every image must have ``shape`` (default: the first one's), or the error names ``first`` (a
    file of that shape) and the one that differs.

    Raises:
        TfaeError: naming a file that does not decode, or one of another size or channel count.

    Examples:
        >>> digest, image = next(decoded_files(["photos/cat/1.jpg"], (64, 64)))  # doctest: +SKIP
        >>> image.shape  # doctest: +SKIP
        (64, 64, 3)
    """
    def read(path):
        content = tf.io.read_file(path)
        return content, conform(decode(content, channels), image_size, resize=resize)

    dataset = tf.data.Dataset.from_tensor_slices([str(path) for path in paths]).map(
        read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    row = 0
    try:
        for content, image in dataset.as_numpy_iterator():
            if shape is None:
                shape, first = image.shape, paths[row]
            elif image.shape != shape:
                raise _unlike(first or paths[0], shape, paths[row], image.shape)
            yield hashlib.sha256(content).digest(), image
            row += 1
    except tf.errors.InvalidArgumentError:
        raise _unreadable(paths[row:]) from None


def _unreadable(paths):
    """The error naming the first of ``paths`` that TensorFlow's decoder refuses."""
    for path in paths:
        try:
            tf.io.decode_image(pathlib.Path(path).read_bytes(), expand_animations=False)
        except tf.errors.InvalidArgumentError as error:
            return TfaeError(f"{path}: not a readable image, corrupt or truncated "
                             f"({op_error_message(error)})")
    return TfaeError(f"an image in {pathlib.Path(paths[0]).parent} does not decode")


def _unlike(first_path, first_shape, path, shape):
    """The error for two images of different sizes or channel counts."""
    if shape[:2] != first_shape[:2]:
        return TfaeError(
            f"images differ in size: {first_path} is {first_shape[0]}x{first_shape[1]} "
            f"(HxW), {path} is {shape[0]}x{shape[1]}; give {{image_size}} HEIGHT,WIDTH",
            options=["image_size"])
    return TfaeError(f"images differ in channels: {first_path} has {first_shape[2]}, {path} has "
                     f"{shape[2]}; give {{channels}} 1 or 3", options=["channels"])


def folder_fingerprint(root, listings, content_digests):
    """The fingerprint a run records of the folder ``root``: every file's path in its split,
    then its contents, split by split, from ``listed`` and each file's sha256 digest
    (``content_digests``, by split, in listing order) as ``decoded_files`` gives them.

    Examples:
        >>> root = pathlib.Path("photos")
        >>> listings = {"all": [(root / "cat/1.png", "cat")]}
        >>> len(folder_fingerprint(root, listings, {"all": [hashlib.sha256(b"png").digest()]}))
        16
    """
    return joined_fingerprint(
        digest for split, listing in listings.items()
        for digest in [part_digest(f"{split}/{path.relative_to(root)}".encode())
                       for path, _ in listing] + list(content_digests[split]))
