"""Codes, reconstructions and anomaly scores of every image of a data set: ``tfae encode``,
``tfae reconstruct`` and ``tfae score`` (``tfae.encode``, ``tfae.reconstruct``, ``tfae.score``);
and new images drawn from a model's prior, ``tfae sample`` (``tfae.sample``).

A run folder or an export (``tfae.opened.open_model``) is applied to the images of a folder, an
``.npz`` file or a tfds data set (``tfae.data.load_records``), all of them or one split (the same
seeded split fit and evaluate make, a run's ``--classes`` kept in its training and validation
images), read, shaped to the size and channels the model takes (with the run's ``resize``, or
``stretch`` for an export) and run through it in batches, so that memory holds a batch and not
the data set. Each image keeps its id (a file's path in its folder, ``test/0042`` in a tfds data
set), split and label, written beside its code or reconstruction (``tfae.files``), or, without
``out``, returned as numpy arrays:

- codes to ``.npz`` (``codes``, ``ids``, ``splits``, ``labels``, ``class_names``), ``.csv`` or
  ``.parquet`` (columns ``id``, ``split``, then ``label`` and ``class`` for labelled data, then
  ``code_0``, ...);
- reconstructions to a folder of PNG files named as the originals (``cat/1.jpg`` ->
  ``cat/1.png``), or to ``.npz`` (``reconstructions`` as float32 in [0, 1], ``ids``, ...).
- samples (``sample``, a variational autoencoder's run or export) as reconstructions are, named
  ``sample-0000.png`` and on;
- anomaly scores (the model's ``tfae.anomaly.AnomalyDetector``) to ``.csv`` or ``.parquet``
  (``id``, ``split``, ``label``, ``class``, ``score``, ``flagged``, ``reconstruction_error``,
  ``code_distance``), with a summary: how many are flagged and the highest scores.

Every output is written under a partial name and renamed when whole (``tfae.files``), so a
failed or killed run never leaves half of one, nor replaces what was there; a folder is only
written where there is none yet (or an empty one). A file that does not decode is left out and
named in ``skipped``.

Examples:
    >>> from tfae.apply import encode, reconstruct
    >>> encode("runs/deep", "codes.parquet", dataset="photos/")  # doctest: +SKIP
    Applied(images=20000, skipped=(), written_to='codes.parquet', ...)
    >>> codes = encode("runs/deep", split="test", limit=100).outputs  # doctest: +SKIP
    >>> reconstruct("saved_models/deep", "out/", dataset="mnist", split="test", limit=100)  # doctest: +SKIP
"""

import dataclasses
import logging
import os
import pathlib
import shutil
import sys

import numpy as np
import tensorflow as tf

from tfae.anomaly import check_contamination, check_score, error_overlay
from tfae.config import APPLIED_SETTINGS, DataConfig
from tfae.data import load_records
from tfae.data.pipeline import unit_floats
from tfae.errors import TfaeError
from tfae.files import PngFolderWriter, as_path, output_writer, remove_stale, written
from tfae.models.variational import prior_code_batches
from tfae.opened import open_model, own_data_settings
from tfae.options import check_positive_whole
from tfae.progress import Progress
from tfae.startup import native_stderr_hidden

CODE_FORMATS = (".npz", ".csv", ".parquet")
SCORE_FORMATS = (".csv", ".parquet")
SHOWN_ANOMALIES = 10  # the highest scores a summary names
# What reconstruct's --out is not: a name ending so is a mistake, not a folder to make.
NOT_FOLDERS = (".png", ".jpg", ".jpeg", ".csv", ".parquet", ".npy", ".json")
BATCH_SIZE = 256
# The run's own settings that say which images are which split (on any data), and those of its
# own data (tfae.config.APPLIED_SETTINGS, and the classes its training and validation kept).
SPLIT_SETTINGS = ("test_fraction",)
OWN_DATA_SETTINGS = (*APPLIED_SETTINGS, *DataConfig.named("classes"))


@dataclasses.dataclass
class Applied:
    """What ``encode``, ``reconstruct`` or ``sample`` did.

    Attributes:
        images: how many images were written.
        skipped: the ids of files that did not decode, left out.
        written_to: the file or folder written, or ``None`` for arrays returned.
        dataset: the data set's name.
        shape: the shape of one code or reconstruction.
        ids, splits, labels: each image's id, split and label (-1: none), when no file was
            written; else ``None``.
        outputs: the codes, reconstructions or samples as a float32 array, when no file was
            written; else ``None``.

    Examples:
        >>> applied = encode("runs/photos", "codes.npz")  # doctest: +SKIP
        >>> applied.images, applied.skipped, applied.shape  # doctest: +SKIP
        (411, ('cat/truncated.jpg',), (256,))
        >>> encode("runs/photos", split="test").outputs.shape  # doctest: +SKIP
        (41, 256)
    """

    images: int
    skipped: tuple
    written_to: str | None
    dataset: str
    shape: tuple
    ids: np.ndarray | None = dataclasses.field(default=None, repr=False)
    splits: np.ndarray | None = dataclasses.field(default=None, repr=False)
    labels: np.ndarray | None = dataclasses.field(default=None, repr=False)
    outputs: np.ndarray | None = dataclasses.field(default=None, repr=False)


def encode(path, out=None, dataset=None, split="all", limit=None, batch_size=BATCH_SIZE,
           verbose=True, **settings):
    """The codes of the images of ``dataset`` under the model at ``path``: written to ``out``,
    or returned as arrays.

    Args:
        path: a run folder, or a SavedModel export (a version folder or its parent).
        out: an ``.npz``, ``.csv`` or ``.parquet`` file; ``None`` returns the codes in
            ``Applied.outputs``.
        dataset: a tfds name, image folder or ``.npz`` file; default the run's own data, or
            ``mnist`` for an export.
        split: ``all`` images, or those of the ``train``, ``validation`` or ``test`` split only
            (the run's own split: ``tfae.data.records.chosen_rows``).
        limit: only the first ``limit`` images.
        batch_size: images per batch through the model.
        verbose: show progress on stderr.
        **settings: ``resize``, ``data_dir``, ``manual_dir`` (``tfae.config.DataConfig``).

    Returns:
        ``Applied``.

    Raises:
        TfaeError: for an ``out`` of another kind, data the model cannot take, or none of the
            images decoding.

    Examples:
        >>> encode("runs/deep", "codes.npz", split="test").shape  # doctest: +SKIP
        (256,)
    """
    if out is not None:
        out = as_path(out, "out")
        if out.suffix.lower() not in CODE_FORMATS:
            raise TfaeError(f"{{out}} must end in {', '.join(CODE_FORMATS)}, got {out}",
                            options=["out"])
    return _apply(path, out, "codes", "encode", dataset, split, limit, batch_size, verbose,
                  settings)


def reconstruct(path, out=None, dataset=None, split="all", limit=None, batch_size=BATCH_SIZE,
                verbose=True, **settings):
    """The reconstructions of the images of ``dataset`` by the model at ``path``: written to
    ``out``, a folder of PNG files (which must not exist yet, or be empty) or an ``.npz`` file,
    or returned as arrays (``out`` ``None``). The other arguments are ``encode``'s.

    Examples:
        >>> reconstruct("runs/photos", "photos-out/").images  # doctest: +SKIP
        412
    """
    out = None if out is None else _checked_image_output(out)
    return _apply(path, out, "reconstructions", "reconstruct", dataset, split, limit, batch_size,
                  verbose, settings)


def sample(path, out=None, count=64, seed=0, batch_size=BATCH_SIZE, verbose=True):
    """``count`` images decoded from codes drawn from the prior of the variational autoencoder
    at ``path`` (a run folder or an export with a ``sample`` signature), seeded
    (``tfae.models.variational.prior_codes``): written to ``out``, a new (or empty) folder of
    PNG files or an ``.npz`` file (``samples``), or returned as arrays (``out`` ``None``).

    Raises:
        TfaeError: for a model with no prior (any family but ``vae``), a ``count`` below 1 or an
            ``out`` of another kind.

    Examples:
        >>> sample("runs/vae", "samples/", count=16).shape  # doctest: +SKIP
        (28, 28, 1)
        >>> sample("saved_models/vae", count=4, seed=1).outputs.shape  # doctest: +SKIP
        (4, 28, 28, 1)
    """
    out = None if out is None else _checked_image_output(out)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise TfaeError(f"{{count}} must be a whole number of at least 1, got {count!r}",
                        options=["count"])
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TfaeError(f"{{seed}} must be a whole number of at least 0, got {seed!r}",
                        options=["seed"])
    _check_output(out, batch_size)
    progress = Progress(enabled=bool(verbose))
    with progress.stage(f"opening {path}"):
        opened = open_model(path)
    if opened.sample is None:
        raise TfaeError(f"{path} has no prior to sample from: only a variational autoencoder "
                        "(--model vae) has one")
    _check_room(out, count * 4 * int(np.prod(opened.image_shape)), f"{count:,} samples")
    digits = max(4, len(str(count - 1)))
    writer = output_writer(out, "samples", None, ())  # sample-0000, ...: no two share a name
    with written(writer), progress.stage(f"sampling {count:,} images", total=count,
                                         unit="image") as tick:
        # Drawn and decoded a batch at a time, the same codes for any batch size: memory holds a
        # batch whatever the count.
        start = 0
        for codes in prior_code_batches(count, opened.latent_dim, seed, batch_size):
            batch = [f"sample-{index:0{digits}d}" for index in range(start, start + len(codes))]
            writer.add(batch, ["prior"] * len(batch), np.full(len(batch), -1),
                       np.asarray(opened.sample(codes)))
            start += len(codes)
            tick(len(batch))
    return _applied(writer, count, (), out, "prior", "samples")


@dataclasses.dataclass
class Scored:
    """What ``score`` did.

    Attributes:
        images: how many images were scored.
        flagged: how many of them score above the threshold.
        threshold: the score above which an image is flagged.
        score: which score (``tfae.anomaly.SCORES``).
        contamination: the share of the run's validation images above the threshold.
        most_anomalous: ``(id, score)`` of the ``SHOWN_ANOMALIES`` highest scores, highest first.
        skipped: the ids of files that did not decode, left out.
        written_to: the table written, or ``None``.
        dataset: the data set's name.
        ids, splits, scores, flags: each image's id, split, score and flag (``True``:
            flagged), as arrays.
        maps: the folder of the flagged images' error maps written, or ``None``.

    Examples:
        >>> scored = score("runs/digit-3", "scores.csv", dataset="new/")  # doctest: +SKIP
        >>> scored.flagged, scored.most_anomalous[0]  # doctest: +SKIP
        (12, ('scratched/7.png', 0.0841))
    """

    images: int
    flagged: int
    threshold: float
    score: str
    contamination: float
    most_anomalous: tuple
    skipped: tuple
    written_to: str | None
    dataset: str
    ids: np.ndarray = dataclasses.field(default=None, repr=False)
    splits: np.ndarray = dataclasses.field(default=None, repr=False)
    scores: np.ndarray = dataclasses.field(default=None, repr=False)
    flags: np.ndarray = dataclasses.field(default=None, repr=False)
    maps: str | None = None

    def summary(self):
        """What ``tfae score --json`` prints: everything but the per-image arrays."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)
                if field.name not in ("ids", "splits", "scores", "flags")}


def score(path, out=None, dataset=None, split="all", limit=None, score=None,
          contamination=None, batch_size=BATCH_SIZE, verbose=True, maps=None, **settings):
    """Scores how unlike the run's normal images each image of ``dataset`` is, with the model's
    anomaly detector (``tfae.opened.OpenedModel.detector``), and flags those above the threshold.

    Args:
        path: a run folder (calibrated on its first use, ``tfae.anomaly.calibrate``), or an
            export with a ``score`` signature (``tfae.exports``), which scores as it was made to.
        out: a ``.csv`` or ``.parquet`` file of one row per image: ``id``, ``split``, ``label``
            and ``class`` for labelled data, ``score``, ``flagged``, ``reconstruction_error``
            and (a run's) ``code_distance``, (a variational one's) ``negative_elbo`` and (a
            ``geometric`` one's) ``transformation_surprise``; ``None`` for the summary and
            arrays only.
        score: ``reconstruction`` (a run's default), ``codes``, ``combined``, (a variational
            autoencoder's) ``elbo`` or (a ``geometric`` model's) ``transformations``.
        contamination: the share of normal (validation) images the threshold flags, in
            (0, 0.5); a run's default ``tfae.anomaly.DEFAULT_CONTAMINATION``.
        dataset, split, limit, batch_size, verbose, settings: as ``encode`` takes them.
        maps: a new or empty folder for a PNG of each flagged image with its error map over it
            (``tfae.anomaly.error_overlay``), named as the image (``scratched/7.jpg`` ->
            ``scratched/7.png``).

    Returns:
        ``Scored``.

    Raises:
        TfaeError: for an export without a ``score`` signature or asked for other settings, an
            ``out`` of another kind, a bad ``score`` or ``contamination``, or data the model
            cannot take.

    Examples:
        >>> score("runs/digit-3", "scores.csv", dataset="mnist", split="test").flagged  # doctest: +SKIP
        8123
    """
    if score is not None:
        check_score(score)
    if contamination is not None:
        check_contamination(contamination)
    out = None if out is None else as_path(out, "out")
    if out is not None and out.suffix.lower() not in SCORE_FORMATS:
        raise TfaeError(f"{{out}} must end in {', '.join(SCORE_FORMATS)}, got {out}",
                        options=["out"])
    _check_output(out, batch_size)
    if maps is not None:
        maps = _checked_image_output(maps, "maps", npz=False)
        if not maps.parent.is_dir():
            raise TfaeError(f"{{maps}}: folder {maps.parent} does not exist", options=["maps"])
        remove_stale(maps)  # the partial folders of processes gone
    progress = Progress(enabled=bool(verbose))
    opened, records = _opened(path, {"out": out, "maps": maps}, dataset, split, limit, settings,
                              progress)
    detector = opened.detector(score, contamination, progress)
    for line in detector.warnings():
        print(f"warning: {line}", file=sys.stderr, flush=True)

    def rows(images):
        outputs = detector.outputs(images)
        row = {"score": outputs["scores"], "flagged": outputs["flagged"]}
        row.update({column: outputs[part] for part, column in SCORE_COLUMNS.items()
                    if part in outputs})
        if maps is not None:
            row[MAP] = error_overlay(images, outputs["error_maps"])
        return {name: np.asarray(values) for name, values in row.items()}

    writer = output_writer(out, "scores", records.ids, records.class_names)
    collector = _ScoreCollector(writer, None if maps is None else PngFolderWriter(maps,
                                                                                  records.ids))
    with written(collector):
        seen = _through(rows, records, collector, batch_size, progress, "scoring")
    values = np.concatenate(collector.scores)
    highest = np.argsort(-values, kind="stable")[:SHOWN_ANOMALIES]
    flags = values > detector.threshold_
    return Scored(seen, int(flags.sum()), detector.threshold_, detector.score,
                  detector.contamination,
                  tuple((collector.ids[index], float(values[index])) for index in highest),
                  _skipped(records, collector.ids, seen), None if out is None else str(out),
                  records.name, np.array(collector.ids, str),
                  np.concatenate(collector.splits), values, flags,
                  None if maps is None else str(maps))


# The parts of a score (tfae.anomaly.PARTS) written beside it, by their columns' names.
SCORE_COLUMNS = {"reconstruction": "reconstruction_error", "codes": "code_distance",
                 "elbo": "negative_elbo", "transformations": "transformation_surprise"}


# The row entry of a flagged image's error map over it, for ``maps``, not for the table.
MAP = "map"


class _ScoreCollector:
    """Keeps every image's id, split and score for the summary, hands the rows to ``writer``
    and the flagged images' maps to ``maps`` (a ``PngFolderWriter``, or ``None``)."""

    def __init__(self, writer, maps=None):
        self.writer, self.maps, self.path = writer, maps, writer.path
        self.ids, self.splits, self.scores = [], [], []

    def add(self, ids, splits, labels, outputs):
        overlays = outputs.pop(MAP, None)
        self.writer.add(ids, splits, labels, outputs)
        if self.maps is not None:
            flagged = np.flatnonzero(outputs["flagged"])
            self.maps.add([ids[index] for index in flagged], [splits[index] for index in flagged],
                          labels[flagged], overlays[flagged])
        self.ids += ids
        self.splits.append(np.asarray(splits, str))
        self.scores.append(outputs["score"])

    def commit(self):
        self.writer.commit()
        if self.maps is not None:
            self.maps.commit()

    def discard(self):
        self.writer.discard()
        if self.maps is not None:
            self.maps.discard()


def _apply(path, out, what, operation, dataset, split, limit, batch_size, verbose, settings):
    _check_output(out, batch_size)
    progress = Progress(enabled=bool(verbose))
    opened, records = _opened(path, {"out": out}, dataset, split, limit, settings, progress)
    writer = output_writer(out, what, records.ids, records.class_names)
    with written(writer):
        seen = _through(getattr(opened, operation), records, writer, batch_size, progress,
                        f"{operation.rstrip('e')}ing")
    return _applied(writer, seen, _skipped(records, writer.ids, seen), out, records.name, what)


def _applied(writer, images, skipped, out, name, what):
    if out is not None:
        return Applied(images, skipped, str(out), name, tuple(writer.shape))
    arrays = writer.arrays()
    return Applied(images, skipped, None, name, tuple(writer.shape), arrays["ids"],
                   arrays["splits"], arrays["labels"], arrays[what])


def _checked_image_output(out, option="out", npz=True):
    """``out`` (given as ``option``) as a path, if it names an ``.npz`` file (where ``npz``)
    or a new or empty folder for images."""
    out = as_path(out, option)
    suffix = out.suffix.lower()
    if suffix in NOT_FOLDERS or (suffix == ".npz" and not npz) \
            or (suffix != ".npz" and out.is_file()):
        kinds = "a folder (for PNG files) or an .npz file" if npz else "a folder for PNG files"
        raise TfaeError(f"{{{option}}} must be {kinds}, got {out}", options=[option])
    if suffix != ".npz" and out.is_dir() and any(out.iterdir()):
        raise TfaeError(f"{out} already holds files; give {{{option}}} a new or empty folder",
                        options=[option])
    return out


def _check_output(out, batch_size):
    if out is not None and not out.parent.is_dir():
        raise TfaeError(f"{{out}}: folder {out.parent} does not exist", options=["out"])
    check_positive_whole(batch_size, "batch_size")


def _opened(path, outs, dataset, split, limit, settings, progress):
    """``(opened, records)``: the model at ``path`` and the images to apply it to, shaped to
    the size and channels it takes, split as its run split them; no output (``outs``, paths by
    their option's name) may be those images or inside their folder."""
    with progress.stage(f"opening {path}"):
        opened = open_model(path)
    height, width, channels = opened.image_shape
    own = own_data_settings(path, opened, dataset)
    wanted = SPLIT_SETTINGS + (OWN_DATA_SETTINGS if dataset is None else ())
    chosen = {name: own[name] for name in wanted if own.get(name) is not None}
    chosen.update({name: value for name, value in settings.items() if value is not None})
    if dataset is not None:
        chosen["dataset"] = os.fspath(dataset)  # a pathlib.Path too
    for option, out in outs.items():
        _check_not_input(out, chosen.get("dataset"), option)
    with progress.stage("reading the data"):
        records = load_records(split=split, limit=limit, image_size=(height, width),
                               channels=channels, **chosen)
    return opened, records


def _check_room(out, size, what):
    """Refuses, before the work starts, ``what`` of ``size`` bytes (as float32) that the disk
    holding ``out`` (or, for arrays returned, this machine's memory) has no room for."""
    if out is None:
        room, where = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "memory"
    else:
        room, where = shutil.disk_usage(out.parent).free, f"free space in {out.parent}"
    if size > room:
        raise TfaeError(f"{what} would take {size / 1e9:,.1f} GB, more than the {room / 1e9:,.1f}"
                        f" GB of {where}; ask for fewer")


def _check_not_input(out, dataset, option="out"):
    """Refuses an output (of ``option``) that is the ``dataset`` file itself (it would be
    replaced) or inside its folder (it would be read as images, a class of their own, by the
    next run)."""
    if out is None or dataset is None or not pathlib.Path(dataset).expanduser().exists():
        return  # a tfds name
    source, written_to = pathlib.Path(dataset).expanduser().resolve(), out.resolve()
    if written_to == source or source in written_to.parents:
        where = "is" if written_to == source else "is inside"
        raise TfaeError(f"{{{option}}} {out} {where} the images it is made from, {dataset}; "
                        "write it elsewhere", options=[option])


def _through(function, records, writer, batch_size, progress, doing):
    """Runs ``records``' images through ``function`` a batch at a time into ``writer``; returns
    how many there were."""
    split_of = dict(zip(records.ids, records.splits))
    batches = records.dataset.batch(batch_size).map(
        lambda ids, images, labels: (ids, unit_floats(images), labels),
        num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    seen = 0
    quiet = not logging.getLogger("tfae").isEnabledFor(logging.INFO)
    with progress.stage(f"{doing} {len(records):,} images", total=len(records),
                        unit="image") as tick:
        # libjpeg warns of harmless flaws from C, past Python; --quiet hides them.
        with native_stderr_hidden(quiet):
            for ids, images, labels in batches:
                outputs = function(images)
                ids = [image_id.decode() for image_id in ids.numpy()]
                writer.add(ids, [split_of[image_id] for image_id in ids], labels.numpy(),
                           outputs if isinstance(outputs, dict) else np.asarray(outputs))
                seen += len(ids)
                tick(len(ids))
        if not seen:
            raise TfaeError(f"none of the {len(records):,} images of {records.name} decode")
    return seen


def _skipped(records, ids, seen):
    return tuple(sorted(set(records.ids) - set(ids))) if seen < len(records) else ()
