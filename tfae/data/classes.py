"""Training on some classes only (``--classes``): the normal images of a one-class anomaly run.

``keep_classes`` keeps the named classes of a labelled data set's training and validation
splits and leaves the test split whole, so that the images of the other classes are there to be
told apart from them (``tfae.anomaly``). Classes are named as the data names them (a folder's
class folders, MNIST's ``0``-``9``) or by index.

Examples:
    >>> from tfae.data import load
    >>> splits = keep_classes(load("mnist", limit=500), "3,5")
    >>> sorted(set(int(label) for _, label in splits.train))
    [3, 5]
    >>> int(splits.test.cardinality())  # every class, to score
    500
"""

import dataclasses

import numpy as np
import tensorflow as tf

from tfae.data.splits import Streamed
from tfae.errors import TfaeError


def class_indices(splits, classes):
    """The label indices of ``classes``, a comma-separated list of class names or indices.

    Raises:
        TfaeError: for unlabelled data, a class the data does not have, or every class.

    Examples:
        >>> from tfae.data import load
        >>> class_indices(load("mnist", limit=20), "7, 1")
        (1, 7)
    """
    if not splits.labelled:
        raise TfaeError("{classes} needs labelled images, and %s has none (an image folder "
                        "gives labels by class subfolders)" % splits.name, options=["classes"])
    return named_indices(classes, splits.class_names or tuple(
        str(index) for index in range(splits.num_classes)), splits.name)


def named_indices(classes, class_names, where):
    """The label indices of ``classes`` (names or indices, comma-separated) among
    ``class_names``.

    Raises:
        TfaeError: for a class not among them, or every class.

    Examples:
        >>> named_indices("dog, 0", ("cat", "dog", "fox"), "pets")
        (0, 1)
    """
    names = tuple(class_names)
    if not names:
        raise TfaeError("{classes} needs labelled images, and %s has none" % where,
                        options=["classes"])
    indices = set()
    for name in (part.strip() for part in classes.split(",")):
        if name in names:
            indices.add(names.index(name))
        elif name.isdigit() and int(name) < len(names):
            indices.add(int(name))
        else:
            raise TfaeError("{classes}: %s has no class %r (its classes: %s)" % (
                where, name, ", ".join(names)), options=["classes"])
    if len(indices) == len(names):
        raise TfaeError("{classes} names every class of %s: none would be left to tell apart "
                        "from them" % where, options=["classes"])
    return tuple(sorted(indices))


def keep_classes(splits, classes):
    """``splits`` with only the images of ``classes`` in training and validation.

    Args:
        splits: a labelled ``Splits``.
        classes: class names or indices, comma-separated (``class_indices``).

    Raises:
        TfaeError: as ``class_indices``, or when a split keeps no image.

    Examples:
        >>> from tfae.data import load
        >>> int(keep_classes(load("mnist", limit=1000), "0").train.cardinality())
        84
    """
    indices = class_indices(splits, classes)
    kept = {split: _kept(getattr(splits, split), indices) for split in ("train", "validation")}
    for split, dataset in kept.items():
        if not int(dataset.cardinality()):
            raise TfaeError("{classes} %s leaves no %s images of %s" % (classes, split,
                                                                       splits.name),
                            options=["classes"])
    return dataclasses.replace(splits, **kept)


@dataclasses.dataclass(frozen=True, eq=False)
class KeptClasses(Streamed):
    """The images of some classes of a streamed split, read as it is used.

    Attributes:
        split: the ``Streamed`` split.
        indices: the label indices kept.
        count: how many of its images they are.

    Examples:
        >>> from tfae.data import load
        >>> streamed = load("mnist", limit=100, memory_budget=1e-9).train
        >>> KeptClasses(streamed, (1,), 14).count
        14
    """

    split: Streamed
    indices: tuple
    count: int

    def dataset(self, shuffle=False, seed=0):
        """The kept images, in the split's order or shuffled as the split shuffles."""
        kept = tf.constant(self.indices, tf.int64)
        return self.split.dataset(shuffle, seed).filter(
            lambda image, label: tf.reduce_any(label == kept)).apply(
            tf.data.experimental.assert_cardinality(self.count))


def _kept(split, indices):
    """A split's images of the classes at ``indices``: held ones copied, streamed ones counted
    in one pass over the split and filtered as they are read."""
    if isinstance(split, Streamed):
        count = sum(int(np.isin(labels, indices).sum())
                    for _, labels in split.dataset().batch(4096).as_numpy_iterator())
        return KeptClasses(split, indices, count)
    size = int(split.cardinality())
    images, labels = (tensor.numpy() for tensor in split.batch(size).get_single_element())
    chosen = np.isin(labels, indices)
    return tf.data.Dataset.from_tensor_slices((images[chosen], labels[chosen]))

