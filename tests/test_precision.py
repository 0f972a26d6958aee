"""Mixed precision (``--precision``): 16-bit compute, float32 weights, codes, outputs, losses
and exports; loss scaling under float16; the layer-wise family refuses it."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfae.config import FitConfig, resolve
from tfae.errors import TfaeError
from tfae.families import get_family
from tfae.train import fit

IMAGES = np.random.default_rng(0).random((64, 12, 12, 1), dtype=np.float32)


@pytest.mark.parametrize("model, options, precision, compute", [
    ("deep", {"hidden": (16,), "latent_dim": 4}, "mixed_bfloat16", "bfloat16"),
    ("contractive", {"hidden": (16,), "latent_dim": 8, "penalty": "projection"},
     "mixed_float16", "float16"),
    ("vae", {"filters": (4, 8), "latent_dim": 3}, "mixed_float16", "float16"),
])
def test_a_mixed_run_computes_in_16_bits_and_keeps_float32_where_it_counts(
        model, options, precision, compute, tmp_path):
    labels = np.arange(len(IMAGES)) % 2
    run = fit(FitConfig(model=model, epochs=2, batch_size=16, precision=precision,
                        model_options=options), tmp_path / "run",
              export=True, export_dir=tmp_path / "export", verbose=0, data=(IMAGES, labels))
    hidden = [layer for layer in run.model.encoder.layers if layer.weights][0]
    assert hidden.compute_dtype == compute and hidden.variable_dtype == "float32"
    assert all(variable.dtype == "float32" for variable in run.model.weights)
    assert run.model.encoder(IMAGES).dtype == run.model(IMAGES).dtype == tf.float32
    assert all(np.isfinite(value) for value in run.history["loss"])
    assert json.loads((tmp_path / "run/config.json").read_text())["precision"] == precision
    if precision == "mixed_float16":  # Keras scales the loss so float16 gradients do not vanish
        assert isinstance(run.model.optimizer, keras.optimizers.LossScaleOptimizer)
    # The policy was the run's, not the process's: what is built next is float32 again.
    assert keras.config.dtype_policy().name == "float32"
    served = tf.saved_model.load(str(run.export_path))
    outputs = served.signatures["serving_default"](images=tf.constant(IMAGES[:2]))
    assert outputs["reconstructions"].dtype == tf.float32
    # 16-bit compute rounds the graph's and the eager pass differently: a few thousandths
    np.testing.assert_allclose(outputs["reconstructions"], run.model(IMAGES[:2]), atol=5e-3)


def test_the_layer_wise_family_refuses_mixed_precision():
    with pytest.raises(TfaeError, match="precision mixed_float16: model 'randomized' is trained "
                                        "by its own solver"):
        resolve(FitConfig(model="randomized", precision="mixed_float16"))
    assert get_family("randomized").trainer is not None
