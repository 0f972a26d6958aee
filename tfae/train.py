"""``fit``: train a family on an image data set into a run folder, resumably, and export it.

The run folder (``tfae.runs.RunFolder``) records the config, the history, TensorBoard logs, the
model and where it came from. Running ``fit`` again on the folder of an interrupted run continues
from its last finished epoch; on a finished run with more ``epochs`` it trains the extra epochs.

``fit`` and ``tfae tune``'s trials train through the same functions: ``training_batches`` (the
``tf.data`` pipelines), ``compile_model`` and ``train_keras`` (``Model.fit`` with the progress bar,
early stopping and the caller's callbacks).

Examples:
    >>> from tfae.config import FitConfig
    >>> from tfae.train import fit
    >>> run = fit(FitConfig(model="shallow", epochs=1, limit=512), "runs/quick",
    ...           export=False)  # doctest: +SKIP
    >>> sorted(run.history)  # doctest: +SKIP
    ['loss', 'seconds', 'val_loss']
"""

import dataclasses
import json
import math
import os
import pathlib
import shutil
import sys
import tempfile
import time

import keras
import tensorflow as tf

from tfae.compat import require
from tfae.config import LOSSES, FitConfig, resolve
from tfae.data import as_splits, load_config, pipeline, worker_pipeline
from tfae.data.pipeline import corruption_device
from tfae.distribute import is_chief, is_multi_worker, make_strategy, replicated
from tfae.errors import TfaeError
from tfae.files import as_path
from tfae.exports import export_saved_model
from tfae.families import XLA_WHERE_IT_PAYS, get_family
from tfae.options import checked
from tfae.opened import OpenedModel
from tfae.runs import RunFolder

# Training steps from which XLA's compilation repays itself for the dense families: it compiles
# longer and saves a little every step (docs/performance.md); 500 steps are 2.4 epochs of MNIST
# at batch 256.
XLA_MIN_STEPS = 500
# A run of fewer steps updates the weights too seldom to learn: 20 epochs of 480 images at
# batch 256 are 40 steps, and the model learns nothing visible; the tutorials' shortest runs,
# 2 epochs of 56 steps to 5 of 113, learn what they show.
FEW_STEPS = 200
SMALLEST_SUGGESTED_BATCH = 8


@dataclasses.dataclass
class Run:
    """A finished run: its folder, the trained model, the history and where it was exported.

    Examples:
        >>> run = fit(FitConfig(model="shallow", epochs=1, limit=512), "runs/quick")  # doctest: +SKIP
        >>> run.model.encoder.output_shape, run.export_path  # doctest: +SKIP
        ((None, 2048), PosixPath('saved_models/shallow/1'))
    """

    run_dir: pathlib.Path
    model: keras.Model
    history: dict
    export_path: pathlib.Path | None


def fit(config, run_dir, export=False, export_dir=None, verbose=1, strategy="default",
        jit_compile=None, steps_per_execution=None, callbacks=(), data=None):
    """Trains ``config`` into ``run_dir``, resuming an interrupted run, and records it there
    (``tfae.export`` exports a finished run; ``export`` here does it at once, as ``tfae fit``).

    Args:
        config: a ``tfae.config.FitConfig``.
        run_dir: the run folder; a folder holding another model's run, or a run begun on data
            that has changed since, is refused.
        export: also write a SavedModel when training ends (``tfae fit`` does, unless
            ``--no-export``); a finished run whose export failed is then only exported.
        export_dir: where versions go; default ``saved_models/<model>``.
        verbose: Keras' progress output (0 silent, 1 progress bar, 2 a line per epoch).
        strategy: ``default``, ``mirrored`` or ``multi-worker`` (see ``tfae.distribute``), or
            a ``tf.distribute.Strategy``.
            ``config.batch_size`` is per replica: the global batch is that times the replicas.
            Only the chief writes ``run_dir`` and the export; other workers train in a
            temporary copy of ``run_dir`` (so they resume from the same checkpoint, which
            therefore must be on storage every worker sees) and delete it.
        jit_compile, steps_per_execution: how the training step is compiled; ``None`` takes
            the family's choice (see ``execution_options``).
        callbacks: Keras callbacks to add to the run's own (``Model.fit`` families only).
        data: images to train on instead of ``config.dataset``: ``Splits``, a
            ``tf.data.Dataset``, an array of images, an ``(x, y)`` pair or a dict of ``x``,
            ``y``, ``x_test``, ``y_test`` (``tfae.data.as_splits``); the config's
            ``image_size``, ``channels``, ``test_fraction`` and ``limit`` apply.

    Returns:
        A ``Run``.

    Examples:
        >>> run = fit(FitConfig(model="deep", epochs=2, limit=1000), "runs/deep")  # doctest: +SKIP
        >>> import numpy as np
        >>> images = np.random.default_rng(0).random((500, 30, 30, 3))
        >>> run = fit(FitConfig(model="conv", epochs=1), "runs/mine", data=images)  # doctest: +SKIP
    """
    if isinstance(config, dict):  # as a config file holds it
        config = checked(FitConfig, config)
    if not isinstance(config, FitConfig):
        raise TfaeError(f"config must be a tfae.FitConfig (or a dict of its settings), got "
                        f"{type(config).__name__}", options=["config"])
    run_dir = as_path(run_dir, "run_dir")
    strategy = make_strategy(strategy)  # first: multi-worker must precede other TF work
    spec = resolve(config)
    execution = execution_options(config.model, jit_compile, steps_per_execution,
                                  replicated=replicated(strategy))
    folder = RunFolder(run_dir)
    if not is_chief(strategy):
        with tempfile.TemporaryDirectory(prefix="tfae-worker-") as work_dir:
            folder.copy_for_worker(work_dir)
            run = _fit(spec, RunFolder(work_dir), False, None, verbose, strategy, execution,
                       callbacks, data)
        return dataclasses.replace(run, run_dir=folder.path)
    return _fit(spec, folder, export, export_dir, verbose, strategy, execution, callbacks, data)


def execution_options(model, jit_compile=None, steps_per_execution=None, replicated=False):
    """``Model.compile``'s ``jit_compile`` and ``steps_per_execution`` for family ``model``.

    A value given wins; ``None`` takes the family's ``execution`` (XLA and 16 batches per call
    for the dense families, which train faster so on CPU), else Keras' own choice: XLA only
    with a GPU, one batch per call. Neither changes what is trained, so neither is saved in the
    run's config (XLA may round floats differently). With several replicas (``replicated``:
    ``multi-worker``, or ``mirrored`` on more than one device) TensorFlow 2.21 fails with
    either (XLA finds the variables on another device or aborts the process; several batches
    per call leave a placeholder unfed: tests/test_corruptions.py, tests/test_distribute.py),
    so there the family's choice is dropped.

    Raises:
        TfaeError: ``steps_per_execution`` below 1, or XLA or several batches per call asked
            for under ``replicated``.

    Examples:
        >>> execution_options("deep")
        {'jit_compile': 'where it pays', 'steps_per_execution': 16}
        >>> execution_options("conv", steps_per_execution=4)
        {'jit_compile': 'auto', 'steps_per_execution': 4}
        >>> execution_options("deep", replicated=True)
        {'jit_compile': False, 'steps_per_execution': 1}
    """
    if steps_per_execution is not None and steps_per_execution < 1:
        raise TfaeError("{steps_per_execution} must be >= 1, not %d" % steps_per_execution,
                        options=["steps_per_execution"])
    if replicated:
        if jit_compile or (steps_per_execution or 1) > 1:
            raise TfaeError("{jit_compile} and {steps_per_execution} above 1 fail with several "
                            "replicas ({strategy} multi-worker, or mirrored on several devices; "
                            "TensorFlow 2.21); leave them out",
                            options=["jit_compile", "steps_per_execution", "strategy"])
        return {"jit_compile": False, "steps_per_execution": 1}
    given = {"jit_compile": jit_compile, "steps_per_execution": steps_per_execution}
    return {"jit_compile": "auto", "steps_per_execution": 1, **get_family(model).execution,
            **{key: value for key, value in given.items() if value is not None}}


def _fit(spec, folder, export, export_dir, verbose, strategy, execution, callbacks, data):
    config = spec.config
    if data is None:
        splits = load_config(config)
        spec, config = _prepared_settings(spec, splits)
    else:
        splits = as_splits(data, image_size=config.image_size, channels=config.channels,
                           test_fraction=config.test_fraction, limit=config.limit)
    if spec.corruption is not None:
        spec.corruption.check_fits(splits.image_shape)
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        # Built, and the folder checked, before the folder is made or locked: what is refused
        # leaves no trace.
        model = spec.family.new_model(splits.image_shape, spec.options, config.precision)
        folder.check_claimable(config, splits.source)
    batch_size = config.batch_size * strategy.num_replicas_in_sync  # the global batch
    with strategy.scope(), folder.in_use():
        finished = folder.claim(config, splits.source)
        # Said once the folder is this run's: a refused one gets its one line of error only.
        summary, warning = describe_data(splits, spec, batch_size)
        if verbose:
            print(summary, flush=True)
        if finished < config.epochs:
            for line in [warning] + model_warnings(model, splits.image_shape):
                if line:
                    print(f"warning: {line}", file=sys.stderr, flush=True)
        # A run trained layer by layer (randomized) is whole or not at all: none is extended.
        if finished >= config.epochs or (spec.family.trainer is not None and finished > 0):
            if not export or folder.info().get("export"):
                if spec.family.trainer is not None:
                    raise TfaeError(f"--out {folder.path} already holds a finished "
                                    f"{config.model} run; choose another --out")
                raise TfaeError(f"--out {folder.path} already holds {finished} finished epochs; "
                                "ask for more --epochs or choose another --out")
            # Trained, but its export failed: export it now, without training again.
            model, history = folder.load_model(), folder.history()
        else:
            model, history = _train(spec, folder, model, splits, finished, verbose, batch_size,
                                    execution, callbacks)
            for line in history_warnings(model, history):
                print(f"warning: {line}", file=sys.stderr, flush=True)
            folder.save(model, history)
            # Recorded as trained before exporting, so a failed export costs a rerun an export only.
            folder.write_info({
                # A trainer's run is finished once all its layers are; a Keras run after its epochs.
                "epochs_finished": config.epochs if spec.family.trainer else len(history["loss"]),
                "training_seconds": sum(history.get("seconds", []))
                + sum(history.get("refit_seconds", [])),
                "parameters": model.count_params(),
                "export": None,
            })
            folder.remove_checkpoint()  # only now: the model and its record are in place
        export_path = None
        if export:
            export_path = export_saved_model(
                model, export_dir or pathlib.Path("saved_models") / config.model,
                resize=config.resize,
                # Not under a multi-worker strategy: the chief's model calls would wait on
                # collectives of workers that have finished; `tfae export` adds it afterwards.
                detector=None if is_multi_worker(strategy)
                else OpenedModel.of_model(model, folder.path, "run").detector(splits=splits),
                family=config.model)
            folder.write_info({"export": str(export_path)})
    return Run(folder.path, model, history, export_path)


def _prepared_settings(spec, splits):
    """``(spec, config)`` with the settings a prepared folder's images were made with (its
    resize, test fraction, size and channels): the run trains on those images, so it records
    them, and its export resizes as they were resized; a setting given otherwise is said."""
    prepared = {name: tuple(value) if isinstance(value, list) else value
                for name, value in (splits.source.get("prepared_with") or {}).items()
                if value is not None}
    config = spec.config
    differing = {name: value for name, value in prepared.items()
                 if getattr(config, name) != value}
    if not differing:
        return spec, config
    print(f"warning: {config.dataset} was prepared with "
          + ", ".join(f"--{name.replace('_', '-')} {_shown_setting(value)}"
                      for name, value in differing.items())
          + "; the run uses and records these", file=sys.stderr, flush=True)
    config = config.merged(differing)
    return dataclasses.replace(spec, config=config), config


def _shown_setting(value):
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


# A variational autoencoder whose KL term is below this, in nats a code number, has a posterior
# that collapsed onto its prior for most numbers: its codes carry next to nothing.
COLLAPSED_NATS = 0.1


def model_warnings(model, image_shape):
    """What is worth a warning in a model before it trains: a code at least as wide as the
    image, which can copy it rather than compress it (and then beats PCA by no measure).

    Examples:
        >>> from tfae.families import build_model
        >>> model_warnings(build_model("deep", (8, 8, 1), hidden=(16,), latent_dim=256),
        ...                (8, 8, 1))
        ['the code, 256 numbers, is as wide as the 64-number image or wider: the model can copy its images instead of compressing them (--latent-dim below 64)']
    """
    pixels = math.prod(image_shape)
    if model.latent_dim < pixels:
        return []
    return [f"the code, {model.latent_dim} numbers, is as wide as the {pixels}-number image or "
            f"wider: the model can copy its images instead of compressing them (--latent-dim "
            f"below {pixels})"]


def history_warnings(model, history):
    """What is worth a warning in a finished run's history: a variational autoencoder whose KL
    term collapsed (below ``COLLAPSED_NATS`` a code number at the last epoch).

    Examples:
        >>> from tfae.families import build_model
        >>> vae = build_model("vae", (8, 8, 1), hidden=(16,), latent_dim=32)
        >>> history_warnings(vae, {"kl": [9.0, 3.0]})
        ['the KL term is 3.0 nats over 32 code numbers at the last epoch: the posterior collapsed onto the prior for most of them, so the codes carry little (fewer --latent-dim, or --beta below 1)']
        >>> history_warnings(vae, {"kl": [30.0, 25.0]})
        []
    """
    kl = history.get("kl")
    if not kl or not hasattr(model, "posterior") or kl[-1] >= COLLAPSED_NATS * model.latent_dim:
        return []
    return [f"the KL term is {kl[-1]:.1f} nats over {model.latent_dim} code numbers at the last "
            "epoch: the posterior collapsed onto the prior for most of them, so the codes carry "
            "little (fewer --latent-dim, or --beta below 1)"]


def describe_data(splits, spec, batch_size):
    """What a run is about to train on, as a line to print (where its images are read from,
    when streamed from prepared shards), and a warning (or ``None``) when the whole run is too
    few steps for a model trained by ``Model.fit`` to learn.

    The default batch size does not adapt to small data: the same command would then train
    otherwise as the data grows (a ``--limit`` try and the full run, a search and its retrain);
    the warning says what to change instead.

    Examples:
        >>> from tfae.config import FitConfig, resolve
        >>> from tfae.data import load
        >>> spec = resolve(FitConfig(model="deep", limit=480))
        >>> summary, warning = describe_data(load("mnist", limit=480), spec, 256)
        >>> summary
        'data: mnist, 480 training, 480 validation and 480 test images, 28x28 (HxW), 1 channel(s), 10 classes; 2 steps an epoch at batch 256'
        >>> warning
        'the run is only 40 steps (20 epochs of 2 at batch 256), too few to learn: --batch-size 32 gives 300'
        >>> describe_data(load("mnist", limit=6600), resolve(FitConfig(model="deep", epochs=30)),
        ...               256)[1] is None  # 780 steps: enough
        True
    """
    sizes = [int(split.cardinality()) for split in (splits.train, splits.validation, splits.test)]
    height, width, channels = splits.image_shape
    config = spec.config
    resized = (f" (resized to {height}x{width} by {config.resize})" if config.image_size else "")
    classes = f"{splits.num_classes} classes" if splits.num_classes else "no labels"
    steps = training_steps(splits, batch_size, 1)
    streamed = (f"; streamed from the shards prepared in {splits.source['prepared']}"
                if splits.source.get("prepared") else "")
    summary = (f"data: {splits.name}, {sizes[0]:,} training, {sizes[1]:,} validation and "
               f"{sizes[2]:,} test images, {height}x{width} (HxW){resized}, {channels} "
               f"channel(s), {classes}; {steps} steps an epoch at batch {batch_size}{streamed}")
    total = steps * config.epochs
    if spec.family.trainer is not None or total >= FEW_STEPS:
        return summary, None
    # The largest power of two that gives the run enough steps, but not below 8 (smaller
    # batches learn noisily): then more epochs too.
    smaller = max(SMALLEST_SUGGESTED_BATCH, 2 ** math.floor(math.log2(
        max(1, sizes[0] * config.epochs // FEW_STEPS))))
    per_epoch = math.ceil(sizes[0] / smaller)
    epochs = max(config.epochs, math.ceil(FEW_STEPS / per_epoch))
    more = f" and --epochs {epochs}" if epochs > config.epochs else ""
    return summary, (f"the run is only {total:,} steps ({config.epochs} "
                     f"epoch{'s' * (config.epochs != 1)} of {steps} at "
                     f"batch {batch_size}), too few to learn: --batch-size {smaller}{more} "
                     f"give{'s' * (not more)} {epochs * per_epoch:,}")


def _train(spec, folder, model, splits, initial_epoch, verbose, batch_size, execution, callbacks):
    """Trains ``model`` with its family's trainer or ``Model.fit`` in batches of ``batch_size``
    (the global batch); returns the trained model (a run being extended continues from its saved
    one) and the history."""
    config = spec.config
    if spec.family.trainer is not None:
        train_batches, _ = training_batches(splits, spec, batch_size)
        history = spec.family.trainer(model, train_batches, spec, verbose)
        _log_steps(history, folder.logs_dir)
        return model, history
    if initial_epoch:  # a finished run being extended: its weights and optimizer state
        model = folder.load_model()
    compile_model(model, config, execution, model.optimizer if initial_epoch else None,
                  training_steps(splits, batch_size, config.epochs - initial_epoch))
    train_keras(model, splits, spec, [*_run_callbacks(folder), *callbacks], verbose,
                batch_size=batch_size, epochs=config.epochs, initial_epoch=initial_epoch)
    history = folder.csv_history()
    if history and not math.isfinite(history["loss"][-1]):
        epoch = len(history["loss"])
        kept = f"its last good epoch ({epoch - 1})" if epoch > 1 else "no finished epoch"
        raise TfaeError(f"training diverged: the loss became NaN in epoch {epoch}; --out "
                        f"{folder.path} keeps {kept}. Start again in another --out with a lower "
                        "{learning_rate}", options=["learning_rate"])
    return model, history


def _log_steps(history, logs_dir):
    """Writes a family trainer's history to TensorBoard, a step per entry (per layer for
    ``randomized``), where Keras' callback writes ``Model.fit``'s epochs."""
    writer = tf.summary.create_file_writer(str(logs_dir / "train"))
    with writer.as_default():
        for name, values in history.items():
            for step, value in enumerate(values):
                tf.summary.scalar(name, value, step=step)
    writer.close()


def training_batches(splits, spec, batch_size=None, distributed=False):
    """The training and validation pipelines of a run's ``RunSpec``: corrupted inputs (fresh
    every epoch in training, the same every epoch in validation) and clean targets; with
    ``distributed``, made for ``Model.fit`` under the strategy in scope (``worker_pipeline``).

    Examples:
        >>> from tfae.config import FitConfig, resolve
        >>> spec = resolve(FitConfig(model="denoising", limit=64))
        >>> from tfae.data import load
        >>> train, validation = training_batches(load("mnist", limit=64), spec, 32)
        >>> [tuple(tensor.shape) for tensor in next(iter(train))]
        [(32, 28, 28, 1), (32, 28, 28, 1)]
    """
    batch_size = batch_size or spec.config.batch_size
    make = worker_pipeline if distributed else pipeline
    device = corruption_device()  # the GPU of a one-device run; else the host
    train = make(splits.train, batch_size, shuffle=True, seed=spec.config.seed,
                 corruption=spec.corruption, device=device)
    validation = make(splits.validation, batch_size, seed=spec.config.seed + 1,
                      corruption=spec.corruption, fresh_corruption=False, device=device)
    return train, validation


def execution_for(model, execution, steps=None):
    """``execution`` with the families' XLA "where it pays" decided for ``model`` and a run of
    ``steps`` training steps (``None``: long).

    XLA's compilation of the step takes longer than Keras' own and saves a little every step
    (docs/performance.md), so a run of fewer than ``XLA_MIN_STEPS`` steps (a first try,
    a ``--limit`` run, a tuning trial) trains without it. A model whose ``compiles_well_with_xla``
    is false (the contractive penalty taking the full Jacobian) never takes it. A ``jit_compile``
    the user gave is kept as given.

    Examples:
        >>> from tfae.families import build_model
        >>> model = build_model("deep", (28, 28, 1))
        >>> execution_for(model, execution_options("deep"), steps=80)["jit_compile"]
        False
        >>> execution_for(model, execution_options("deep"), steps=4220)["jit_compile"]
        True
    """
    if execution["jit_compile"] != XLA_WHERE_IT_PAYS:
        return execution
    pays = getattr(model, "compiles_well_with_xla", True) and (steps is None
                                                              or steps >= XLA_MIN_STEPS)
    return {**execution, "jit_compile": pays}


def training_steps(splits, batch_size, epochs):
    """The steps of ``epochs`` epochs over ``splits.train``; ``None`` where its size is unknown.

    Examples:
        >>> from tfae.data import load
        >>> training_steps(load("mnist", limit=1000), 256, 3)
        12
    """
    size = int(splits.train.cardinality())
    return None if size < 0 else epochs * math.ceil(size / batch_size)


def compile_model(model, config, execution, optimizer=None, steps=None):
    """Compiles ``model`` with Adam (or ``optimizer``), the loss of ``config`` (a ``FitConfig``)
    and ``execution`` (``execution_for`` a run of ``steps`` training steps).

    Examples:
        >>> from tfae.config import FitConfig, resolve
        >>> spec = resolve(FitConfig(model="shallow", model_options={"latent_dim": 8}))
        >>> model = spec.family.new_model((28, 28, 1), spec.options)
        >>> compile_model(model, spec.config, execution_options("shallow"), steps=4220)
        >>> model.jit_compile, model.steps_per_execution
        (True, 16)
    """
    model.compile(optimizer=optimizer or keras.optimizers.Adam(config.learning_rate),
                  loss=LOSSES[config.loss], **execution_for(model, execution, steps))


def train_keras(model, splits, spec, callbacks=(), verbose=1, batch_size=None, **fit_options):
    """Trains a compiled ``model`` on ``splits`` with ``Model.fit``: the one training loop of
    ``fit`` and of ``tfae tune``'s trials.

    Args:
        model: a compiled ``Autoencoder``.
        splits: a ``tfae.data.Splits``.
        spec: the run's ``RunSpec`` (its corruption, seed, batch size, early stopping).
        callbacks: Keras callbacks, called in this order.
        verbose: Keras' progress output.
        batch_size: the global batch size; default the config's.
        **fit_options: passed to ``Model.fit`` (``epochs``, ``initial_epoch``).

    Returns:
        Keras' ``History``.

    Examples:
        >>> train_keras(model, load("mnist", limit=512), spec, epochs=1)  # doctest: +SKIP
    """
    config = spec.config
    train, validation = training_batches(splits, spec, batch_size, distributed=True)
    # TerminateOnNaN stops within the epoch whose loss diverges; the run's backup skips it.
    callbacks = [*callbacks, ProgressBar(), keras.callbacks.TerminateOnNaN()]
    if config.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(patience=config.early_stopping,
                                                       restore_best_weights=True))
    return model.fit(train, validation_data=validation, callbacks=callbacks, shuffle=False,
                     verbose=verbose, **{"epochs": config.epochs, **fit_options})


class ProgressBar(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, never past its total.

    With several batches per call (``steps_per_execution``) Keras reports each call's last step,
    also where the data ended sooner, so its bar showed steps such as ``224/211``.

    Examples:
        >>> model.fit(batches, callbacks=[ProgressBar()])  # doctest: +SKIP
    """

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(min(batch, self.target - 1) if self.target else batch, logs)


class _EpochTimer(keras.callbacks.Callback):
    """Adds each epoch's wall time to its logs as ``seconds``, so the history records it."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs["seconds"] = time.perf_counter() - self._start


def _run_callbacks(folder):
    # Order matters: the history row is written before the backup, so a run killed between the
    # two repeats that epoch (and csv_history keeps its last row) instead of losing its row.
    return [
        _EpochTimer(),
        keras.callbacks.CSVLogger(str(folder.history_csv), append=True),
        # The backup outlives training until the model file is in place
        # (RunFolder.remove_checkpoint), so a kill while the model is written loses no epoch.
        _BackupAndRestore(str(folder.checkpoint_dir), delete_checkpoint=False),
        keras.callbacks.TensorBoard(str(folder.logs_dir)),
    ]


# Overridden below, the writer of Keras' backup (no public hook writes it whole or not at all).
require(keras.callbacks.BackupAndRestore, ("_save_model",), "keras")


class _BackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras' backup, starting afresh when a kill cut the first backup short, never saving an
    epoch whose loss diverged, and written whole or not at all.

    Keras falls back to the previous backup when the last one is unreadable, but fails when
    there is none, which is where a run killed while writing its first backup is left. Keras
    writes the backup in place, so a full disk leaves a truncated file that a rerun would resume
    from; here it is written beside and renamed, after checking that it fits.
    """

    # The backup holds the weights and the optimizer's state (Adam: two slots a weight), and
    # h5py's own overhead; a margin on top, as h5py can crash on a disk that fills mid-write.
    BYTES_PER_WEIGHT_BYTE = 4

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except (OSError, ValueError):
            shutil.rmtree(self.backup_dir, ignore_errors=True)

    def on_epoch_end(self, epoch, logs=None):
        # A diverged epoch (NaN weights) must not replace the last good backup.
        if all(math.isfinite(value) for value in (logs or {}).values()
               if isinstance(value, (int, float))):
            super().on_epoch_end(epoch, logs)

    def _save_model(self):
        backup = pathlib.Path(self.backup_dir)
        backup.mkdir(parents=True, exist_ok=True)
        needed = self.BYTES_PER_WEIGHT_BYTE * sum(
            math.prod(weight.shape) * tf.as_dtype(weight.dtype).size
            for weight in self.model.weights)
        free = shutil.disk_usage(backup).free
        if needed > free:
            raise TfaeError(f"no room for the training backup in {backup}: it needs about "
                            f"{needed / 1e6:,.0f} MB, {free / 1e6:,.0f} MB are free (the last "
                            "finished epoch's backup is kept)")
        saving = {backup / f".saving-{os.getpid()}.weights.h5": self._weights_path,
                  backup / f".saving-{os.getpid()}.json": self._training_metadata_path}
        weights, metadata = saving
        try:
            self.model.save_weights(str(weights), overwrite=True)
            metadata.write_text(json.dumps({"epoch": self._current_epoch,
                                            "batch": self._last_batch_seen}))
            # The weights first: a kill between the renames repeats an epoch, never skips one.
            for temporary, final in saving.items():
                os.replace(temporary, final)
        except OSError as error:
            for temporary in saving:
                temporary.unlink(missing_ok=True)
            raise TfaeError(f"cannot write the training backup in {backup}: "
                            f"{error.strerror or error} (the last finished epoch's backup is "
                            "kept)") from None
