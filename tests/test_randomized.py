import numpy as np
import tensorflow as tf

from tfae import data
from tfae.families import build_model
from tfae.models.randomized import (_Statistics, layer_pairs, ridge_solution, shallow_autoencoder,
                                    train_layerwise)


def test_randomized_encoder_is_decoder_transpose(mnist):
    model = build_model("randomized", (28, 28, 1), hidden=(64, 32))
    history = train_layerwise(model, data.pipeline(mnist.train, 128), verbose=0)
    assert history["layer"] == [0, 1] and history["units"] == [64, 32]
    for encoder_layer, decoder_layer in layer_pairs(model):
        np.testing.assert_array_equal(encoder_layer.kernel.numpy(), decoder_layer.kernel.numpy().T)


def test_each_layer_reconstructs_better_than_its_random_decoder(mnist):
    model = build_model("randomized", (28, 28, 1), hidden=(64, 32))
    history = train_layerwise(model, data.pipeline(mnist.train, 128), verbose=0)
    for trained, random in zip(history["mse"], history["random_decoder_mse"]):
        assert trained < 0.5 * random


def test_sgd_leaves_the_random_encoder_unchanged(mnist):
    shallow = shallow_autoencoder(784, 16, "relu", seed=0)
    encoder = shallow.get_layer("random_encoder")
    before = [weight.numpy().copy() for weight in encoder.weights]
    decoder_before = shallow.get_layer("decoder").kernel.numpy().copy()
    flat = data.pipeline(mnist.train, 64).map(lambda inputs, targets: (
        tf.reshape(inputs, (-1, 784)), tf.reshape(targets, (-1, 784))))
    shallow.compile(optimizer="adam", loss="mse")
    shallow.fit(flat, epochs=2, verbose=0)
    for weight, old in zip(encoder.weights, before):
        np.testing.assert_array_equal(weight.numpy(), old)
    assert not np.allclose(shallow.get_layer("decoder").kernel.numpy(), decoder_before)


def test_sgd_solver_fills_the_deep_model(mnist):
    model = build_model("randomized", (28, 28, 1), hidden=(32,))
    history = train_layerwise(model, data.pipeline(mnist.train, 64), solver="sgd", epochs=2,
                              verbose=0)
    assert history["mse"][0] < history["random_decoder_mse"][0]
    (encoder_layer, decoder_layer), = layer_pairs(model)
    np.testing.assert_array_equal(encoder_layer.kernel.numpy(), decoder_layer.kernel.numpy().T)


def test_ridge_solution_equals_lstsq_of_the_regularised_problem():
    rng = np.random.default_rng(0)
    hidden, targets, ridge_c = rng.random((50, 6)), rng.random((50, 9)), 0.3
    stacked_hidden = np.vstack([hidden, np.eye(6) / np.sqrt(ridge_c)])
    stacked_targets = np.vstack([targets, np.zeros((6, 9))])
    expected = np.linalg.lstsq(stacked_hidden, stacked_targets, rcond=None)[0]
    np.testing.assert_allclose(ridge_solution(hidden.T @ hidden, hidden.T @ targets, ridge_c),
                               expected, rtol=1e-9, atol=1e-12)


def test_batched_sums_equal_the_whole_data_set(mnist):
    images = data.pipeline(mnist.train, 100).map(lambda inputs, _: tf.reshape(inputs, (-1, 784)))
    encoder = shallow_autoencoder(784, 12, "sigmoid", seed=1).get_layer("random_encoder")
    statistics = _Statistics.collect(images, encoder)
    everything = np.concatenate(list(images.as_numpy_iterator())).astype(np.float64)
    hidden = np.asarray(encoder(everything.astype(np.float32)), np.float64)
    np.testing.assert_allclose(statistics.gram, hidden.T @ hidden, rtol=1e-4)
    np.testing.assert_allclose(statistics.cross, hidden.T @ everything, rtol=1e-4)
    weights = ridge_solution(statistics.gram, statistics.cross, 1.0)
    direct = np.mean((everything - hidden @ weights) ** 2)
    np.testing.assert_allclose(statistics.mean_squared_error(weights), direct, rtol=1e-3)


def test_random_encoder_is_orthogonal_with_a_unit_bias():
    encoder = shallow_autoencoder(30, 20, "sigmoid", seed=4).get_layer("random_encoder")
    kernel = encoder.kernel.numpy()
    np.testing.assert_allclose(kernel.T @ kernel, np.eye(20), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(encoder.bias.numpy()), 1.0, rtol=1e-5)
    assert not encoder.trainable
