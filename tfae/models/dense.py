"""Fully connected encoders and decoders, for ``shallow``, ``deep`` and ``contractive``.

Examples:
    >>> from tfae.models.dense import dense_autoencoder
    >>> autoencoder = dense_autoencoder((28, 28, 1), (500, 200, 100), 10, "relu", "linear", "deep")
    >>> [layer.units for layer in autoencoder.encoder.layers if hasattr(layer, "units")]
    [500, 200, 100, 10]
"""

import math

import keras

from tfae.models.base import Autoencoder


def dense_encoder(image_shape, hidden, latent_dim, activation, latent_activation):
    """Flattens images and maps them through dense layers ``hidden`` to ``latent_dim`` codes.

    Examples:
        >>> dense_encoder((28, 28, 1), (64,), 8, "relu", None).output_shape
        (None, 8)
    """
    images = keras.Input(image_shape, name="images")
    x = keras.layers.Flatten(name="flatten")(images)
    for index, units in enumerate(hidden):
        x = keras.layers.Dense(units, activation=activation, name=f"encoder_dense_{index}")(x)
    # float32 under a mixed policy too (tfae.models.base.dtype_policy): codes, pixels and what
    # is computed from them (losses, penalties, probes) keep full precision.
    codes = keras.layers.Dense(latent_dim, activation=latent_activation, dtype="float32",
                               name="codes")(x)
    return keras.Model(images, codes, name="encoder")


def dense_decoder(image_shape, hidden, latent_dim, activation):
    """Mirrors ``dense_encoder``: codes through ``reversed(hidden)`` to sigmoid pixels.

    Examples:
        >>> dense_decoder((28, 28, 1), (64,), 8, "relu").output_shape
        (None, 28, 28, 1)
    """
    codes = keras.Input((latent_dim,), name="codes")
    x = codes
    for index, units in reversed(list(enumerate(hidden))):
        x = keras.layers.Dense(units, activation=activation, name=f"decoder_dense_{index}")(x)
    x = keras.layers.Dense(math.prod(image_shape), activation="sigmoid", dtype="float32",
                           name="pixels")(x)
    images = keras.layers.Reshape(image_shape, dtype="float32", name="images")(x)
    return keras.Model(codes, images, name="decoder")


def dense_autoencoder(image_shape, hidden, latent_dim, activation, latent_activation, name,
                      model_class=Autoencoder, **model_options):
    """A dense encoder (``dense_encoder``) and its mirror (``dense_decoder``) in ``model_class``.

    Args:
        image_shape: ``(height, width, channels)``.
        hidden: hidden layer sizes, encoder side.
        latent_dim: the code's size.
        activation, latent_activation: of the hidden layers and of the code.
        name: the model's name.
        model_class: ``Autoencoder`` or a subclass, given ``model_options`` too.

    Examples:
        >>> dense_autoencoder((28, 28, 1), (64, 32), 4, "relu", "linear", "deep").latent_dim
        4
    """
    return model_class(
        dense_encoder(image_shape, hidden, latent_dim, activation, latent_activation),
        dense_decoder(image_shape, hidden, latent_dim, activation),
        name=name, **model_options)
