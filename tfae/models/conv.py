"""Convolutional encoders and decoders, the study's architecture, for ``conv`` and ``deep-conv``.

Each encoder block is a 3x3 convolution with ReLU that keeps the area (``same`` padding) with a
growing number of filters, then 2x2 max pooling that halves it; a dense latent layer sits in the
centre; the decoder mirrors the blocks with stride-2 transposed convolutions of decreasing filters
back to the input shape, ending in a sigmoid convolution to the input's channels.
Any image whose sides are divisible by ``2 ** len(filters)`` works.

With ``penalty_weight > 0`` the model is a ``ContractiveAutoencoder``: the Jacobian penalty
applies to convolutional encoders too (``projection`` is the affordable method there).

Examples:
    >>> model = conv_autoencoder((28, 28, 1), (32,), 64, "relu")
    >>> model.encoder.output_shape, model.decoder.output_shape
    ((None, 64), (None, 28, 28, 1))
"""


import keras

from tfae.errors import TfaeError
from tfae.models.base import Autoencoder
from tfae.models.contractive import ContractiveAutoencoder


def conv_encoder(image_shape, filters, latent_dim, activation):
    """Convolution and pooling blocks, then a dense layer to ``latent_dim`` codes.

    Examples:
        >>> conv_encoder((28, 28, 1), (8, 16), 10, "relu").output_shape
        (None, 10)
    """
    images = keras.Input(image_shape, name="images")
    x = images
    for index, count in enumerate(filters):
        x = keras.layers.Conv2D(count, 3, padding="same", activation=activation,
                                name=f"encoder_conv_{index}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"encoder_pool_{index}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    codes = keras.layers.Dense(latent_dim, name="codes")(x)
    return keras.Model(images, codes, name="encoder")


def conv_decoder(image_shape, filters, latent_dim, activation):
    """Mirrors ``conv_encoder`` with stride-2 transposed convolutions of decreasing filters.

    Examples:
        >>> conv_decoder((28, 28, 1), (8, 16), 10, "relu").output_shape
        (None, 28, 28, 1)
    """
    scale = 2 ** len(filters)
    height, width, channels = image_shape[0] // scale, image_shape[1] // scale, image_shape[2]
    codes = keras.Input((latent_dim,), name="codes")
    x = keras.layers.Dense(height * width * filters[-1], activation=activation, name="expand")(codes)
    x = keras.layers.Reshape((height, width, filters[-1]), name="feature_maps")(x)
    for index, count in reversed(list(enumerate(filters))):
        x = keras.layers.Conv2DTranspose(count, 3, strides=2, padding="same",
                                         activation=activation, name=f"decoder_deconv_{index}")(x)
    images = keras.layers.Conv2D(channels, 3, padding="same", activation="sigmoid",
                                 name="images")(x)
    return keras.Model(codes, images, name="decoder")


def conv_autoencoder(image_shape, filters, latent_dim, activation, penalty_weight=0.0,
                     penalty="projection", projections=1, name="conv"):
    """Convolution blocks ``filters``, a dense code and their mirror; contractive if
    ``penalty_weight`` is above 0.

    Raises:
        TfaeError: for images whose sides the pooling blocks cannot halve evenly.

    Examples:
        >>> conv_autoencoder((28, 28, 1), (8, 16), 10, "relu").decoder.output_shape
        (None, 28, 28, 1)
    """
    scale = 2 ** len(filters)
    if image_shape[0] % scale or image_shape[1] % scale:
        raise TfaeError(f"{len(filters)} pooling block(s) need image sides divisible by {scale}, "
                        f"got {image_shape[0]}x{image_shape[1]}")
    encoder = conv_encoder(image_shape, filters, latent_dim, activation)
    decoder = conv_decoder(image_shape, filters, latent_dim, activation)
    if penalty_weight:
        return ContractiveAutoencoder(encoder, decoder, penalty_weight, penalty, projections,
                                      name=name)
    return Autoencoder(encoder, decoder, name=name)
