"""Codes, reconstructions and anomaly scores of every image of a data set: ``tfae encode``,
``tfae reconstruct`` and ``tfae score``; and new images drawn from a model's prior, ``tfae
sample``.

A run folder or an export is applied to the images of a folder, an ``.npz`` file or a tfds data
set (``tfae.data.load_records``), read, shaped to the size and channels the model takes (with the
run's ``resize``, or ``stretch`` for an export) and run through it in batches, so that memory holds
a batch and not the data set. Each image keeps its id (a file's path in its folder, ``test/0042``
in a tfds data set) and label, written beside its code or reconstruction:

- codes to ``.npz`` (``codes``, ``ids``, ``labels``, ``class_names``), ``.csv`` or ``.parquet``
  (columns ``id``, then ``label`` and ``class`` for labelled data, then ``code_0``, ...);
- reconstructions to a folder of PNG files named as the originals (``cat/1.jpg`` ->
  ``cat/1.png``), or to ``.npz`` (``reconstructions`` as float32 in [0, 1], ``ids``, ...).
- samples (``sample``, a variational autoencoder's run or export) as reconstructions are, named
  ``sample-0000.png`` and on;
- anomaly scores (``tfae.anomaly``, a run folder only) to ``.csv`` or ``.parquet`` (``id``,
  ``label``, ``class``, ``score``, ``flagged``, ``reconstruction_error``, ``code_distance``),
  with a summary: how many are flagged and the highest scores.

Every output is written under a temporary name and renamed when whole, so a failed or killed run
never leaves half of one, nor replaces what was there; a folder is only written where there is
none yet (or an empty one). A file that does not decode is left out and named in ``skipped``.

Examples:
    >>> from tfae.apply import encode, reconstruct
    >>> encode("runs/deep", "codes.parquet", dataset="photos/")  # doctest: +SKIP
    Applied(images=20000, skipped=(), written_to='codes.parquet', ...)
    >>> reconstruct("saved_models/deep", "out/", dataset="mnist", split="test", limit=100)  # doctest: +SKIP
"""

import collections
import contextlib
import dataclasses
import logging
import os
import pathlib
import shutil
import zipfile

import numpy as np
import tensorflow as tf

from tfae.anomaly import calibrate, check_contamination, check_score, elbo_score, image_scores
from tfae.data import load_records
from tfae.data.pipeline import unit_floats
from tfae.errors import TfaeError
from tfae.evaluation import open_endpoints, own_data_settings
from tfae.files import process_exists
from tfae.models.variational import prior_codes
from tfae.progress import Progress
from tfae.runs import RunFolder
from tfae.startup import native_stderr_hidden

CODE_FORMATS = (".npz", ".csv", ".parquet")
SCORE_FORMATS = (".csv", ".parquet")
SHOWN_ANOMALIES = 10  # the highest scores a summary names
# What reconstruct's --out is not: a name ending so is a mistake, not a folder to make.
NOT_FOLDERS = (".png", ".jpg", ".jpeg", ".csv", ".parquet", ".npy", ".json")
BATCH_SIZE = 256
PARTIAL = ".partial"  # the mark of an output being written: .<name>.<pid>.partial[.raw]


@dataclasses.dataclass
class Applied:
    """What ``encode`` or ``reconstruct`` did.

    Attributes:
        images: how many images were written.
        skipped: the ids of files that did not decode, left out.
        written_to: the file or folder written.
        dataset: the data set's name.
        shape: the shape of one code or reconstruction.

    Examples:
        >>> applied = encode("runs/photos", "codes.npz")  # doctest: +SKIP
        >>> applied.images, applied.skipped, applied.shape  # doctest: +SKIP
        (411, ('cat/truncated.jpg',), (256,))
    """

    images: int
    skipped: tuple
    written_to: str
    dataset: str
    shape: tuple


def encode(path, out, dataset=None, split="all", limit=None, batch_size=BATCH_SIZE,
           verbose=True, **settings):
    """Writes the codes of the images of ``dataset`` under the model at ``path`` to ``out``.

    Args:
        path: a run folder, or a SavedModel export (a version folder or its parent).
        out: an ``.npz``, ``.csv`` or ``.parquet`` file.
        dataset: a tfds name, image folder or ``.npz`` file; default the run's own data, or
            ``mnist`` for an export.
        split: ``all`` images, or those of the ``train`` or ``test`` split only.
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
    out = pathlib.Path(out)
    if out.suffix.lower() not in CODE_FORMATS:
        raise TfaeError(f"{{out}} must end in {', '.join(CODE_FORMATS)}, got {out}",
                        options=["out"])
    return _apply(path, out, "codes", "encode", dataset, split, limit, batch_size, verbose,
                  settings)


def reconstruct(path, out, dataset=None, split="all", limit=None, batch_size=BATCH_SIZE,
                verbose=True, **settings):
    """Writes the reconstructions of the images of ``dataset`` by the model at ``path`` to
    ``out``: a folder of PNG files (which must not exist yet, or be empty) or an ``.npz`` file.
    The other arguments are ``encode``'s.

    Examples:
        >>> reconstruct("runs/photos", "photos-out/").images  # doctest: +SKIP
        412
    """
    out = _checked_image_output(out)
    return _apply(path, out, "reconstructions", "reconstruct", dataset, split, limit, batch_size,
                  verbose, settings)


def sample(path, out, count=64, seed=0, batch_size=BATCH_SIZE, verbose=True):
    """Writes ``count`` images decoded from codes drawn from the prior of the variational
    autoencoder at ``path`` (a run folder or an export with a ``sample`` signature), seeded, to
    ``out``: a new (or empty) folder of PNG files or an ``.npz`` file (``samples``).

    Raises:
        TfaeError: for a model with no prior (any family but ``vae``), a ``count`` below 1 or an
            ``out`` of another kind.

    Examples:
        >>> sample("runs/vae", "samples/", count=16).shape  # doctest: +SKIP
        (28, 28, 1)
    """
    out = _checked_image_output(out)
    if count < 1:
        raise TfaeError(f"{{count}} must be at least 1, got {count}", options=["count"])
    _check_output(out, batch_size)
    progress = Progress(enabled=bool(verbose))
    with progress.stage(f"opening {path}"):
        endpoints = open_endpoints(path)
    if endpoints.sample is None:
        raise TfaeError(f"{path} has no prior to sample from: only a variational autoencoder "
                        "(--model vae) has one")
    ids = [f"sample-{index:04d}" for index in range(count)]
    writer = _writer(out, "samples", ids, ())
    with _written(writer), progress.stage(f"sampling {count:,} images", total=count,
                                          unit="image") as tick:
        # Every code drawn at once, then decoded a batch at a time: the same images for any batch.
        codes = prior_codes(count, endpoints.latent_dim, seed)
        for start in range(0, count, batch_size):
            batch = ids[start:start + batch_size]
            writer.add(batch, np.full(len(batch), -1),
                       np.asarray(endpoints.sample(codes[start:start + batch_size])))
            tick(len(batch))
    return Applied(count, (), str(out), "prior", tuple(writer.shape))


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


def score(path, out=None, dataset=None, split="all", limit=None, score=None,
          contamination=None, batch_size=BATCH_SIZE, verbose=True, **settings):
    """Scores how unlike the run's training images each image of ``dataset`` is
    (``tfae.anomaly``), and flags those above the threshold.

    Args:
        path: a run folder (calibrated on its first use, ``tfae.anomaly.calibrate``), or an
            export with a ``score`` signature (``tfae.exports``), which scores as it was made to.
        out: a ``.csv`` or ``.parquet`` file of one row per image: ``id``, ``label`` and
            ``class`` for labelled data, ``score``, ``flagged``, ``reconstruction_error`` and
            (a run's) ``code_distance`` and (a variational one's) ``negative_elbo``; ``None``
            for the summary only.
        score: ``reconstruction`` (a run's default), ``codes``, ``combined`` or (a variational
            autoencoder's) ``elbo``.
        contamination: the share of normal (validation) images the threshold flags, in
            (0, 0.5); a run's default 0.05.
        dataset, split, limit, batch_size, verbose, settings: as ``encode`` takes them.

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
    out = None if out is None else pathlib.Path(out)
    if out is not None and out.suffix.lower() not in SCORE_FORMATS:
        raise TfaeError(f"{{out}} must end in {', '.join(SCORE_FORMATS)}, got {out}",
                        options=["out"])
    _check_output(out, batch_size)
    progress = Progress(enabled=bool(verbose))
    endpoints, records = _opened(path, dataset, split, limit, settings, progress)
    if endpoints.score is not None:
        scores, threshold, score, contamination = _export_scores(path, endpoints, score,
                                                                 contamination)
    elif RunFolder.holds_run(path):
        scores, threshold, score, contamination = _run_scores(
            path, endpoints, score or "reconstruction",
            0.05 if contamination is None else contamination, progress)
    else:
        raise TfaeError(f"export {path} has no score signature: it was made before tfae scored "
                        "anomalies; export its run again (tfae export RUN_DIR), or score the "
                        "run folder")
    writer = _ScoreCollector(None if out is None else _TableWriter(out, records.class_names))
    with _written(writer):
        seen = _through(scores, records, writer, batch_size, progress, "scoring")
    values = np.concatenate(writer.scores)
    highest = np.argsort(-values, kind="stable")[:SHOWN_ANOMALIES]
    return Scored(seen, int((values > threshold).sum()), threshold, score, contamination,
                  tuple((writer.ids[index], float(values[index])) for index in highest),
                  _skipped(records, writer, seen), None if out is None else str(out),
                  records.name)


def _run_scores(path, endpoints, score, contamination, progress):
    """``(scores function, threshold, score, contamination)`` of a run folder, calibrated."""
    calibration = calibrate(path, progress)
    threshold = calibration.threshold(score, contamination)
    negative_elbo = elbo_score(endpoints.variational)

    def scores(images):
        parts = image_scores(endpoints.encode, endpoints.reconstruct, images,
                             calibration.reference_codes, negative_elbo)
        values = calibration.combined(parts, score)
        row = {"score": values, "flagged": values > threshold,
               "reconstruction_error": parts["reconstruction"], "code_distance": parts["codes"]}
        if "elbo" in parts:
            row["negative_elbo"] = parts["elbo"]
        return row

    return scores, threshold, score, contamination


def _export_scores(path, endpoints, score, contamination):
    """``(scores function, threshold, score, contamination)`` of an export's ``score``
    signature, which scores as the export was made to: other settings need its run."""
    anomaly = endpoints.anomaly
    asked = {"score": score, "contamination": contamination}
    for name, value in asked.items():
        if value is not None and value != anomaly[name]:
            raise TfaeError("{%s} %s: export %s scores %s at contamination %g; score its run "
                            "folder for other settings, or export it with them" % (
                                name, value, path, anomaly["score"], anomaly["contamination"]),
                            options=[name])

    def scores(images):
        outputs = endpoints.score(images)
        return {"score": outputs["scores"].numpy(), "flagged": outputs["flagged"].numpy(),
                "reconstruction_error": tf.reduce_mean(
                    outputs["error_maps"], axis=(1, 2, 3)).numpy()}

    return scores, anomaly["threshold"], anomaly["score"], anomaly["contamination"]


def _apply(path, out, what, endpoint, dataset, split, limit, batch_size, verbose, settings):
    _check_output(out, batch_size)
    progress = Progress(enabled=bool(verbose))
    endpoints, records = _opened(path, dataset, split, limit, settings, progress)
    writer = _writer(out, what, records.ids, records.class_names)
    with _written(writer):
        seen = _through(getattr(endpoints, endpoint), records, writer, batch_size, progress,
                        f"{endpoint.rstrip('e')}ing")
    return Applied(seen, _skipped(records, writer, seen), str(out), records.name,
                   tuple(writer.shape))


def _checked_image_output(out):
    """``out`` as a path, if it names an ``.npz`` file or a new or empty folder for images."""
    out = pathlib.Path(out)
    if out.suffix.lower() in NOT_FOLDERS:
        raise TfaeError(f"{{out}} must be a folder (for PNG files) or an .npz file, got {out}",
                        options=["out"])
    if out.suffix.lower() != ".npz" and out.is_dir() and any(out.iterdir()):
        raise TfaeError(f"{out} already holds files; give {{out}} a new or empty folder",
                        options=["out"])
    return out


def _check_output(out, batch_size):
    if out is not None and not out.parent.is_dir():
        raise TfaeError(f"{{out}}: folder {out.parent} does not exist", options=["out"])
    if batch_size < 1:
        raise TfaeError(f"{{batch_size}} must be positive, got {batch_size}",
                        options=["batch_size"])


def _opened(path, dataset, split, limit, settings, progress):
    """``(endpoints, records)``: the model at ``path`` and the images to apply it to, shaped to
    the size and channels it takes."""
    with progress.stage(f"opening {path}"):
        endpoints = open_endpoints(path)
    height, width, channels = endpoints.image_shape
    own = own_data_settings(path, endpoints, dataset)
    chosen = {name: own[name] for name in ("dataset", "data_dir", "manual_dir", "resize")
              if own.get(name) is not None}
    chosen.update({name: value for name, value in settings.items() if value is not None})
    if dataset is not None:
        chosen["dataset"] = os.fspath(dataset)  # a pathlib.Path too
    with progress.stage("reading the data"):
        records = load_records(split=split, limit=limit, image_size=(height, width),
                               channels=channels, **chosen)
    return endpoints, records


def _through(function, records, writer, batch_size, progress, doing):
    """Runs ``records``' images through ``function`` a batch at a time into ``writer``; returns
    how many there were."""
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
                writer.add([image_id.decode() for image_id in ids.numpy()], labels.numpy(),
                           outputs if isinstance(outputs, dict) else np.asarray(outputs))
                seen += len(ids)
                tick(len(ids))
        if not seen:
            raise TfaeError(f"none of the {len(records):,} images of {records.name} decode")
    return seen


def _skipped(records, writer, seen):
    return tuple(sorted(set(records.ids) - set(writer.ids))) if seen < len(records) else ()


class _ScoreCollector:
    """Keeps every image's id and score for the summary, and writes the rows to ``table``,
    if any."""

    def __init__(self, table):
        self.table, self.path = table, None if table is None else table.path
        self.ids, self.scores = [], []

    def add(self, ids, labels, outputs):
        if self.table is not None:
            self.table.add(ids, labels, outputs)
        self.ids += ids
        self.scores.append(outputs["score"])

    def commit(self):
        if self.table is not None:
            self.table.commit()

    def discard(self):
        if self.table is not None:
            self.table.discard()


def _writer(out, what, ids, class_names):
    if out.suffix.lower() == ".npz":
        return _NpzWriter(out, what, class_names)
    if out.suffix.lower() in (".csv", ".parquet"):
        return _TableWriter(out, class_names)
    return _PngFolderWriter(out, ids)


@contextlib.contextmanager
def _written(writer):
    """Commits ``writer``'s temporary output when the block ends well, else removes it; a full
    disk or a read-only folder is one error naming the output."""
    if writer.path is not None:
        _remove_stale(writer.path)
    try:
        yield
        writer.commit()
    except BaseException as error:
        writer.discard()
        if isinstance(error, OSError):
            raise TfaeError(f"cannot write {writer.path}: {error.strerror or error}") from None
        raise


def _partial(path):
    return path.with_name(f".{path.name}.{os.getpid()}{PARTIAL}")


def _remove_stale(path):
    """Removes temporary outputs for ``path`` of processes that are gone (killed while writing)."""
    for left in path.parent.glob(f".{path.name}.*{PARTIAL}*"):
        pid = left.name[len(path.name) + 2:].split(".")[0]
        if pid.isdigit() and not process_exists(int(pid)):
            if left.is_dir():
                shutil.rmtree(left, ignore_errors=True)
            else:
                left.unlink(missing_ok=True)


class _NpzWriter:
    """An ``.npz`` file of ``name`` (the outputs), ``ids``, ``labels`` and ``class_names``; the
    outputs go to a raw file as they come and into the archive at the end, so that memory holds
    none of them."""

    def __init__(self, path, name, class_names):
        self.path, self.name, self.class_names = path, name, class_names
        self.temporary = _partial(path)
        self.raw = self.temporary.with_suffix(PARTIAL + ".raw")
        self.ids, self.labels, self.shape = [], [], None
        self.file = None

    def add(self, ids, labels, outputs):
        if self.file is None:
            self.file, self.shape = self.raw.open("wb"), outputs.shape[1:]
        self.file.write(np.ascontiguousarray(outputs, np.float32).tobytes())
        self.ids += ids
        self.labels.append(labels)

    def commit(self):
        self.file.close()
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                  "fortran_order": False, "shape": (len(self.ids), *self.shape)}
        with zipfile.ZipFile(self.temporary, "w", allowZip64=True) as archive:
            with archive.open(f"{self.name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array_header_2_0(member, header)
                with self.raw.open("rb") as raw:
                    shutil.copyfileobj(raw, member, 1 << 24)
            for name, array in (("ids", np.array(self.ids, str)),
                                ("labels", np.concatenate(self.labels)),
                                ("class_names", np.array(self.class_names, str))):
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)
        self.raw.unlink()
        os.replace(self.temporary, self.path)

    def discard(self):
        if self.file is not None:
            self.file.close()
        for path in (self.raw, self.temporary):
            path.unlink(missing_ok=True)


class _TableWriter:
    """A ``.csv`` or ``.parquet`` table, written a batch at a time by pyarrow (tfds' own
    dependency) in C++: a CSV of 70,000 codes of 256 numbers formats in seconds, not minutes."""

    def __init__(self, path, class_names):
        self.path, self.class_names = path, class_names
        self.temporary = _partial(path)
        self.ids, self.shape, self.file = [], None, None

    def add(self, ids, labels, outputs):
        import pyarrow as pa

        columns = {"id": pa.array(ids, pa.string())}
        if self.class_names:
            names = np.array(self.class_names, object)
            columns["label"] = pa.array(labels, pa.int64())
            columns["class"] = pa.array(np.where(labels >= 0, names[np.maximum(labels, 0)], None),
                                        pa.string())
        if isinstance(outputs, dict):  # named columns, such as scores
            columns.update({name: pa.array(values) for name, values in outputs.items()})
            shape = (len(outputs),)
        else:
            outputs = np.asarray(outputs, np.float32)
            columns.update({f"code_{index}": pa.array(outputs[:, index])
                            for index in range(outputs.shape[1])})
            shape = outputs.shape[1:]
        table = pa.table(columns)
        if self.file is None:
            self.file, self.shape = self._open(table.schema), shape
        self.file.write_table(table)
        self.ids += ids

    def _open(self, schema):
        if self.path.suffix.lower() == ".csv":
            import pyarrow.csv

            return pyarrow.csv.CSVWriter(str(self.temporary), schema)
        import pyarrow.parquet

        return pyarrow.parquet.ParquetWriter(str(self.temporary), schema)

    def commit(self):
        self.file.close()
        os.replace(self.temporary, self.path)

    def discard(self):
        if self.file is not None:
            with contextlib.suppress(Exception):
                self.file.close()
        self.temporary.unlink(missing_ok=True)


class _PngFolderWriter:
    """A folder of 8-bit PNG files, one per image, named as the image's id with the suffix
    ``.png`` (``cat/1.jpg`` -> ``cat/1.png``; ``test/0042`` -> ``test/0042.png``); ids that
    would share a name (``1.jpg`` and ``1.png``) keep their whole id (``1.jpg.png``, ``1.png.png``)."""

    def __init__(self, path, ids):
        self.path = path
        self.temporary = _partial(path)
        names = [str(pathlib.PurePosixPath(image_id).with_suffix(".png")) for image_id in ids]
        shared = {name for name, count in collections.Counter(names).items() if count > 1}
        self.names = {image_id: image_id + ".png" if name in shared else name
                      for image_id, name in zip(ids, names)}
        self.ids, self.shape = [], None

    def add(self, ids, labels, outputs):
        if self.shape is None:
            self.temporary.mkdir()
            self.shape = outputs.shape[1:]
        pixels = tf.cast(tf.round(tf.clip_by_value(outputs, 0.0, 1.0) * 255.0), tf.uint8)
        for image_id, image in zip(ids, pixels):
            file = self.temporary / self.names[image_id]
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(tf.io.encode_png(image).numpy())
        self.ids += ids

    def commit(self):
        if self.path.is_dir():
            self.path.rmdir()  # empty, as reconstruct() checked
        os.replace(self.temporary, self.path)

    def discard(self):
        shutil.rmtree(self.temporary, ignore_errors=True)
