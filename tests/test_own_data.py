"""Your own images end to end: folders, arrays and .npz files through fit, evaluate, plot, export
and serve, in colour and at sizes the convolution blocks cannot halve, labelled and not."""

import json
import urllib.request

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from tfae_cli.main import tfae
from conftest import run_tfae, serve_without_tfae, write_images
from tfae.config import FitConfig
from tfae.errors import TfaeError
from tfae.evaluation import evaluate
from tfae.signatures import SCORE_SIGNATURES, SIGNATURES
from tfae.opened import SAMPLE_SIGNATURE
from tfae.families import family_names
from tfae.serving import Server, ServerSettings
from tfae.train import fit

pytestmark = pytest.mark.slow  # end-to-end runs: the full tier only


def _shapes(count, shape, seed=0):
    """Images of two classes a model can tell apart: bright top halves, or bright bottom ones."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 100, (count, *shape), dtype=np.uint8)
    labels = np.arange(count) % 2
    half = shape[0] // 2
    images[labels == 0, :half] += 150
    images[labels == 1, half:] += 150
    return images, labels


def _write_classes(folder, count, shape):
    import tensorflow as tf

    images, labels = _shapes(count, shape)
    for index, (image, label) in enumerate(zip(images, labels)):
        path = folder / ("top" if label == 0 else "bottom") / f"{index:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        tf.io.write_file(str(path), tf.io.encode_png(image))


def _ok(args, cwd, monkeypatch):
    monkeypatch.chdir(cwd)
    result = CliRunner().invoke(tfae, [*args, "--quiet"])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_colour_folder_of_an_odd_size_fits_evaluates_plots_exports_and_serves(
        tmp_path, monkeypatch):
    _write_classes(tmp_path / "photos", 60, (30, 30, 3))
    _ok(["fit", "--model", "deep-conv", "--dataset", "photos", "--epochs", "2", "--out",
         "runs/photos", "--export-dir", "exports/photos"], tmp_path, monkeypatch)
    info = json.loads((tmp_path / "runs/photos/run.json").read_text())
    assert info["data"]["kind"] == "folder" and info["data"]["images"] == 60
    metrics = json.loads(_ok(["evaluate", "runs/photos", "--json"], tmp_path, monkeypatch))
    assert metrics["dataset"] == "photos" and metrics["test_images"] == 6
    assert set(metrics["occlusion"]) == {"15x15", "7x7"} and metrics["probe"]["linear"] >= 0.5
    for kind in ("reconstructions", "tsne", "occlusion"):
        assert "wrote" in _ok(["plot", "runs/photos", "--kind", kind], tmp_path, monkeypatch)
        assert (tmp_path / f"runs/photos/figures/{kind}.png").stat().st_size > 1000
    images = np.random.default_rng(1).random((2, 30, 30, 3), dtype=np.float32)
    served = serve_without_tfae(tmp_path / "exports/photos/1", images, tmp_path)
    assert np.array(served["reconstructions"]).shape == (2, 30, 30, 3)
    settings = ServerSettings(str(tmp_path / "exports/photos"), "photos", port=0, grpc_port=0)
    with Server(settings) as server:
        request = urllib.request.Request(
            server.rest_url + ":predict", data=json.dumps({"instances": images.tolist()}).encode(),
            method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            predictions = json.loads(response.read())["predictions"]
    np.testing.assert_allclose(predictions, served["reconstructions"], atol=1e-5)


def test_unlabelled_images_train_and_measure_without_the_probes(tmp_path, monkeypatch):
    write_images(tmp_path / "scans", 40, shape=(12, 10, 1))
    _ok(["fit", "--model", "shallow", "--dataset", "scans", "--epochs", "1", "--out", "run",
         "--no-export"], tmp_path, monkeypatch)
    metrics = json.loads(_ok(["evaluate", "run", "--json"], tmp_path, monkeypatch))
    assert metrics["probe"] is None and metrics["notes"] == [
        "probes, the occlusion probe and manifold convergence left out: the data set has no "
        "labels"]
    assert metrics["occlusion"]["5x5"]["linear_probe"] is None and "manifold" not in metrics
    assert metrics["reconstruction"]["mse"] > 0 and metrics["denoising"]
    table = _ok(["evaluate", "run"], tmp_path, monkeypatch)
    assert "note" in table and "linear probe" not in table
    assert "wrote" in _ok(["plot", "run", "--kind", "tsne"], tmp_path, monkeypatch)


def test_a_single_class_leaves_the_probes_out_with_a_note(tmp_path):
    write_images(tmp_path / "one/cats", 30)
    fit(FitConfig(model="shallow", epochs=1, dataset=str(tmp_path / "one")), tmp_path / "run",
        export=False, verbose=0)
    metrics = evaluate(tmp_path / "run", verbose=0)
    assert metrics["probe"] is None and "single class" in metrics["notes"][0]


@pytest.mark.parametrize("family", family_names())
def test_every_family_fits_an_odd_sized_colour_folder_exports_and_serves_without_tfae(
        family, tmp_path):
    """Every family from the command line, on a folder of 30x30 colour images (a size the
    convolution blocks cannot halve), into fit's own export, served where tfae cannot load."""
    _write_classes(tmp_path / "shapes", 40, (30, 30, 3))
    run_tfae("fit", "--model", family, "--dataset", "shapes", "--epochs", "1", "--batch-size",
             "16", "--out", "run", "--quiet", cwd=tmp_path)
    config = json.loads((tmp_path / "run/config.json").read_text())
    assert config["model"] == family
    if family == "denoising":
        assert config["noise"] == "gaussian:0.5"
    images, _ = _shapes(3, (30, 30, 3))
    served = serve_without_tfae(tmp_path / f"saved_models/{family}/1",
                                (images / 255).astype(np.float32), tmp_path)
    prior = (SAMPLE_SIGNATURE,) if family == "vae" else ()
    assert served["signatures"] == sorted((*SIGNATURES, *SCORE_SIGNATURES, *prior))
    assert np.array(served["reconstructions"]).shape == (3, 30, 30, 3)
    assert np.isfinite(served["codes"]).all()


def test_a_large_odd_colour_image_keeps_its_size_through_the_conv_families(tmp_path):
    images, labels = _shapes(12, (75, 100, 3))
    run = fit(FitConfig(model="deep-conv", epochs=1, batch_size=4), tmp_path / "run",
              export=False, verbose=0, data=(images, labels))
    assert run.model.predict(images[:1] / 255, verbose=0).shape == (1, 75, 100, 3)


def test_python_data_and_callbacks_reach_the_run(tmp_path):
    images, labels = _shapes(50, (8, 8, 1))
    epochs_seen = []

    class Recorder(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            epochs_seen.append(epoch)

    fit(FitConfig(model="deep", epochs=2, model_options={"hidden": (16,), "latent_dim": 4}),
        tmp_path / "run", export=False, verbose=0, data={"x": images, "y": labels},
        callbacks=[Recorder()])
    assert epochs_seen == [0, 1]
    with pytest.raises(TfaeError, match="trained on arrays given in Python; give the data"):
        evaluate(tmp_path / "run", verbose=0)
    metrics = evaluate(tmp_path / "run", dataset=(images, labels), verbose=0)
    assert metrics["data"]["kind"] == "arrays" and metrics["probe"]["linear"] > 0.5


def test_changed_data_is_refused_on_resume_and_noted_by_evaluate(tmp_path, monkeypatch):
    write_images(tmp_path / "pics", 20)
    _ok(["fit", "--model", "shallow", "--dataset", "pics", "--epochs", "1", "--out", "run",
         "--no-export"], tmp_path, monkeypatch)
    write_images(tmp_path / "pics", 1, seed=5)  # one image replaced
    result = CliRunner().invoke(tfae, ["fit", "--model", "shallow", "--dataset", "pics",
                                       "--epochs", "2", "--out", "run", "--no-export"])
    assert result.exit_code != 0 and "--out run was trained on other data" in result.output
    assert json.loads((tmp_path / "run/run.json").read_text())["epochs_finished"] == 1
    metrics = json.loads(_ok(["evaluate", "run", "--json"], tmp_path, monkeypatch))
    assert any("has changed since run was trained" in note for note in metrics["notes"])


def test_an_npz_run_is_measured_from_any_working_folder(tmp_path, monkeypatch):
    images, labels = _shapes(40, (10, 10))  # (N, H, W): grey without a channel axis
    np.savez(tmp_path / "set.npz", x=images, y=labels)
    _ok(["fit", "--model", "shallow", "--dataset", "set.npz", "--epochs", "1", "--out", "run",
         "--no-export"], tmp_path, monkeypatch)
    (tmp_path / "elsewhere").mkdir()
    metrics = json.loads(_ok(["evaluate", "../run", "--json"], tmp_path / "elsewhere",
                             monkeypatch))
    assert metrics["dataset"] == "set" and metrics["notes"] == []


def test_a_search_runs_on_a_colour_folder_and_refuses_the_probe_without_labels(
        tmp_path, monkeypatch):
    _write_classes(tmp_path / "photos", 40, (18, 22, 3))
    output = _ok(["tune", "--model", "shallow", "--dataset", "photos", "--tuner", "random",
                  "--max-trials", "1", "--epochs", "1", "--objective", "probe", "--out", "search",
                  "--export-dir", "exported"], tmp_path, monkeypatch)
    assert "exported: exported/1" in output
    config = json.loads((tmp_path / "search/config.json").read_text())
    assert config["dataset"] == "photos"
    write_images(tmp_path / "plain", 20)
    result = CliRunner().invoke(tfae, ["tune", "--model", "shallow", "--dataset", "plain",
                                       "--tuner", "random", "--objective", "probe", "--out",
                                       "other"])
    assert result.exit_code != 0
    assert "Error: --objective probe needs labels of two classes or more, and plain has none" \
        in result.output and not (tmp_path / "other").exists()


def test_colorization_is_measured_and_drawn_on_held_out_photo_crops(tmp_path, monkeypatch):
    from tfae.data.sample_photos import write_crops

    write_crops(tmp_path / "crops", size=16, stride=48)
    _ok(["fit", "--model", "deep-conv", "--dataset", "crops", "--noise", "grayscale", "--epochs",
         "2", "--out", "run", "--no-export"], tmp_path, monkeypatch)
    metrics = json.loads(_ok(["evaluate", "run", "--json"], tmp_path, monkeypatch))
    colour = metrics["colorization"]
    assert 5 < colour["grayscale_psnr"] < 40 and 5 < colour["colorized_psnr"] < 40
    assert metrics["probe"] is None  # crops have no labels
    assert "wrote" in _ok(["plot", "run", "--kind", "colorization"], tmp_path, monkeypatch)
    assert (tmp_path / "run/figures/colorization.png").stat().st_size > 1000
    write_images(tmp_path / "grey", 20)
    _ok(["fit", "--model", "shallow", "--dataset", "grey", "--epochs", "1", "--out", "grey-run",
         "--no-export"], tmp_path, monkeypatch)
    assert "colorization" not in json.loads(_ok(["evaluate", "grey-run", "--json"], tmp_path,
                                                monkeypatch))
    result = CliRunner().invoke(tfae, ["plot", "grey-run", "--kind", "colorization"])
    assert result.exit_code != 0 and "--kind colorization needs colour images" in result.output
    result = CliRunner().invoke(tfae, ["fit", "--dataset", "grey", "--noise", "grayscale",
                                       "--out", "refused"])
    assert "needs colour images (3 channels), got 1; --channels 3" in result.output
    assert not (tmp_path / "refused").exists()
