"""Colour images offline: the two photographs scikit-learn ships, cut into crops as an image folder.

``write_crops`` writes ``train/`` crops from the left three quarters of each photograph and
``test/`` crops from the right quarter, so the test crops are of regions no training crop saw;
the folder is then a data set like any other (``tfae fit --dataset FOLDER``). It is how the
colourisation tutorial and benchmark get colour data without a network.

Examples:
    >>> folder = write_crops("/tmp/tfae-photo-crops", size=32, stride=64)
    >>> from tfae.data import load
    >>> splits = load(str(folder))
    >>> splits.image_shape, splits.labelled
    ((32, 32, 3), False)
"""

import pathlib

import numpy as np
import tensorflow as tf

from tfae.errors import TfaeError

TEST_SHARE = 0.25  # the right quarter of each photograph


def write_crops(folder, size=32, stride=8):
    """Writes square crops of ``size`` pixels, ``stride`` apart, of scikit-learn's sample
    photographs as PNG files into ``folder/train`` and ``folder/test``; returns ``folder``.

    Raises:
        TfaeError: for a size or stride below 1, or a size larger than the test region.

    Examples:
        >>> write_crops("crops", size=32, stride=8)  # doctest: +SKIP
        PosixPath('crops')
    """
    from sklearn.datasets import load_sample_images

    if size < 1 or stride < 1:
        raise TfaeError(f"crop size and stride must be positive, got {size} and {stride}")
    folder = pathlib.Path(folder)
    for number, photo in enumerate(load_sample_images().images):
        height, width = photo.shape[:2]
        boundary = int(width * (1 - TEST_SHARE))
        if size > min(height, width - boundary):
            raise TfaeError(f"crops of {size} pixels do not fit the test region, "
                            f"{height}x{width - boundary}")
        for split, (start, end) in (("train", (0, boundary)), ("test", (boundary, width))):
            (folder / split).mkdir(parents=True, exist_ok=True)
            for top in range(0, height - size + 1, stride):
                for left in range(start, end - size + 1, stride):
                    crop = np.ascontiguousarray(photo[top:top + size, left:left + size])
                    path = folder / split / f"photo{number}-{top:03d}-{left:03d}.png"
                    tf.io.write_file(str(path), tf.io.encode_png(crop))
    return folder
