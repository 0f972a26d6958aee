"""Evaluation: what an autoencoder's codes and reconstructions are good for, as the study judged.

``evaluate`` measures a run folder or an exported SavedModel on a data set's test split with
every registered measurement (``tfae.measurements``, one module each):

- ``reconstruction``: MSE, PSNR and binary cross-entropy;
- ``probe``: a linear probe (logistic regression on standardised codes, fitted on the training
  split's codes) and a plain 5-nearest-neighbour probe (Euclidean, on the codes as they are),
  each scored on the test split's codes;
- ``baselines``: the probes on the raw pixels, and on PCA with the model's code size, with PCA's
  reconstruction PSNR, on the same splits;
- ``denoising``: PSNR of noisy inputs and of their reconstructions, for gaussian 0.25 and 0.5 and
  salt-and-pepper 0.2, the same seeded corruption for every model;
- ``occlusion``: MSE inside square patches of half and a quarter of the image's shorter side
  (14x14 and 7x7 on MNIST) at seeded positions, and the linear probe's accuracy on the codes of
  the occluded images;
- ``colorization``, on colour images: PSNR of the grayscale inputs and of the model's output from
  them, both against the originals (the measure of a run trained with ``--noise grayscale``);
- ``jacobian_norm``: the mean Frobenius norm of the encoder's Jacobian over test images;
- ``manifold``: manifold convergence as numbers, iterating x_{t+1} = AE(x_t) from noisy test
  images;

and records the parameter count and training time of the run.

The probes need labels of two classes or more; without them they are left out and ``notes`` says
why. Measured on the data its run was trained on (unless told otherwise), a run whose data has
changed since is measured all the same, with a warning and a note.

Examples:
    >>> from tfae.evaluation import evaluate
    >>> metrics = evaluate("runs/deep", limit=2000)  # doctest: +SKIP
    >>> metrics["probe"]["linear"]  # doctest: +SKIP
    0.912
"""

import dataclasses
import json
import pathlib
import re
import sys
import warnings

from tfae.config import DataConfig
from tfae.data import as_splits, load_config
from tfae.errors import TfaeError
from tfae.files import as_path, file_identity, write_json
from tfae.measurements import Measuring, measurements
from tfae.opened import open_model, own_data_settings
from tfae.options import check_positive_whole
from tfae.progress import Progress
from tfae.runs import RunFolder


# The settings that make the measured images what they are (not where they are kept or how).
IDENTITY = DataConfig.named("images")


@dataclasses.dataclass
class MeasuredData:
    """The data a model is measured on.

    Attributes:
        splits: the ``tfae.data.Splits``.
        notes: sentences for the metrics' notes (the data changed since training, say).
        settings: the ``IDENTITY`` settings the images were loaded with.
        name: ``None`` for the run's own images with its own settings (its metrics go in
            ``metrics.json``), else a short name of what differs, such as ``fashion_mnist`` or
            ``mnist-limit500`` (for ``metrics-<name>.json``).

    Examples:
        >>> measured = measured_data("runs/deep", open_model("runs/deep"), limit=500)  # doctest: +SKIP
        >>> measured.name, measured.settings["limit"]  # doctest: +SKIP
        ('mnist-limit500', 500)
    """

    splits: object
    notes: list
    settings: dict
    name: str | None


def measured_data(path, opened, dataset=None, limit=None, **settings):
    """The ``Splits`` to measure the model at ``path`` on, notes on them, and their name.

    By default a run is measured on its own data with its own settings, ``limit`` included (a
    note and a warning if the data has changed since the run was trained), and an export on
    MNIST. ``dataset`` (a name, folder, ``.npz`` file or ``Splits``), ``limit`` (0: every image)
    and ``settings`` (``DataConfig`` fields) change what is measured on; the other settings stay
    the run's (an export's image size and channels are those it takes).

    Returns:
        ``MeasuredData``.

    Raises:
        TfaeError: for a run trained on arrays given in Python, with no ``dataset``; for data
            whose images are not the shape the model takes.

    Examples:
        >>> measured = measured_data("runs/photos", open_model("runs/photos"))  # doctest: +SKIP
        >>> measured.notes  # doctest: +SKIP
        ['photos has changed since runs/photos was trained (fingerprint 3f2a..., now 9c1e...)']
    """
    source = opened.data_source or {}
    own = own_data_settings(path, opened, dataset)
    # A run trained on some classes (--classes) is measured on every class: its probes tell
    # classes apart, and its anomaly scores tell the other classes from its own.
    own.pop("classes", None)
    given = {name: value for name, value in settings.items() if value is not None}
    if dataset is not None:
        given["dataset"] = dataset
    if limit is not None:
        given["limit"] = limit or None
    chosen = {**own, **given}
    changed = [name for name in IDENTITY if name in given and given[name] != own.get(name)]
    if isinstance(chosen["dataset"], str):
        splits = load_config(DataConfig(**chosen))
    else:
        splits = as_splits(chosen.pop("dataset"), **chosen)
    notes = []
    trained_on = source.get("fingerprint")
    if not changed and trained_on and trained_on != splits.source.get("fingerprint"):
        notes.append(f"{splits.source.get('dataset', splits.name)} has changed since {path} "
                     f"was trained (fingerprint {trained_on}, now "
                     f"{splits.source['fingerprint']})")
        print(f"warning: {notes[-1]}", file=sys.stderr)
    if tuple(splits.image_shape) != tuple(opened.image_shape):
        raise TfaeError(f"{path} takes images of shape {opened.image_shape}, but data set "
                        f"{splits.name!r} has {splits.image_shape}")
    settings = {name: chosen.get(name) for name in IDENTITY}
    settings["dataset"] = splits.source.get("dataset", splits.name)
    return MeasuredData(splits, notes, settings,
                        _measured_name(splits.name, chosen, changed) if changed else None)


def _measured_name(name, chosen, changed):
    """A file-name-safe name of measured data: its name, its limit, and a digest of any other
    setting that changed."""
    from tfae.data.splits import fingerprint

    parts = [name] + ([f"limit{chosen['limit']}"] if chosen.get("limit") else [])
    others = {key: chosen[key] for key in changed if key not in ("dataset", "limit")}
    if others:
        parts.append(fingerprint(json.dumps(others, sort_keys=True, default=str).encode())[:8])
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts))


def open_model_and_data(path, progress, dataset=None, limit=None, **settings):
    """``(opened, measured)``: ``tfae.opened.open_model(path)`` and ``measured_data`` for it, each a
    stage of ``progress`` (preparing a tfds data set the first time takes a while).

    Examples:
        >>> opened, measured = open_model_and_data("runs/deep", Progress())  # doctest: +SKIP
    """
    with progress.stage(f"opening {path}"):
        opened = open_model(path)
    with progress.stage("loading the data"):
        measured = measured_data(path, opened, dataset, limit, **settings)
    return opened, measured


def evaluate(path, dataset=None, data_dir=None, limit=None, batch_size=500, verbose=1, out=None,
             probe_limit=None, baselines="auto", **settings):
    """Measures a run folder or export and writes its metrics beside it: ``metrics.json`` for
    the run's own images with its own settings, ``metrics-<data>.json`` for others (named by
    ``MeasuredData.name``), so that measuring on other data never replaces them.

    Args:
        path: a run folder, a SavedModel version folder, or a folder of versions.
        dataset: the data to measure on (a name, folder, ``.npz`` file, or what
            ``tfae.fit``'s ``data`` takes); default the run's, or ``mnist`` for an export.
        data_dir: a folder of prepared tfds data.
        limit: use only the first ``limit`` images of each split; default the run's own, 0 for
            every image.
        batch_size: images per batch through the model.
        verbose: show each stage of the measurements, named, with its time (on stderr).
        out: the metrics file to write instead.
        probe_limit: fit the probes and baselines on a seeded sample of this many training
            images (0: all; default: all of a split held in memory, 20,000 of a streamed one);
            given, the metrics file's name says so (``metrics-probes5000.json``).
        baselines: when to measure the baselines (raw pixels, PCA): ``"auto"`` when the
            training images' pixels take at most 1 GiB as float32
            (``tfae.measurements.BASELINE_PIXEL_BYTES``), ``"always"``, ``"never"``; not
            measured, ``metrics["baselines"]`` is ``None`` and a note says why.
        **settings: other ``DataConfig`` fields (``manual_dir``, ``image_size``, ...).

    Returns:
        The metrics as a nested dict (see the module docstring); ``metrics["written_to"]`` is
        where they were written, or ``None`` with ``metrics["not_written"]`` saying why not (the
        file cannot be written, or the run's model was replaced while it was measured, so the
        metrics would describe a model that is gone).

    Examples:
        >>> evaluate("runs/deep", limit=2000)["reconstruction"]["psnr"]  # doctest: +SKIP
        18.2
    """
    check_positive_whole(batch_size, "batch_size")
    progress = Progress(enabled=bool(verbose))
    folder = RunFolder(as_path(path, "path"))  # an export's keeps its metrics as a run's does
    measured_model = file_identity(folder.model_path)
    opened, measured = open_model_and_data(path, progress, dataset, limit, data_dir=data_dir,
                                              **settings)
    names = ([] if measured.name is None else [measured.name]) + (
        [] if probe_limit is None else [f"probes{probe_limit}"])
    if out:
        destination = pathlib.Path(out)
    else:
        destination = folder.path / f"metrics-{'-'.join(names)}.json" if names \
            else folder.metrics_path
    splits = measured.splits
    measuring = Measuring(opened, splits, batch_size, progress, probe_limit, baselines)
    measuring.notes += measured.notes
    metrics = {"dataset": splits.name, "data": splits.source, "limit": measured.settings["limit"],
               "settings": measured.settings, "train_images": int(splits.train.cardinality()),
               "probe_images": int(measuring.probe_images.cardinality()),
               "test_images": int(splits.test.cardinality()),
               "scored_test_images": int(measuring.test_images.cardinality()),
               "parameters": opened.parameters, "training_seconds": opened.training_seconds}
    for measurement in measurements():
        if measurement.colour and not measuring.colour:
            continue
        # Warnings (scikit-learn's, TensorFlow's) go into the notes, not across the progress.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = measurement.measure(measuring)
        for message in dict.fromkeys(str(warning.message) for warning in caught):
            measuring.notes.append(f"{measurement.name}: {message}")
        # None is kept for the probe (no labels) and the baselines (not asked for): a report
        # tells them from metrics of a tfae that did not measure them.
        if value is not None or measurement.name in ("probe", "baselines"):
            metrics[measurement.name] = value
    metrics["notes"] = measuring.notes
    if file_identity(folder.model_path) != measured_model:
        return {**metrics, "written_to": None,
                "not_written": f"{folder.model_path} was replaced while it was measured (by a "
                               "`tfae fit` extending the run?); evaluate it again"}
    try:
        write_json(destination, metrics)
    except TfaeError as error:
        return {**metrics, "written_to": None, "not_written": str(error)}
    return {**metrics, "written_to": str(destination)}


def summary_rows(metrics):
    """The metrics as (name, value) rows for a short printed table, each measurement's own rows
    in the registry's order.

    Examples:
        >>> summary_rows({"probe": {"linear": 0.9, "knn": 0.95}})[0]
        ('linear probe', '90.00%')
    """
    rows = []
    for measurement in measurements():
        if metrics.get(measurement.name) is not None:
            rows += measurement.rows(metrics[measurement.name])
    if "parameters" in metrics:
        rows.append(("parameters", f"{metrics['parameters']:,}"))
    if metrics.get("training_seconds") is not None:
        rows.append(("training time", f"{metrics['training_seconds']:.1f} s"))
    rows += [("note", note) for note in metrics.get("notes", [])]
    return rows
