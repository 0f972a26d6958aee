"""Image data: where it comes from (one module per source), its splits, and tf.data pipelines.

``load`` turns a ``dataset`` setting into ``Splits`` (``tfae.data.splits``) through the first
source in ``SOURCES`` that claims it:

- ``tfae.data.folder``: a folder of PNG, JPEG, BMP or GIF files (class subfolders give labels);
- ``tfae.data.arrays``: an ``.npz`` file of ``x`` (and ``y``, ``x_test``, ``y_test``);
- ``tfae.data.catalog``: a tensorflow-datasets name; MNIST ships with tfae, others download or
  build from their original files in ``manual_dir``.

A source is a module with ``claims(dataset) -> bool`` and ``load(dataset, **settings) -> Splits``
(settings as in ``tfae.config.DataConfig``); a new source is a new module in ``SOURCES``.
``pipeline`` (``tfae.data.pipeline``) makes training and evaluation batches from a split.

Examples:
    >>> from tfae import data
    >>> splits = data.load("mnist", limit=256)
    >>> splits.image_shape, splits.source["kind"]
    ((28, 28, 1), 'tfds')
    >>> data.load("photos/", image_size=(64, 64), channels=3)  # doctest: +SKIP
"""

from tfae.config import DataConfig
from tfae.data import arrays, catalog, folder
from tfae.data.arrays import as_splits
from tfae.data.pipeline import pipeline
from tfae.data.splits import Splits
from tfae.errors import TfaeError

SOURCES = (folder, arrays, catalog)  # the first that claims a dataset loads it

__all__ = ["SOURCES", "Splits", "as_splits", "load", "load_config", "pipeline"]


def load(dataset="mnist", data_dir=None, limit=None, **settings):
    """Loads the train, validation and test splits of ``dataset``.

    Args:
        dataset: a tfds name, an image folder or an ``.npz`` file.
        data_dir: a folder of prepared tfds data (tfds names only).
        limit: keep only the first ``limit`` images of each split.
        **settings: the other ``tfae.config.DataConfig`` fields: ``manual_dir``,
            ``image_size``, ``channels``, ``test_fraction``.

    Returns:
        A ``Splits``.

    Raises:
        TfaeError: for settings out of range, or a data set that cannot be read (named).

    Examples:
        >>> load("mnist", limit=100).num_classes
        10
    """
    return load_config(DataConfig(dataset=dataset, data_dir=data_dir, limit=limit, **settings))


def load_config(config):
    """Loads the data a ``tfae.config.DataConfig`` (or a ``FitConfig``) names.

    Examples:
        >>> from tfae.config import FitConfig
        >>> load_config(FitConfig(limit=64)).name
        'mnist'
    """
    settings = DataConfig.resolved(config).data_fields()
    dataset = settings.pop("dataset")
    source = next(source for source in SOURCES if source.claims(dataset))
    if source is not catalog:
        given = [name for name in ("data_dir", "manual_dir") if settings[name] is not None]
        if given:
            raise TfaeError("{%s} applies to tensorflow-datasets names, not to %s" % (
                given[0], dataset), options=given[:1])
    elif _looks_like_a_path(dataset):
        raise TfaeError(f"{dataset}: no such folder or .npz file")
    return source.load(dataset, **settings)


def _looks_like_a_path(dataset):
    # Not any "/": tfds names a data set's config so, as in imagenet_resized/32x32.
    return dataset.startswith(("/", ".", "~")) or dataset.endswith(("/", "\\"))
