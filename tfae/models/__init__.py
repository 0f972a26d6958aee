"""The registry of autoencoder families: one name, one builder.

A builder is a function ``build(image_shape, **options)`` returning an ``Autoencoder``; its
keyword arguments and their defaults are the family's options, so an option a family does not
take is refused by name.

Examples:
    >>> from tfae.models import build_model, family_names
    >>> "deep" in family_names()
    True
    >>> build_model("shallow", (28, 28, 1), latent_dim=16).latent_dim
    16
"""

import dataclasses
import functools
import inspect

import keras

from tfae.errors import TfaeError
from tfae.models.base import Autoencoder
from tfae.models.contractive import build_contractive
from tfae.models.conv import build_conv, build_deep_conv
from tfae.models.dense import build_deep, build_shallow
from tfae.models.randomized import build_randomized, train_randomized

# Arguments that builders take for composing families, not options a user sets.
_INTERNAL_ARGUMENTS = {"image_shape", "model_class", "name"}
# Options whose command-line flag is not their name with dashes.
_FLAGS = {"penalty_weight": "--lambda"}


def flag(option):
    """The ``tfae fit`` flag that sets ``option``.

    Examples:
        >>> flag("latent_dim"), flag("penalty_weight")
        ('--latent-dim', '--lambda')
    """
    return _FLAGS.get(option, "--" + option.replace("_", "-"))


@dataclasses.dataclass(frozen=True)
class Family:
    """A registered family of autoencoders.

    Attributes:
        name: the ``--model`` name.
        build: ``build(image_shape, **options) -> Autoencoder``.
        summary: one line on what the family is for.
        fit_defaults: training settings the family changes, such as the denoising ``noise``.
        trainer: ``trainer(model, batches, config, verbose) -> history`` for a family trained
            otherwise than by ``Model.fit``; ``None`` for ``Model.fit``.
        trainer_options: the trainer's own options and their defaults.
        takes_noise: whether ``--noise`` applies (the randomized solver works on clean inputs).
        execution: ``Model.compile``'s ``jit_compile`` and ``steps_per_execution`` for the
            family where they beat Keras' choice (which leaves XLA off without a GPU); how a
            run trains, not what, so not part of its config.

    Examples:
        >>> family = Family("wide", functools.partial(build_shallow, latent_dim=1024),
        ...                 "one wide hidden layer")
        >>> family.defaults
        {'latent_dim': 1024, 'activation': 'relu'}
    """

    name: str
    build: callable
    summary: str
    fit_defaults: dict = dataclasses.field(default_factory=dict)
    trainer: callable = None
    trainer_options: dict = dataclasses.field(default_factory=dict)
    takes_noise: bool = True
    execution: dict = dataclasses.field(default_factory=dict)

    @property
    def build_options(self):
        """The builder's options and their default values."""
        parameters = inspect.signature(self.build).parameters.values()
        return {parameter.name: parameter.default for parameter in parameters
                if parameter.name not in _INTERNAL_ARGUMENTS}

    @property
    def defaults(self):
        """All the family's options (builder's and trainer's) and their default values."""
        return {**self.build_options, **self.trainer_options}


FAMILIES = {}


def register(family):
    """Adds a family to the registry, so ``tfae fit --model NAME`` can build it.

    Examples:
        >>> register(Family("tiny", lambda image_shape, latent_dim=2: None, "for a doctest"))
        >>> del FAMILIES["tiny"]
    """
    FAMILIES[family.name] = family


def family_names():
    """The registered ``--model`` names, in registration order.

    Examples:
        >>> family_names()[:2]
        ['shallow', 'deep']
    """
    return list(FAMILIES)


def get_family(name):
    """Returns the registered family called ``name``.

    Examples:
        >>> get_family("deep").defaults["hidden"]
        (1000, 1000, 500)
    """
    if name not in FAMILIES:
        raise TfaeError(f"unknown model {name!r}; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def resolve_options(name, options):
    """Merges ``options`` over the family's defaults, refusing options the family does not take.

    Examples:
        >>> resolve_options("shallow", {"latent_dim": 32})
        {'latent_dim': 32, 'activation': 'relu'}
    """
    defaults = get_family(name).defaults
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        flags = ", ".join(map(flag, unknown))
        takes = ", ".join(map(flag, defaults))
        raise TfaeError(f"{flags} does not apply to model {name!r} (it takes {takes})")
    resolved = {**defaults, **options}
    for option in ("latent_dim", "projections", "ridge_c"):
        if option in resolved and not resolved[option] > 0:
            raise TfaeError(f"{flag(option)} must be positive, got {resolved[option]}")
    for option in ("hidden", "filters"):
        if any(size < 1 for size in resolved.get(option, ())):
            raise TfaeError(f"--{option} sizes must be positive, got {resolved[option]}")
    return resolved


def build_model(name, image_shape, **options):
    """Builds the family ``name`` for images of ``image_shape`` with ``options``.

    Examples:
        >>> build_model("deep", (28, 28, 1), hidden=(32,), latent_dim=4).encoder.output_shape
        (None, 4)
    """
    family = get_family(name)
    options = resolve_options(name, options)
    return family.build(tuple(image_shape),
                        **{key: options[key] for key in family.build_options})


def load_model(path):
    """Loads a model saved by tfae (``model.keras``) with Keras' ``safe_mode``.

    Examples:
        >>> model = load_model("runs/deep/model.keras")  # doctest: +SKIP
    """
    return keras.models.load_model(path, safe_mode=True)


# XLA fuses the elementwise work and Adam's update of dense models; on CPU it trained them 1.1-1.2x
# faster and convolutions 1.6-2x slower (docs/performance.md), so only dense families take it.
_DENSE_EXECUTION = {"jit_compile": True, "steps_per_execution": 16}


register(Family("shallow", build_shallow,
                "one wide hidden layer, trained with occluded inputs: the baseline",
                fit_defaults={"noise": "occlusion:14", "epochs": 20},
                execution=_DENSE_EXECUTION))
register(Family("deep", build_deep,
                "a stack of dense layers, mirrored: 784-1000-1000-500-256, trained on occluded inputs",
                fit_defaults={"noise": "occlusion:14", "epochs": 20},
                execution=_DENSE_EXECUTION))
register(Family("contractive", build_contractive,
                "the Jacobian penalty: codes that move little when inputs move",
                fit_defaults={"epochs": 20}, execution=_DENSE_EXECUTION))
register(Family("denoising", functools.partial(build_deep_conv, name="denoising"),
                "deep-conv, trained to undo gaussian noise (0.5)",
                fit_defaults={"noise": "gaussian:0.5", "epochs": 20}))
register(Family("conv", build_conv, "one convolution block and a dense code"))
register(Family("deep-conv", build_deep_conv, "two or more convolution blocks and a dense code"))
register(Family("randomized", build_randomized,
                "layer-wise: random fixed encoders, decoders solved in closed form",
                trainer=train_randomized, trainer_options={"solver": "ridge", "ridge_c": 0.01},
                takes_noise=False))

__all__ = ["Autoencoder", "Family", "FAMILIES", "build_model", "family_names", "get_family",
           "load_model", "register", "resolve_options"]
