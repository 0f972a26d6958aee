"""The image-folder source: PNG, JPEG, BMP and GIF files, labelled by their class subfolders.

The layout is the one of tfds' ``ImageFolder`` and ``keras.utils.image_dataset_from_directory``:

- ``photos/cat/1.png``, ``photos/dog/2.png``: class subfolders give the labels (sorted names
  give the label numbers); files deeper inside a class folder belong to it;
- ``photos/1.png``: an image with no class folder is unlabelled;
- ``photos/train/...`` and ``photos/test/...``: the splits; without them ``test_fraction`` of the
  images, chosen by a fixed seed, are held out for testing.

Files are read once, fingerprinted, and decoded by TensorFlow's ``tf.io.decode_image`` in parallel,
one file's bytes at a time; the decoded images are held in memory, so epochs never decode again.
A folder whose decoded images would not fit the memory budget is prepared once into shards on disk
and streamed instead (``tfae.data.shards``). Images of different sizes need ``image_size``, of
different channel counts ``channels``.

Examples:
    >>> splits = load("my_photos", image_size=(64, 64), channels=3)  # doctest: +SKIP
    >>> splits.image_shape, splits.class_names  # doctest: +SKIP
    ((64, 64, 3), ('cat', 'dog'))
"""

import pathlib

import numpy as np

from tfae.data import shards
from tfae.data.image_files import decoded_files, folder_fingerprint, listed, quiet, records
from tfae.data.splits import make_splits
from tfae.startup import native_stderr_hidden

__all__ = ["claims", "load", "records"]  # records: every file's image, from image_files


def claims(dataset):
    """Whether ``dataset`` names an existing folder.

    Examples:
        >>> claims("/"), claims("mnist")
        (True, False)
    """
    return pathlib.Path(dataset).expanduser().is_dir()


def load(dataset, *, image_size=None, channels=None, resize="stretch", test_fraction=0.1,
         limit=None, memory_budget=None, prepared_dir=None, **_):
    """Reads the folder ``dataset`` into ``Splits``: decoded into memory, or, when its decoded
    images would pass ``memory_budget`` GB (default: ``tfae.data.shards.budget_bytes()``),
    prepared once into shards under ``prepared_dir`` and streamed (``tfae.data.shards``).

    Raises:
        TfaeError: for an empty folder, one with no images, a file that does not decode (named),
            and sizes or channel counts that differ without ``image_size`` or ``channels``.

    Examples:
        >>> load("scans", image_size=(32, 32)).image_shape  # doctest: +SKIP
        (32, 32, 1)
    """
    root = pathlib.Path(dataset).expanduser()
    listings, class_names = listed(root)
    paths = [path for listing in listings.values() for path, _ in listing]
    shape = next(decoded_files(paths[:1], image_size, channels, resize))[1].shape
    if len(paths) * int(np.prod(shape)) > shards.budget_bytes(memory_budget):
        return shards.load(shards.prepare(
            root, image_size=image_size, channels=channels, resize=resize,
            test_fraction=test_fraction, prepared_dir=prepared_dir), limit=limit)
    index = {name: number for number, name in enumerate(class_names)}
    arrays, digests = {}, {}
    for split, listing in listings.items():
        images = np.empty((len(listing), *shape), np.uint8)
        digests[split] = []
        with native_stderr_hidden(quiet()):
            for row, (digest, image) in enumerate(decoded_files(
                    [path for path, _ in listing], image_size, channels, resize, shape=shape,
                    first=paths[0])):
                images[row] = image
                digests[split].append(digest)
        arrays[split] = images, np.array([index.get(label, -1) for _, label in listing],
                                         np.int64)
    train_images, train_labels = arrays.get("train", arrays.get("all"))
    test_images, test_labels = arrays.get("test", (None, None))
    source = {"kind": "folder", "dataset": str(root.resolve()), "images": len(paths),
              "fingerprint": folder_fingerprint(root, listings, digests)}
    return make_splits(train_images, train_labels, test_images, test_labels, name=root.name,
                       source=source, class_names=class_names, test_fraction=test_fraction,
                       limit=limit)


