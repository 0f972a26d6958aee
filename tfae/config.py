"""The settings of a training run (``FitConfig``) and of a search (``TuneConfig``).

Both are dataclasses of ``tfae.options.option`` fields: each setting is declared once, with its
type, default, check and help, and the command line derives its flags from them. A config is
what a run folder saves as ``config.json``; ``resolved()`` checks it and fills in the family's
defaults, and the resolved config carries the family, its options and the parsed corruption, so
that nothing downstream parses them again. Nothing here imports TensorFlow.

Examples:
    >>> from tfae.config import FitConfig
    >>> config = FitConfig(model="denoising").resolved()
    >>> config.epochs, config.noise, config.corruption.kind, config.options.filters
    (20, 'gaussian:0.5', 'gaussian', (32, 64))
"""

import dataclasses
import json

from tfae.errors import TfaeError
from tfae.families import get_family, tunable_family_names
from tfae.options import checked, option

LOSSES = {"mse": "mse", "bce": "binary_crossentropy"}  # name -> Keras loss
STRATEGIES = ("default", "mirrored", "multi-worker")
TUNERS = ("hyperband", "random", "bayesian")
OBJECTIVES = ("val_loss", "probe")
DEFAULT_EPOCHS = 10  # for a family whose fit_defaults do not say otherwise


@dataclasses.dataclass
class DataConfig:
    """Where a run's images come from and how they are shaped: the data settings of ``fit``,
    ``evaluate``, ``plot``, ``tune`` and ``report`` (``tfae.data.load`` reads them).

    Attributes:
        dataset: a tensorflow-datasets name (``mnist`` ships with tfae), a folder of image
            files (class subfolders give labels; ``train/`` and ``test/`` give the splits) or
            an ``.npz`` file (``x``, optional ``y``, ``x_test``, ``y_test``).
        data_dir: a folder of prepared tfds data, or ``None`` for tfds' default.
        manual_dir: a folder holding a tfds data set's original files, which tfds then builds
            from offline (as tfae does for MNIST).
        image_size: ``(height, width)`` to resize every image to; needed for a folder of
            images of several sizes.
        channels: 1 (grey) or 3 (colour) to convert every image to.
        test_fraction: the share of a folder or array without its own test split held out,
            by a fixed seed, for testing.
        limit: use the first ``limit`` images of each split only.

    Examples:
        >>> DataConfig(dataset="photos/", image_size=[64, 64]).resolved().image_size
        (64, 64)
    """

    dataset: str = option("mnist", "A tensorflow-datasets name (mnist is bundled), a folder of "
                          "images (class subfolders give labels), or an .npz file (x, y, x_test, "
                          "y_test).")
    data_dir: str | None = option(None, "Folder of prepared tfds data (default: tfds' own).")
    manual_dir: str | None = option(
        None, "Folder of a tfds data set's original files, to build it offline (such as "
        "/usr/share/datasets/fashion-mnist for fashion_mnist).")
    image_size: tuple | None = option(None, "Resize every image to HEIGHT,WIDTH (needed when a "
                                      "folder's images differ in size).", minimum=1)
    channels: int | None = option(None, "Convert every image to 1 (grey) or 3 (colour) channels.",
                                  choices=(1, 3))
    test_fraction: float = option(
        0.1, "Share of a folder or array without a test split held out (seeded) for testing.",
        above=0)
    limit: int | None = option(None, "Use the first N images of each split only.", minimum=1)

    def check(self):
        """Rules across fields (``tfae.options.checked`` calls it)."""
        if not self.dataset.strip():
            raise TfaeError("{dataset} is empty: give a tfds name, a folder or an .npz file",
                            options=["dataset"])
        if self.image_size is not None and len(self.image_size) != 2:
            raise TfaeError("{image_size} must be two sizes, HEIGHT,WIDTH, got %s"
                            % ",".join(map(str, self.image_size)), options=["image_size"])
        if not self.test_fraction < 1:
            raise TfaeError("{test_fraction} must be below 1, got %g" % self.test_fraction,
                            options=["test_fraction"])

    def resolved(self):
        """Checks every setting; returns a new config."""
        return checked(DataConfig, self.data_fields())

    def data_fields(self):
        """The ``DataConfig`` fields of this config, as a dict (``tfae.data.load``'s keywords).

        Examples:
            >>> DataConfig(dataset="digits.npz").data_fields()["dataset"]
            'digits.npz'
        """
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(DataConfig)}


@dataclasses.dataclass
class FitConfig(DataConfig):
    """Everything that defines a training run; saved as the run's ``config.json``.

    Attributes:
        model: a registered family name (``tfae.families.family_names()``).
        model_options: the family's options (``latent_dim``, ``hidden``, ...); missing ones
            take the family's defaults.
        dataset, data_dir, manual_dir, image_size, channels, test_fraction, limit: where the
            images come from (``DataConfig``).
        epochs: epochs to train; ``None`` for the family's default (10 unless it says).
        batch_size, learning_rate: the usual; Adam is the optimizer.
        loss: ``mse`` or ``bce`` (binary cross-entropy).
        noise: a corruption spec (``gaussian:0.5``) that makes a denoising autoencoder;
            ``None`` for the family's default, ``"none"`` for clean inputs.
        seed: seeds weights, shuffling and corruption.
        early_stopping: stop after this many epochs without a better ``val_loss``.

    A resolved config (``resolved()``) also has ``family`` (the ``Family``), ``options`` (its
    options dataclass) and ``corruption`` (the parsed ``noise``, or ``None``).

    Examples:
        >>> config = FitConfig(model="deep").resolved()
        >>> config.model_options["hidden"], config.epochs, config.corruption.spec
        ((1000, 1000, 500), 20, 'occlusion:50%')
    """

    model: str = option("deep", "Family of autoencoder.")
    model_options: dict = dataclasses.field(default_factory=dict)
    epochs: int | None = option(None, "Epochs to train (default: the family's, 10 or 20).",
                                minimum=1)
    batch_size: int = option(256, "Images per batch and replica; the global batch is this "
                             "times the replicas of --strategy.", minimum=1)
    learning_rate: float = option(1e-3, "Adam's learning rate.", above=0)
    loss: str = option("mse", "Reconstruction loss: mse, or bce (binary cross-entropy).",
                       choices=tuple(LOSSES))
    noise: str | None = option(
        None, "Corrupt inputs: gaussian:STD, salt-pepper:F, masking:F, occlusion:SIZE[@ROW,COL] "
        "(or occlusion:P% of the shorter side), grayscale (colour images to grey: trains a "
        "colouriser), several joined by + (gaussian:0.5+occlusion:14), or none (default: the "
        "family's).")
    seed: int = option(0, "Seed for weights, shuffling and noise.")
    early_stopping: int | None = option(
        None, "Stop after this many epochs without a better validation loss.", minimum=1)

    def resolved(self):
        """Checks every setting and fills in the family's defaults; returns a new config.

        Raises:
            TfaeError: naming the setting or option that is wrong.
        """
        config = self.from_dict(self.to_dict())  # each field checked against its declaration
        family = get_family(config.model)
        fields = {"epochs": DEFAULT_EPOCHS, **family.fit_defaults,
                  **{key: value for key, value in config.to_dict().items() if value is not None}}
        options = family.checked_options(config.model_options)
        fields["model_options"] = dataclasses.asdict(options)
        resolved = dataclasses.replace(config, **fields)
        # Here, not at the top: the corruptions are TensorFlow ops, and the CLI reads this
        # module's declarations before it needs TensorFlow.
        from tfae.corruptions import parse_corruption

        corruption = parse_corruption(resolved.noise) if resolved.noise else None
        if corruption is not None and not family.takes_noise:
            raise TfaeError("{noise} does not apply to model %r" % config.model, options=["noise"])
        resolved.family, resolved.options, resolved.corruption = family, options, corruption
        return resolved

    def to_dict(self):
        """The config as JSON-ready values (the resolved attributes left out)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    def fit_fields(self):
        """The ``FitConfig`` fields of this config, for a config of another kind."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(FitConfig)}

    @classmethod
    def from_dict(cls, values):
        """The inverse of ``to_dict``; refuses unknown keys and wrong types by name.

        Examples:
            >>> FitConfig.from_dict({"model": "shallow", "epochs": 2}).epochs
            2
        """
        config = checked(cls, values, unknown=lambda names: TfaeError(
            f"unknown config keys: {', '.join(names)}"))
        if not isinstance(config.model_options, dict):
            raise TfaeError("model_options must be a mapping of option names to values, got "
                            f"{json.dumps(config.model_options)}")
        return config

    @classmethod
    def from_json(cls, path):
        """Reads a ``config.json`` written by ``fit`` or ``tfae tune``."""
        from tfae.runs import read_json

        values = read_json(path)
        if not isinstance(values, dict):
            raise TfaeError(f"config {path} is not a JSON object")
        return cls.from_dict(values)


@dataclasses.dataclass
class TuneConfig(FitConfig):
    """A search: ``FitConfig``'s settings for every trial, and which tuner, how long, scored how.

    Saved as the search's ``tune.json``. ``epochs`` is per trial (hyperband's largest budget).

    Attributes:
        tuner: ``hyperband``, ``random`` or ``bayesian``.
        max_trials: trials for ``random`` and ``bayesian``; hyperband sizes its own brackets.
        objective: ``val_loss``, or ``probe`` (a linear probe's accuracy on validation codes).

    Examples:
        >>> TuneConfig(model="deep", tuner="random").resolved().max_trials
        10
    """

    epochs: int | None = option(10, "Epochs per trial (hyperband: the largest budget).",
                                minimum=1)
    tuner: str = option("hyperband", "keras-tuner's search.", choices=TUNERS)
    max_trials: int | None = option(
        None, "Trials for random and bayesian (default: 10); hyperband sizes its own.", minimum=1)
    objective: str = option("val_loss", "Validation loss, or probe: the accuracy of a linear "
                            "probe on the validation codes.", choices=OBJECTIVES)

    def resolved(self):
        """Checks every setting; fills in ``max_trials`` and the family's defaults."""
        config = super().resolved()
        if config.family.search_space is None:
            raise TfaeError(f"model {config.model!r} cannot be tuned; choose one of "
                            f"{', '.join(tunable_family_names())}")
        if config.tuner == "hyperband":
            if self.max_trials is not None:
                raise TfaeError("{max_trials} does not apply to hyperband, which sizes its "
                                "brackets from {epochs}; use tuner random or bayesian",
                                options=["max_trials", "epochs"])
            if config.epochs < 2:
                raise TfaeError("hyperband needs {epochs} 2 or more; use tuner random for one "
                                "epoch", options=["epochs"])
        elif config.max_trials is None:
            config.max_trials = 10
        return config

    def trial_config(self, hp, epochs=None):
        """The resolved ``FitConfig`` that trains the trial at keras-tuner's ``hp`` from scratch:
        the search's settings, and the model options and fit fields its family's space sets.

        Args:
            hp: a keras-tuner ``HyperParameters`` (declared on, as the search space does).
            epochs: the trial's epochs; default the search's.
        """
        model_options, fit_fields = self.family.search_space(hp)
        fields = {**self.fit_fields(), "model_options": {**self.model_options, **model_options},
                  "epochs": epochs or self.epochs, **fit_fields}
        return FitConfig(**fields).resolved()

