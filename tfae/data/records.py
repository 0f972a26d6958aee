"""``Records``: every image of a data set as it is stored, each with the name that finds it again.

Where ``Splits`` makes the training, validation and test splits a run learns from and is measured
on, ``Records`` walks the images themselves for ``tfae encode`` and ``tfae reconstruct``, each
with an ``id``: a file's path in its folder (``cat/1.jpg``), a tfds split and index
(``test/00042``), or an ``.npz`` array and row (``x_test/00042``). Each source makes them
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

    Examples:
        >>> import tensorflow as tf
        >>> records = Records("toy", tf.data.Dataset.from_tensor_slices(
        ...     (["a", "b"], tf.zeros((2, 4, 4, 1), tf.uint8), [-1, -1])), ("a", "b"), ())
        >>> len(records), records.labelled
        (2, False)
    """

    name: str
    dataset: object  # a tf.data.Dataset: this module imports no TensorFlow
    ids: tuple
    class_names: tuple = ()

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


def chosen_parts(parts, split, where):
    """The parts of a data set (``[(split name, ...)]``) that ``split`` chooses: every one for
    ``all``, else the one named so.

    Raises:
        TfaeError: for a ``split`` the data set does not have.

    Examples:
        >>> chosen_parts([("train", 1), ("test", 2)], "test", "mnist")
        [('test', 2)]
    """
    if split not in SPLITS:
        raise TfaeError(f"{{split}} must be one of {', '.join(SPLITS)}, got {split!r}",
                        options=["split"])
    if split == "all":
        return list(parts)
    chosen = [part for part in parts if part[0] == split]
    if not chosen:
        raise TfaeError(f"{where} has no {split} split (it has: "
                        f"{', '.join(name for name, *_ in parts)}); give {{split}} all",
                        options=["split"])
    return chosen
