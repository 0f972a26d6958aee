"""Anomaly scores: a run trained on one class tells the other classes apart; tfae score."""

import csv
import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from conftest import run_tfae
from tfae.anomaly import Calibration, nearest_distances
from tfae.errors import TfaeError


def test_nearest_distances_are_the_mean_of_the_k_smallest_euclidean_distances():
    rng = np.random.default_rng(0)
    codes, reference = rng.normal(size=(7, 5)), rng.normal(size=(40, 5))
    every = np.linalg.norm(codes[:, None] - reference[None], axis=2)
    expected = np.sort(every, axis=1)[:, :3].mean(axis=1)
    np.testing.assert_allclose(nearest_distances(codes, reference, 3).numpy(), expected,
                               rtol=1e-4)


def test_the_threshold_flags_the_contamination_share_of_validation_scores():
    validation = np.random.default_rng(1).exponential(size=1000)
    parts = {"reconstruction": validation, "codes": validation * 2, "elbo": validation + 90}
    calibration = Calibration(np.zeros((3, 2), np.float32), parts, ())
    assert calibration.scores() == ["reconstruction", "codes", "combined", "elbo"]
    for score in calibration.scores():
        threshold = calibration.threshold(score, 0.1)
        flagged = calibration.combined(parts, score) > threshold
        assert flagged.mean() == pytest.approx(0.1, abs=0.002)
    with pytest.raises(TfaeError, match="contamination must be auto or between 0 and 0.5"):
        calibration.threshold("codes", 0.5)
    with pytest.raises(TfaeError, match="score must be one of"):
        calibration.combined(parts, "likelihood")
    # Without a posterior there is no ELBO to score with.
    plain = Calibration(np.zeros((3, 2), np.float32), {"reconstruction": validation,
                                                       "codes": validation}, ())
    assert "elbo" not in plain.scores()
    with pytest.raises(TfaeError, match="score elbo needs a variational autoencoder"):
        plain.threshold("elbo", 0.1)


def test_a_calibration_reads_back_as_it_was_saved(tmp_path):
    for parts in (("reconstruction", "codes"), ("reconstruction", "codes", "elbo")):
        validation = {part: np.arange(5.0) + index for index, part in enumerate(parts)}
        calibration = Calibration(np.ones((4, 3), np.float32), validation, (7, 8, 9))
        calibration.save(tmp_path / "anomaly.npz")
        read = Calibration.load(tmp_path / "anomaly.npz")
        np.testing.assert_array_equal(read.reference_codes, calibration.reference_codes)
        assert read.model == (7, 8, 9) and sorted(read.validation) == sorted(parts)
        for part in parts:
            np.testing.assert_array_equal(read.validation[part], validation[part])
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    assert Calibration.load(tmp_path / "broken.npz") is None


@pytest.fixture(scope="module")
def ones_run(tmp_path_factory):
    """A run trained on MNIST's ones only."""
    work = tmp_path_factory.mktemp("anomaly")
    run_tfae("fit", "--model", "deep", "--hidden", "256", "--latent-dim", "16", "--noise",
             "none", "--limit", "3000", "--epochs", "10", "--batch-size", "32", "--classes", "1",
             "--no-export", "--out", "ones", "--quiet", cwd=work)
    return work


def read_rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


@pytest.mark.slow
def test_a_run_trained_on_ones_scores_the_other_digits_higher(ones_run):
    result = run_tfae("score", "ones", "--split", "test", "--limit", "1000", "--score",
                      "combined", "--out", "scores.csv", "--quiet", cwd=ones_run)
    rows = read_rows(ones_run / "scores.csv")
    assert len(rows) == 1000 and rows[0]["id"] == "test/0000"
    anomalous = np.array([row["label"] != "1" for row in rows])
    scores = np.array([float(row["score"]) for row in rows])
    assert roc_auc_score(anomalous, scores) > 0.95
    flagged = np.array([row["flagged"] == "true" for row in rows])
    assert flagged[~anomalous].mean() < 0.2  # about the 5% of validation ones
    assert flagged[anomalous].mean() > 0.8
    assert f"flagged {flagged.sum():,} of 1,000 mnist images" in result.stdout
    highest = result.stdout.splitlines()[1].split()
    assert highest[1] == rows[int(np.argmax(scores))]["id"]


@pytest.mark.slow
def test_evaluate_reports_how_well_each_score_tells_the_other_digits_apart(ones_run):
    metrics = json.loads(run_tfae("evaluate", "ones", "--limit", "2000", "--json", "--quiet",
                                  cwd=ones_run).stdout)["anomaly"]
    for score in ("reconstruction", "codes", "combined"):
        assert metrics[score]["auroc"] > 0.95 and metrics[score]["auprc"] > 0.95
        assert metrics[score]["f1"] > 0.85
        assert metrics[score]["flagged_normal"] < 0.2 < 0.8 < metrics[score]["flagged_anomalous"]


@pytest.mark.slow
def test_score_summarises_as_json_and_calibrates_a_run_once(ones_run):
    calibration = ones_run / "ones" / "anomaly.npz"
    summary = json.loads(run_tfae("score", "ones", "--split", "test", "--limit", "200",
                                  "--contamination", "0.1", "--json", cwd=ones_run).stdout)
    assert summary["images"] == 200 and summary["written_to"] is None
    assert summary["score"] == "reconstruction" and summary["contamination"] == 0.1
    assert 0 < summary["flagged"] < 200 and len(summary["most_anomalous"]) == 10
    made = calibration.stat().st_mtime_ns
    again = json.loads(run_tfae("score", "ones", "--split", "test", "--limit", "200",
                                "--contamination", "0.1", "--json", cwd=ones_run).stdout)
    assert again == summary and calibration.stat().st_mtime_ns == made


@pytest.mark.slow
def test_score_draws_each_flagged_image_with_its_error_map_over_it(ones_run):
    import tensorflow as tf

    result = run_tfae("score", "ones", "--split", "test", "--limit", "300", "--out",
                      "mapped.csv", "--maps", "maps", "--quiet", cwd=ones_run)
    rows = read_rows(ones_run / "mapped.csv")
    flagged = {row["id"] for row in rows if row["flagged"] == "true"}
    written = {str(path.relative_to(ones_run / "maps").with_suffix(""))
               for path in (ones_run / "maps").rglob("*.png")}
    assert written == flagged and 0 < len(flagged) < 300
    assert "their error maps in maps" in result.stdout
    shown = tf.io.decode_png((ones_run / "maps" / f"{sorted(flagged)[0]}.png").read_bytes())
    pixels = shown.numpy().astype(int)
    assert shown.shape == (28, 28, 3)
    red = (pixels[..., 0] > pixels[..., 1] + 40)  # where the error is, red over the grey
    assert 0 < red.sum() < 28 * 28
    # however few are flagged, none included, the folder is made
    run_tfae("score", "ones", "--split", "test", "--limit", "1", "--contamination", "0.49",
             "--maps", "none-flagged", "--quiet", cwd=ones_run)
    assert (ones_run / "none-flagged").is_dir()


@pytest.mark.slow
def test_an_auto_threshold_is_tukeys_fence_of_the_validation_scores_in_run_and_export(ones_run):
    from tfae.anomaly import threshold_of
    from tfae.opened import open_model

    summary = json.loads(run_tfae("score", "ones", "--split", "test", "--limit", "500",
                                  "--contamination", "auto", "--json", cwd=ones_run).stdout)
    detector = open_model(ones_run / "ones").detector(contamination="auto")
    low, high = np.quantile(detector.decision_scores_, [0.25, 0.75])
    assert summary["contamination"] == "auto"
    assert summary["threshold"] == pytest.approx(high + 1.5 * (high - low))
    assert detector.threshold_ == threshold_of(detector.decision_scores_, "auto")
    # the same run's 5% threshold flags about 5% of the validation ones; the fence, those far out
    assert 0 < (detector.decision_scores_ > detector.threshold_).mean() < 0.1
    run_tfae("export", "ones", "--contamination", "auto", "--export-dir", "auto-export",
             "--quiet", cwd=ones_run)
    settings = json.loads((ones_run / "auto-export/1/anomaly.json").read_text())
    assert settings["contamination"] == "auto"
    assert settings["threshold"] == pytest.approx(summary["threshold"])
    exported = json.loads(run_tfae("score", "auto-export", "--split", "test", "--limit", "500",
                                   "--dataset", "mnist", "--json", cwd=ones_run).stdout)
    assert exported["flagged"] == summary["flagged"]
    refused = run_tfae("score", "auto-export", "--contamination", "0.05", "--dataset", "mnist",
                       cwd=ones_run, check=False)
    assert "scores reconstruction at contamination auto (Tukey's upper fence)" in refused.stderr


def test_error_overlay_is_grey_where_the_model_is_right_and_red_where_it_is_wrong():
    from tfae.anomaly import error_overlay

    images = np.full((2, 4, 4, 1), 0.5, np.float32)
    errors = np.zeros((2, 4, 4, 1), np.float32)
    errors[0, 1, 2] = 0.3  # one wrong pixel; the second image has none
    overlay = error_overlay(images, errors)
    assert overlay.shape == (2, 4, 4, 3) and overlay.min() >= 0 and overlay.max() <= 1
    np.testing.assert_allclose(overlay[0, 1, 2], [1, 0, 0])
    np.testing.assert_allclose(overlay[0, 0, 0], [0.3, 0.3, 0.3])
    np.testing.assert_allclose(overlay[1], np.full((4, 4, 3), 0.3))


@pytest.mark.parametrize("arguments, message", [
    (["--maps", "scores.csv"], "Error: --maps must be a folder for PNG files, got scores.csv"),
    (["--maps", "missing/maps"], "Error: --maps: folder missing does not exist"),
    (["--contamination", "0.7"], "Error: --contamination must be auto or between 0 and 0.5 (the "
                                 "share of normal images flagged), got 0.7"),
    (["--contamination", "often"], "Error: Invalid value for '--contamination': 'often' is "
                                   "neither auto nor a number"),
    (["--out", "scores.txt"], "Error: --out must end in .csv, .parquet, got scores.txt"),
    (["--out", "missing/scores.csv"], "Error: --out: folder missing does not exist"),
])
def test_bad_score_settings_are_one_line(tmp_path, arguments, message):
    (tmp_path / "run").mkdir()  # refused before the model is opened
    result = run_tfae("score", "run", *arguments, cwd=tmp_path, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == message


def test_an_export_without_a_score_signature_is_refused_with_how_to_remake_it(export_dir,
                                                                               tmp_path):
    result = run_tfae("score", export_dir, cwd=tmp_path, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "has no score signature" in result.stderr
    assert "export its run again (tfae export RUN_DIR)" in result.stderr


@pytest.mark.parametrize("family, score", [("deep", "combined"), ("vae", "elbo"),
                                           ("geometric", "combined")])
def test_an_exports_score_signature_scores_and_flags_as_the_library_does(tmp_path, family,
                                                                         score):
    import tensorflow as tf

    from tfae.anomaly import AnomalyDetector, score_parts
    from tfae.exports import export_saved_model
    from tfae.families import build_model
    from tfae.opened import OpenedModel

    model = build_model(family, (28, 28, 1), hidden=(16,), latent_dim=4)
    opened = OpenedModel.of_model(model)
    rng = np.random.default_rng(0)
    validation = {"reconstruction": rng.exponential(0.1, 300), "codes": rng.exponential(1.0, 300),
                  "elbo": rng.normal(550, 5, 300), "transformations": rng.normal(2, 0.05, 300)}
    calibration = Calibration(rng.normal(size=(50, 4)).astype(np.float32), {
        part: values for part, values in validation.items()
        if part in score_parts(opened, np.zeros((1, 28, 28, 1), np.float32),
                               np.zeros((1, 4), np.float32))[0]}, ())
    detector = AnomalyDetector(score, 0.2).calibrated(opened, calibration)
    version = export_saved_model(model, tmp_path / family, detector=detector)
    images = rng.random((6, 28, 28, 1)).astype(np.float32)
    served = tf.saved_model.load(str(version)).signatures["score"](images=tf.constant(images))
    parts, _ = score_parts(opened, images, calibration.reference_codes)
    expected = calibration.combined({name: np.asarray(part) for name, part in parts.items()},
                                    score)
    np.testing.assert_allclose(served["scores"].numpy(), expected, rtol=1e-4)
    np.testing.assert_allclose(detector.decision_function(images), expected, rtol=1e-4)
    threshold = calibration.threshold(score, 0.2)
    assert detector.threshold_ == threshold
    np.testing.assert_array_equal(served["flagged"].numpy(), expected > threshold)
    np.testing.assert_array_equal(detector.predict(images), expected > threshold)
    np.testing.assert_allclose(served["error_maps"].numpy(),
                               np.square(model(images).numpy() - images), atol=1e-6)


@pytest.mark.slow
def test_tfae_serve_gives_an_exports_scores_over_rest_and_grpc(ones_run):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from tfae.data.pipeline import first_images
    from tfae.data import load
    from tfae.serving import Server, ServerSettings
    from test_serve import _call

    run_tfae("export", "ones", "--export-dir", "exported", "--score", "combined", "--quiet",
             cwd=ones_run)
    run_tfae("score", "ones", "--split", "test", "--limit", "8", "--score", "combined",
             "--out", "eight.csv", "--quiet", cwd=ones_run)
    rows = read_rows(ones_run / "eight.csv")
    images = first_images(load("mnist", limit=8).test)[1]
    exported = json.loads(run_tfae("score", "exported", "--split", "test", "--limit", "8",
                                   "--json", cwd=ones_run).stdout)
    assert exported["score"] == "combined" and exported["contamination"] == 0.05
    assert exported["flagged"] == sum(row["flagged"] == "true" for row in rows)
    other = run_tfae("score", "exported", "--score", "codes", cwd=ones_run, check=False)
    assert other.returncode != 0 and "scores combined at contamination 5%" in other.stderr
    settings = ServerSettings(str(ones_run / "exported"), "ones", port=0, grpc_port=0)
    with Server(settings) as server:
        status, answer = _call(server.rest_url + ":predict",
                               {"signature_name": "score", "instances": images.tolist()})
        assert status == 200
        predictions = answer["predictions"]
        np.testing.assert_allclose([row["scores"] for row in predictions],
                                   [float(row["score"]) for row in rows], rtol=1e-3)
        assert [row["flagged"] for row in predictions] == [row["flagged"] == "true"
                                                           for row in rows]
        assert np.array(predictions[0]["error_maps"]).shape == (28, 28, 1)
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = "ones", "score"
        request.inputs["images"].CopyFrom(tf.make_tensor_proto(images))
        request.output_filter.append("flagged")
        with grpc.insecure_channel(server.grpc_target) as channel:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                request, timeout=30)
        assert set(response.outputs) == {"flagged"}
        assert tf.make_ndarray(response.outputs["flagged"]).tolist() == [
            row["flagged"] == "true" for row in rows]


@pytest.mark.slow
def test_plot_anomalies_draws_the_worst_and_best_reconstructed_test_images(ones_run):
    import matplotlib.image

    result = run_tfae("plot", "ones", "--kind", "anomalies", "--quiet", cwd=ones_run)
    path = ones_run / "ones" / "figures" / "anomalies.png"
    assert result.stdout.strip() == "wrote ones/figures/anomalies.png"
    height, width, _ = matplotlib.image.imread(path).shape
    assert width > 2 * height > 0  # four rows of ten images


def test_a_damaged_calibration_is_made_again_by_score_and_export(tmp_path):
    import tfae

    run = tfae.fit(tfae.FitConfig(model="deep", limit=200, epochs=1, batch_size=32,
                                  model_options={"hidden": (8,), "latent_dim": 3}),
                   tmp_path / "run", verbose=0)
    first = tfae.score(run.run_dir, split="test", limit=20, verbose=False)
    kept = run.run_dir / "anomaly.npz"
    for damage in (kept.read_bytes()[:100], b"", b"{}"):  # cut short, emptied, overwritten
        kept.write_bytes(damage)
        again = tfae.score(run.run_dir, split="test", limit=20, verbose=False)
        np.testing.assert_allclose(again.scores, first.scores, rtol=1e-5)
        assert Calibration.load(kept) is not None  # made again, and kept
    kept.write_bytes(b"PK\x03\x04 half a zip")
    assert (tfae.export(run.run_dir, tmp_path / "export") / "anomaly.json").is_file()


def test_a_threshold_resting_on_few_images_says_so_and_how_far_its_rate_may_be(tmp_path,
                                                                               capfd):
    # scikit-learn's 8x8 digits, one class: 20 validation images of it.
    from sklearn.datasets import load_digits

    import tfae

    digits = load_digits()
    np.savez(tmp_path / "digits.npz", x=(digits.images * 255 / 16).astype(np.uint8),
             y=digits.target)
    run = tfae.fit(tfae.FitConfig(model="deep", dataset=str(tmp_path / "digits.npz"),
                                  classes="0", epochs=1, batch_size=16,
                                  model_options={"hidden": (16,), "latent_dim": 4}),
                   tmp_path / "run", verbose=0)
    capfd.readouterr()
    scored = tfae.score(run.run_dir, split="test", verbose=False)
    warning = capfd.readouterr().err
    assert "warning: the threshold rests on 20 validation images: at a stated 5%, between " \
           in warning and "(95% range)" in warning
    assert scored.images > 0  # refuses nothing
