import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfae import data
from tfae.errors import TfaeError
from tfae.families import build_model
from tfae.runs import load_model
from tfae.train import execution_for, execution_options
from tfae.models.contractive import (ContractiveAutoencoder, contractive_penalty,
                                     jacobian_squared_norm, single_dense_layer)

IMAGES = tf.random.stateless_uniform((6, 6, 6, 1), seed=[0, 1])


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "linear"])
def test_closed_form_equals_the_full_jacobian(activation):
    for seed in range(3):
        keras.utils.set_random_seed(seed)
        encoder = build_model("shallow", (6, 6, 1), latent_dim=5, activation=activation).encoder
        assert single_dense_layer(encoder) is not None
        closed_form = contractive_penalty(encoder, IMAGES, "exact").numpy()
        full = jacobian_squared_norm(functools.partial(encoder, training=True), IMAGES).numpy()
        np.testing.assert_allclose(closed_form, full, rtol=1e-5)
        given_codes = contractive_penalty(encoder, IMAGES, "exact", codes=encoder(IMAGES)).numpy()
        np.testing.assert_allclose(given_codes, full, rtol=1e-5)


def test_a_layer_after_the_dense_one_takes_the_full_jacobian():
    inputs = keras.Input((6, 6, 1))
    hidden = keras.layers.Dense(4, activation="sigmoid")(keras.layers.Flatten()(inputs))
    encoder = keras.Model(inputs, keras.layers.Activation("tanh")(hidden))
    assert single_dense_layer(encoder) is None
    full = jacobian_squared_norm(functools.partial(encoder, training=True), IMAGES)
    np.testing.assert_allclose(contractive_penalty(encoder, IMAGES, "exact").numpy(),
                               full.numpy(), rtol=1e-5)


def test_deep_encoders_use_the_full_jacobian():
    encoder = build_model("contractive", (6, 6, 1), hidden=(7,), latent_dim=3).encoder
    assert single_dense_layer(encoder) is None
    full = jacobian_squared_norm(functools.partial(encoder, training=True), IMAGES)
    np.testing.assert_allclose(contractive_penalty(encoder, IMAGES, "exact").numpy(),
                               full.numpy(), rtol=1e-6)


def test_projection_estimate_is_unbiased():
    keras.utils.set_random_seed(0)
    encoder = build_model("contractive", (6, 6, 1), hidden=(16,), latent_dim=4).encoder
    exact = contractive_penalty(encoder, IMAGES, "exact").numpy()
    draws = np.stack([contractive_penalty(encoder, IMAGES, "projection", 10, seed=[7, seed])
                      for seed in range(100)])
    standard_error = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
    assert (np.abs(draws.mean(axis=0) - exact) < 4 * standard_error).all()
    assert (standard_error < 0.1 * exact).all()  # and it estimates something, not noise


def test_weights_method_is_the_studys_term():
    encoder = build_model("contractive", (6, 6, 1), hidden=(7, 5), latent_dim=3).encoder
    kernels = [layer.kernel.numpy() for layer in encoder.layers if layer.weights]
    study = np.linalg.norm(kernels[0] @ kernels[1] @ kernels[2])
    np.testing.assert_allclose(contractive_penalty(encoder, IMAGES, "weights").numpy(),
                               np.full(6, study), rtol=1e-5)


def test_unknown_method_is_refused():
    encoder = build_model("shallow", (6, 6, 1), latent_dim=2).encoder
    with pytest.raises(TfaeError, match="penalty must be one of"):
        contractive_penalty(encoder, IMAGES, "fast")


def test_train_step_reports_its_terms_and_adds_them(mnist):
    model = build_model("contractive", (28, 28, 1), hidden=(32,), latent_dim=4, penalty_weight=0.01)
    model.compile(optimizer="adam", loss="mse")
    batches = data.pipeline(mnist.test, 128)
    history = model.fit(batches, validation_data=batches, epochs=1, verbose=0).history
    assert {"loss", "reconstruction", "penalty", "val_loss", "val_reconstruction",
            "val_penalty"} <= set(history)
    evaluated = model.evaluate(batches, return_dict=True, verbose=0)
    np.testing.assert_allclose(
        evaluated["loss"], evaluated["reconstruction"] + 0.01 * evaluated["penalty"], rtol=1e-4)


def test_penalty_makes_the_encoder_contract(mnist):
    held_out = next(iter(data.pipeline(mnist.validation, 256)))[0]
    norms = {}
    for weight in (0.0, 1e-2):
        keras.utils.set_random_seed(3)
        model = build_model("contractive", (28, 28, 1), hidden=(64,), latent_dim=8,
                            penalty_weight=weight)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
        model.fit(data.pipeline(mnist.train, 64, shuffle=True, seed=3), epochs=3, verbose=0)
        norms[weight] = float(tf.reduce_mean(contractive_penalty(model.encoder, held_out)))
    assert norms[0.0] >= 2 * norms[1e-2], norms


def test_contractive_model_survives_a_safe_mode_round_trip(tmp_path):
    model = build_model("contractive", (6, 6, 1), hidden=(), latent_dim=3,
                        latent_activation="sigmoid", penalty_weight=0.5, penalty="projection",
                        projections=3)
    model.save(tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras")
    assert isinstance(loaded, ContractiveAutoencoder)
    assert (loaded.penalty_weight, loaded.penalty, loaded.projections) == (0.5, "projection", 3)
    np.testing.assert_allclose(loaded(IMAGES).numpy(), model(IMAGES).numpy(), atol=1e-6)


@pytest.mark.parametrize("options, words", [
    ({"penalty_weight": -1.0}, "^penalty_weight must be >= 0"),
    ({"penalty_weight": float("nan")}, "^penalty_weight must be a finite number"),
    ({"projections": 0}, "^projections must be positive"),
    ({"hidden": (), "activation": "sigmoid"}, "use latent_activation for the one layer"),
])
def test_bad_penalty_options_are_refused_by_their_python_names(options, words):
    with pytest.raises(TfaeError, match=words):
        build_model("contractive", (6, 6, 1), **options)


def test_study_term_needs_dense_encoders():
    with pytest.raises(TfaeError, match="dense layers only"):
        build_model("conv", (8, 8, 1), penalty_weight=0.1, penalty="weights")


@pytest.mark.parametrize("options, xla", [
    ({"hidden": (8,), "latent_dim": 3}, False),
    ({"hidden": (8,), "latent_dim": 3, "penalty": "projection"}, True),
    ({"latent_dim": 3}, True),
    ({"latent_dim": 3, "penalty": "jacobian"}, False),
])
def test_xla_is_chosen_only_where_the_penalty_needs_no_full_jacobian(options, xla):
    model = build_model("contractive", (6, 6, 1), **options)
    assert model.compiles_well_with_xla is xla
    chosen = execution_for(model, execution_options("contractive"), steps=10_000)
    assert chosen["jit_compile"] is xla
    # What the user asks for is what runs, slow or not.
    assert execution_for(model, execution_options("contractive", jit_compile=True))["jit_compile"]


def test_the_jacobian_taken_a_few_rows_at_a_time_is_the_whole_one(monkeypatch):
    from tfae.models import contractive

    encoder = build_model("conv", (8, 8, 3), filters=(4,), latent_dim=7).encoder
    images = tf.random.stateless_uniform((3, 8, 8, 3), (1, 2))
    with tf.GradientTape() as tape:
        tape.watch(images)
        codes = tf.reshape(encoder(images), (3, -1))
    whole = tf.reduce_sum(tf.square(tf.reshape(tape.batch_jacobian(codes, images), (3, -1))),
                          axis=1)
    monkeypatch.setattr(contractive, "JACOBIAN_ROW_NUMBERS", 8 * 8 * 3 * 2)  # 2 rows at a time
    np.testing.assert_allclose(contractive.jacobian_squared_norm(encoder, images), whole,
                               rtol=1e-5)
