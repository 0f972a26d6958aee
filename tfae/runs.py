"""Run, search and export folders: the one place that knows their files.

A run folder (``RunFolder``) holds everything needed to trace a result back to its command:

- ``config.json``: the run's ``FitConfig`` (``tfae fit --config`` reads it back);
- ``history.csv`` / ``history.json``: the metrics of every epoch (or layer), with its duration;
- ``checkpoint/``: Keras' ``BackupAndRestore`` state while training is unfinished;
- ``logs/``: TensorBoard logs;
- ``model.keras``: the trained model (``keras.models.load_model(..., safe_mode=True)``);
- ``run.json``: the data source, finished epochs, the export, versions of tfae / TensorFlow /
  Keras;
- ``metrics.json`` and ``figures/``: what ``tfae evaluate`` and ``tfae plot`` wrote.

A search folder (``SearchFolder``) holds a ``tfae tune`` search, and an export folder
(``ExportFolder``) the SavedModel versions of a model in TF Serving's layout. Every JSON file is
written to a temporary file beside it and renamed, so a crash never leaves half a file.

This module imports neither TensorFlow nor tfds until a model is loaded, so that a server worker,
which reads export folders, brings in nothing of training.

Examples:
    >>> import tempfile
    >>> folder = RunFolder(tempfile.mkdtemp())
    >>> folder.write_info({"epochs_finished": 3})
    >>> folder.info()["epochs_finished"], folder.finished_epochs()
    (3, 0)
"""

import contextlib
import csv
import fcntl
import json
import os
import pathlib
import shutil
import zipfile

from tfae import __version__
from tfae.errors import TfaeError, first_line
from tfae.files import process_exists, read_json, write_json

CALIBRATION_FILE = "anomaly.npz"  # a run's anomaly calibration (tfae.anomaly)


def load_model(path, training=True):
    """Loads a model saved by tfae (``model.keras``) with Keras' ``safe_mode``; for
    ``training=False`` without its optimizer's state (twice the weights again, with Adam), which
    only training on goes on from.

    Raises:
        TfaeError: for a missing or corrupt file, or one holding code ``safe_mode`` will not run.

    Examples:
        >>> model = load_model("runs/deep/model.keras")  # doctest: +SKIP
    """
    import keras

    path = pathlib.Path(path)
    if not path.is_file():
        raise TfaeError(f"{path} does not exist")
    if not zipfile.is_zipfile(path):  # Keras would call it "File not found"
        raise TfaeError(f"{path} is corrupt or not a Keras model (a .keras file is a zip archive; "
                        "this one is not)")
    try:
        return keras.models.load_model(path, safe_mode=True, compile=training)
    except ValueError as error:
        if "safe_mode" in str(error) or "unsafe" in str(error).lower():
            raise TfaeError(f"{path} holds Python code (a Lambda layer or similar) that safe_mode "
                            "will not run; tfae only loads models without it") from None
        raise TfaeError(f"{path} is corrupt or not a Keras model: {_first_line(error)}") from None
    except (OSError, KeyError, TypeError, EOFError) as error:
        raise TfaeError(f"{path} is corrupt or not a Keras model: {_first_line(error)}") from None


def _first_line(error, limit=200):
    line = first_line(error)
    return line if len(line) <= limit else line[:limit] + "..."


def check_settings(folder, settings_path, settings, kind, ignore=(), defaults=None):
    """Refuses ``folder`` when the settings saved at ``settings_path`` differ from ``settings``.

    Names in ``ignore`` may differ: a run given more epochs extends itself. A setting the saved
    file lacks (it predates the setting) counts as its value in ``defaults``.

    Raises:
        TfaeError: naming the settings that differ.

    Examples:
        >>> check_settings(pathlib.Path("runs/deep"), pathlib.Path("runs/deep/config.json"),
        ...                {"model": "deep"}, "run")  # doctest: +SKIP
    """
    saved = {**json.loads(json.dumps(defaults or {})), **read_json(settings_path)}
    wanted = json.loads(json.dumps(settings))  # tuples become lists, as saved
    changed = [name for name in wanted if name not in ignore and saved.get(name) != wanted[name]]
    if changed:
        raise TfaeError(f"--out {folder} holds a {kind} with other settings "
                        f"({', '.join(changed)}); choose another --out")


LOCK_NAME = ".lock"  # held by the process writing a folder (``RunFolder.in_use``)


def check_reusable(folder, settings_path, settings, kind, ignore=(), defaults=None):
    """Refuses ``folder`` unless it is new, empty, or holds a ``kind`` of the same settings; reads
    only, so a refused folder is left exactly as it was.

    Raises:
        TfaeError: for a folder holding something else.

    Examples:
        >>> check_reusable(pathlib.Path("runs/none-such"), pathlib.Path("runs/none-such/x.json"),
        ...                {"model": "deep"}, "run")
    """
    if settings_path.exists():
        check_settings(folder, settings_path, settings, kind, ignore, defaults)
    elif folder.is_dir() and any(path.name != LOCK_NAME for path in folder.iterdir()):
        raise TfaeError(f"--out {folder} is not empty and holds no tfae {kind}; choose another --out")


def _record_settings(folder, settings_path, settings):
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_json(settings_path, settings)
    except OSError as error:
        raise TfaeError(f"cannot write to --out {folder}: {error.strerror}") from None


class _Folder:
    """A folder whose files are named in ``FILES`` (attribute -> file name): ``folder.<attribute>``
    is the file's path."""

    FILES = {}

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.lock_path = self.path / LOCK_NAME
        for attribute, name in self.FILES.items():
            setattr(self, attribute, self.path / name)

    def __repr__(self):
        return f"{type(self).__name__}({str(self.path)!r})"

    @contextlib.contextmanager
    def in_use(self):
        """Holds this folder for this process: another process asking for it is refused at once.

        The lock is the kernel's (``flock``), released when the process ends however it ends, so a
        run killed with -9 leaves nothing stale behind.

        Raises:
            TfaeError: naming the process that holds the folder, or a folder that cannot be made.

        Examples:
            >>> with RunFolder("runs/deep").in_use():  # doctest: +SKIP
            ...     pass
        """
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            lock = open(self.lock_path, "a+")
        except OSError as error:
            raise TfaeError(f"cannot write to --out {self.path}: {error.strerror}") from None
        with lock:
            holder = _holder(lock, fcntl.LOCK_EX)
            if holder:
                raise TfaeError(f"--out {self.path} is in use by another tfae process (pid "
                                f"{holder}); wait for it to end or choose another --out")
            lock.seek(0)
            lock.truncate()
            lock.write(f"{os.getpid()}\n")
            lock.flush()
            yield

    def check_not_training(self):
        """Refuses a folder another process holds (``in_use``): a run being trained or resumed,
        whose model is about to change.

        Examples:
            >>> RunFolder("runs/none-such").check_not_training()
        """
        try:
            lock = open(self.lock_path)
        except OSError:  # no lock file: no process has ever held the folder
            return
        with lock:
            holder = _holder(lock, fcntl.LOCK_SH)
        if holder:
            raise TfaeError(f"{self.path} is being trained by another tfae process (pid "
                            f"{holder}); export it once that has finished")


def _holder(lock, kind):
    """``None`` once this process holds ``lock`` (an open lock file) with ``flock`` ``kind``;
    else the pid the holding process wrote in it (``unknown`` if none yet)."""
    try:
        fcntl.flock(lock, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        return lock.read().strip() or "unknown"
    return None


class RunFolder(_Folder):
    """A run folder of ``tfae.fit``: where each of its files is, and reading and writing them.

    Args:
        path: the folder.

    Examples:
        >>> folder = RunFolder("runs/deep")
        >>> folder.model_path
        PosixPath('runs/deep/model.keras')
    """

    FILES = {"config_path": "config.json", "history_csv": "history.csv",
             "history_path": "history.json", "checkpoint_dir": "checkpoint", "logs_dir": "logs",
             "model_path": "model.keras", "info_path": "run.json", "metrics_path": "metrics.json",
             "figures_dir": "figures", "calibration_path": CALIBRATION_FILE}

    @classmethod
    def holds_run(cls, path):
        """Whether ``path`` holds a trained run (its ``model.keras``)."""
        return cls(path).model_path.is_file()

    def config(self):
        """The saved ``config.json`` as a dict."""
        return read_json(self.config_path)

    def info(self):
        """The saved ``run.json`` as a dict, empty before the run wrote one.

        Raises:
            TfaeError: for a ``run.json`` that is not a run's record (edited or damaged).
        """
        if not self.info_path.exists():
            return {}
        info = read_json(self.info_path)
        if not isinstance(info, dict) or not all(
                isinstance(info.get(key, {}), dict) for key in ("config", "data")):
            raise TfaeError(f"{self.info_path} is not a run's record: a JSON object whose "
                            "'config' and 'data' are objects")
        return info

    def history(self):
        """The saved ``history.json``: ``{metric: [per epoch or layer]}``."""
        if not self.history_path.is_file():
            raise TfaeError(f"{self.path} has no {self.history_path.name}: history needs a run folder")
        return read_json(self.history_path)

    def metrics(self):
        """The saved ``metrics.json`` of ``tfae evaluate``."""
        return read_json(self.metrics_path)

    def check_claimable(self, config, source=None):
        """Refuses this folder if it cannot hold the run of ``config`` on the data of ``source``
        (a run of other settings, epochs aside, one begun on data that has changed since, or
        something else); reads only.

        Raises:
            TfaeError: naming the model, the settings or the data that differ.

        Examples:
            >>> from tfae.config import FitConfig
            >>> RunFolder("runs/none-such").check_claimable(FitConfig())
        """
        from tfae.config import FitConfig

        if self.config_path.exists():
            saved_model = self.config().get("model")
            if saved_model != config.model:
                raise TfaeError(f"--out {self.path} holds a run of model {saved_model!r}, not "
                                f"{config.model!r}; choose another --out")
        # How a folder's images are held changes how they are read, not which they are.
        check_reusable(self.path, self.config_path, config.to_dict(), "run",
                       ignore=("epochs", *FitConfig.named("holding")),
                       defaults=FitConfig().to_dict())
        saved = self.info().get("data", {}).get("fingerprint")
        if source and saved and source.get("fingerprint") != saved:
            raise TfaeError(f"--out {self.path} was trained on other data: {config.dataset} has "
                            f"changed since (fingerprint {saved}, now {source['fingerprint']}); "
                            "choose another --out")

    def claim(self, config, source=None):
        """Checks this folder can hold the run of ``config`` on the data of ``source`` and
        records both.

        Returns:
            The epochs a finished run here already has (0 for a new or unfinished run).

        Raises:
            TfaeError: for a folder holding another run, or one begun on other data.
        """
        self.check_claimable(config, source)
        _record_settings(self.path, self.config_path, config.to_dict())
        if source:
            self.write_info({"data": source})
        return self.finished_epochs()

    def finished_epochs(self):
        """Epochs of a run that completed ``fit`` (and saved its model); 0 for an unfinished one.

        Examples:
            >>> RunFolder("runs/none-such").finished_epochs()
            0
        """
        if not self.model_path.exists() or not self.info_path.exists():
            return 0
        return self.info().get("epochs_finished", 0)

    def csv_history(self):
        """Reads Keras' ``CSVLogger`` rows into ``{metric: [per epoch]}``, the last row of a
        repeated epoch winning (a run killed between its row and its backup repeats the epoch)."""
        with open(self.history_csv, newline="") as file:
            rows = {int(row.pop("epoch")): row for row in csv.DictReader(file)}
        metrics = list(next(iter(rows.values()))) if rows else []
        return {metric: [float(rows[epoch][metric]) for epoch in sorted(rows)]
                for metric in metrics}

    def save(self, model, history):
        """Saves the trained ``model`` and its ``history``, each atomically."""
        write_json(self.history_path, history)
        temporary = self.model_path.with_name(f".tmp-{self.model_path.name}")  # Keras wants .keras
        model.save(temporary)
        os.replace(temporary, self.model_path)

    def remove_checkpoint(self):
        """Removes the training backup, once the model it led to is saved and recorded."""
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)

    def load_model(self, training=True):
        """The trained model (``load_model``; ``training=False``: for inference only).

        Raises:
            TfaeError: for a folder without a finished run, or a corrupt model file.
        """
        self.check_finished()
        return load_model(self.model_path, training)

    def check_finished(self):
        """Refuses a folder without a finished run's model.

        Examples:
            >>> RunFolder("runs/none-such").check_finished()
            Traceback (most recent call last):
            ...
            tfae.errors.TfaeError: runs/none-such holds no finished run (no model.keras)
        """
        if not self.model_path.is_file():
            raise TfaeError(f"{self.path} holds no finished run (no {self.model_path.name})")

    def write_info(self, fields):
        """Updates ``run.json`` with ``fields`` and the versions of tfae, TensorFlow and Keras."""
        import keras
        import tensorflow as tf

        info = self.info()
        info.update(fields)
        info["versions"] = {"tfae": __version__, "tensorflow": tf.__version__,
                            "keras": keras.__version__}
        write_json(self.info_path, info)

    def copy_for_worker(self, work_dir):
        """Copies this run into ``work_dir`` for a non-chief worker, which must resume from the
        same checkpoint but write nowhere the chief does."""
        if self.path.is_dir():
            shutil.copytree(self.path, work_dir, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(self.logs_dir.name, ".*"))


class SearchFolder(_Folder):
    """A search folder of ``tfae tune``: keras-tuner's trials and tfae's record of the search.

    - ``tune.json``: the search's ``TuneConfig``;
    - ``search/``: keras-tuner's trials (``project``);
    - ``best.json``: the best trials, best first;
    - ``config.json``: the winner's ``FitConfig``, which ``tfae fit --config`` retrains;
    - ``export.json``: which trial was exported where.

    Examples:
        >>> SearchFolder("tuning/deep").config_path
        PosixPath('tuning/deep/config.json')
    """

    FILES = {"settings_path": "tune.json", "best_path": "best.json", "config_path": "config.json",
             "export_path": "export.json"}
    project = "search"

    def check_claimable(self, config):
        """Refuses this folder if it holds something else than a search of ``config``; reads
        only. A setting its ``tune.json`` lacks (an earlier tfae's search) counts as its
        default."""
        check_reusable(self.path, self.settings_path, config.to_dict(), "search",
                       defaults=type(config)().to_dict())

    def claim(self, config):
        """Records ``config`` in a new folder, or checks it against the search already there."""
        self.check_claimable(config)
        _record_settings(self.path, self.settings_path, config.to_dict())

    def write_best(self, best):
        """Writes the best trials and the winner's config."""
        write_json(self.best_path, best)
        write_json(self.config_path, best[0]["config"])

    def exported(self, trial):
        """Where ``trial`` was exported, if it was and the export is still there; else ``None``."""
        if not self.export_path.exists():
            return None
        record = read_json(self.export_path)
        path = pathlib.Path(record["path"])
        return path if record["trial"] == trial and (path / "saved_model.pb").is_file() else None

    def record_export(self, trial, path):
        """Records that ``trial`` was exported to ``path``."""
        write_json(self.export_path, {"trial": trial, "path": str(path)})


class ExportFolder:
    """A model's SavedModel versions in TF Serving's layout, ``<folder>/<version>/``: which
    versions there are, the next one's number, and the marks of a version being written.

    A version folder holds ``saved_model.pb``, ``variables/``, ``INFO_FILE`` (the model's family
    and the resize its signatures do) and, for an export of a run with its anomaly calibration,
    ``ANOMALY_FILE`` (its score, contamination and threshold). A
    version is written into a staging folder ``.export-<pid>-...`` holding ``STAGING_MARK`` and
    renamed into place; only such marked folders of processes that are gone are ever removed.

    Args:
        path: the folder of versions, or one version folder (``version_dir`` is then itself).

    Examples:
        >>> folder = ExportFolder("/nonexistent/deep")
        >>> folder.versions(), folder.next_version()
        ([], 1)
    """

    GRAPH = "saved_model.pb"
    ANOMALY_FILE = "anomaly.json"
    INFO_FILE = "tfae.json"  # the model's family, the run's resize, tfae's version
    STAGING_PREFIX = ".export-"
    STAGING_MARK = ".tfae-staging"

    def __init__(self, path):
        self.path = pathlib.Path(path)

    def __repr__(self):
        return f"ExportFolder({str(self.path)!r})"

    @classmethod
    def holds_version(cls, path):
        """Whether ``path`` is one version folder (its ``saved_model.pb``)."""
        return (pathlib.Path(path) / cls.GRAPH).is_file()

    def versions(self):
        """The version numbers in this folder, ascending ([] for none), read anew each time.
        A version is a folder named by digits (at most 18: a 64-bit number) holding a graph."""
        if not self.path.is_dir():
            return []
        return sorted(int(child.name) for child in self.path.iterdir()
                      if child.name.isascii() and child.name.isdigit()
                      and len(child.name) <= 18 and self.holds_version(child))

    def next_version(self):
        """The next free integer version (1 for a new folder)."""
        return max(self.versions(), default=0) + 1

    def version_dir(self):
        """The version a client gets: this folder if it is one version, else its highest
        version, as TF Serving serves.

        Raises:
            TfaeError: for a folder holding no version.
        """
        if self.holds_version(self.path):
            return self.path
        found = self.versions()
        if not found:
            raise TfaeError(f"{self.path} is neither a run folder (model.keras) nor a SavedModel "
                            "export (nor a .tflite or .onnx file of tfae export --format)")
        return self.path / str(found[-1])

    def remove_stale_staging(self):
        """Removes the staging folders of exports killed before their rename: those marked as
        tfae's own (``STAGING_MARK`` inside) whose process, named in the folder's name, is gone.
        A running export's folder stays, and so does any folder of the user's."""
        for staging in self.path.glob(self.STAGING_PREFIX + "*"):
            pid = staging.name[len(self.STAGING_PREFIX):].split("-")[0]
            if (staging / self.STAGING_MARK).is_file() and pid.isdigit() \
                    and not process_exists(int(pid)):
                shutil.rmtree(staging, ignore_errors=True)
