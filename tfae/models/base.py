"""The base every autoencoder family shares: an encoder and a decoder, both functional Keras models.

``Autoencoder`` reconstructs with ``decoder(encoder(images))`` and exposes both halves, also on a
model loaded back from a ``.keras`` file. Families build their encoder and decoder with the
functional API and hand them to it, or to an ``OwnLossAutoencoder`` whose steps minimise a loss
of its own (the contractive and variational ones).

Examples:
    >>> import keras
    >>> from tfae.models.base import Autoencoder
    >>> inputs = keras.Input((4,))
    >>> encoder = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    >>> codes = keras.Input((2,))
    >>> decoder = keras.Model(codes, keras.layers.Dense(4)(codes))
    >>> autoencoder = Autoencoder(encoder, decoder)
    >>> autoencoder.encoder.output_shape
    (None, 2)
"""

import contextlib

import keras
import tensorflow as tf

from tfae.compat import require
from tfae.distribute import reducible_logs

# Overridden below: Keras' first-batch build under a strategy.
require(keras.Model, ("_maybe_symbolic_build",), "keras")


@contextlib.contextmanager
def dtype_policy(name):
    """Keras' global dtype policy set to ``name`` (``float32``, ``mixed_float16``,
    ``mixed_bfloat16``) while a model is built inside the block, and put back after: its layers
    keep the policy they were built with, in their configs too, so a saved model loads with it.

    Examples:
        >>> with dtype_policy("mixed_bfloat16"):
        ...     layer = keras.layers.Dense(2)
        >>> layer.compute_dtype, layer.variable_dtype, keras.config.dtype_policy().name
        ('bfloat16', 'float32', 'float32')
    """
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


@keras.saving.register_keras_serializable(package="tfae")
class Autoencoder(keras.Model):
    """An autoencoder made of a functional ``encoder`` and ``decoder``.

    Args:
        encoder: a Keras model mapping images to latent codes.
        decoder: a Keras model mapping latent codes back to images.
        **kwargs: passed to ``keras.Model`` (``name``, ...).

    Examples:
        >>> from tfae.models.dense import dense_decoder, dense_encoder
        >>> autoencoder = Autoencoder(dense_encoder((28, 28, 1), (), 8, "relu", "relu"),
        ...                           dense_decoder((28, 28, 1), (), 8, "relu"))
        >>> autoencoder.latent_dim, autoencoder.image_shape
        (8, (28, 28, 1))
    """

    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        # Both halves arrive built, so the whole is too: export and fit need no first call.
        self.build(encoder.input_shape)

    def build(self, input_shape):
        self.built = True

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Under a strategy Keras builds metrics from the first batch, averaged over replicas by
        # strategy.reduce, which MultiWorkerMirroredStrategy cannot do for an (inputs, targets)
        # pair (Keras 3.15, TF 2.21); a batch of zeros of the same shapes builds the same.
        if iterator is not None and data_batch is None:
            images = keras.ops.zeros((1, *self.image_shape))
            iterator, data_batch = None, (images, images)
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def train_step(self, data):
        return reducible_logs(super().train_step(data))

    def test_step(self, data):
        return reducible_logs(super().test_step(data))

    def call(self, images, training=None):
        return self.decoder(self.encoder(images, training=training), training=training)

    @property
    def image_shape(self):
        """The shape of one input image, ``(height, width, channels)``."""
        return tuple(self.encoder.input_shape[1:])

    @property
    def latent_dim(self):
        """The number of latent units."""
        return int(self.encoder.output_shape[-1])

    def get_config(self):
        return {
            "name": self.name,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
        }

    @classmethod
    def from_config(cls, config):
        # The parts (encoder, decoder, a posterior) are serialised Keras objects; the rest plain.
        return cls(**{key: keras.saving.deserialize_keras_object(value)
                      if isinstance(value, dict) and "class_name" in value else value
                      for key, value in config.items()})


class OwnLossAutoencoder(Autoencoder):
    """An ``Autoencoder`` whose steps minimise a loss of its own and log it with its terms.

    A subclass makes its loss trackers in ``build`` (a built model takes no new state), lists
    them in ``metrics``, the total first, and defines ``mean_losses(data, training)``: the
    batch's means in the same order.

    Examples:
        >>> from tfae.families import build_model
        >>> model = build_model("vae", (8, 8, 1), hidden=(4,), latent_dim=2)
        >>> isinstance(model, OwnLossAutoencoder), [tracker.name for tracker in model.metrics]
        (True, ['loss', 'reconstruction', 'kl'])
    """

    def train_step(self, data):
        with tf.GradientTape() as tape:
            losses = self.mean_losses(data, training=True)
            # Gradients are summed over replicas: each contributes its share of the mean,
            # scaled up under mixed_float16 (a LossScaleOptimizer) as Keras' own step does.
            replica_share = self.optimizer.scale_loss(
                losses[0] / tf.distribute.get_strategy().num_replicas_in_sync)
        gradients = tape.gradient(replica_share, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        return self._logged(losses)

    def test_step(self, data):
        return self._logged(self.mean_losses(data, training=False))

    def _logged(self, losses):
        for tracker, value in zip(self.metrics, losses):
            tracker.update_state(value)
        return reducible_logs({tracker.name: tracker.result() for tracker in self.metrics})
