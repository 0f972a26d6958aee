"""``vae``: the variational autoencoder, and the beta-VAE for ``--beta`` other than 1.

An encoder gives each image a Gaussian posterior (a mean and a log-variance per code number),
training draws codes from it and minimises reconstruction + beta * KL in nats
(``tfae.models.variational``). The encoder is dense (``--hidden``) unless ``--filters`` names
convolution blocks, as ``conv`` and ``deep-conv`` build them. Its codes are the posterior means;
``tfae sample`` decodes codes drawn from the prior into new images.

Examples:
    >>> from tfae.families import build_model
    >>> model = build_model("vae", (28, 28, 1), latent_dim=2)
    >>> model.encoder.output_shape, model.beta
    ((None, 2), 1.0)
    >>> [layer.filters for layer in build_model("vae", (28, 28, 1), filters=(8, 16)).encoder.layers
    ...  if hasattr(layer, "filters")]
    [8, 16]
"""

import dataclasses

from tfae.families import XLA_EXECUTION, Family, register
from tfae.families.conv import filters_option
from tfae.options import activation_option, hidden_option, latent_dim_option, option

LATENT_CHOICES = (2, 8, 16, 32, 64)
FILTER_CHOICES = ((), (32, 64))


@dataclasses.dataclass
class VaeOptions:
    """The options of ``vae``.

    Examples:
        >>> VaeOptions().hidden, VaeOptions().filters, VaeOptions().latent_dim
        ((512, 256), (), 32)
    """

    hidden: tuple = hidden_option((512, 256))
    filters: tuple = filters_option(())
    latent_dim: int = latent_dim_option(32)
    activation: str = activation_option()
    beta: float = option(1.0, "Weight of the KL term: 1 for the VAE, others for a beta-VAE.",
                         above=0)


def build(image_shape, options):
    """A dense encoder (or convolution blocks, for ``filters``) with a mean and a log-variance
    head, and its mirror as the decoder.

    Examples:
        >>> build((28, 28, 1), VaeOptions(hidden=(16,), latent_dim=3)).posterior.output_shape
        [(None, 3), (None, 3)]
    """
    from tfae.models.conv import conv_decoder, conv_encoder
    from tfae.models.dense import dense_decoder, dense_encoder
    from tfae.models.variational import VariationalAutoencoder, with_log_variance

    if options.filters:
        encoder = conv_encoder(image_shape, options.filters, options.latent_dim,
                               options.activation)
        decoder = conv_decoder(image_shape, options.filters, options.latent_dim,
                               options.activation)
    else:
        encoder = dense_encoder(image_shape, options.hidden, options.latent_dim,
                                options.activation, "linear")
        decoder = dense_decoder(image_shape, options.hidden, options.latent_dim,
                                options.activation)
    return VariationalAutoencoder(with_log_variance(encoder), decoder, beta=options.beta,
                                  name="vae")


def search_space(hp):
    """The latent size, dense or convolutional, and beta on a log scale.

    Examples:
        >>> import keras_tuner
        >>> search_space(keras_tuner.HyperParameters())
        ({'latent_dim': 2, 'filters': (), 'beta': 0.25}, {})
    """
    filters = FILTER_CHOICES[hp.Choice("convolutional", [0, 1])]
    return {"latent_dim": hp.Choice("latent_dim", LATENT_CHOICES), "filters": filters,
            "beta": hp.Float("beta", 0.25, 4.0, sampling="log")}, {}


register(Family(
    "vae", "a Gaussian posterior per image, trained on the ELBO: codes to sample new images from",
    VaeOptions, build, fit_defaults={"noise": "none", "loss": "bce", "epochs": 20},
    execution=XLA_EXECUTION, search_space=search_space, has_prior=True))
