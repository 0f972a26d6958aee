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
    calibration = Calibration(np.zeros((3, 2), np.float32), validation, validation * 2, ())
    for score in ("reconstruction", "codes", "combined"):
        threshold = calibration.threshold(score, 0.1)
        flagged = calibration.combined(validation, validation * 2, score) > threshold
        assert flagged.mean() == pytest.approx(0.1, abs=0.002)
    with pytest.raises(TfaeError, match="contamination must be between 0 and 0.5"):
        calibration.threshold("codes", 0.5)
    with pytest.raises(TfaeError, match="score must be one of"):
        calibration.combined(validation, validation, "elbo")


def test_a_calibration_reads_back_as_it_was_saved(tmp_path):
    calibration = Calibration(np.ones((4, 3), np.float32), np.arange(5.0), np.arange(5.0) + 1,
                              (7, 8, 9))
    calibration.save(tmp_path / "anomaly.npz")
    read = Calibration.load(tmp_path / "anomaly.npz")
    np.testing.assert_array_equal(read.reference_codes, calibration.reference_codes)
    assert read.model == (7, 8, 9)
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


@pytest.mark.parametrize("arguments, message", [
    (["--contamination", "0.7"], "Error: --contamination must be between 0 and 0.5 (the share of "
                                 "normal images flagged), got 0.7"),
    (["--out", "scores.txt"], "Error: --out must end in .csv, .parquet, got scores.txt"),
    (["--out", "missing/scores.csv"], "Error: --out: folder missing does not exist"),
])
def test_bad_score_settings_are_one_line(tmp_path, arguments, message):
    (tmp_path / "run").mkdir()  # refused before the model is opened
    result = run_tfae("score", "run", *arguments, cwd=tmp_path, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == message


def test_an_export_is_refused_with_what_to_score_instead(export_dir, tmp_path):
    result = run_tfae("score", export_dir, cwd=tmp_path, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "is not a run folder" in result.stderr
    assert "score the run folder the export was made from" in result.stderr
