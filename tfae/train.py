"""``fit``: train a family on an image data set into a run folder, resumably, and export it.

A run folder holds everything needed to trace a result back to its command:

- ``config.json``: the ``FitConfig`` (``tfae fit --config`` reads it back);
- ``history.csv`` / ``history.json``: the metrics of every epoch, with its duration;
- ``checkpoint/``: Keras' ``BackupAndRestore`` state while training is unfinished;
- ``logs/``: TensorBoard logs;
- ``model.keras``: the trained model (``keras.models.load_model(..., safe_mode=True)``);
- ``run.json``: the data source, the export, versions of tfae / TensorFlow / Keras.

Running ``fit`` again on the folder of an interrupted run continues from its last finished
epoch; on a finished run with more ``epochs`` it trains the extra epochs.

Examples:
    >>> from tfae.train import FitConfig, fit
    >>> run = fit(FitConfig(model="shallow", epochs=1, limit=512), "runs/quick",
    ...           export=False)  # doctest: +SKIP
    >>> sorted(run.history)  # doctest: +SKIP
    ['loss', 'seconds', 'val_loss']
"""

import csv
import dataclasses
import os
import pathlib
import shutil
import tempfile
import time

import keras

from tfae import data
from tfae.corruptions import parse_corruption
from tfae.distribute import is_chief, is_multi_worker, make_strategy
from tfae.errors import TfaeError
from tfae.export import export_saved_model
from tfae.models import build_model, get_family, load_model, resolve_options
from tfae.runs import check_settings, claim_folder, read_json, write_json, write_run_info

LOSSES = {"mse": "mse", "bce": "binary_crossentropy"}
DEFAULT_EPOCHS = 10  # for a family whose fit_defaults do not say otherwise


@dataclasses.dataclass
class FitConfig:
    """Everything that defines a training run; saved as the run's ``config.json``.

    Attributes:
        model: a registered family name (``tfae.models.family_names()``).
        model_options: the family's options (``latent_dim``, ``hidden``, ...); missing ones
            take the family's defaults.
        dataset: a tfds image data set name.
        data_dir: a folder of prepared tfds data, or ``None`` for tfds' default.
        epochs: epochs to train; ``None`` for the family's default (10 unless it says).
        batch_size, learning_rate: the usual; Adam is the optimizer.
        loss: ``mse`` or ``bce`` (binary cross-entropy).
        noise: a corruption spec (``gaussian:0.5``) that makes a denoising autoencoder.
        limit: train on the first ``limit`` images only.
        seed: seeds weights, shuffling and corruption.
        early_stopping: stop after this many epochs without a better ``val_loss``.

    Examples:
        >>> config = FitConfig(model="deep").resolved()
        >>> config.model_options["hidden"], config.epochs
        ((1000, 1000, 500), 20)
    """

    model: str = "deep"
    model_options: dict = dataclasses.field(default_factory=dict)
    dataset: str = "mnist"
    data_dir: str | None = None
    epochs: int | None = None
    batch_size: int = 256
    learning_rate: float = 1e-3
    loss: str = "mse"
    noise: str | None = None
    limit: int | None = None
    seed: int = 0
    early_stopping: int | None = None

    def resolved(self):
        """Checks every field and fills in the family's defaults; returns a new config."""
        family = get_family(self.model)
        for name in ("epochs", "batch_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise TfaeError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise TfaeError(f"--learning-rate must be positive, got {self.learning_rate}")
        if self.loss not in LOSSES:
            raise TfaeError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.limit is not None and self.limit < 1:
            raise TfaeError(f"--limit must be positive, got {self.limit}")
        if self.early_stopping is not None and self.early_stopping < 1:
            raise TfaeError(f"--early-stopping must be positive, got {self.early_stopping}")
        fields = {"epochs": DEFAULT_EPOCHS, **family.fit_defaults,
                  **{key: value for key, value in self.to_dict().items() if value is not None}}
        fields["model_options"] = resolve_options(self.model, self.model_options)
        if fields.get("noise") is not None and parse_corruption(fields["noise"]) is not None:
            if not family.takes_noise:
                raise TfaeError(f"--noise does not apply to model {self.model!r}")
        return dataclasses.replace(FitConfig(), **fields)

    def to_dict(self):
        """The config as JSON-ready values."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """The inverse of ``to_dict``; refuses unknown keys by name.

        Examples:
            >>> FitConfig.from_dict({"model": "shallow", "epochs": 2}).epochs
            2
        """
        unknown = sorted(set(values) - {field.name for field in dataclasses.fields(cls)})
        if unknown:
            raise TfaeError(f"unknown config keys: {', '.join(unknown)}")
        values = dict(values)
        options = dict(values.get("model_options", {}))
        for key, value in options.items():
            if isinstance(value, list):  # JSON has no tuples
                options[key] = tuple(value)
        values["model_options"] = options
        return cls(**values)

    @classmethod
    def from_json(cls, path):
        """Reads a ``config.json`` written by ``fit`` or ``tfae tune``."""
        values = read_json(path)
        if not isinstance(values, dict):
            raise TfaeError(f"config {path} is not a JSON object")
        return cls.from_dict(values)


@dataclasses.dataclass
class Run:
    """A finished run: its folder, the trained model, the history and where it was exported.

    Examples:
        >>> run = fit(FitConfig(model="shallow", epochs=1, limit=512), "runs/quick")  # doctest: +SKIP
        >>> run.model.encoder.output_shape, run.export_path  # doctest: +SKIP
        ((None, 128), PosixPath('saved_models/shallow/1'))
    """

    run_dir: pathlib.Path
    model: keras.Model
    history: dict
    export_path: pathlib.Path | None


def fit(config, run_dir, export=True, export_dir=None, verbose=1, strategy="default",
        jit_compile=None, steps_per_execution=None):
    """Trains ``config`` into ``run_dir``, resuming an interrupted run, and exports it.

    Args:
        config: a ``FitConfig``.
        run_dir: the run folder; a folder holding another model's run is refused.
        export: write a SavedModel when training ends.
        export_dir: where versions go; default ``saved_models/<model>``.
        verbose: Keras' progress output (0 silent, 1 progress bar, 2 a line per epoch).
        strategy: ``default``, ``mirrored`` or ``multi-worker`` (see ``tfae.distribute``).
            ``config.batch_size`` is per replica: the global batch is that times the replicas.
            Only the chief writes ``run_dir`` and the export; other workers train in a
            temporary copy of ``run_dir`` (so they resume from the same checkpoint, which
            therefore must be on storage every worker sees) and delete it.
        jit_compile, steps_per_execution: how the training step is compiled; ``None`` takes
            the family's choice (see ``execution_options``).

    Returns:
        A ``Run``.

    Examples:
        >>> run = fit(FitConfig(model="deep", epochs=2, limit=1000), "runs/deep")  # doctest: +SKIP
    """
    strategy = make_strategy(strategy)  # first: multi-worker must precede other TF work
    config = config.resolved()
    execution = execution_options(config.model, jit_compile, steps_per_execution,
                                  multi_worker=is_multi_worker(strategy))
    run_dir = pathlib.Path(run_dir)
    if not is_chief(strategy):
        with tempfile.TemporaryDirectory(prefix="tfae-worker-") as work_dir:
            if run_dir.is_dir():
                shutil.copytree(run_dir, work_dir, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("logs", ".*"))
            run = _fit(config, pathlib.Path(work_dir), False, None, verbose, strategy, execution)
        return dataclasses.replace(run, run_dir=run_dir)
    return _fit(config, run_dir, export, export_dir, verbose, strategy, execution)


def execution_options(model, jit_compile=None, steps_per_execution=None, multi_worker=False):
    """``Model.compile``'s ``jit_compile`` and ``steps_per_execution`` for family ``model``.

    A value given wins; ``None`` takes the family's ``execution`` (XLA and 16 batches per call
    for the dense families, which train faster so on CPU), else Keras' own choice: XLA only
    with a GPU, one batch per call. Neither changes what is trained, so neither is saved in the
    run's config (XLA may round floats differently). Under ``MultiWorkerMirroredStrategy``
    (``multi_worker``) TensorFlow 2.21 fails with either (XLA crashes the process, several
    batches per call leave a placeholder unfed), so there the family's choice is dropped.

    Raises:
        TfaeError: ``steps_per_execution`` below 1, or XLA or several batches per call asked
            for under ``multi_worker``.

    Examples:
        >>> execution_options("deep")
        {'jit_compile': True, 'steps_per_execution': 16}
        >>> execution_options("conv", steps_per_execution=4)
        {'jit_compile': 'auto', 'steps_per_execution': 4}
        >>> execution_options("deep", multi_worker=True)
        {'jit_compile': False, 'steps_per_execution': 1}
    """
    if steps_per_execution is not None and steps_per_execution < 1:
        raise TfaeError(f"steps per execution must be >= 1, not {steps_per_execution}")
    if multi_worker:
        if jit_compile or (steps_per_execution or 1) > 1:
            raise TfaeError("--jit-compile and --steps-per-execution above 1 fail under "
                            "--strategy multi-worker (TensorFlow 2.21); leave them out")
        return {"jit_compile": False, "steps_per_execution": 1}
    given = {"jit_compile": jit_compile, "steps_per_execution": steps_per_execution}
    return {"jit_compile": "auto", "steps_per_execution": 1, **get_family(model).execution,
            **{key: value for key, value in given.items() if value is not None}}


def _fit(config, run_dir, export, export_dir, verbose, strategy, execution):
    splits = data.load(config.dataset, config.data_dir, config.limit)
    corruption = parse_corruption(config.noise) if config.noise else None
    if corruption is not None:
        corruption.check_fits(splits.image_shape)
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        # Built before the run folder is claimed, so that options the builder refuses leave no trace.
        model = build_model(config.model, splits.image_shape, **config.model_options)
        initial_epoch = _claim_run_dir(run_dir, config)

        global_batch = config.batch_size * strategy.num_replicas_in_sync
        train_batches = data.pipeline(splits.train, global_batch, shuffle=True,
                                      seed=config.seed, corruption=corruption)
        validation_batches = data.pipeline(splits.validation, global_batch, seed=config.seed + 1,
                                           corruption=corruption, fresh_corruption=False)

        family = get_family(config.model)
        if family.trainer is not None:
            history = family.trainer(model, train_batches, config, verbose)
        else:
            model = _fit_keras(config, run_dir, model, train_batches, validation_batches,
                               initial_epoch, verbose, execution)
            history = _read_history(run_dir / "history.csv")
    write_json(run_dir / "history.json", history)
    _atomic_save(model, run_dir / "model.keras")
    export_path = export_saved_model(model, export_dir or pathlib.Path("saved_models") / config.model) \
        if export else None
    write_run_info(run_dir, {
        "data": splits.source,
        # A trainer's run is finished once all its layers are; a Keras run after its epochs.
        "epochs_finished": config.epochs if family.trainer else len(history["loss"]),
        "training_seconds": sum(history.get("seconds", [])),
        "parameters": model.count_params(),
        "export": str(export_path) if export_path else None,
    })
    return Run(run_dir, model, history, export_path)


def _fit_keras(config, run_dir, model, train_batches, validation_batches, initial_epoch,
               verbose, execution):
    """Trains with ``Model.fit`` and the run folder's callbacks; returns the trained model.

    A finished run being extended continues from its saved model, optimizer state included.
    """
    if initial_epoch:
        model = load_model(run_dir / "model.keras")
    optimizer = model.optimizer if initial_epoch else keras.optimizers.Adam(config.learning_rate)
    model.compile(optimizer=optimizer, loss=LOSSES[config.loss], **execution)
    model.fit(train_batches, validation_data=validation_batches, epochs=config.epochs,
              initial_epoch=initial_epoch, callbacks=_callbacks(run_dir, config),
              shuffle=False, verbose=verbose)  # the pipeline shuffles, seeded
    return model


def check_run_settings(run_dir, config):
    """Refuses a run folder whose saved run has other settings than ``config`` (epochs aside).

    Raises:
        TfaeError: naming the settings that differ.

    Examples:
        >>> check_run_settings(pathlib.Path("runs/deep"), FitConfig(model="deep"))  # doctest: +SKIP
    """
    saved_model = read_json(run_dir / "config.json").get("model")
    if saved_model != config.model:
        raise TfaeError(f"--out {run_dir} holds a run of model {saved_model!r}, not "
                        f"{config.model!r}; choose another --out")
    check_settings(run_dir, run_dir / "config.json", config.to_dict(), "run", ignore=("epochs",))


def _claim_run_dir(run_dir, config):
    """Checks ``run_dir`` can hold this run; returns how many epochs a finished run there has."""
    if (run_dir / "config.json").exists():
        check_run_settings(run_dir, config)
        finished = finished_epochs(run_dir)
        if finished >= config.epochs:
            raise TfaeError(f"--out {run_dir} already holds {finished} finished epochs; "
                            "ask for more --epochs or choose another --out")
    claim_folder(run_dir, run_dir / "config.json", config.to_dict(), "run", ignore=("epochs",))
    return finished_epochs(run_dir)


def finished_epochs(run_dir):
    """Epochs of a run that completed ``fit`` (and saved ``model.keras``); 0 for an unfinished one.

    Examples:
        >>> finished_epochs(pathlib.Path("runs/none-such"))
        0
    """
    run_path = run_dir / "run.json"
    if not (run_dir / "model.keras").exists() or not run_path.exists():
        return 0
    return read_json(run_path).get("epochs_finished", 0)


class _EpochTimer(keras.callbacks.Callback):
    """Adds each epoch's wall time to its logs as ``seconds``, so the history records it."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs["seconds"] = time.perf_counter() - self._start


def _callbacks(run_dir, config):
    # Order matters: the history row is written before the backup, so a run killed between the
    # two repeats that epoch (and _read_history keeps its last row) instead of losing its row.
    callbacks = [
        _EpochTimer(),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        # double_checkpoint keeps the previous backup for a kill in the middle of writing one.
        _BackupAndRestore(str(run_dir / "checkpoint"), double_checkpoint=True),
        keras.callbacks.TensorBoard(str(run_dir / "logs")),
    ]
    if config.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(
            patience=config.early_stopping, restore_best_weights=True))
    return callbacks


class _BackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras' backup, starting afresh when a kill cut the first backup short.

    Keras falls back to the previous backup when the last one is unreadable, but fails when
    there is none, which is where a run killed while writing its first backup is left.
    """

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except (OSError, ValueError):
            shutil.rmtree(self.backup_dir, ignore_errors=True)


def _read_history(path):
    """Reads CSVLogger's rows into ``{metric: [per epoch]}``, the last row of a repeated epoch winning."""
    with open(path, newline="") as file:
        rows = {int(row.pop("epoch")): row for row in csv.DictReader(file)}
    metrics = list(next(iter(rows.values()))) if rows else []
    return {metric: [float(rows[epoch][metric]) for epoch in sorted(rows)] for metric in metrics}


def _atomic_save(model, path):
    temporary = path.with_name(f".tmp-{path.name}")  # Keras wants the .keras suffix kept
    model.save(temporary)
    os.replace(temporary, path)
