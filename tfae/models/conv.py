"""Convolutional encoders and decoders, the study's architecture, for ``conv`` and ``deep-conv``.

Each encoder block is a 3x3 convolution with ReLU that keeps the area (``same`` padding) with a
growing number of filters, then 2x2 max pooling that halves it; a dense latent layer sits in the
centre; the decoder mirrors the blocks with stride-2 transposed convolutions of decreasing filters
back to the input shape, ending in a sigmoid convolution to the input's channels.
Images of any size work: sides that the pooling blocks cannot halve evenly are zero-padded inside
the encoder (``ZeroPadding2D``) and the decoder crops its output back (``Cropping2D``), so a
30x30 or 75x100 image comes back at its own size.

With ``penalty_weight > 0`` the model is a ``ContractiveAutoencoder``: the Jacobian penalty
applies to convolutional encoders too (``projection`` is the affordable method there).

Examples:
    >>> model = conv_autoencoder((28, 28, 1), (32,), 64, "relu")
    >>> model.encoder.output_shape, model.decoder.output_shape
    ((None, 64), (None, 28, 28, 1))
    >>> conv_autoencoder((30, 45, 3), (8, 16), 10, "relu").decoder.output_shape
    (None, 30, 45, 3)
"""

import math

import keras

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
    padding = [(extra // 2, extra - extra // 2) for extra in _padding(image_shape, filters)]
    if any(extra for pair in padding for extra in pair):
        x = keras.layers.ZeroPadding2D(padding, name="pad")(x)
    for index, count in enumerate(filters):
        x = keras.layers.Conv2D(count, 3, padding="same", activation=activation,
                                name=f"encoder_conv_{index}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"encoder_pool_{index}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    codes = keras.layers.Dense(latent_dim, dtype="float32", name="codes")(x)  # as dense_encoder's
    return keras.Model(images, codes, name="encoder")


def conv_decoder(image_shape, filters, latent_dim, activation):
    """Mirrors ``conv_encoder`` with stride-2 transposed convolutions of decreasing filters.

    Examples:
        >>> conv_decoder((28, 28, 1), (8, 16), 10, "relu").output_shape
        (None, 28, 28, 1)
    """
    scale = 2 ** len(filters)
    extra_rows, extra_columns = _padding(image_shape, filters)
    height, width = (image_shape[0] + extra_rows) // scale, (image_shape[1] + extra_columns) // scale
    codes = keras.Input((latent_dim,), name="codes")
    x = keras.layers.Dense(height * width * filters[-1], activation=activation, name="expand")(codes)
    x = keras.layers.Reshape((height, width, filters[-1]), name="feature_maps")(x)
    for index, count in reversed(list(enumerate(filters))):
        x = keras.layers.Conv2DTranspose(count, 3, strides=2, padding="same",
                                         activation=activation, name=f"decoder_deconv_{index}")(x)
    if extra_rows or extra_columns:
        x = keras.layers.Cropping2D(((extra_rows // 2, extra_rows - extra_rows // 2),
                                     (extra_columns // 2, extra_columns - extra_columns // 2)),
                                    name="crop")(x)
    images = keras.layers.Conv2D(image_shape[2], 3, padding="same", activation="sigmoid",
                                 dtype="float32", name="images")(x)
    return keras.Model(codes, images, name="decoder")


def _padding(image_shape, filters):
    """Rows and columns to add so that every pooling block halves the image evenly."""
    scale = 2 ** len(filters)
    return tuple(math.ceil(side / scale) * scale - side for side in image_shape[:2])


def conv_autoencoder(image_shape, filters, latent_dim, activation, penalty_weight=0.0,
                     penalty="projection", projections=1, name="conv", model_class=Autoencoder,
                     **model_options):
    """Convolution blocks ``filters``, a dense code and their mirror; contractive if
    ``penalty_weight`` is above 0, else a ``model_class`` (``Autoencoder`` or a subclass, given
    ``model_options`` too).

    Examples:
        >>> conv_autoencoder((28, 28, 1), (8, 16), 10, "relu").decoder.output_shape
        (None, 28, 28, 1)
    """
    encoder = conv_encoder(image_shape, filters, latent_dim, activation)
    decoder = conv_decoder(image_shape, filters, latent_dim, activation)
    if penalty_weight:
        return ContractiveAutoencoder(encoder, decoder, penalty_weight, penalty, projections,
                                      name=name)
    return model_class(encoder, decoder, name=name, **model_options)
