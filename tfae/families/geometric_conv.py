"""``geometric-conv``: ``deep-conv``'s autoencoder and ``geometric``'s classifier of how its
images are turned, for finding the odd ones out of a class.

The same method as ``geometric`` (``tfae.models.geometric``: GEOM's self-supervision beside
reconstruction, and a ``combined`` score of the reconstruction error, the code distance and the
classifier's surprise), on ``deep-conv``'s two convolution blocks and 64-number code: ``tfae fit
--model geometric-conv --classes 6``. Trained 20 epochs, as ``geometric``, for the classifier's
sake, on clean inputs, as ``deep-conv``. Which to pick on which data: docs/results/anomaly.md.

Examples:
    >>> from tfae.families import build_model
    >>> model = build_model("geometric-conv", (28, 28, 1), filters=(4, 8), latent_dim=8)
    >>> type(model).__name__, model.latent_dim, model.transformer.output_shape
    ('GeometricAutoencoder', 8, (None, 8))
"""

import dataclasses

from tfae.errors import TfaeError
from tfae.families import Family, register
from tfae.families.conv import filters_option
from tfae.families.deep_conv import search_space
from tfae.options import activation_option, latent_dim_option


@dataclasses.dataclass
class GeometricConvOptions:
    """The options of ``geometric-conv``: ``deep-conv``'s, without its contractive penalty.

    Examples:
        >>> GeometricConvOptions().filters, GeometricConvOptions().latent_dim
        ((32, 64), 64)
    """

    filters: tuple = filters_option((32, 64))
    latent_dim: int = latent_dim_option(64)
    activation: str = activation_option()

    def check(self):
        if len(self.filters) < 2:
            raise TfaeError("model 'geometric-conv' needs two or more blocks in {filters}, got "
                            "%s" % (self.filters,), options=["filters"])


def build(image_shape, options):
    """``deep-conv``'s layers and a ``transformation_classifier`` in a
    ``GeometricAutoencoder``.

    Examples:
        >>> build((28, 28, 1), GeometricConvOptions(filters=(4, 8))).decoder.output_shape
        (None, 28, 28, 1)
    """
    from tfae.models.conv import conv_autoencoder
    from tfae.models.geometric import GeometricAutoencoder, transformation_classifier

    return conv_autoencoder(
        image_shape, options.filters, options.latent_dim, options.activation,
        name="geometric-conv", model_class=GeometricAutoencoder,
        transformer=transformation_classifier(image_shape))


register(Family(
    "geometric-conv", "deep-conv's autoencoder and a classifier of its images' turns: one-class "
    "anomaly detection", GeometricConvOptions, build,
    fit_defaults={"noise": "none", "epochs": 20}, search_space=search_space))
