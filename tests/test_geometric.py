"""``geometric``: an autoencoder and a classifier of its images' turns (GEOM's score)."""

import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import roc_auc_score

from tfae.anomaly import Calibration, default_score
from tfae.errors import TfaeError
from tfae.families import build_model
from tfae.models.geometric import transformations_of, transformed
from tfae.opened import OpenedModel


def test_each_transformation_is_a_quarter_turn_of_the_image_or_of_its_mirror():
    images = tf.random.uniform((2, 5, 5, 3), seed=0)
    shown = set()
    for mirrored, turns in transformations_of((5, 5, 3)):
        expected = tf.image.rot90(tf.reverse(images, [2]) if mirrored else images, turns)
        np.testing.assert_array_equal(transformed(images, (mirrored, turns)), expected)
        shown.add(transformed(images, (mirrored, turns)).numpy().tobytes())
    assert len(shown) == 8  # all different


# Each family's small layers: geometric's dense autoencoder, geometric-conv's convolutional one.
SMALL = {"geometric": {"hidden": (8,), "latent_dim": 2},
         "geometric-conv": {"filters": (4, 8), "latent_dim": 2}}


@pytest.mark.parametrize("family", sorted(SMALL))
def test_a_non_square_image_keeps_its_shape_in_each_of_its_four_transformations(family):
    model = build_model(family, (6, 10, 3), **SMALL[family])
    assert model.transformer.output_shape == (None, 4)
    images = np.random.default_rng(0).random((4, 6, 10, 3), dtype=np.float32)
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(images, images, epochs=1, verbose=0)
    assert sorted(history.history) == ["loss", "reconstruction", "transformations"]
    assert model.transformation_surprise(images).shape == (4,)


def test_training_teaches_the_classifier_the_turns_of_normal_images_and_not_of_others():
    # Normal images: a bar from the top-left corner; anomalies: symmetric crosses, whose turns
    # look alike, so no classifier can tell them apart.
    rng = np.random.default_rng(0)
    normal = np.zeros((256, 12, 12, 1), np.float32)
    for index, length in enumerate(rng.integers(5, 11, 256)):
        normal[index, 1, 1:1 + length] = 1.0
        normal[index, 1:1 + length // 2, 1] = 1.0
    crosses = np.zeros((64, 12, 12, 1), np.float32)
    crosses[:, 5:7, 2:10] = crosses[:, 2:10, 5:7] = 1.0
    model = build_model("geometric", (12, 12, 1), hidden=(32,), latent_dim=4)
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(normal, normal, epochs=8, batch_size=32, verbose=0)
    assert history.history["transformations"][-1] < 0.5 * np.log(8)
    surprise = np.concatenate([model.transformation_surprise(normal[:64]),
                               model.transformation_surprise(crosses)])
    assert roc_auc_score(np.repeat([0, 1], 64), surprise) > 0.95


@pytest.mark.parametrize("family", sorted(SMALL))
def test_a_saved_geometric_model_loads_safely_and_scores_the_same(tmp_path, family):
    import keras

    model = build_model(family, (8, 8, 1), **SMALL[family])
    images = np.random.default_rng(1).random((3, 8, 8, 1), dtype=np.float32)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.transformation_surprise(images),
                               model.transformation_surprise(images), rtol=1e-5)


@pytest.mark.parametrize("family", sorted(SMALL))
def test_a_geometric_detector_adds_the_turns_to_combined_by_default_and_others_lack_them(family):
    geometric = OpenedModel.of_model(build_model(family, (8, 8, 1), **SMALL[family]))
    deep = OpenedModel.of_model(build_model("deep", (8, 8, 1), hidden=(8,), latent_dim=2))
    assert default_score(geometric) == "combined" and default_score(deep) == "reconstruction"
    rng = np.random.default_rng(2)
    validation = {"reconstruction": rng.exponential(0.1, 200), "codes": rng.exponential(1, 200),
                  "transformations": rng.normal(2, 0.1, 200)}
    calibration = Calibration(np.zeros((5, 2), np.float32), validation, ())
    assert calibration.scores() == ["reconstruction", "codes", "combined", "transformations"]
    image = {"reconstruction": np.array([0.1]), "codes": np.array([1.0]),
             "transformations": np.array([3.0])}
    expected = sum((image[part] - np.median(values)) / np.std(values)
                   for part, values in validation.items())
    np.testing.assert_allclose(calibration.combined(image, "combined"), expected)
    plain = Calibration(np.zeros((5, 2), np.float32), {part: validation[part] for part in
                                                       ("reconstruction", "codes")}, ())
    with pytest.raises(TfaeError, match="score transformations needs a model with a classifier "
                                        r"of turns \(--model geometric or geometric-conv\)"):
        plain.threshold("transformations", 0.1)


@pytest.mark.slow
def test_a_geometric_run_on_ones_scores_other_digits_higher_by_default_and_its_export_agrees(
        tmp_path):
    import csv

    from conftest import run_tfae

    run_tfae("fit", "--model", "geometric", "--hidden", "128", "--latent-dim", "16", "--noise",
             "none", "--limit", "3000", "--epochs", "6", "--batch-size", "32", "--classes", "1",
             "--out", "ones", "--export-dir", "exported", "--quiet", cwd=tmp_path)
    run_tfae("score", "ones", "--split", "test", "--limit", "1000", "--out", "run.csv",
             "--quiet", cwd=tmp_path)
    run_tfae("score", "exported", "--split", "test", "--limit", "1000", "--out", "export.csv",
             "--quiet", cwd=tmp_path)
    with open(tmp_path / "run.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    with open(tmp_path / "export.csv", newline="") as file:
        exported = list(csv.DictReader(file))
    others = np.array([row["label"] != "1" for row in rows])
    for column in ("score", "reconstruction_error", "code_distance", "transformation_surprise"):
        values = np.array([float(row[column]) for row in rows])
        assert roc_auc_score(others, values) > 0.9, column
    # The export was made with the run's default score, combined, turns included.
    np.testing.assert_allclose([float(row["score"]) for row in exported],
                               [float(row["score"]) for row in rows], rtol=1e-3, atol=1e-3)
    assert [row["flagged"] for row in exported] == [row["flagged"] for row in rows]
