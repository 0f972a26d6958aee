import subprocess
import sys

import keras
import numpy as np
import pytest

from tfae.errors import TfaeError
from tfae.families import build_model, family_names, get_family
from tfae.runs import load_model

IMAGES = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)


@pytest.mark.parametrize("name", ["shallow", "deep"])
def test_model_maps_images_to_codes_and_back(name):
    model = build_model(name, (28, 28, 1), latent_dim=6)
    assert model.encoder(IMAGES).shape == (4, 6)
    assert model.decoder(np.zeros((4, 6), np.float32)).shape == (4, 28, 28, 1)
    reconstructions = model(IMAGES).numpy()
    assert reconstructions.shape == IMAGES.shape
    assert reconstructions.min() >= 0 and reconstructions.max() <= 1


def test_study_shape_is_one_option_away():
    model = build_model("deep", (28, 28, 1), hidden=(500, 200, 100), latent_dim=10)
    widths = [layer.units for layer in model.encoder.layers if hasattr(layer, "units")]
    assert widths == [500, 200, 100, 10]
    widths = [layer.units for layer in model.decoder.layers if hasattr(layer, "units")]
    assert widths == [100, 200, 500, 784]


def test_non_square_colour_images_work():
    model = build_model("deep", (8, 12, 3), hidden=(16,), latent_dim=4)
    assert model(np.zeros((2, 8, 12, 3), np.float32)).shape == (2, 8, 12, 3)


@pytest.mark.parametrize("name", ["shallow", "deep"])
def test_safe_mode_round_trip_keeps_weights_and_halves(name, tmp_path):
    model = build_model(name, (28, 28, 1), latent_dim=5)
    model.compile(optimizer="adam", loss="mse")
    model.fit(IMAGES, IMAGES, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras")
    assert type(loaded) is type(model)
    np.testing.assert_allclose(loaded(IMAGES).numpy(), model(IMAGES).numpy(), atol=1e-6)
    np.testing.assert_allclose(loaded.encoder(IMAGES).numpy(), model.encoder(IMAGES).numpy(),
                               atol=1e-6)
    assert loaded.decoder.input_shape == (None, 5)


def test_safe_mode_refuses_unsafe_files(tmp_path):
    inputs = keras.Input((2,))
    unsafe = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    unsafe.save(tmp_path / "unsafe.keras")
    with pytest.raises(ValueError, match="unsafe|safe_mode"):
        load_model(tmp_path / "unsafe.keras")


def test_registry_lists_the_families():
    assert {"shallow", "deep"} <= set(family_names())
    with pytest.raises(TfaeError, match="unknown model 'huge'"):
        get_family("huge")


@pytest.mark.parametrize("options, words", [
    ({"filters": (8,)}, "filters does not apply to model 'deep' (it takes hidden, latent_dim"),
    ({"latent_dim": 0}, "latent_dim must be positive"),
    ({"latent_dim": "8"}, "latent_dim must be a whole number, got '8'"),
    ({"hidden": (10, 0)}, "hidden sizes must be positive"),
    ({"hidden": "abc"}, "hidden must be a list of whole numbers"),
    ({"activation": "nope"}, "activation must be one of relu, sigmoid"),
])
def test_registry_refuses_bad_options_by_name(options, words):
    with pytest.raises(TfaeError, match=None) as error:
        build_model("deep", (28, 28, 1), **options)
    assert words in str(error.value)


@pytest.mark.slow  # fresh interpreters, one per import order: the full tier
@pytest.mark.parametrize("imports, loads", [("import keras, tfae", True),
                                            ("import tfae, keras", True),
                                            ("import keras", False)])
def test_keras_loads_a_saved_tfae_model_once_tfae_is_imported(imports, loads, tmp_path):
    path = tmp_path / "model.keras"
    build_model("contractive", (8, 8, 1), latent_dim=3).save(path)
    code = (f"{imports}\nmodel = keras.models.load_model({str(path)!r}, safe_mode=True)\n"
            "print(type(model).__name__, model.latent_dim)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if loads:
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.split() == ["ContractiveAutoencoder", "3"]
    else:  # the control: without tfae, Keras cannot find the class
        assert "Could not locate class 'ContractiveAutoencoder'" in result.stderr
