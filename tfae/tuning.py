"""``tune``: search a family's architecture with keras-tuner and export the best model.

Each family declares its search space (``Family.search_space`` in ``tfae.families``): filter
counts per convolution block, the latent size, depth and hidden sizes for dense families, the
noise level for ``denoising`` and the penalty weight for ``contractive``. A trial builds the
family's model and trains it with ``tfae.train.train_keras``, the same loop as ``tfae fit``, on the
training split, scored on the validation split by ``val_loss`` or by ``val_probe``, the accuracy of
a linear probe on the model's codes after each epoch.

A search lives in its folder (``tfae.runs.SearchFolder``) and resumes there. When it ends, the
winner's settings are its ``config.json``, which ``tfae fit --config`` retrains from scratch, and
the winner is exported with the weights of its best epoch.

Examples:
    >>> from tfae.config import FitConfig, TuneConfig
    >>> from tfae.tuning import tune
    >>> result = tune(TuneConfig(FitConfig(model="conv", epochs=1, limit=2000), tuner="random",
    ...                          max_trials=2), "tuning/conv")  # doctest: +SKIP
    >>> result.best[0]["hyperparameters"]  # doctest: +SKIP
    {'filters_0': 32, 'latent_dim': 128}
"""

import contextlib
import dataclasses
import json
import os
import pathlib
import warnings

import keras
import keras_tuner

from tfae.compat import require
from tfae.config import resolve
from tfae.data import load_config
from tfae.data.classes import class_indices
from tfae.data.pipeline import first_images
from tfae.errors import TfaeError
from tfae.exports import export_saved_model
from tfae.files import write_text
from tfae.probes import linear_probe
from tfae.runs import SearchFolder
from tfae.train import compile_model, execution_options, train_keras, training_steps

OBJECTIVES = {"val_loss": keras_tuner.Objective("val_loss", "min"),
              "probe": keras_tuner.Objective("val_probe", "max")}
PROBE_IMAGES = 5000  # codes per split the per-epoch probe fits and scores: enough to rank trials


class ProbeCallback(keras.callbacks.Callback):
    """Adds ``val_probe`` to each epoch's logs: a linear probe fitted on training codes and
    scored on validation codes, so a search can rank trials (and pick their best epoch) by it.

    Examples:
        >>> callback = ProbeCallback(splits.train, splits.validation)  # doctest: +SKIP
        >>> model.fit(batches, epochs=2, callbacks=[callback])  # doctest: +SKIP
    """

    def __init__(self, train, validation, images=PROBE_IMAGES):
        super().__init__()
        self._train = _images_and_labels(train, images)
        self._validation = _images_and_labels(validation, images)

    def on_epoch_end(self, epoch, logs=None):
        (train_images, train_labels), (images, labels) = self._train, self._validation
        encoder = self.model.encoder
        probe = linear_probe(encoder.predict(train_images, verbose=0), train_labels)
        logs["val_probe"] = float(probe.score(encoder.predict(images, verbose=0), labels))


def _images_and_labels(split, count):
    _, images, labels = first_images(split, count)
    return images, labels


class FamilyHyperModel(keras_tuner.HyperModel):
    """Builds a family's model from a trial's hyperparameters and trains it on a data set.

    Args:
        config: a resolved ``TuneConfig``.
        splits: the ``tfae.data.Splits`` every trial trains and is scored on.

    Examples:
        >>> config = TuneConfig(FitConfig(model="conv")).resolved()  # doctest: +SKIP
        >>> hypermodel = FamilyHyperModel(config, splits)  # doctest: +SKIP
        >>> model = hypermodel.build(keras_tuner.HyperParameters())  # doctest: +SKIP
    """

    def __init__(self, config, splits):
        super().__init__(name=config.fit.model)
        self.config = config
        self.splits = splits
        self._probe = ProbeCallback(splits.train, splits.validation) \
            if config.objective == "probe" else None

    def build(self, hp):
        trial = self.config.trial(hp)
        model = trial.family.new_model(self.splits.image_shape, trial.options,
                                       trial.config.precision)
        compile_model(model, trial.config, execution_options(trial.config.model),
                      steps=training_steps(self.splits, trial.config.batch_size,
                                           trial.config.epochs))
        return model

    def fit(self, hp, model, *args, callbacks=(), **kwargs):
        # First, so that the tuner's own callbacks (best-epoch checkpoint, oracle) see val_probe.
        callbacks = ([self._probe] if self._probe else []) + list(callbacks)
        return train_keras(model, self.splits, self.config.trial(hp), callbacks, **kwargs)


@dataclasses.dataclass
class TuneResult:
    """A finished search: the best trials (best first), the winner's config and its export.

    Examples:
        >>> result = tune(TuneConfig(FitConfig(model="conv"), tuner="random"),
        ...               "tuning/conv")  # doctest: +SKIP
        >>> result.best[0]["config"]["model_options"]["filters"]  # doctest: +SKIP
        [32]
    """

    tune_dir: pathlib.Path
    best: list
    config_path: pathlib.Path
    export_path: pathlib.Path | None


def tune(config, tune_dir, export=True, export_dir=None, verbose=1, distributed=False):
    """Runs (or resumes) a search in ``tune_dir`` and exports its best model.

    Args:
        config: a ``TuneConfig``.
        tune_dir: the search's folder; running again on it resumes the search.
        export: write the best model as a SavedModel.
        export_dir: where versions go; default ``saved_models/<model>``.
        verbose: keras-tuner's and Keras' progress output (0 silent).
        distributed: run as one process of keras-tuner's parallel search, the role read from
            ``KERASTUNER_TUNER_ID`` (``chief`` holds the oracle, any other id runs trials),
            ``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT``. All processes must see
            ``tune_dir``: workers write the trials there and the chief exports from it.

    Returns:
        A ``TuneResult``, or ``None`` in a distributed search's worker.

    Examples:
        >>> tune(TuneConfig(FitConfig(model="shallow", epochs=2), tuner="random", max_trials=3),
        ...      "tuning/shallow")  # doctest: +SKIP
    """
    config = config.resolved()
    role = _distributed_role(distributed)
    folder = SearchFolder(tune_dir)
    splits = load_config(config.fit)
    corruption = resolve(config.fit).corruption
    if corruption is not None:
        corruption.check_fits(splits.image_shape)
    trained_classes = (len(class_indices(splits, config.fit.classes)) if config.fit.classes
                       else splits.num_classes)
    if config.objective == "probe" and trained_classes < 2:
        raise TfaeError("{objective} probe needs labels of two classes or more, and %s has %s"
                        % (splits.name + (" {classes} %s" % config.fit.classes
                                          if config.fit.classes else ""),
                           "one" if trained_classes else "none"),
                        options=["objective", "classes"])
    folder.check_claimable(config)
    # The processes of a parallel search share the folder; a search of one process holds it,
    # so a second identical command is refused instead of running every trial again.
    with folder.in_use() if role is None else contextlib.nullcontext(), \
            warnings.catch_warnings():
        # Trials restored from a checkpoint (hyperband's next round, the winner's export) are
        # fresh models whose optimizer is rebuilt on its first step; Keras warns, every time,
        # that it skips the saved optimizer state, which is what is wanted here.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        folder.claim(config)
        keras.utils.set_random_seed(config.fit.seed)
        tuner = make_tuner(config, FamilyHyperModel(config, splits), folder)
        tuner.search(epochs=config.fit.epochs, verbose=verbose)
        if role == "worker":
            return None
        return _finish(tuner, config, folder, export, export_dir, splits)


def _finish(tuner, config, folder, export, export_dir, splits):
    """Records the best trials of a finished search and exports the winner."""
    trials = tuner.oracle.get_best_trials(5)
    if not trials:
        raise TfaeError(f"the search in {folder.path} finished no trial")
    best = [_trial_summary(trial, config) for trial in trials]
    folder.write_best(best)
    export_path = _export_best(tuner, best[0], folder,
                               export_dir or pathlib.Path("saved_models") / config.fit.model,
                               config.fit.resize, splits, config.fit.model) if export else None
    return TuneResult(folder.path, best, folder.config_path, export_path)


def _export_best(tuner, winner, folder, export_dir, resize, splits, family):
    """Exports the winner, unless a rerun of the finished search finds it exported already,
    with a ``score`` signature calibrated on the search's own (normal) images, as fit's
    export is."""
    from tfae.opened import OpenedModel

    exported = folder.exported(winner["trial"])
    if exported is not None:
        return exported
    # get_best_models restores each trial's best-epoch checkpoint, not its last epoch.
    model = tuner.get_best_models(1)[0]
    export_path = export_saved_model(model, export_dir, resize=resize,
                                     detector=OpenedModel.of_model(model).detector(splits=splits),
                                     family=family)
    folder.record_export(winner["trial"], export_path)
    return export_path


_DISTRIBUTED_VARIABLES = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


def _distributed_role(distributed):
    """``None`` for a search in one process, else ``chief`` or ``worker``, from keras-tuner's
    environment variables, which must all be set for a distributed search and none otherwise."""
    present = [name for name in _DISTRIBUTED_VARIABLES if name in os.environ]
    if not distributed:
        if present:
            raise TfaeError(f"{', '.join(present)} set: pass --distributed to join a parallel "
                            "search, or unset them")
        return None
    missing = [name for name in _DISTRIBUTED_VARIABLES if name not in os.environ]
    if missing:
        raise TfaeError(f"--distributed needs the environment variables {', '.join(missing)}")
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"


# Overridden below: keras-tuner's writers of its files (no public hook writes them whole).
require(keras_tuner.Oracle, ("_save_trial", "_get_oracle_fname", "_get_trial_dir"),
        "keras-tuner")
require(keras_tuner.Tuner, ("_get_tuner_fname", "_is_worker"), "keras-tuner")


class _AtomicOracle:
    """A keras-tuner oracle whose files (``oracle.json``, each ``trial.json``) are written
    through a temporary file and a rename (``tfae.files.write_text``).

    keras-tuner writes them in place: a search killed while writing one left half a JSON file,
    and the resumed search failed reading it.
    """

    def save(self):
        write_text(self._get_oracle_fname(), json.dumps(self.get_state()))

    def _save_trial(self, trial):
        path = os.path.join(self._get_trial_dir(trial.trial_id), "trial.json")
        write_text(path, json.dumps(trial.get_state()))


class _HyperbandOracle(_AtomicOracle, keras_tuner.oracles.HyperbandOracle):
    pass


class _RandomSearchOracle(_AtomicOracle, keras_tuner.oracles.RandomSearchOracle):
    pass


class _BayesianOptimizationOracle(_AtomicOracle, keras_tuner.oracles.BayesianOptimizationOracle):
    pass


class _AtomicTuner:
    """A keras-tuner tuner whose own file (``tuner0.json``) is written as ``_AtomicOracle``'s."""

    def save(self):
        if not self._is_worker():  # as keras-tuner's: the chief alone holds the oracle
            self.oracle.save()
        write_text(self._get_tuner_fname(), json.dumps(self.get_state()))


class _Tuner(_AtomicTuner, keras_tuner.Tuner):
    pass


class _Hyperband(_AtomicTuner, keras_tuner.Hyperband):
    """keras-tuner's ``Hyperband`` (its trials resume from earlier brackets' weights) on an
    ``_AtomicOracle``: its own ``__init__`` makes a plain oracle, so ``Tuner``'s is called."""

    def __init__(self, oracle, hypermodel, **kwargs):
        keras_tuner.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)


def make_tuner(config, hypermodel, folder):
    """The keras-tuner tuner for ``config``, reloading a search already in ``folder``.

    Examples:
        >>> config = TuneConfig(FitConfig(model="deep"), tuner="random")  # doctest: +SKIP
        >>> config = config.resolved()  # doctest: +SKIP
        >>> tuner = make_tuner(config, FamilyHyperModel(config, splits),
        ...                    SearchFolder("tuning/deep"))  # doctest: +SKIP
        >>> tuner.search(epochs=2)  # doctest: +SKIP
    """
    search = dict(objective=OBJECTIVES[config.objective], seed=config.fit.seed)
    files = dict(directory=str(folder.path), project_name=folder.project, overwrite=False)
    if config.tuner == "hyperband":
        return _Hyperband(_HyperbandOracle(max_epochs=config.fit.epochs, **search), hypermodel,
                          **files)
    if config.tuner == "random":
        oracle = _RandomSearchOracle(max_trials=config.max_trials, **search)
    else:
        oracle = _BayesianOptimizationOracle(max_trials=config.max_trials, **search)
    return _Tuner(oracle, hypermodel, **files)


def _trial_summary(trial, config):
    hp = trial.hyperparameters
    epochs = trial.best_step + 1  # retraining stops where the exported weights came from
    trial_config = config.trial(hp.copy(), epochs).config
    used = {name: value for name, value in hp.values.items() if hp.is_active(name)}
    # The config retrains the winner on every image: --limit makes a search fast, not its result.
    retrain = {**trial_config.to_dict(), "limit": None}
    return {"trial": trial.trial_id, "score": trial.score, "best_epoch": epochs,
            "hyperparameters": used, "config": json.loads(json.dumps(retrain))}


def best_table(best):
    """Rows of the best trials for printing: rank, trial, score, best epoch, hyperparameters.

    A trial is named as keras-tuner's progress lines count it (``Trial #4``), with its folder.

    Examples:
        >>> best_table([{"trial": "03", "score": 0.0123, "best_epoch": 2,
        ...              "hyperparameters": {"latent_dim": 64}}])
        [('1', '#4 (trial_03)', '0.0123', '2', 'latent_dim=64')]
    """
    def named(trial_id):
        return f"#{int(trial_id) + 1} (trial_{trial_id})" if trial_id.isdigit() else trial_id

    return [(str(rank), named(entry["trial"]), f"{entry['score']:.4g}", str(entry["best_epoch"]),
             ", ".join(f"{name}={value}" for name, value in entry["hyperparameters"].items()))
            for rank, entry in enumerate(best, start=1)]
