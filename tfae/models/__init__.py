"""The registry of autoencoder families: one name, one builder.

A builder is a function ``build(image_shape, **options)`` returning an ``Autoencoder``; its
keyword arguments and their defaults are the family's options, so an option a family does not
take is refused by name.

Example:
    >>> from tfae.models import build_model, family_names
    >>> "deep" in family_names()
    True
    >>> build_model("shallow", (28, 28, 1), latent_dim=16).latent_dim
    16
"""

import dataclasses
import inspect

import keras

from tfae.errors import TfaeError
from tfae.models.base import Autoencoder
from tfae.models.dense import build_deep, build_shallow

# Arguments that builders take for composing families, not options a user sets.
_INTERNAL_ARGUMENTS = {"image_shape", "model_class", "name"}


@dataclasses.dataclass(frozen=True)
class Family:
    """A registered family of autoencoders.

    Attributes:
        name: the ``--model`` name.
        build: ``build(image_shape, **options) -> Autoencoder``.
        summary: one line on what the family is for.
        fit_defaults: training settings the family changes, such as the denoising ``noise``.
    """

    name: str
    build: callable
    summary: str
    fit_defaults: dict = dataclasses.field(default_factory=dict)

    @property
    def defaults(self):
        """The family's options and their default values."""
        parameters = inspect.signature(self.build).parameters.values()
        return {parameter.name: parameter.default for parameter in parameters
                if parameter.name not in _INTERNAL_ARGUMENTS}


FAMILIES = {}


def register(family):
    """Adds a family to the registry, so ``tfae fit --model NAME`` can build it.

    Example:
        >>> register(Family("tiny", lambda image_shape, latent_dim=2: None, "for a doctest"))
        >>> del FAMILIES["tiny"]
    """
    FAMILIES[family.name] = family


def family_names():
    """The registered ``--model`` names, in registration order."""
    return list(FAMILIES)


def get_family(name):
    """Returns the registered family called ``name``.

    Example:
        >>> get_family("deep").defaults["hidden"]
        (500, 200, 100)
    """
    if name not in FAMILIES:
        raise TfaeError(f"unknown model {name!r}; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def resolve_options(name, options):
    """Merges ``options`` over the family's defaults, refusing options the family does not take.

    Example:
        >>> resolve_options("shallow", {"latent_dim": 32})
        {'latent_dim': 32, 'activation': 'relu'}
    """
    defaults = get_family(name).defaults
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        flags = ", ".join("--" + option.replace("_", "-") for option in unknown)
        takes = ", ".join("--" + option.replace("_", "-") for option in defaults)
        raise TfaeError(f"{flags} does not apply to model {name!r} (it takes {takes})")
    resolved = {**defaults, **options}
    for option in ("latent_dim",):
        if option in resolved and resolved[option] < 1:
            raise TfaeError(f"--{option.replace('_', '-')} must be positive, got {resolved[option]}")
    if any(units < 1 for units in resolved.get("hidden", ())):
        raise TfaeError(f"--hidden sizes must be positive, got {resolved['hidden']}")
    return resolved


def build_model(name, image_shape, **options):
    """Builds the family ``name`` for images of ``image_shape`` with ``options``.

    Example:
        >>> build_model("deep", (28, 28, 1), hidden=(32,), latent_dim=4).encoder.output_shape
        (None, 4)
    """
    return get_family(name).build(tuple(image_shape), **resolve_options(name, options))


def load_model(path):
    """Loads a model saved by tfae (``model.keras``) with Keras' ``safe_mode``.

    Example:
        >>> model = load_model("runs/deep/model.keras")  # doctest: +SKIP
    """
    return keras.models.load_model(path, safe_mode=True)


register(Family("shallow", build_shallow,
                "one hidden layer: the baseline, and the closed-form contractive penalty"))
register(Family("deep", build_deep, "the study's 784-500-200-100-10 stack, mirrored"))

__all__ = ["Autoencoder", "Family", "FAMILIES", "build_model", "family_names", "get_family",
           "load_model", "register", "resolve_options"]
