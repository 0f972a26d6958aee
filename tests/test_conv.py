import numpy as np
import pytest

from tfae.errors import TfaeError
from tfae.families import build_model
from tfae.models.base import Autoencoder
from tfae.models.contractive import ContractiveAutoencoder


def _layers(model, kind):
    return [layer for layer in model.layers if type(layer).__name__ == kind]


def test_conv_follows_the_studys_architecture():
    model = build_model("deep-conv", (28, 28, 1), filters=(8, 16), latent_dim=12)
    convolutions = _layers(model.encoder, "Conv2D")
    assert [layer.filters for layer in convolutions] == [8, 16]  # growing filters
    assert all(layer.padding == "same" for layer in convolutions)  # that keep the area
    assert len(_layers(model.encoder, "MaxPooling2D")) == 2  # pooling shrinks it
    assert model.encoder.output_shape == (None, 12)  # a dense code in the centre
    assert [layer.filters for layer in _layers(model.decoder, "Conv2DTranspose")] == [16, 8]
    assert model.decoder.output_shape == (None, 28, 28, 1)
    assert not _layers(model.encoder, "ZeroPadding2D")  # 28 halves evenly twice


def test_odd_sides_are_padded_in_the_encoder_and_cropped_in_the_decoder():
    model = build_model("deep-conv", (30, 45, 3), filters=(4, 8), latent_dim=6)
    [padding] = _layers(model.encoder, "ZeroPadding2D")
    assert padding.output.shape[1:3] == (32, 48)
    [cropping] = _layers(model.decoder, "Cropping2D")
    assert cropping.output.shape[1:3] == (30, 45)
    assert model.decoder.output_shape == (None, 30, 45, 3)


@pytest.mark.parametrize("name, filters, shape", [
    ("conv", (4,), (28, 28, 1)), ("conv", (4,), (10, 6, 3)),
    ("deep-conv", (4, 8), (32, 32, 3)), ("deep-conv", (4, 8, 8), (16, 24, 1)),
    # Sides the blocks cannot halve evenly: padded inside the model, cropped back.
    ("conv", (4,), (7, 9, 1)), ("deep-conv", (4, 8), (30, 30, 3)),
    ("deep-conv", (4, 8, 8), (75, 100, 3)),
])
def test_conv_reconstructs_any_shape(name, filters, shape):
    model = build_model(name, shape, filters=filters, latent_dim=5)
    images = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    reconstructions = model(images).numpy()
    assert reconstructions.shape == images.shape
    assert reconstructions.min() >= 0 and reconstructions.max() <= 1


@pytest.mark.parametrize("name, options, words", [
    ("conv", {"filters": (4, 8)}, "one block"),
    ("deep-conv", {"filters": (4,)}, "two or more blocks"),
    ("conv", {"filters": (0,)}, "filters sizes must be positive"),
])
def test_conv_refuses_what_it_cannot_build(name, options, words):
    with pytest.raises(TfaeError, match=words):
        build_model(name, (28, 28, 1), **options)


def test_lambda_makes_a_contractive_conv_autoencoder():
    assert type(build_model("conv", (8, 8, 1), filters=(2,))) is Autoencoder
    model = build_model("conv", (8, 8, 1), filters=(2,), penalty_weight=0.1)
    assert isinstance(model, ContractiveAutoencoder) and model.penalty == "projection"
