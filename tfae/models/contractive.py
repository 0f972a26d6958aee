"""Contractive autoencoders (Rifai et al., ICML 2011): reconstruction plus a Jacobian penalty.

The penalty is the squared Frobenius norm of the encoder's Jacobian at each input,
``||J_f(x)||_F^2 = sum_ij (d f_i / d x_j)^2``, averaged over the batch and weighted by
``penalty_weight`` (``--lambda``). ``contractive_penalty`` computes it four ways:

- ``exact``: in closed form when the encoder is one dense layer with a sigmoid, tanh, ReLU or
  linear activation, ``sum_j f'(z_j)^2 ||W_j||^2``; otherwise the full Jacobian
  (``GradientTape.batch_jacobian``);
- ``projection``: an unbiased estimate, the mean over ``projections`` draws v ~ N(0, I) of
  ``||v^T J||^2``, one backward pass per draw instead of one per latent unit;
- ``weights``: the study's own term, the Frobenius norm of the product of the encoder's weight
  matrices, the same for every input; kept only to reproduce the study's numbers;
- ``jacobian``: always the full Jacobian, to check the others or measure what they save.

Examples:
    >>> import numpy as np
    >>> from tfae.families import build_model
    >>> model = build_model("shallow", (28, 28, 1), latent_dim=8, activation="sigmoid")
    >>> images = np.random.rand(4, 28, 28, 1).astype("float32")
    >>> contractive_penalty(model.encoder, images).shape
    TensorShape([4])
"""

import functools

import keras
import tensorflow as tf

from tfae.errors import TfaeError
from tfae.models.base import OwnLossAutoencoder
from tfae.options import PENALTIES

# f'(z) written with the activation's output h, as in Rifai et al., so that the codes of the
# forward pass give the penalty without computing the layer again.
_DERIVATIVES = {
    "sigmoid": lambda h: h * (1.0 - h),
    "tanh": lambda h: 1.0 - tf.square(h),
    "relu": lambda h: tf.cast(h > 0, h.dtype),
    "linear": tf.ones_like,
}


def contractive_penalty(encoder, images, method="exact", projections=1, seed=None, codes=None):
    """The squared Frobenius norm of ``encoder``'s Jacobian at each image.

    Args:
        encoder: a Keras model from images to codes (``model.encoder``).
        images: a float batch shaped like the encoder's input.
        method: ``exact``, ``projection``, ``weights`` or ``jacobian`` (see the module docstring).
        projections: draws for ``projection``.
        seed: a stateless seed (shape ``[2]``) for ``projection``'s draws; ``None`` draws afresh.
        codes: ``encoder(images)`` when the caller has them already; the closed form then
            costs no second pass through the layer.

    Returns:
        A float tensor of shape ``(batch,)``.

    Examples:
        >>> from tfae.families import build_model
        >>> encoder = build_model("deep", (8, 8, 1), hidden=(16,), latent_dim=3).encoder
        >>> contractive_penalty(encoder, tf.random.uniform((2, 8, 8, 1)), "projection", 4).shape
        TensorShape([2])
    """
    images = tf.convert_to_tensor(images, tf.float32)
    if method == "exact":
        dense = single_dense_layer(encoder)
        if dense is not None:
            return _closed_form_penalty(dense, encoder(images, training=True)
                                        if codes is None else codes)
        return jacobian_squared_norm(functools.partial(encoder, training=True), images)
    if method == "projection":
        return _projection_penalty(encoder, images, projections, seed)
    if method == "weights":
        return tf.fill(tf.shape(images)[:1], _weights_penalty(encoder))
    if method == "jacobian":
        return jacobian_squared_norm(functools.partial(encoder, training=True), images)
    raise TfaeError(f"penalty must be one of {', '.join(PENALTIES)}, got {method!r}")


def single_dense_layer(encoder):
    """The encoder's only weighted layer, if it is its last, a Dense layer with a closed-form derivative.

    Examples:
        >>> from tfae.families import build_model
        >>> single_dense_layer(build_model("shallow", (28, 28, 1), activation="tanh").encoder).name
        'codes'
    """
    weighted = [layer for layer in encoder.layers if layer.weights]
    if (len(weighted) != 1 or weighted[0] is not encoder.layers[-1]
            or not isinstance(weighted[0], keras.layers.Dense)):
        return None
    if keras.activations.serialize(weighted[0].activation) not in _DERIVATIVES:
        return None
    return weighted[0]


def _closed_form_penalty(dense, codes):
    derivative = _DERIVATIVES[keras.activations.serialize(dense.activation)](codes)
    column_norms = tf.reduce_sum(tf.square(dense.kernel), axis=0)  # ||W_j||^2 for each unit j
    return tf.linalg.matvec(tf.square(derivative), column_norms)


# The Jacobian's rows (code numbers) taken at once: ``batch_jacobian`` holds a copy of every
# activation for each, so its memory grows as code size x pixels. Rows whose pixels add up to
# about this many numbers at a time keep MNIST's whole (a 256-number code, 784 pixels) and take a
# 96x96x3 image's 9 at a time (a conv run's evaluation took 5.8 GB at 96x96x3 with every row).
JACOBIAN_ROW_NUMBERS = 1 << 18


def jacobian_squared_norm(encode, images):
    """||J_f(x)||_F^2 for each image, from the full Jacobian of any callable ``encode``, taken
    a few rows at a time (``JACOBIAN_ROW_NUMBERS``): exact, in memory linear in the pixels.

    Examples:
        >>> jacobian_squared_norm(lambda x: 2 * x, tf.ones((2, 3))).numpy().tolist()
        [12.0, 12.0]
    """
    images = tf.convert_to_tensor(images)
    pixels = max(1, images.shape[1:].num_elements() or 1)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(images)
        codes = tf.reshape(encode(images), (tf.shape(images)[0], -1))
        width = codes.shape[1] or 1
        step = max(1, JACOBIAN_ROW_NUMBERS // pixels)
        rows = [codes[:, start:start + step] for start in range(0, width, step)] \
            if codes.shape[1] else [codes]
    squared = 0.0
    for part in rows:
        jacobian = tape.batch_jacobian(part, images)
        squared += tf.reduce_sum(tf.square(tf.reshape(jacobian, (tf.shape(images)[0], -1))),
                                 axis=1)
    del tape
    return squared


def _projection_penalty(encoder, images, projections, seed):
    batch = tf.shape(images)[0]
    # One forward and one backward pass over the batch repeated `projections` times.
    repeated = tf.repeat(images, projections, axis=0)
    with tf.GradientTape() as tape:
        tape.watch(repeated)
        codes = encoder(repeated, training=True)
    if seed is None:
        directions = tf.random.normal(tf.shape(codes))
    else:
        directions = tf.random.stateless_normal(tf.shape(codes), seed)
    vector_jacobian = tape.gradient(codes, repeated, output_gradients=directions)
    squared = tf.reduce_sum(tf.square(tf.reshape(vector_jacobian, (batch, projections, -1))), axis=2)
    return tf.reduce_mean(squared, axis=1)


def _weights_penalty(encoder):
    kernels = [layer.kernel for layer in encoder.layers if isinstance(layer, keras.layers.Dense)]
    if len(kernels) != len([layer for layer in encoder.layers if layer.weights]):
        raise TfaeError("{penalty} weights (the study's term) needs an encoder of dense layers only",
                        options=["penalty"])
    product = kernels[0]
    for kernel in kernels[1:]:
        product = tf.matmul(product, kernel)
    return tf.norm(product)


@keras.saving.register_keras_serializable(package="tfae")
class ContractiveAutoencoder(OwnLossAutoencoder):
    """An ``Autoencoder`` whose ``train_step`` adds the contractive penalty.

    Tracks ``loss`` (the total), ``reconstruction`` and ``penalty`` in training and validation.

    Args:
        encoder, decoder: as for ``Autoencoder``.
        penalty_weight: lambda, the weight of the penalty.
        penalty: ``exact``, ``projection``, ``weights`` or ``jacobian``.
        projections: draws for ``projection``.

    Examples:
        >>> from tfae.families import build_model
        >>> model = build_model("contractive", (28, 28, 1), latent_dim=16, penalty_weight=0.1)
        >>> model.compile(optimizer="adam", loss="mse")
    """

    def __init__(self, encoder, decoder, penalty_weight=1e-4, penalty="exact", projections=1,
                 **kwargs):
        super().__init__(encoder, decoder, **kwargs)
        if penalty == "weights":
            _weights_penalty(encoder)  # refuses a convolutional encoder now, not mid-training
        self.penalty_weight = penalty_weight
        self.penalty = penalty
        self.projections = projections

    def build(self, input_shape):
        # Called by Autoencoder.__init__; state must be created here, before the model is built.
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.penalty_tracker = keras.metrics.Mean(name="penalty")
        super().build(input_shape)

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.penalty_tracker]

    @property
    def compiles_well_with_xla(self):
        """False where the penalty takes the full Jacobian (``jacobian``, or ``exact`` without a
        closed form). Workaround (TensorFlow 2.21): XLA compiles that step, a backward pass per
        code number inside the step's own, into a program that constant-folds the layers'
        matrices at every call, hundreds of times slower than without it (docs/defaults.md).

        Examples:
            >>> from tfae.families import build_model
            >>> build_model("contractive", (28, 28, 1), hidden=(32,)).compiles_well_with_xla
            False
        """
        return not (self.penalty == "jacobian" or (
            self.penalty == "exact" and single_dense_layer(self.encoder) is None))

    def mean_losses(self, data, training):
        """The batch's mean loss, reconstruction and penalty (``OwnLossAutoencoder``)."""
        inputs, targets = data
        codes = self.encoder(inputs, training=training)
        reconstructions = self.decoder(codes, training=training)
        # Under a tf.distribute strategy Keras divides the compiled loss by the replicas, so
        # that summing gradients over replicas averages them; undo it for the reported values.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        reconstruction = replicas * self.compute_loss(
            x=inputs, y=targets, y_pred=reconstructions, training=training)
        penalty = tf.reduce_mean(contractive_penalty(
            self.encoder, inputs, self.penalty, self.projections, codes=codes))
        return reconstruction + self.penalty_weight * penalty, reconstruction, penalty

    def get_config(self):
        return {**super().get_config(), "penalty_weight": self.penalty_weight,
                "penalty": self.penalty, "projections": self.projections}
