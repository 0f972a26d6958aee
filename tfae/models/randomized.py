"""The randomized autoencoder: a deep autoencoder trained layer by layer, with random encoders.

The study's algorithm, for each layer of the deep autoencoder (``hidden`` sizes):

1. make a shallow autoencoder whose latent size is the layer's size;
2. draw its encoder at random, orthogonal weights and a unit-norm bias, and keep it fixed;
3. train only its decoder to reconstruct the layer's input;
4. copy the decoder's kernel W_d into the matching layer of the deep decoder, and W_d transposed
   into the matching layer of the deep encoder;
5. feed the next layer this layer's encoded output.

Step 3 is a linear least-squares problem. ``solver="ridge"`` solves it in closed form,
``W_d = (H^T H + I / C)^-1 H^T X``, summing ``H^T H`` and ``H^T X`` over batches so memory is
bounded by the layer sizes, not the data set; ``solver="sgd"`` trains the decoder with Keras
(Adam, the encoder frozen) for ``epochs``. The result is an ordinary ``Autoencoder``.

Each W_d is solved for the codes of the *random* encoder, which step 4 then replaces by W_d
transposed: the study's decoder never saw the codes of the encoder it ends up with, and
reconstructs poorly. ``decoder="refit"`` (the default) therefore solves each decoder layer once
more, in closed form from the same sums, for the codes of the final encoder; the encoder stays the
study's. ``decoder="study"`` stops after the layer-wise pass, as the study does.

Given corrupted inputs (``(noisy, clean)`` batches, as ``tfae.data.pipeline`` makes with a
corruption), the codes are computed from the noisy inputs and every decoder is solved to give the
clean ones: a denoising ridge solution, layer by layer (a layer's clean target is the final
encoder's output on the clean images).

Examples:
    >>> from tfae import data
    >>> splits = data.load("mnist", limit=2000)
    >>> model = build_randomized((28, 28, 1), hidden=(256, 128), activation="relu")
    >>> history = train_layerwise(model, data.pipeline(splits.train, 500), verbose=0)
    >>> history["layer"], history["refit_mse"][0] < history["mse"][0]
    ([0, 1], True)
"""

import contextlib
import logging
import time

import keras
import numpy as np
import tensorflow as tf

from tfae.distribute import sum_across_workers, worker_shard
from tfae.errors import TfaeError
from tfae.models.base import Autoencoder

def build_randomized(image_shape, hidden, activation):
    """The deep autoencoder that ``train_layerwise`` fills: bias-free dense layers, a linear decoder.

    The latent code is the last hidden layer (``hidden`` must have at least one).

    Examples:
        >>> build_randomized((28, 28, 1), (2000,), "relu").latent_dim
        2000
    """
    images = keras.Input(image_shape, name="images")
    x = keras.layers.Flatten(name="flatten")(images)
    for index, units in enumerate(hidden):
        name = "codes" if index == len(hidden) - 1 else f"encoder_dense_{index}"
        x = keras.layers.Dense(units, activation=activation, use_bias=False, name=name)(x)
    encoder = keras.Model(images, x, name="encoder")

    codes = keras.Input((hidden[-1],), name="codes")
    x = codes
    widths = [int(np.prod(image_shape)), *hidden[:-1]]
    for index in reversed(range(len(hidden))):
        name = "pixels" if index == 0 else f"decoder_dense_{index}"
        x = keras.layers.Dense(widths[index], use_bias=False, name=name)(x)
    decoder = keras.Model(codes, keras.layers.Reshape(image_shape, name="images")(x),
                          name="decoder")
    return Autoencoder(encoder, decoder, name="randomized")


def layer_pairs(model):
    """The (deep encoder layer, deep decoder layer) pairs, outermost first.

    Examples:
        >>> model = build_randomized((28, 28, 1), (700, 700), "relu")
        >>> [(e.name, d.name) for e, d in layer_pairs(model)]
        [('encoder_dense_0', 'pixels'), ('codes', 'decoder_dense_1')]
    """
    encoder_layers = [layer for layer in model.encoder.layers if layer.weights]
    decoder_layers = [layer for layer in model.decoder.layers if layer.weights]
    return list(zip(encoder_layers, reversed(decoder_layers)))


def shallow_autoencoder(input_dim, units, activation, seed):
    """Steps 1-2: a shallow autoencoder with a fixed random encoder and a trainable linear decoder.

    The encoder has orthogonal weights (orthonormal columns, or rows when it widens) and a
    unit-norm bias, and is frozen; the decoder starts Glorot-uniform, without a bias.

    Examples:
        >>> shallow = shallow_autoencoder(784, 700, "sigmoid", seed=0)
        >>> weights = shallow.get_layer("random_encoder").kernel.numpy()
        >>> np.allclose(weights.T @ weights, np.eye(700), atol=1e-4)
        True
    """
    inputs = keras.Input((input_dim,), name="layer_inputs")
    encoder = keras.layers.Dense(
        units, activation=activation, trainable=False, name="random_encoder",
        kernel_initializer=keras.initializers.Orthogonal(seed=seed),
        bias_initializer=keras.initializers.RandomNormal(seed=seed + 1))
    decoder = keras.layers.Dense(
        input_dim, use_bias=False, name="decoder",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 2))
    shallow = keras.Model(inputs, decoder(encoder(inputs)), name=f"shallow_{units}")
    encoder.bias.assign(encoder.bias / tf.norm(encoder.bias))
    return shallow


def ridge_solution(gram, cross, ridge_c):
    """Solves ``(gram + I / C) W = cross`` for W, in float64.

    Examples:
        >>> ridge_solution(np.eye(2), np.ones((2, 3)), ridge_c=1.0).shape
        (2, 3)
    """
    gram = np.asarray(gram, np.float64)
    return np.linalg.solve(gram + np.eye(len(gram)) / ridge_c, np.asarray(cross, np.float64))


class _RetracingWarnings(logging.Filter):
    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def _without_retracing_warnings():
    """TensorFlow's retracing warnings held back (see ``_Statistics.collect``)."""
    held = _RetracingWarnings()
    tf.get_logger().addFilter(held)
    try:
        yield
    finally:
        tf.get_logger().removeFilter(held)


class _Statistics:
    """Sums over a data set of H^T H, H^T T and ||T||^2, with H the codes of the inputs and T the
    targets (the inputs themselves, or their clean originals), for the ridge solution and its
    error."""

    def __init__(self, gram, cross, squares, count):
        self.gram, self.cross, self.squares, self.count = gram, cross, squares, count

    @classmethod
    def collect(cls, batches, encode):
        """The sums over ``(inputs, targets)`` ``batches``, codes by ``encode``."""
        # One function per encoder, traced once for every batch size (the last batch is smaller).
        # TensorFlow counts traces by the function's id, which Python reuses once the previous
        # layer's function is gone, and warns of "retracing" that is one trace per layer.
        @tf.function(reduce_retracing=True)
        def batch_sums(inputs, targets):
            hidden = encode(inputs)
            return (tf.matmul(hidden, hidden, transpose_a=True),
                    tf.matmul(hidden, targets, transpose_a=True),
                    tf.reduce_sum(tf.square(targets)), tf.shape(targets)[0])

        # Each worker of a multi-worker strategy sums its share of the batches; the all-reduce
        # gives every worker the sums over all of them.
        workers, index = worker_shard(tf.distribute.get_strategy())
        totals = None
        with _without_retracing_warnings():
            for inputs, targets in batches.shard(workers, index):
                sums = [np.asarray(value, np.float64) for value in batch_sums(inputs, targets)]
                totals = sums if totals is None else [a + b for a, b in zip(totals, sums)]
        if totals is None:
            raise TfaeError("no images to train on: raise {limit}", options=["limit"])
        return cls(*sum_across_workers(totals))

    def mean_squared_error(self, weights):
        """Mean squared error of reconstructing X as H W, from the sums alone."""
        weights = np.asarray(weights, np.float64)
        residual = (self.squares - 2 * np.sum(weights * self.cross)
                    + np.sum(weights * (self.gram @ weights)))
        return float(residual / (self.count * weights.shape[1]))


def train_layerwise(model, batches, solver="ridge", ridge_c=0.01, epochs=10, learning_rate=1e-3,
                    seed=0, verbose=1, decoder="refit"):
    """Fills ``model`` (from ``build_randomized``) layer by layer with the study's algorithm.

    Args:
        model: an ``Autoencoder`` from ``build_randomized``.
        batches: ``(inputs, targets)`` image batches, such as ``tfae.data.pipeline(...)``;
            corrupted inputs with clean targets make a denoising solution.
        solver: ``ridge`` (closed form) or ``sgd`` (Keras, the random encoder frozen).
        ridge_c: C of the ridge solutions; larger is less regularised.
        epochs, learning_rate: for ``sgd``.
        seed: seeds the random encoders.
        verbose: print a line per layer.
        decoder: ``refit`` solves the decoders again for the final encoder's codes (always in
            closed form); ``study`` keeps the layer-wise pass's decoders.

    Returns:
        The history, per layer: ``layer``, ``units``, ``random_decoder_mse`` (the shallow
        autoencoder's error with its random initial decoder), ``mse`` (after the layer-wise
        pass), ``refit_mse`` (after the refit; ``refit`` only), ``seconds`` (the layer-wise pass's)
        and ``refit_seconds``; and ``image_mse``, one number: the whole model's error on the
        training images, which the run's last line reports.

    Examples:
        >>> history = train_layerwise(model, batches, solver="sgd", epochs=2)  # doctest: +SKIP
    """
    flat = batches.map(lambda inputs, targets: (_flat(inputs), _flat(targets)))
    history = {"layer": [], "units": [], "random_decoder_mse": [], "mse": [], "seconds": []}
    pairs = layer_pairs(model)
    for index, (encoder_layer, decoder_layer) in enumerate(pairs):
        start = time.perf_counter()
        input_dim, units = encoder_layer.kernel.shape
        layer_data = flat.map(_through(pairs[:index]))
        shallow = shallow_autoencoder(input_dim, units, encoder_layer.activation, seed + 3 * index)
        statistics = _Statistics.collect(layer_data, shallow.get_layer("random_encoder"))
        random_decoder = shallow.get_layer("decoder").kernel.numpy()
        if solver == "ridge":
            decoder_weights = ridge_solution(statistics.gram, statistics.cross, ridge_c)
        else:
            shallow.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
            shallow.fit(layer_data, epochs=epochs, shuffle=False, verbose=verbose and 2)
            decoder_weights = shallow.get_layer("decoder").kernel.numpy()
        decoder_layer.kernel.assign(decoder_weights.astype(np.float32))
        encoder_layer.kernel.assign(decoder_weights.T.astype(np.float32))
        history["layer"].append(index)
        history["units"].append(int(units))
        history["random_decoder_mse"].append(statistics.mean_squared_error(random_decoder))
        history["mse"].append(statistics.mean_squared_error(decoder_weights))
        history["seconds"].append(time.perf_counter() - start)
        if verbose:
            print(f"layer {index}: {input_dim} -> {units}, mse {history['mse'][-1]:.5f} "
                  f"(random decoder {history['random_decoder_mse'][-1]:.5f}), "
                  f"{history['seconds'][-1]:.1f} s")
    if decoder == "refit":
        history["refit_mse"], history["refit_seconds"] = [], []
        for index, (encoder_layer, decoder_layer) in enumerate(pairs):
            start = time.perf_counter()
            statistics = _Statistics.collect(flat.map(_through(pairs[:index])), encoder_layer)
            decoder_weights = ridge_solution(statistics.gram, statistics.cross, ridge_c)
            decoder_layer.kernel.assign(decoder_weights.astype(np.float32))
            history["refit_mse"].append(statistics.mean_squared_error(decoder_weights))
            history["refit_seconds"].append(time.perf_counter() - start)
            if verbose:
                print(f"layer {index}: decoder refit for the final encoder, mse "
                      f"{history['refit_mse'][-1]:.5f}, {history['refit_seconds'][-1]:.1f} s")
    # The layers' errors are of their own codes; what the model is for is the images'.
    history["image_mse"] = [image_mean_squared_error(model, batches)]
    if verbose:
        print(f"images: mse {history['image_mse'][0]:.5f} (the whole model, training images)")
    return history


def image_mean_squared_error(model, batches):
    """The mean squared error of ``model``'s reconstructions of ``(inputs, targets)`` batches.

    Examples:
        >>> image_mean_squared_error(model, tfae.data.pipeline(splits.train, 256))  # doctest: +SKIP
        0.0121
    """
    total, count = 0.0, 0
    for inputs, targets in batches:
        total += float(tf.reduce_sum(tf.square(model(inputs, training=False) - targets)))
        count += int(tf.size(targets))
    return total / max(count, 1)


def _flat(images):
    return tf.reshape(images, (tf.shape(images)[0], -1))


def _through(pairs):
    """Maps ``(inputs, targets)`` flat images to the input and target of the layer after
    ``pairs`` in the deep encoder: both through the encoder layers before it."""
    def forward(inputs, targets):
        for encoder_layer, _ in pairs:
            inputs, targets = encoder_layer(inputs), encoder_layer(targets)
        return inputs, targets
    return forward
