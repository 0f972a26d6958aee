"""--classes: training and validation keep some classes, the test split every class."""

import json
import re

import numpy as np
import pytest

from conftest import run_tfae, write_images
from tfae.data import load
from tfae.errors import TfaeError


def labels_of(split):
    return np.array([int(label) for _, label in split])


def test_training_and_validation_keep_the_named_classes_and_test_keeps_every_class():
    every = load("mnist", limit=600)
    kept = load("mnist", limit=600, classes="3,5")
    for split in ("train", "validation"):
        labels = labels_of(getattr(every, split))
        assert set(labels_of(getattr(kept, split))) == {3, 5}
        assert int(getattr(kept, split).cardinality()) == int(np.isin(labels, [3, 5]).sum())
    assert (labels_of(kept.test) == labels_of(every.test)).all()


def test_a_streamed_split_keeps_the_same_images_as_a_held_one():
    held = load("mnist", limit=300, classes="7")
    streamed = load("mnist", limit=300, classes="7", memory_budget=1e-9)
    assert int(streamed.train.cardinality()) == int(held.train.cardinality()) > 0
    held_images = np.stack([image for image, _ in held.train.as_numpy_iterator()])
    streamed_images = np.stack([image for image, _ in streamed.train.as_numpy_iterator()])
    np.testing.assert_array_equal(streamed_images, held_images)
    assert set(labels_of(streamed.train)) == {7}


def test_a_folders_classes_are_named_by_their_folders(tmp_path):
    for index, name in enumerate(("cat", "dog", "owl")):
        write_images(tmp_path / name, 20, seed=index)
    splits = load(str(tmp_path), classes="owl, cat")
    assert {splits.class_names[label] for label in labels_of(splits.train)} == {"cat", "owl"}


@pytest.mark.parametrize("classes, message", [
    ("11", "mnist has no class '11' (its classes: 0, 1, 2"),
    ("3,eight", "mnist has no class 'eight'"),
    (",".join(map(str, range(10))), "names every class of mnist"),
    ("3,,5", "must name classes"),
])
def test_classes_the_data_cannot_keep_are_refused_by_name(classes, message):
    with pytest.raises(TfaeError, match=re.escape(message)):
        load("mnist", limit=100, classes=classes)


def test_classes_of_unlabelled_images_are_refused(tmp_path):
    np.savez(tmp_path / "plain.npz", x=np.zeros((40, 4, 4, 1), np.uint8))
    with pytest.raises(TfaeError, match="needs labelled images, and plain has none"):
        load(str(tmp_path / "plain.npz"), classes="0")


def test_a_class_with_no_validation_images_is_named(tmp_path):
    labels = np.zeros(40, np.int64)
    labels[0] = 1  # class 1 only among the first, training, images
    np.savez(tmp_path / "few.npz", x=np.zeros((40, 4, 4, 1), np.uint8), y=labels,
             x_test=np.zeros((4, 4, 4, 1), np.uint8), y_test=np.zeros(4, np.int64))
    with pytest.raises(TfaeError, match="classes 1 leaves no validation images of few"):
        load(str(tmp_path / "few.npz"), classes="1")


def test_fit_records_its_classes_and_evaluate_measures_every_class(tmp_path):
    run_tfae("fit", "--model", "shallow", "--latent-dim", "16", "--limit", "600", "--epochs",
             "1", "--classes", "4", "--no-export", "--out", "run", "--quiet", cwd=tmp_path)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["classes"] == "4"
    metrics = json.loads(run_tfae("evaluate", "run", "--json", "--quiet", cwd=tmp_path).stdout)
    assert metrics["train_images"] == 600  # every class's, not class 4's alone
    assert metrics["probe"]["linear"] > 0.5  # ten classes told apart
    anomaly = metrics["anomaly"]  # the other classes told from class 4, by each score
    assert anomaly["normal_classes"] == "4" and 0 < anomaly["anomalous_test_images"] < 600
    assert set(anomaly["reconstruction"]) == {"auroc", "auprc", "f1", "flagged_normal",
                                              "flagged_anomalous"}


def test_bad_classes_on_the_command_line_are_one_line(tmp_path):
    result = run_tfae("fit", "--limit", "100", "--classes", "ten", "--out", "run", cwd=tmp_path,
                      check=False)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("Error: --classes: mnist has no "
                                                            "class 'ten'")
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()
