"""``Records``: every image of a data set as it is stored, each with the name that finds it again.

Where ``Splits`` makes the training, validation and test splits a run learns from and is measured
on, ``Records`` walks the images themselves for ``tfae encode``, ``reconstruct`` and ``score``,
each with an ``id``: a file's path in its folder (``cat/1.jpg``), a tfds split and index
(``test/00042``), or an ``.npz`` array and row (``x_test/00042``), and the split it is in, the
same seeded split ``Splits`` makes (``chosen_rows``): ``--split test`` is the images a run never
saw. Each source makes them
(``records`` in ``tfae.data.folder``, ``.arrays`` and ``.catalog``); images are read and decoded
as the records are, so a folder larger than memory is never held whole.

Examples:
    >>> from tfae.data import load_records
    >>> records = load_records("mnist", split="test", limit=3)
    >>> records.ids
    ('test/0000', 'test/0001', 'test/0002')
    >>> [(image.shape, int(label)) for _, image, label in records.dataset.take(1)]
    [(TensorShape([28, 28, 1]), 2)]
"""

import dataclasses

from tfae.config import SPLITS
from tfae.errors import TfaeError


@dataclasses.dataclass
class Records:
    """A data set's images, one by one, in a fixed order.

    Attributes:
        name: the data set's name.
        dataset: an unbatched ``tf.data.Dataset`` of ``(id, image, label)``: a string, an image
            (uint8, or float32 in [0, 1]; of ``image_size`` when one was given) and an int64
            label, -1 for an unlabelled image. A file that does not decode is left out.
        ids: every image's id, in the order of ``dataset``, those left out included.
        class_names: the name of each label; empty for a data set without labels.
        splits: the split of each image (``train``, ``validation`` or ``test``), as ``ids``.

    Examples:
        >>> import tensorflow as tf
        >>> records = Records("toy", tf.data.Dataset.from_tensor_slices(
        ...     (["a", "b"], tf.zeros((2, 4, 4, 1), tf.uint8), [-1, -1])), ("a", "b"), (),
        ...     ("train", "test"))
        >>> len(records), records.labelled
        (2, False)
    """

    name: str
    dataset: object  # a tf.data.Dataset: this module imports no TensorFlow
    ids: tuple
    class_names: tuple = ()
    splits: tuple = ()

    def __len__(self):
        return len(self.ids)

    @property
    def labelled(self):
        """Whether the images have labels."""
        return bool(self.class_names)


def numbered_ids(prefix, count):
    """``count`` ids ``prefix/0..`` with as many digits each, so that they sort in order.

    Examples:
        >>> numbered_ids("x_test", 12)[-2:]
        ('x_test/10', 'x_test/11')
    """
    digits = len(str(max(count - 1, 0)))
    return tuple(f"{prefix}/{index:0{digits}d}" for index in range(count))


def chosen_rows(parts, split, *, test_fraction=0.1, where, labels=None, classes=None,
                class_names=()):
    """Which rows of a data set's parts ``split`` takes, in the order ``Splits`` takes them, with
    each row's split: ``[(part, rows, split names)]``.

    A data set comes in parts as it is stored: ``train`` and ``test`` (tfds' splits, a folder's
    ``train/`` and ``test/``, an ``.npz`` file's ``x`` and ``x_test``), or ``all``, whose test
    images ``tfae.data.splits.split_rows`` holds out by its fixed seed; validation is the end of
    the training images. ``all`` takes every part whole, in its stored order.

    Args:
        parts: ``[(part, image count)]``.
        split: one of ``tfae.config.SPLITS``.
        test_fraction: the share of an ``all`` part held out for testing.
        where: the data set's name, for messages.
        labels: ``{part: labels}`` as int arrays, with ``classes``.
        classes: the classes a run trained on some classes kept (``--classes``, names among
            ``class_names`` or indices): its training and validation images are only theirs;
            its test images are all.
        class_names: the data set's class names.

    Raises:
        TfaeError: for a ``split`` not in ``SPLITS``, or ``classes`` the data does not have.

    Examples:
        >>> [(part, rows.tolist(), names.tolist()) for part, rows, names in chosen_rows(
        ...     [("train", 5), ("test", 2)], "validation", where="toy")]
        [('train', [4], ['validation'])]
        >>> [(part, names.tolist()) for part, _, names in chosen_rows(
        ...     [("train", 5), ("test", 2)], "all", where="toy")]
        [('train', ['train', 'train', 'train', 'train', 'validation']), ('test', ['test', 'test'])]
    """
    import numpy as np

    from tfae.data.classes import named_indices
    from tfae.data.splits import split_rows

    if split not in SPLITS:
        raise TfaeError(f"{{split}} must be one of {', '.join(SPLITS)}, got {split!r}",
                        options=["split"])
    kept = None if classes is None else named_indices(classes, class_names, where)
    counts = dict(parts)
    first = parts[0][0]
    held_out = "test" not in counts  # the test images are held out of the first part
    try:
        rows = split_rows(counts[first], None if held_out else counts["test"], test_fraction,
                          where)
    except TfaeError:
        if split != "all":
            raise
        # Too few images to split, as fit would refuse them: every one, of no split.
        return [(part, np.arange(count), np.full(count, "all", "<U10")) for part, count in parts]
    of_part = {"train": first, "validation": first, "test": first if held_out else "test"}
    names = {part: np.full(count, "", "<U10") for part, count in parts}
    taken = {}
    for name, chosen in rows.items():
        chosen = np.asarray(chosen, np.int64)
        names[of_part[name]][chosen] = name
        if kept is not None and name != "test":
            chosen = chosen[np.isin(labels[of_part[name]][chosen], kept)]
        taken[name] = chosen
    if split == "all":  # every image, a run's other classes too
        return [(part, np.arange(count), names[part]) for part, count in parts]
    return [(of_part[split], taken[split], np.full(len(taken[split]), split, "<U10"))]


def limited_rows(chosen, limit):
    """``chosen_rows``' parts cut to their first ``limit`` rows in all (all for ``None``).

    Examples:
        >>> [(part, list(rows)) for part, rows, _ in limited_rows(
        ...     [("train", [0, 1], ["train"] * 2), ("test", [0, 1], ["test"] * 2)], 3)]
        [('train', [0, 1]), ('test', [0])]
    """
    left = limit
    for part, rows, names in chosen:
        if left is not None:
            rows, names, left = rows[:left], names[:left], left - min(left, len(rows))
        if len(rows):
            yield part, rows, names
