"""``conv``: the study's shallow convolutional autoencoder, one convolution block.

A 3x3 convolution (ReLU, same area) and 2x2 max pooling, a dense code, transposed convolutions
back (``tfae.models.conv``). With ``--lambda`` above 0 it is also contractive, where
``--penalty projection`` is the affordable estimate.

Examples:
    >>> from tfae.families import build_model
    >>> model = build_model("conv", (28, 28, 1), filters=(16,), latent_dim=64)
    >>> model.encoder.output_shape, model.decoder.output_shape
    ((None, 64), (None, 28, 28, 1))
"""

import dataclasses

from tfae.errors import TfaeError
from tfae.families import Family, register
from tfae.options import (activation_option, latent_dim_option, option, penalty_option,
                          penalty_weight_option, projections_option)

FILTER_CHOICES = ((16, 32, 64), (32, 64, 128))
LATENT_CHOICES = (32, 64, 128, 256)


def filters_option(default):
    """Filters per convolution block.

    Examples:
        >>> filters_option((32,)).default
        (32,)
    """
    return option(default, "Filters per convolution block, such as 32,64.", minimum=1)


@dataclasses.dataclass
class ConvOptions:
    """The options of ``conv`` (and, with other defaults, of ``deep-conv`` and ``denoising``).

    Examples:
        >>> ConvOptions(filters=(16,)).latent_dim
        256
    """

    filters: tuple = filters_option((32,))
    latent_dim: int = latent_dim_option(256)
    activation: str = activation_option()
    penalty_weight: float = penalty_weight_option(0.0)
    penalty: str = penalty_option("projection")
    projections: int = projections_option()

    def check(self):
        if len(self.filters) != 1:
            raise TfaeError("model 'conv' has one block, so {filters} takes one count, got %s; "
                            "use model 'deep-conv' for more" % (self.filters,),
                            options=["filters"])


def conv_builder(name):
    """The builder of a convolutional family called ``name``.

    Examples:
        >>> conv_builder("conv")((28, 28, 1), ConvOptions(filters=(4,), latent_dim=8)).name
        'conv'
    """
    def build(image_shape, options):
        from tfae.models.conv import conv_autoencoder

        return conv_autoencoder(image_shape, options.filters, options.latent_dim,
                                options.activation, options.penalty_weight, options.penalty,
                                options.projections, name=name)
    return build


def search_space(hp):
    """The first block's filters and the latent size.

    Examples:
        >>> import keras_tuner
        >>> search_space(keras_tuner.HyperParameters())
        ({'filters': (16,), 'latent_dim': 32}, {})
    """
    return {"filters": (hp.Choice("filters_0", FILTER_CHOICES[0]),),
            "latent_dim": hp.Choice("latent_dim", LATENT_CHOICES)}, {}


register(Family("conv", "one convolution block and a dense code", ConvOptions,
                conv_builder("conv"), search_space=search_space))
