"""``--split train|validation|test`` in ``tfae encode``, ``reconstruct`` and ``score`` takes the
images of the split fit trained, validated and was tested on: a folder's and an ``.npz`` file's
held out by the fixed seed, MNIST's tfds splits, and a one-class run's classes kept in training
and validation. Each is checked image by image: the codes written for a split are the model's
codes of that split's images as ``tfae.data`` gives them to fit, in the same order."""

import numpy as np
import pyarrow.csv
import pytest
from click.testing import CliRunner
from conftest import write_images

import tfae
from tfae.config import FitConfig
from tfae.data import load_config
from tfae.runs import RunFolder
from tfae_cli.main import tfae as tfae_command

SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    work = tmp_path_factory.mktemp("splits")
    write_images(work / "photos/a", 18)
    write_images(work / "photos/b", 18, seed=1)
    rng = np.random.default_rng(3)
    np.savez(work / "digits.npz", x=rng.integers(0, 256, (40, 8, 8), dtype=np.uint8),
             y=np.arange(40) % 3)
    small = {"hidden": (8,), "latent_dim": 3}
    configs = {
        "folder": FitConfig(model="deep", dataset=str(work / "photos"), model_options=small),
        "npz": FitConfig(model="deep", dataset=str(work / "digits.npz"), model_options=small),
        "mnist": FitConfig(model="deep", limit=200, model_options=small),
        "one-class": FitConfig(model="deep", limit=500, classes="1", model_options=small),
    }
    for name, config in configs.items():
        tfae.fit(config.merged({"epochs": 1, "batch_size": 16}), work / name, verbose=0)
    return work


def _encoded(run, split, out, limit=None):
    arguments = ["encode", str(run), "--split", split, "--out", str(out), "--quiet"]
    result = CliRunner().invoke(tfae_command, arguments + (["--limit", str(limit)]
                                                           if limit else []))
    assert result.exit_code == 0, result.output
    with np.load(out) as saved:
        assert set(saved["splits"].tolist()) == {split}
        return saved["codes"], saved["ids"]


@pytest.mark.parametrize("name", ["folder", "npz", "mnist", "one-class"])
def test_each_split_is_the_images_fit_used_for_it(runs, name, tmp_path):
    folder = RunFolder(runs / name)
    model = folder.load_model()
    config = FitConfig.from_json(folder.config_path)
    splits = load_config(config.merged({"dataset": folder.info()["data"].get("dataset")
                                        if name in ("folder", "npz") else config.dataset}))
    for split in SPLITS:
        images = np.stack([image.numpy() for image, _ in getattr(splits, split)])
        expected = model.encoder(images.astype(np.float32) / 255.0).numpy()
        codes, ids = _encoded(runs / name, split, tmp_path / f"{split}.npz",
                              limit=len(images) if config.limit else None)
        assert len(ids) == len(images), (name, split)
        np.testing.assert_allclose(codes, expected, atol=1e-5, err_msg=f"{name} {split}")


def test_score_and_reconstruct_take_a_split_and_say_it_in_every_row(runs, tmp_path):
    for name in ("npz", "one-class"):
        result = CliRunner().invoke(tfae_command, [
            "score", str(runs / name), "--split", "test", "--limit", "50", "--out",
            str(tmp_path / f"{name}.csv"), "--quiet"])
        assert result.exit_code == 0, result.output
        table = pyarrow.csv.read_csv(tmp_path / f"{name}.csv").to_pydict()
        assert set(table["split"]) == {"test"} and len(table["id"]) > 0
        reconstructed = tfae.reconstruct(runs / name, split="validation", verbose=False)
        assert set(reconstructed.splits.tolist()) == {"validation"}
    kept = tfae.encode(runs / "one-class", split="train", limit=100, verbose=False)
    assert set(kept.labels.tolist()) == {1}  # the run's own class; its test split keeps all
    assert len(set(tfae.encode(runs / "one-class", split="test", limit=100,
                               verbose=False).labels.tolist())) == 10
