import pathlib
import subprocess

import numpy as np
import pytest

from conftest import serve_without_tfae
from tfae.exports import export_saved_model
from tfae.signatures import SIGNATURES
from tfae.families import build_model
from tfae.runs import ExportFolder

IMAGES = np.random.default_rng(1).random((5, 28, 28, 1), dtype=np.float32)


@pytest.fixture(scope="module")
def model():
    return build_model("deep", (28, 28, 1), hidden=(32, 16), latent_dim=4)


@pytest.mark.slow  # an interpreter where tfae cannot be imported: the full tier
def test_export_loads_without_tfae_and_matches_keras(model, tmp_path):
    version_dir = export_saved_model(model, tmp_path / "deep")
    served = serve_without_tfae(version_dir, IMAGES, tmp_path)
    assert served["signatures"] == sorted(SIGNATURES)
    codes = model.encoder(IMAGES).numpy()
    np.testing.assert_allclose(served["codes"], codes, atol=1e-5)
    np.testing.assert_allclose(served["reconstructions"], model(IMAGES).numpy(), atol=1e-5)
    np.testing.assert_allclose(served["decoded"], model.decoder(codes).numpy(), atol=1e-5)


@pytest.mark.parametrize("resize", ["stretch", "crop", "pad"])
def test_bytes_and_pixels_signatures_prepare_images_as_tfae_reads_them(tmp_path, resize):
    import tensorflow as tf
    from PIL import Image

    from tfae.data import load_records

    rng = np.random.default_rng(3)
    photos = tmp_path / "photos"
    photos.mkdir()
    for name, size in (("a.jpg", (40, 30)), ("b.png", (20, 50)), ("c.gif", (28, 28)),
                       ("d.bmp", (9, 9))):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(photos / name)
    small = build_model("deep", (12, 10, 1), hidden=(16,), latent_dim=3)
    served = tf.saved_model.load(str(export_saved_model(small, tmp_path / "small",
                                                        resize=resize)))
    records = load_records(str(photos), image_size=(12, 10), channels=1, resize=resize)
    ids, images, _ = next(iter(records.dataset.batch(4)))
    expected = small.encoder(tf.cast(images, tf.float32) / 255.0).numpy()
    files = tf.constant([(photos / image_id.decode()).read_bytes() for image_id in ids.numpy()])
    codes = served.signatures["encode_bytes"](image_bytes=files)["codes"].numpy()
    np.testing.assert_allclose(codes, expected, atol=1e-5)
    pixels = tf.io.decode_png(tf.io.read_file(str(photos / "b.png")), channels=1)[tf.newaxis]
    reconstructions = served.signatures["reconstruct_pixels"](pixels=pixels)["reconstructions"]
    np.testing.assert_allclose(reconstructions.numpy(),
                               small(tf.cast(images[1:2], tf.float32) / 255.0).numpy(), atol=1e-5)


def test_versions_count_up_and_never_overwrite(model, tmp_path):
    first = export_saved_model(model, tmp_path / "deep")
    marker = first / "saved_model.pb"
    before = marker.read_bytes()
    second = export_saved_model(model, tmp_path / "deep")
    assert (first.name, second.name) == ("1", "2")
    assert marker.read_bytes() == before
    assert ExportFolder(tmp_path / "deep").next_version() == 3
    assert sorted(path.name for path in (tmp_path / "deep").iterdir()) == ["1", "2"]


@pytest.mark.slow  # TensorFlow's saved_model_cli, a process of its own: the full tier
def test_saved_model_cli_lists_the_three_signatures(model, tmp_path):
    version_dir = export_saved_model(model, tmp_path / "deep")
    shown = subprocess.run(["saved_model_cli", "show", "--all", "--dir", str(version_dir)],
                           capture_output=True, text=True, check=True).stdout
    for name in SIGNATURES:
        assert f"signature_def['{name}']" in shown
    assert "shape: (-1, 28, 28, 1)" in shown and "shape: (-1, 4)" in shown


@pytest.mark.slow  # TensorFlow's saved_model_cli, a process of its own: the full tier
@pytest.mark.parametrize("signature, input_name, output_name", [
    ("serving_default", "images", "reconstructions"), ("encode", "images", "codes"),
    ("decode", "codes", "images")])
def test_saved_model_cli_runs_each_signature_on_npy(model, tmp_path, signature, input_name,
                                                    output_name):
    version_dir = export_saved_model(model, tmp_path / "deep")
    inputs = IMAGES if input_name == "images" else model.encoder(IMAGES).numpy()
    np.save(tmp_path / "inputs.npy", inputs)
    subprocess.run(["saved_model_cli", "run", "--dir", str(version_dir), "--tag_set", "serve",
                    "--signature_def", signature, "--inputs", f"{input_name}={tmp_path}/inputs.npy",
                    "--outdir", str(tmp_path / "out")], capture_output=True, text=True, check=True)
    expected = {"reconstructions": model, "codes": model.encoder, "images": model.decoder}
    np.testing.assert_allclose(np.load(tmp_path / f"out/{output_name}.npy"),
                               expected[output_name](inputs).numpy(), atol=1e-5)


def test_an_export_onto_a_full_disk_is_one_line_and_leaves_nothing(model, tmp_path, monkeypatch):
    import tensorflow as tf

    from tfae import exports
    from tfae.errors import TfaeError

    export_saved_model(model, tmp_path / "exports")
    written = exports.signatures_archive

    def disk_full(model, resize, detector):
        archive = written(model, resize, detector)

        def write_out(path, verbose=False):
            (pathlib.Path(path) / "saved_model.pb").write_text("half")  # cut short
            raise tf.errors.ResourceExhaustedError(None, None, "saved_model.pb; No space left on "
                                                               "device\nmore detail")

        archive.write_out = write_out
        return archive

    monkeypatch.setattr(exports, "signatures_archive", disk_full)
    with pytest.raises(TfaeError, match=r"cannot export to .*exports: saved_model.pb; No space "
                                        r"left on device \(nothing was left there\)$"):
        export_saved_model(model, tmp_path / "exports")
    assert sorted(path.name for path in (tmp_path / "exports").iterdir()) == ["1"]


def test_only_folders_named_by_a_plain_number_are_versions(model, tmp_path):
    from tfae.opened import open_model

    export_saved_model(model, tmp_path / "deep")
    for name in ("99999999999999999999", "²", "1.5", "-3"):  # none is a version TF Serving takes
        (tmp_path / "deep" / name).mkdir()
        (tmp_path / "deep" / name / "saved_model.pb").write_bytes(b"not a model")
    assert ExportFolder(tmp_path / "deep").versions() == [1]
    assert open_model(tmp_path / "deep").path == tmp_path / "deep" / "1"


def test_an_export_whose_anomaly_settings_are_damaged_is_one_line(model, tmp_path):
    from tfae.anomaly import AnomalyDetector, Calibration
    from tfae.errors import TfaeError
    from tfae.opened import OpenedModel, open_model

    calibration = Calibration(np.zeros((4, 4), np.float32),
                              {"reconstruction": np.arange(20.0), "codes": np.ones(20)}, ())
    detector = AnomalyDetector().calibrated(OpenedModel.of_model(model), calibration)
    version = export_saved_model(model, tmp_path / "deep", detector=detector)
    (version / "anomaly.json").write_text("{}")
    with pytest.raises(TfaeError, match="is not an export's anomaly settings"):
        open_model(version)
