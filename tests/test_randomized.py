import json

import numpy as np
import pytest
import tensorflow as tf

from tfae import data
from tfae.corruptions import parse_corruption
from tfae.families import build_model
from tfae.models.randomized import (_Statistics, layer_pairs, ridge_solution, shallow_autoencoder,
                                    train_layerwise)


def test_randomized_encoder_is_decoder_transpose(mnist):
    model = build_model("randomized", (28, 28, 1), hidden=(64, 32))
    history = train_layerwise(model, data.pipeline(mnist.train, 128), verbose=0, decoder="study")
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
                              verbose=0, decoder="study")
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
    statistics = _Statistics.collect(images.map(lambda flat: (flat, flat)), encoder)
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


RIDGE_C = 0.5


def _tiny_batches(corruption=None):
    """48 random 5x4 images, in batches of 16; corrupted the same way on every pass."""
    images = np.random.default_rng(3).random((48, 5, 4, 1)).astype(np.float32)
    split = tf.data.Dataset.from_tensor_slices((images, np.zeros(48, np.int64)))
    return data.pipeline(split, 16, corruption=corruption, fresh_corruption=False)


def _pairs(batches):
    inputs, targets = zip(*batches.as_numpy_iterator())
    return (np.concatenate(inputs).reshape(48, -1).astype(np.float64),
            np.concatenate(targets).reshape(48, -1).astype(np.float64))


def _least_squares(codes, targets):
    """The ridge problem solved independently: least squares on rows stacked with I / sqrt(C)."""
    stacked = np.vstack([codes, np.eye(codes.shape[1]) / np.sqrt(RIDGE_C)])
    padded = np.vstack([targets, np.zeros((codes.shape[1], targets.shape[1]))])
    return np.linalg.lstsq(stacked, padded, rcond=None)[0]


def _encode(layer, inputs):
    return np.asarray(layer(inputs.astype(np.float32)), np.float64)


def test_the_refit_decoder_solves_least_squares_for_the_final_encoders_codes():
    model = build_model("randomized", (5, 4, 1), hidden=(8, 6))
    history = train_layerwise(model, _tiny_batches(), ridge_c=RIDGE_C, verbose=0)
    assert len(history["refit_mse"]) == 2
    inputs, _ = _pairs(_tiny_batches())
    for encoder_layer, decoder_layer in layer_pairs(model):  # outermost first
        codes = _encode(encoder_layer, inputs)
        np.testing.assert_allclose(decoder_layer.kernel.numpy(), _least_squares(codes, inputs),
                                   atol=2e-5)
        inputs = codes


def test_the_study_decoder_is_the_layer_wise_pass_bit_for_bit():
    model = build_model("randomized", (5, 4, 1), hidden=(8,))
    train_layerwise(model, _tiny_batches(), ridge_c=RIDGE_C, verbose=0, seed=4, decoder="study")
    inputs, _ = _pairs(_tiny_batches())
    random_encoder = shallow_autoencoder(20, 8, "relu", seed=4).get_layer("random_encoder")
    codes = _encode(random_encoder, inputs)
    statistics = _Statistics.collect(_tiny_batches().map(
        lambda x, t: (tf.reshape(x, (-1, 20)), tf.reshape(t, (-1, 20)))), random_encoder)
    expected = ridge_solution(statistics.gram, statistics.cross, RIDGE_C).astype(np.float32)
    (encoder_layer, decoder_layer), = layer_pairs(model)
    np.testing.assert_array_equal(decoder_layer.kernel.numpy(), expected)
    np.testing.assert_array_equal(encoder_layer.kernel.numpy(), expected.T)
    np.testing.assert_allclose(expected, _least_squares(codes, inputs), atol=2e-5)


def test_noisy_codes_are_solved_to_the_clean_images():
    corruption = parse_corruption("gaussian:0.3")
    model = build_model("randomized", (5, 4, 1), hidden=(8,))
    train_layerwise(model, _tiny_batches(corruption), ridge_c=RIDGE_C, verbose=0)
    noisy, clean = _pairs(_tiny_batches(corruption))
    assert not np.allclose(noisy, clean)
    (encoder_layer, decoder_layer), = layer_pairs(model)
    np.testing.assert_allclose(decoder_layer.kernel.numpy(),
                               _least_squares(_encode(encoder_layer, noisy), clean), atol=2e-5)


def test_the_refit_reconstructs_far_better_than_the_study(mnist):
    errors = {}
    images = np.concatenate([inputs for inputs, _ in data.pipeline(mnist.test, 256)])
    for decoder in ("study", "refit"):
        model = build_model("randomized", (28, 28, 1), hidden=(256,))
        train_layerwise(model, data.pipeline(mnist.train, 128), verbose=0, decoder=decoder)
        errors[decoder] = float(np.mean((model.predict(images, verbose=0) - images) ** 2))
    assert errors["refit"] < 0.2 * errors["study"]


def test_a_randomized_run_records_its_layers_and_tensorboard_logs(tmp_path):
    from tfae.config import FitConfig
    from tfae.train import fit

    run = fit(FitConfig(model="randomized", model_options={"hidden": (32, 16)}, limit=500,
                        noise="gaussian:0.5"), tmp_path / "run", export=False, verbose=0)
    history = json.loads((tmp_path / "run/history.json").read_text())
    assert history["layer"] == [0, 1] and len(history["refit_mse"]) == 2
    assert run.history == history
    # The whole model's error on the images, not a layer's on its codes; ridge has no epochs.
    assert history["image_mse"][0] > 0 and len(history["image_mse"]) == 1
    info = json.loads((tmp_path / "run/run.json").read_text())
    assert info["epochs_finished"] == 1 and json.loads(
        (tmp_path / "run/config.json").read_text())["epochs"] == 1
    assert info["training_seconds"] == pytest.approx(
        sum(history["seconds"]) + sum(history["refit_seconds"]))
    events = list((tmp_path / "run/logs/train").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_the_image_error_is_the_whole_models():
    model = build_model("randomized", (5, 4, 1), hidden=(8, 6))
    history = train_layerwise(model, _tiny_batches(), verbose=0)
    inputs, targets = _pairs(_tiny_batches())
    expected = np.mean((model(inputs.reshape(48, 5, 4, 1)).numpy().reshape(48, -1) - targets) ** 2)
    assert history["image_mse"] == [pytest.approx(expected, rel=1e-4)]


def test_a_finished_randomized_run_is_not_solved_again_and_epochs_do_not_apply(tmp_path):
    import logging

    from tfae.config import FitConfig, resolve
    from tfae.errors import TfaeError
    from tfae.train import fit

    warned = []
    # On the tfae logger itself: the command line's tests stop it propagating to pytest's.
    handler = logging.Handler()
    handler.emit = lambda record: warned.append(record.getMessage())
    logging.getLogger("tfae").addHandler(handler)
    try:
        assert resolve(FitConfig(model="randomized", epochs=20)).config.epochs == 1
    finally:
        logging.getLogger("tfae").removeHandler(handler)
    assert any("epochs=20 does not apply to randomized" in message for message in warned)
    assert resolve(FitConfig(model="randomized", epochs=3, model_options={
        "solver": "sgd"})).config.epochs == 3
    config = FitConfig(model="randomized", model_options={"hidden": (16,)}, limit=200)
    fit(config, tmp_path / "run", export=False, verbose=0)
    for again in (config, FitConfig(**{**config.to_dict(), "epochs": 20})):
        with pytest.raises(TfaeError, match="already holds a finished randomized run"):
            fit(again, tmp_path / "run", export=False, verbose=0)


def test_layer_by_layer_training_says_nothing_of_retracing():
    import logging

    class Records(logging.Handler):
        def __init__(self):
            super().__init__()
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    records = Records()
    tf.get_logger().addHandler(records)
    try:
        model = build_model("randomized", (5, 4, 1), hidden=(12, 8, 6, 4, 3))
        train_layerwise(model, _tiny_batches(), verbose=0)
    finally:
        tf.get_logger().removeHandler(records)
    assert not [message for message in records.messages if "retracing" in message]
