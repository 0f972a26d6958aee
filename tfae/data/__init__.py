"""Image data: where it comes from (one module per source), its splits, and tf.data pipelines.

``load`` turns a ``dataset`` setting into ``Splits`` (``tfae.data.splits``) through the first
source in ``SOURCES`` that claims it:

- ``tfae.data.shards``: a folder ``tfae prepare`` made of a larger one, streamed;
- ``tfae.data.folder``: a folder of PNG, JPEG, BMP or GIF files (class subfolders give labels),
  prepared into shards on first use when its decoded images pass the memory budget;
- ``tfae.data.arrays``: an ``.npz`` file of ``x`` (and ``y``, ``x_test``, ``y_test``);
- ``tfae.data.catalog``: a tensorflow-datasets name; MNIST ships with tfae, others download or
  build from their original files in ``manual_dir``.

``classes`` (``tfae.data.classes``) then keeps some classes of training and validation.

A source is a module with ``claims(dataset) -> bool``, ``load(dataset, **settings) -> Splits``
(settings as in ``tfae.config.DataConfig``) and ``records(dataset, split, **settings) ->
Records``, every image with its name (``tfae.data.records``, for ``load_records``); a new source
is a new module in ``SOURCES``.
``pipeline`` (``tfae.data.pipeline``) makes training and evaluation batches from a split;
``worker_pipeline`` makes them for ``Model.fit`` under a multi-worker strategy.

Examples:
    >>> from tfae import data
    >>> splits = data.load("mnist", limit=256)
    >>> splits.image_shape, splits.source["kind"]
    ((28, 28, 1), 'tfds')
    >>> data.load("photos/", image_size=(64, 64), channels=3)  # doctest: +SKIP
    >>> data.load_records("photos/", image_size=(64, 64)).ids[:1]  # doctest: +SKIP
    ('cat/1.jpg',)
"""

from tfae.config import DataConfig
from tfae.data import arrays, catalog, folder, shards
from tfae.data.arrays import as_splits
from tfae.data.classes import keep_classes
from tfae.data.pipeline import pipeline, worker_pipeline
from tfae.data.records import Records
from tfae.data.splits import Splits
from tfae.errors import TfaeError

SOURCES = (shards, folder, arrays, catalog)  # the first that claims a dataset loads it

__all__ = ["SOURCES", "Records", "Splits", "as_splits", "load", "load_config", "load_records",
           "pipeline", "worker_pipeline"]


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
    dataset, classes = settings.pop("dataset"), settings.pop("classes")
    splits = _source(dataset, settings).load(dataset, **settings)
    return splits if classes is None else keep_classes(splits, classes)


def load_records(dataset="mnist", split="all", limit=None, **settings):
    """Every image of ``dataset`` (or of its ``train`` or ``test`` split), each with its id and
    label, read as they are used: ``tfae.data.records.Records``.

    Args:
        dataset: a tfds name, an image folder or an ``.npz`` file.
        split: ``all``, ``train`` or ``test``.
        limit: only the first ``limit`` images.
        **settings: ``data_dir``, ``manual_dir``, ``image_size``, ``channels``, ``resize``
            (``tfae.config.DataConfig``'s fields).

    Examples:
        >>> records = load_records("mnist", limit=2)
        >>> records.ids, records.class_names[:2]
        (('train/00000', 'train/00001'), ('0', '1'))
    """
    settings = DataConfig(dataset=dataset, limit=limit, **settings).resolved().data_fields()
    dataset = settings.pop("dataset")
    return _source(dataset, settings).records(dataset, split=split, **settings)


def _source(dataset, settings):
    """The first source in ``SOURCES`` that claims ``dataset``, with ``settings`` checked
    against it."""
    source = next(source for source in SOURCES if source.claims(dataset))
    if source is not catalog:
        given = [name for name in ("data_dir", "manual_dir") if settings[name] is not None]
        if given:
            raise TfaeError("{%s} applies to tensorflow-datasets names, not to %s" % (
                given[0], dataset), options=given[:1])
    elif _looks_like_a_path(dataset):
        raise TfaeError(f"{dataset}: no such folder or .npz file")
    return source


def _looks_like_a_path(dataset):
    # Not any "/": tfds names a data set's config so, as in imagenet_resized/32x32.
    return dataset.startswith(("/", ".", "~")) or dataset.endswith(("/", "\\"))
