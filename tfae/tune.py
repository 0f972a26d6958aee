"""``tune``: search a family's architecture with keras-tuner and export the best model.

Each family has a search space (``SEARCH_SPACES``): filter counts per convolution block, the
latent size, depth and hidden sizes for dense families, the noise level for ``denoising`` and
the penalty weight for ``contractive``. A trial trains a model with ``Model.fit`` on the
training split and is scored on the validation split, by ``val_loss`` or by ``val_probe``, the
accuracy of a linear probe on the model's codes after each epoch.

A search lives in its folder and resumes there: keras-tuner's trials under ``search/``, the
settings in ``tune.json``, and when it ends the best trials in ``best.json`` and the winner's
settings as ``config.json``, which ``tfae fit --config`` retrains from scratch. The winner is
exported with the weights of its best epoch (recorded in ``export.json``, so that rerunning a
finished search prints its table without exporting it again).

Examples:
    >>> from tfae.tune import TuneConfig, tune
    >>> result = tune(TuneConfig(model="conv", tuner="random", max_trials=2, epochs=1,
    ...                          limit=2000), "tuning/conv")  # doctest: +SKIP
    >>> result.best[0]["hyperparameters"]  # doctest: +SKIP
    {'filters_0': 32, 'latent_dim': 128}
"""

import dataclasses
import json
import os
import pathlib

import keras
import keras_tuner
import numpy as np

from tfae import data
from tfae.corruptions import parse_corruption
from tfae.errors import TfaeError
from tfae.evaluate import linear_probe
from tfae.export import export_saved_model
from tfae.models import build_model, get_family
from tfae.runs import claim_folder, read_json, write_json
from tfae.train import LOSSES, FitConfig, execution_options

TUNERS = ("hyperband", "random", "bayesian")
OBJECTIVES = {"val_loss": keras_tuner.Objective("val_loss", "min"),
              "probe": keras_tuner.Objective("val_probe", "max")}
PROBE_IMAGES = 5000  # codes per split the per-epoch probe fits and scores: enough to rank trials
_DENSE_UNITS = (128, 256, 512, 1024)
_MAX_DEPTH = 3


def _dense_space(hp, depth_range=(1, _MAX_DEPTH), latents=(10, 32, 64, 128, 256)):
    depth = hp.Int("depth", *depth_range)
    # Every layer's size is declared, whatever the depth, so the space is fixed and printable.
    units = [hp.Choice(f"units_{index}", _DENSE_UNITS) for index in range(_MAX_DEPTH)]
    return {"hidden": tuple(units[:depth]), "latent_dim": hp.Choice("latent_dim", latents)}, {}


def _shallow_space(hp):
    return {"latent_dim": hp.Choice("latent_dim", (32, 64, 128, 256, 512, 1024))}, {}


def _contractive_space(hp):
    options, fit_fields = _dense_space(hp)
    weight = hp.Float("lambda", 1e-6, 1e-2, sampling="log")
    return {**options, "penalty_weight": weight}, fit_fields


def _denoising_space(hp):
    options, fit_fields = _deep_conv_space(hp)
    return options, {**fit_fields, "noise": f"gaussian:{hp.Float('noise', 0.1, 0.7, step=0.1):.1f}"}


def _conv_space(hp):
    return {"filters": (hp.Choice("filters_0", (16, 32, 64)),),
            "latent_dim": hp.Choice("latent_dim", (32, 64, 128, 256))}, {}


def _deep_conv_space(hp):
    filters = (hp.Choice("filters_0", (16, 32, 64)), hp.Choice("filters_1", (32, 64, 128)))
    return {"filters": filters, "latent_dim": hp.Choice("latent_dim", (32, 64, 128, 256))}, {}


# family -> hp -> (model options, FitConfig fields): the hyperparameters a search may set.
SEARCH_SPACES = {
    "shallow": _shallow_space,
    "deep": _dense_space,
    "contractive": _contractive_space,
    "denoising": _denoising_space,
    "conv": _conv_space,
    "deep-conv": _deep_conv_space,
}


def describe_space(model):
    """The search space of ``model`` as one line, as ``tfae tune --help`` prints it.

    Examples:
        >>> describe_space("conv")
        'filters_0 in {16, 32, 64}; latent_dim in {32, 64, 128, 256}'
    """
    hp = keras_tuner.HyperParameters()
    SEARCH_SPACES[model](hp)
    parts = []
    for parameter in hp.space:
        config = parameter.get_config()
        if "values" in config:
            parts.append(f"{parameter.name} in {{{', '.join(map(str, config['values']))}}}")
        else:
            scale = f", {config['sampling']}" if config.get("sampling") not in (None, "linear") else ""
            parts.append(f"{parameter.name} in [{config['min_value']:g}, {config['max_value']:g}{scale}]")
    return "; ".join(parts)


@dataclasses.dataclass
class TuneConfig:
    """A search: which family, which tuner, how long; saved as the search's ``tune.json``.

    Attributes:
        model: a family in ``SEARCH_SPACES``.
        tuner: ``hyperband``, ``random`` or ``bayesian``.
        max_trials: trials for ``random`` and ``bayesian``; hyperband sizes its own brackets.
        epochs: epochs per trial (hyperband's largest budget).
        objective: ``val_loss`` or ``probe``.
        dataset, data_dir, limit, batch_size, learning_rate, loss, seed: as in ``FitConfig``.

    Examples:
        >>> TuneConfig(model="deep", tuner="random").resolved().max_trials
        10
    """

    model: str = "deep"
    tuner: str = "hyperband"
    max_trials: int | None = None
    epochs: int = 10
    objective: str = "val_loss"
    dataset: str = "mnist"
    data_dir: str | None = None
    limit: int | None = None
    batch_size: int = 256
    learning_rate: float = 1e-3
    loss: str = "mse"
    seed: int = 0

    def resolved(self):
        """Checks every field; fills in ``max_trials``; returns a new config."""
        if self.model not in SEARCH_SPACES:
            get_family(self.model)  # an unknown name gets the registry's error
            raise TfaeError(f"model {self.model!r} cannot be tuned; choose one of "
                            f"{', '.join(SEARCH_SPACES)}")
        if self.tuner not in TUNERS:
            raise TfaeError(f"--tuner must be one of {', '.join(TUNERS)}, got {self.tuner!r}")
        if self.objective not in OBJECTIVES:
            raise TfaeError(f"--objective must be one of {', '.join(OBJECTIVES)}, "
                            f"got {self.objective!r}")
        if self.tuner == "hyperband" and self.max_trials is not None:
            raise TfaeError("--max-trials does not apply to hyperband, which sizes its brackets "
                            "from --epochs; use --tuner random or bayesian")
        max_trials = self.max_trials if self.max_trials is not None else 10
        if self.tuner != "hyperband" and max_trials < 1:
            raise TfaeError(f"--max-trials must be positive, got {max_trials}")
        if self.tuner == "hyperband" and self.epochs < 2:
            raise TfaeError("hyperband needs --epochs 2 or more; use --tuner random for one epoch")
        fit_config = self.fit_config({}, {}, self.epochs)
        fit_config.resolved()  # the shared fields get fit's checks and messages
        return dataclasses.replace(
            self, max_trials=None if self.tuner == "hyperband" else max_trials)

    def fit_config(self, model_options, fit_fields, epochs):
        """The ``FitConfig`` that retrains a trial with these options from scratch."""
        return FitConfig(model=self.model, model_options=model_options, dataset=self.dataset,
                         data_dir=self.data_dir, epochs=epochs, batch_size=self.batch_size,
                         learning_rate=self.learning_rate, loss=self.loss, limit=self.limit,
                         seed=self.seed, **fit_fields)


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
    images, labels = split.take(count).batch(count).get_single_element()
    return images.numpy().astype(np.float32) / 255.0, labels.numpy()


class FamilyHyperModel(keras_tuner.HyperModel):
    """Builds a family's model from a trial's hyperparameters and trains it on a data set.

    Examples:
        >>> hypermodel = FamilyHyperModel(TuneConfig(model="conv"), splits)  # doctest: +SKIP
        >>> model = hypermodel.build(keras_tuner.HyperParameters())  # doctest: +SKIP
    """

    def __init__(self, config, splits):
        super().__init__(name=config.model)
        self.config = config
        self.splits = splits
        self._probe = ProbeCallback(splits.train, splits.validation) \
            if config.objective == "probe" else None

    def options(self, hp):
        """The trial's model options and ``FitConfig`` fields."""
        return SEARCH_SPACES[self.config.model](hp)

    def build(self, hp):
        model_options, _ = self.options(hp)
        model = build_model(self.config.model, self.splits.image_shape, **model_options)
        model.compile(optimizer=keras.optimizers.Adam(self.config.learning_rate),
                      loss=LOSSES[self.config.loss], **execution_options(self.config.model))
        return model

    def fit(self, hp, model, *args, callbacks=(), **kwargs):
        model_options, fit_fields = self.options(hp)
        # FitConfig merges the family's default noise, as it does for `tfae fit`.
        noise = self.config.fit_config(model_options, fit_fields, None).resolved().noise
        corruption = parse_corruption(noise) if noise else None
        train = data.pipeline(self.splits.train, self.config.batch_size, shuffle=True,
                              seed=self.config.seed, corruption=corruption)
        validation = data.pipeline(self.splits.validation, self.config.batch_size,
                                   seed=self.config.seed + 1, corruption=corruption,
                                   fresh_corruption=False)
        # First, so that the tuner's own callbacks (best-epoch checkpoint, oracle) see val_probe.
        callbacks = ([self._probe] if self._probe else []) + list(callbacks)
        return model.fit(train, validation_data=validation, callbacks=callbacks, shuffle=False,
                         **kwargs)


@dataclasses.dataclass
class TuneResult:
    """A finished search: the best trials (best first), the winner's config and its export.

    Examples:
        >>> result = tune(TuneConfig(model="conv", tuner="random"), "tuning/conv")  # doctest: +SKIP
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
        >>> tune(TuneConfig(model="shallow", tuner="random", max_trials=3, epochs=2),
        ...      "tuning/shallow")  # doctest: +SKIP
    """
    config = config.resolved()
    role = _distributed_role(distributed)
    tune_dir = pathlib.Path(tune_dir)
    splits = data.load(config.dataset, config.data_dir, config.limit)
    claim_folder(tune_dir, tune_dir / "tune.json", dataclasses.asdict(config), "search")
    keras.utils.set_random_seed(config.seed)
    tuner = make_tuner(config, FamilyHyperModel(config, splits), tune_dir)
    tuner.search(epochs=config.epochs, verbose=verbose)
    if role == "worker":
        return None

    trials = tuner.oracle.get_best_trials(5)
    if not trials:
        raise TfaeError(f"the search in {tune_dir} finished no trial")
    best = [_trial_summary(tuner, trial, config) for trial in trials]
    write_json(tune_dir / "best.json", best)
    config_path = tune_dir / "config.json"
    write_json(config_path, best[0]["config"])
    export_path = _export_best(tuner, best[0], tune_dir,
                               export_dir or pathlib.Path("saved_models") / config.model) \
        if export else None
    return TuneResult(tune_dir, best, config_path, export_path)


def _export_best(tuner, winner, tune_dir, export_dir):
    """Exports the winner, unless a rerun of the finished search finds it exported already."""
    record_path = tune_dir / "export.json"
    if record_path.exists():
        record = read_json(record_path)
        if record["trial"] == winner["trial"] and (pathlib.Path(record["path"]) / "saved_model.pb").is_file():
            return pathlib.Path(record["path"])
    # get_best_models restores each trial's best-epoch checkpoint, not its last epoch.
    export_path = export_saved_model(tuner.get_best_models(1)[0], export_dir)
    write_json(record_path, {"trial": winner["trial"], "path": str(export_path)})
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


def make_tuner(config, hypermodel, tune_dir):
    """The keras-tuner ``Tuner`` for ``config``, reloading a search already in ``tune_dir``.

    Examples:
        >>> config = TuneConfig(model="deep", tuner="random").resolved()
        >>> tuner = make_tuner(config, FamilyHyperModel(config, splits), "tuning/deep")  # doctest: +SKIP
        >>> tuner.search(epochs=2)  # doctest: +SKIP
    """
    common = dict(objective=OBJECTIVES[config.objective], seed=config.seed,
                  directory=str(tune_dir), project_name="search", overwrite=False)
    if config.tuner == "hyperband":
        return keras_tuner.Hyperband(hypermodel, max_epochs=config.epochs, **common)
    if config.tuner == "random":
        return keras_tuner.RandomSearch(hypermodel, max_trials=config.max_trials, **common)
    return keras_tuner.BayesianOptimization(hypermodel, max_trials=config.max_trials, **common)


def _trial_summary(tuner, trial, config):
    hp = trial.hyperparameters
    model_options, fit_fields = SEARCH_SPACES[config.model](hp.copy())
    epochs = trial.best_step + 1  # retraining stops where the exported weights came from
    fit_config = config.fit_config(model_options, fit_fields, epochs).resolved()
    return {"trial": trial.trial_id, "score": trial.score, "best_epoch": epochs,
            "hyperparameters": _used_values(hp, model_options),
            "config": json.loads(json.dumps(fit_config.to_dict()))}


def _used_values(hp, model_options):
    """The trial's hyperparameters, without layer sizes its depth leaves unused."""
    depth = len(model_options.get("hidden", ()))
    return {name: value for name, value in hp.values.items()
            if not (name.startswith("units_") and int(name.split("_")[1]) >= depth)}


def best_table(best):
    """Rows of the best trials for printing: rank, trial, score, best epoch, hyperparameters.

    Examples:
        >>> best_table([{"trial": "03", "score": 0.0123, "best_epoch": 2,
        ...              "hyperparameters": {"latent_dim": 64}}])
        [('1', '03', '0.0123', '2', 'latent_dim=64')]
    """
    return [(str(rank), entry["trial"], f"{entry['score']:.4g}", str(entry["best_epoch"]),
             ", ".join(f"{name}={value}" for name, value in entry["hyperparameters"].items()))
            for rank, entry in enumerate(best, start=1)]
