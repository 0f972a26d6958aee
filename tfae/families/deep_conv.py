"""``deep-conv``: the study's deep convolutional autoencoder, two or more convolution blocks.

Examples:
    >>> from tfae.families import build_model
    >>> [layer.filters for layer in build_model("deep-conv", (28, 28, 1)).encoder.layers
    ...  if hasattr(layer, "filters")]
    [32, 64]
"""

import dataclasses

from tfae.errors import TfaeError
from tfae.families import Family, register
from tfae.families.conv import (FILTER_CHOICES, LATENT_CHOICES, ConvOptions, conv_builder,
                                filters_option)
from tfae.options import latent_dim_option


@dataclasses.dataclass
class DeepConvOptions(ConvOptions):
    """The options of ``deep-conv`` and ``denoising``: ``conv``'s, with two blocks or more.

    Examples:
        >>> DeepConvOptions().filters
        (32, 64)
    """

    filters: tuple = filters_option((32, 64))
    latent_dim: int = latent_dim_option(64)

    def check(self):
        if len(self.filters) < 2:
            raise TfaeError("this model needs two or more blocks in {filters}, got %s; use "
                            "model 'conv' for one" % (self.filters,), options=["filters"])


def search_space(hp):
    """Each block's filters and the latent size.

    Examples:
        >>> import keras_tuner
        >>> search_space(keras_tuner.HyperParameters())
        ({'filters': (16, 32), 'latent_dim': 32}, {})
    """
    filters = tuple(hp.Choice(f"filters_{index}", choices)
                    for index, choices in enumerate(FILTER_CHOICES))
    return {"filters": filters, "latent_dim": hp.Choice("latent_dim", LATENT_CHOICES)}, {}


register(Family("deep-conv", "two or more convolution blocks and a dense code", DeepConvOptions,
                conv_builder("deep-conv"), search_space=search_space))
