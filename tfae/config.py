"""The settings of a training run (``FitConfig``) and of a search (``TuneConfig``), and what they
resolve to (``RunSpec``).

The configs are dataclasses of ``tfae.options.option`` fields: each setting is declared once,
with its type, default, check and help, and the command line derives its flags from them. A
config is what a run folder saves as ``config.json``. ``resolve(config)`` checks it, fills in the
family's defaults and returns a frozen ``RunSpec``: the resolved config beside the family, its
options and the parsed corruption, so that nothing downstream parses them again.
``FitConfig.merged`` lays settings over a config (a ``--config`` file under the command line's
flags). Nothing here imports TensorFlow.

Examples:
    >>> from tfae.config import FitConfig, resolve
    >>> spec = resolve(FitConfig(model="denoising"))
    >>> spec.config.epochs, spec.config.noise, spec.corruption.kind, spec.options.filters
    (20, 'gaussian:0.5', 'gaussian', (32, 64))
"""

import dataclasses
import json
import logging
import re

from tfae.corruptions import noise_help, parse_corruption
from tfae.errors import TfaeError
from tfae.families import Family, get_family, option_names, tunable_family_names
from tfae.files import read_json
from tfae.options import checked, option, specs

LOSSES = {"mse": "mse", "bce": "binary_crossentropy"}  # name -> Keras loss
RESIZE_MODES = ("stretch", "crop", "pad")  # as Keras' image_dataset_from_directory offers
SPLITS = ("all", "train", "validation", "test")  # the images encode, reconstruct, score take
TUNERS = ("hyperband", "random", "bayesian")
OBJECTIVES = ("val_loss", "probe")
DEFAULT_EPOCHS = 10  # for a family whose fit_defaults do not say otherwise
DEFAULT_LOSS = "mse"  # likewise
# Keras' dtype policies a run may train under: variables stay float32 in every one.
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
TRIAL_EPOCHS = 10  # per trial of a search that does not say


# The most pixels an image may have once resized (--image-size), and the default of the most an
# image file sent to tfae serve may declare (--max-image-pixels): far past any photograph a model
# trains on, and the memory a resize of one allocates (4 bytes a pixel, 160 MB) stays bounded.
MAX_IMAGE_PIXELS = 40_000_000


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
        resize: how ``image_size`` fits images of another aspect ratio: ``stretch``, ``crop``
            (their centre) or ``pad`` (with black), as Keras' ``image_dataset_from_directory``.
        test_fraction: the share of a folder or array without its own test split held out,
            by a fixed seed, for testing.
        limit: use the first ``limit`` images of each split only.
        memory_budget: decoded GB above which a folder is prepared into shards and streamed
            (``tfae.data.shards``), and a tfds data set streamed from tfds' own files;
            ``None``: a quarter of the machine's memory.
        prepared_dir: where such folders are prepared; ``None``: ``$TFAE_CACHE_DIR/prepared``, by
            default ``~/.cache/tfae/prepared``.
        classes: class names or indices, comma-separated, that training and validation keep
            (``tfae.data.classes``); ``None`` for every class.

    Examples:
        >>> DataConfig(dataset="photos/", image_size=[64, 64]).resolved().image_size
        (64, 64)
    """

    dataset: str = option("mnist", "A tensorflow-datasets name (mnist is bundled), a folder of "
                          "images (class subfolders give labels), or an .npz file (x, y, x_test, "
                          "y_test).", role="images")
    data_dir: str | None = option(None, "Folder of prepared tfds data (default: tfds' own).",
                                  role="location")
    manual_dir: str | None = option(
        None, "Folder of a tfds data set's original files, to build it offline (such as "
        "/usr/share/datasets/fashion-mnist for fashion_mnist).", role="location")
    image_size: tuple | None = option(None, "Resize every image to HEIGHT,WIDTH (needed when a "
                                      "folder's images differ in size).", minimum=1,
                                      role="images")
    channels: int | None = option(None, "Convert every image to 1 (grey) or 3 (colour) channels.",
                                  choices=(1, 3), role="images")
    resize: str = option("stretch", "How --image-size fits images of another aspect ratio: "
                         "stretch them, crop their centre, or pad them with black.",
                         choices=RESIZE_MODES, role="images")
    test_fraction: float = option(
        0.1, "Share of a folder or array without a test split held out (seeded) for testing.",
        above=0, role="images")
    limit: int | None = option(None, "Use the first N images of each split only.", minimum=1,
                               role="images")
    memory_budget: float | None = option(
        None, "A folder whose decoded images pass this many GB is prepared once into shards on "
        "disk and streamed, a tfds data set streamed from its own files (default: a quarter of "
        "this machine's memory).", above=0, role="holding")
    prepared_dir: str | None = option(None, "Where folders are prepared into shards (default: "
                                      "$TFAE_CACHE_DIR/prepared, or ~/.cache/tfae/prepared).",
                                      role="holding")
    classes: str | None = option(
        None, "Train and validate on these classes only, such as 3 or 3,5 or cat,dog (names or "
        "indices): the normal images of an anomaly detector. The test split keeps every class.",
        role="classes")

    def check(self):
        """Rules across fields (``tfae.options.checked`` calls it)."""
        if not self.dataset.strip():
            raise TfaeError("{dataset} is empty: give a tfds name, a folder or an .npz file",
                            options=["dataset"])
        if self.image_size is not None and len(self.image_size) != 2:
            raise TfaeError("{image_size} must be two sizes, HEIGHT,WIDTH, got %s"
                            % ",".join(map(str, self.image_size)), options=["image_size"])
        if self.image_size is not None and \
                self.image_size[0] * self.image_size[1] > MAX_IMAGE_PIXELS:
            raise TfaeError("{image_size} %s is %s pixels an image, over the limit of %s"
                            % ("x".join(map(str, self.image_size)),
                               f"{self.image_size[0] * self.image_size[1]:,}",
                               f"{MAX_IMAGE_PIXELS:,}"), options=["image_size"])
        if self.classes is not None and not all(part.strip() for part in self.classes.split(",")):
            raise TfaeError("{classes} must name classes, such as 3 or 3,5 or cat,dog, got %r"
                            % self.classes, options=["classes"])
        if not self.test_fraction < 1:
            raise TfaeError("{test_fraction} must be below 1, got %g" % self.test_fraction,
                            options=["test_fraction"])

    def resolved(self):
        """Checks every setting; returns a new config.

        Examples:
            >>> DataConfig(limit=0).resolved()
            Traceback (most recent call last):
            ...
            tfae.errors.TfaeError: limit must be positive, got 0
        """
        return checked(DataConfig, self.data_fields())

    @classmethod
    def named(cls, role):
        """The names of the settings of ``role``, in declaration order: ``images`` (which
        images, and how they are shaped and split: what makes measured images what they are),
        ``location`` (where tfds keeps them), ``holding`` (how a folder is held: in memory or
        in shards; never which images) or ``classes``.

        Examples:
            >>> DataConfig.named("holding")
            ('memory_budget', 'prepared_dir')
        """
        return tuple(spec.name for spec in specs(cls) if spec.role == role)

    def data_fields(self):
        """The ``DataConfig`` fields of this config, as a dict (``tfae.data.load``'s keywords).

        Examples:
            >>> DataConfig(dataset="digits.npz").data_fields()["dataset"]
            'digits.npz'
        """
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(DataConfig)}


# The data settings applying a model to images takes (tfae.apply, tfae encode ...): which data,
# where it is kept and how it is resized; the image size and channels are the model's own.
APPLIED_SETTINGS = ("dataset", *DataConfig.named("location"), "resize")


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
        loss: ``mse`` or ``bce`` (binary cross-entropy); ``None`` for the family's default
            (``mse`` unless it says).
        noise: a corruption spec (``gaussian:0.5``) that makes a denoising autoencoder;
            ``None`` for the family's default, ``"none"`` for clean inputs.
        seed: seeds weights, shuffling and corruption.
        early_stopping: stop after this many epochs without a better ``val_loss``.
        precision: Keras' dtype policy, ``PRECISIONS``: ``mixed_float16`` (loss scaling
            included) or ``mixed_bfloat16`` compute in 16 bits where a GPU or CPU does so
            faster; codes, outputs, losses and penalties stay float32.

    Examples:
        >>> config = resolve(FitConfig(model="deep")).config
        >>> config.model_options["hidden"], config.epochs, config.noise
        ((1000, 1000, 500), 20, 'occlusion:50%')
    """

    model: str = option("deep", "Family of autoencoder.")
    model_options: dict = dataclasses.field(default_factory=dict)
    epochs: int | None = option(None, "Epochs to train (default: the family's, 10 or 20).",
                                minimum=1)
    batch_size: int = option(256, "Images per batch and replica; the global batch is this "
                             "times the replicas of --strategy.", minimum=1)
    learning_rate: float = option(1e-3, "Adam's learning rate.", above=0)
    loss: str | None = option(None, "Reconstruction loss: mse, or bce (binary cross-entropy) "
                              "(default: the family's, mse unless it says).",
                              choices=tuple(LOSSES))
    noise: str | None = option(None, noise_help())
    seed: int = option(0, "Seed for weights, shuffling and noise.", minimum=0)
    early_stopping: int | None = option(
        None, "Stop after this many epochs without a better validation loss.", minimum=1)
    precision: str = option("float32", "Keras' dtype policy: float32, or mixed_float16 / "
                            "mixed_bfloat16 (16-bit compute, float32 weights, codes and "
                            "outputs).", choices=PRECISIONS)

    def merged(self, overrides):
        """This config with ``overrides`` laid over it, checked: the rule by which the command
        line's flags win over a ``--config`` file, and the way to vary a config in Python.

        ``overrides`` holds ``FitConfig`` fields and family options by name (``latent_dim``),
        or in ``model_options``; they join this config's options, but a new ``model`` starts
        from no options (the old ones were its own model's). ``None`` values are ignored.

        Raises:
            TfaeError: naming an unknown setting or a bad value.

        Examples:
            >>> config = FitConfig(model="deep", model_options={"hidden": (64,)})
            >>> config.merged({"latent_dim": 8, "epochs": 2}).model_options
            {'hidden': (64,), 'latent_dim': 8}
            >>> config.merged({"model": "conv"}).model_options
            {}
        """
        given = {key: value for key, value in overrides.items() if value is not None}
        family_options = {key: given.pop(key) for key in option_names() & set(given)}
        kept = self.model_options if given.get("model", self.model) == self.model else {}
        family_options = {**kept, **given.pop("model_options", {}), **family_options}
        return self.from_dict({**self.to_dict(), **given, "model_options": family_options})

    def to_dict(self):
        """The config as JSON-ready values."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

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
        """Reads a ``config.json`` written by ``fit`` or ``tfae tune``, every setting checked.

        Raises:
            TfaeError: naming the file and the key that is wrong (not a command-line flag: the
                value came from the file).
        """
        values = read_json(path)
        if not isinstance(values, dict):
            raise TfaeError(f"config {path} is not a JSON object")
        try:
            config = cls.from_dict(values)
            resolve(config)
        except TfaeError as error:
            keys = re.sub(r"--([a-z][a-z0-9-]*)", lambda flag: flag[1].replace("-", "_"),
                          str(error))
            raise TfaeError(f"config {path}: {keys}") from None
        return config


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """A run's settings resolved: the checked config with the family's defaults filled in, and
    the family, options and corruption it names (``resolve`` makes one).

    Attributes:
        config: the ``FitConfig``, every setting set (``epochs``, ``noise`` and every model
            option): what the run folder records.
        family: the ``tfae.families.Family`` of ``config.model``.
        options: the family's options dataclass, made from ``config.model_options``.
        corruption: the parsed ``config.noise`` (``tfae.corruptions``), ``None`` for clean
            inputs.

    Examples:
        >>> spec = resolve(FitConfig(model="shallow", noise="none"))
        >>> spec.family.name, spec.options.latent_dim, spec.corruption
        ('shallow', 2048, None)
    """

    config: FitConfig
    family: Family
    options: object
    corruption: object = None


def resolve(config):
    """Checks every setting of a ``FitConfig``, fills in its family's defaults and parses its noise.

    Returns:
        A ``RunSpec``.

    Raises:
        TfaeError: naming the setting or option that is wrong.

    Examples:
        >>> resolve(FitConfig(model="conv", model_options={"filters": (8,)})).options.filters
        (8,)
        >>> resolve(FitConfig(model="randomized", noise="gaussian:-1"))
        Traceback (most recent call last):
        ...
        tfae.errors.TfaeError: noise spec 'gaussian:-1': the standard deviation must be > 0
    """
    config = FitConfig.from_dict(config.to_dict())  # each field checked against its declaration
    family = get_family(config.model)
    options = family.checked_options(config.model_options)
    fields = {"epochs": DEFAULT_EPOCHS, "loss": DEFAULT_LOSS, **family.fit_defaults,
              **{key: value for key, value in config.to_dict().items() if value is not None},
              "model_options": dataclasses.asdict(options)}
    if family.trains_in_epochs is not None and not family.trains_in_epochs(options):
        if config.epochs not in (None, 1):  # a warning: a report's --epochs is for every family
            logging.getLogger("tfae").warning(
                f"epochs={config.epochs} does not apply to {config.model} with these options: "
                "it is solved once, in closed form")
        fields["epochs"] = 1  # one pass over the data makes the run
    config = dataclasses.replace(config, **fields)
    if config.precision != "float32" and family.trainer is not None:
        raise TfaeError("{precision} %s: model %r is trained by its own solver, in float32; "
                        "leave {precision} out" % (config.precision, config.model),
                        options=["precision"])
    corruption = parse_corruption(config.noise) if config.noise else None
    if corruption is not None and not family.takes_noise:
        raise TfaeError("{noise} does not apply to model %r" % config.model, options=["noise"])
    return RunSpec(config, family, options, corruption)


@dataclasses.dataclass
class TuneConfig:
    """A search: the ``FitConfig`` every trial starts from, and which tuner, how long, scored how.

    Saved as the search's ``tune.json``, flat (``to_dict``). ``fit.epochs`` is per trial
    (hyperband's largest budget), ``TRIAL_EPOCHS`` unless given.

    Attributes:
        fit: the trials' settings; the search space sets some of its model options.
        tuner: ``hyperband``, ``random`` or ``bayesian``.
        max_trials: trials for ``random`` and ``bayesian``; hyperband sizes its own brackets.
        objective: ``val_loss``, or ``probe`` (a linear probe's accuracy on validation codes).

    Examples:
        >>> config = TuneConfig(FitConfig(model="deep"), tuner="random").resolved()
        >>> config.max_trials, config.fit.epochs
        (10, 10)
    """

    fit: FitConfig = dataclasses.field(default_factory=FitConfig)
    tuner: str = option("hyperband", "keras-tuner's search.", choices=TUNERS)
    max_trials: int | None = option(
        None, "Trials for random and bayesian (default: 10); hyperband sizes its own.", minimum=1)
    objective: str = option("val_loss", "Validation loss, or probe: the accuracy of a linear "
                            "probe on the validation codes.", choices=OBJECTIVES)

    def resolved(self):
        """Checks every setting; fills in ``max_trials`` and the trials' epochs.

        Raises:
            TfaeError: naming the setting that is wrong, or a family without a search space.
        """
        config = self.from_dict({**self.to_dict(), "epochs": self.fit.epochs or TRIAL_EPOCHS})
        family = resolve(config.fit).family
        if family.search_space is None:
            raise TfaeError(f"model {family.name!r} cannot be tuned; choose one of "
                            f"{', '.join(tunable_family_names())}")
        if config.tuner == "hyperband":
            if config.max_trials is not None:
                raise TfaeError("{max_trials} does not apply to hyperband, which sizes its "
                                "brackets from {epochs}; use tuner random or bayesian",
                                options=["max_trials", "epochs"])
            if config.fit.epochs < 2:
                raise TfaeError("hyperband needs {epochs} 2 or more; use tuner random for one "
                                "epoch", options=["epochs"])
        elif config.max_trials is None:
            config.max_trials = 10
        return config

    def trial(self, hp, epochs=None):
        """The ``RunSpec`` that trains the trial at keras-tuner's ``hp`` from scratch: the
        search's settings, and the model options and fit fields its family's space sets.

        Args:
            hp: a keras-tuner ``HyperParameters`` (declared on, as the search space does).
            epochs: the trial's epochs; default the search's.
        """
        model_options, fit_fields = get_family(self.fit.model).search_space(hp)
        return resolve(self.fit.merged({"model_options": model_options, "epochs": epochs,
                                        **fit_fields}))

    def to_dict(self):
        """The search's settings as one flat JSON-ready dict, the trials' settings among them.

        Examples:
            >>> TuneConfig(FitConfig(model="conv")).to_dict()["model"]
            'conv'
        """
        return {**self.fit.to_dict(),
                **{field.name: getattr(self, field.name) for field in dataclasses.fields(self)
                   if field.name != "fit"}}

    @classmethod
    def from_dict(cls, values):
        """The inverse of ``to_dict``: the search's fields, the others the trials' ``FitConfig``.

        Examples:
            >>> TuneConfig.from_dict({"model": "conv", "tuner": "random"}).fit.model
            'conv'
        """
        own = {field.name for field in dataclasses.fields(cls)} - {"fit"}
        config = checked(cls, {key: value for key, value in values.items() if key in own})
        config.fit = FitConfig.from_dict({key: value for key, value in values.items()
                                          if key not in own})
        return config
