"""``shallow``: one wide hidden layer, images -> codes -> images; the baseline.

By default it trains 20 epochs on occluded inputs (``occlusion:50%``, 14x14 on MNIST); the study's shallow
autoencoder is ``latent_dim=128`` on clean inputs (``--latent-dim 128 --noise none``). How the
defaults were chosen: docs/defaults.md.

Examples:
    >>> from tfae.families import build_model
    >>> model = build_model("shallow", (28, 28, 1), latent_dim=32)
    >>> model.encoder.output_shape, model.decoder.output_shape
    ((None, 32), (None, 28, 28, 1))
"""

import dataclasses

from tfae.families import XLA_EXECUTION, Family, register
from tfae.options import activation_option, latent_dim_option

LATENT_CHOICES = (32, 64, 128, 256, 512, 1024)


@dataclasses.dataclass
class ShallowOptions:
    """The options of ``shallow``.

    Examples:
        >>> ShallowOptions(latent_dim=128)
        ShallowOptions(latent_dim=128, activation='relu')
    """

    latent_dim: int = latent_dim_option(2048)
    activation: str = activation_option()


def build(image_shape, options):
    """The encoder is one dense layer to the codes; the decoder one dense layer back.

    Examples:
        >>> build((28, 28, 1), ShallowOptions(latent_dim=8)).encoder.output_shape
        (None, 8)
    """
    from tfae.models.dense import dense_autoencoder

    return dense_autoencoder(image_shape, (), options.latent_dim, options.activation,
                             options.activation, name="shallow")


def search_space(hp):
    """The latent size.

    Examples:
        >>> import keras_tuner
        >>> search_space(keras_tuner.HyperParameters())
        ({'latent_dim': 32}, {})
    """
    return {"latent_dim": hp.Choice("latent_dim", LATENT_CHOICES)}, {}


register(Family(
    "shallow", "one wide hidden layer, trained with occluded inputs: the baseline",
    ShallowOptions, build, fit_defaults={"noise": "occlusion:50%", "epochs": 20},
    execution=XLA_EXECUTION, search_space=search_space))
