"""``tfae tune``: search spaces, the hypermodel, a two-trial search that retrains, and resume."""

import json
import signal
import subprocess
import sys
import time
import types

import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

from conftest import run_tfae, serve_without_tfae
from tfae.errors import TfaeError
from tfae.config import FitConfig, TuneConfig
from tfae.families import families, get_family
from tfae.runs import SearchFolder
from tfae.families import describe_space
from tfae.tuning import FamilyHyperModel, ProbeCallback, best_table, make_tuner

TUNABLE = [family.name for family in families() if family.search_space is not None]


def test_every_family_but_the_layer_wise_one_can_be_tuned():
    assert set(TUNABLE) == {family.name for family in families() if family.trainer is None}


@pytest.mark.parametrize("model", TUNABLE)
def test_every_space_builds_its_family_at_random_points(model):
    config = TuneConfig(FitConfig(model=model), tuner="random").resolved()
    hypermodel = FamilyHyperModel(config, types.SimpleNamespace(
        image_shape=(8, 8, 1), train=tf.data.Dataset.range(64)))
    hp = keras_tuner.HyperParameters()
    hypermodel.build(hp)  # declares the space
    space = {parameter.name: parameter for parameter in hp.space}
    assert space and all(name in describe_space(model) for name in space)
    rng = np.random.default_rng(0)
    for _ in range(3):
        point = keras_tuner.HyperParameters()
        for parameter in hp.space:
            values = parameter.get_config().get("values")
            value = values[rng.integers(len(values))] if values else parameter.random_sample(seed=1)
            point.Fixed(parameter.name, value)
        trial = config.trial(point)
        built = hypermodel.build(point)
        assert built.latent_dim == trial.options.latent_dim == point.get("latent_dim")
        assert built.compiled


def test_tune_help_ends_with_every_tunable_familys_search_space():
    shown = run_tfae("tune", "--help", cwd=".").stdout
    spaces = shown.split("Search spaces")[1]
    for name in TUNABLE:
        assert name in spaces and describe_space(name)[:40] in " ".join(spaces.split())


def test_denoising_space_sets_the_noise_and_contractive_the_penalty():
    hp = keras_tuner.HyperParameters()
    hp.Fixed("noise", 0.3)
    assert get_family("denoising").search_space(hp)[1] == {"noise": "gaussian:0.3"}
    hp = keras_tuner.HyperParameters()
    hp.Fixed("lambda", 1e-3)
    assert get_family("contractive").search_space(hp)[0]["penalty_weight"] == 1e-3


def test_layer_sizes_are_hyperparameters_only_at_the_depths_that_have_them():
    hp = keras_tuner.HyperParameters()
    hp.Fixed("depth", 1)
    options, _ = get_family("deep").search_space(hp)
    assert len(options["hidden"]) == 1
    assert hp.is_active("units_0") and not hp.is_active("units_1")
    assert "units_2 in {128, 256, 512, 1024} (depth 3)" in describe_space("deep")


@pytest.mark.parametrize("settings, words", [
    ({"model": "randomized"}, "cannot be tuned"),
    ({"model": "nope"}, "unknown model"),
    ({"tuner": "hyperband", "max_trials": 3}, "does not apply to hyperband"),
    ({"tuner": "random", "max_trials": 0}, "max_trials must be positive"),
    ({"tuner": "hyperband", "epochs": 1}, "hyperband needs epochs 2"),
    ({"tuner": "random", "batch_size": 0}, "batch_size must be positive"),
    ({"tuner": "grid"}, "tuner must be one of hyperband, random, bayesian"),
])
def test_bad_settings_are_refused_by_name(settings, words):
    with pytest.raises(TfaeError, match=words):
        TuneConfig.from_dict(settings).resolved()


def test_probe_callback_scores_validation_codes(mnist):
    from tfae.families import build_model

    model = build_model("shallow", mnist.image_shape, latent_dim=16)
    callback = ProbeCallback(mnist.train, mnist.validation, images=200)
    callback.set_model(model)
    logs = {}
    callback.on_epoch_end(0, logs)
    assert 0.3 < logs["val_probe"] <= 1.0  # random codes of digits are well above chance (0.1)


def test_best_table_lists_trials_in_rank_order():
    rows = best_table([{"trial": "1", "score": 0.5, "best_epoch": 3, "hyperparameters": {"a": 1}},
                       {"trial": "0", "score": 0.7, "best_epoch": 1, "hyperparameters": {}}])
    assert [row[:2] for row in rows] == [("1", "#2 (trial_1)"), ("2", "#1 (trial_0)")]


@pytest.mark.slow
def test_search_exports_the_best_and_its_config_retrains(tmp_path):
    result = run_tfae("tune", "--model", "deep", "--tuner", "random", "--max-trials", "2",
                      "--epochs", "1", "--limit", "1000", "--out", "search",
                      "--export-dir", "exported", cwd=tmp_path)
    best = json.loads((tmp_path / "search/best.json").read_text())
    assert len(best) == 2 and best[0]["score"] <= best[1]["score"]
    assert "exported: exported/1" in result.stdout
    assert best[0]["trial"] in result.stdout
    assert "Skipping variable loading for optimizer" not in result.stderr
    config = json.loads((tmp_path / "search/config.json").read_text())
    assert config["model_options"]["latent_dim"] == best[0]["hyperparameters"]["latent_dim"]
    assert config["limit"] is None  # the winner retrains on every image, not the search's 1,000

    images = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    outputs = serve_without_tfae(tmp_path / "exported/1", images, tmp_path)
    assert np.asarray(outputs["codes"]).shape == (3, config["model_options"]["latent_dim"])
    assert "score" in outputs["signatures"]  # calibrated on the search's images, as fit's is
    scored = run_tfae("score", "exported", "--limit", "50", "--json", cwd=tmp_path)
    assert json.loads(scored.stdout)["images"] == 50

    again = run_tfae("tune", "--model", "deep", "--tuner", "random", "--max-trials", "2",
                     "--epochs", "1", "--limit", "1000", "--out", "search",
                     "--export-dir", "exported", cwd=tmp_path)
    assert "exported: exported/1" in again.stdout and not (tmp_path / "exported/2").exists()

    run_tfae("fit", "--config", "search/config.json", "--out", "retrained", "--no-export",
             "--quiet", cwd=tmp_path)
    retrained = json.loads((tmp_path / "retrained/config.json").read_text())
    assert retrained == config


@pytest.mark.slow
def test_killed_search_resumes_without_repeating_finished_trials(tmp_path):
    command = [sys.executable, "-m", "tfae_cli.main", "tune", "--model", "shallow", "--tuner",
               "random", "--max-trials", "3", "--epochs", "2", "--limit", "3000",
               "--batch-size", "32", "--out", "search", "--no-export", "--quiet"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    first = tmp_path / "search/search/trial_0/trial.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if json.loads(first.read_text())["status"] == "COMPLETED":
                break
        except (FileNotFoundError, json.JSONDecodeError):  # not yet written, or being written
            pass
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "search/best.json").exists(), "the search finished before it was killed"
    finished = first.read_text()

    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert first.read_text() == finished  # the finished trial was kept, not run again
    best = json.loads((tmp_path / "search/best.json").read_text())
    assert sorted(entry["trial"] for entry in best) == ["0", "1", "2"]


def test_resuming_with_other_settings_is_refused(tmp_path):
    (tmp_path / "search").mkdir()
    (tmp_path / "search/tune.json").write_text(json.dumps({"model": "conv"}))
    result = run_tfae("tune", "--model", "deep", "--tuner", "random", "--out", "search",
                      cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("Error: --out search holds a search")


def test_a_search_of_an_earlier_tfae_resumes_its_missing_settings_read_as_their_defaults(
        tmp_path):
    config = TuneConfig(FitConfig(model="deep")).resolved()
    folder = SearchFolder(tmp_path / "search")
    folder.claim(config)
    saved = json.loads(folder.settings_path.read_text())
    # An earlier tfae wrote no precision (it trained in float32 only): resuming is allowed...
    saved.pop("precision")
    folder.settings_path.write_text(json.dumps(saved))
    folder.check_claimable(config)
    folder.claim(config)
    assert json.loads(folder.settings_path.read_text())["precision"] == "float32"
    # ...but not with another one than that default.
    mixed = TuneConfig(FitConfig(model="deep", precision="mixed_bfloat16")).resolved()
    with pytest.raises(TfaeError, match=r"other settings \(.*precision"):
        folder.check_claimable(mixed)


@pytest.mark.parametrize("tuner", ["hyperband", "random", "bayesian"])
def test_keras_tuner_files_are_replaced_whole_or_not_at_all(tuner, tmp_path, monkeypatch):
    import tfae.files

    config = TuneConfig(FitConfig(model="deep"), tuner=tuner).resolved()
    hypermodel = FamilyHyperModel(config, types.SimpleNamespace(
        image_shape=(8, 8, 1), train=tf.data.Dataset.range(64)))
    searching = make_tuner(config, hypermodel, SearchFolder(tmp_path))
    trial = searching.oracle.create_trial("tuner0")  # writes the trial's file and the oracle's
    searching.save()
    files = sorted((tmp_path / "search").rglob("*.json"))
    assert {path.name for path in files} == {"oracle.json", "tuner0.json", "trial.json"}
    before = [path.read_text() for path in files]
    monkeypatch.setattr(tfae.files.os, "replace",
                        lambda *_: (_ for _ in ()).throw(OSError("killed")))
    trial.status = "COMPLETED"
    for save in (searching.save, lambda: searching.oracle._save_trial(trial)):
        with pytest.raises(TfaeError, match=r"cannot write .*\.json: killed"):
            save()
    assert [path.read_text() for path in files] == before  # the last whole files, no half ones
    assert not list((tmp_path / "search").rglob("*.tmp"))


def test_a_search_folder_in_use_is_refused_in_one_line(tmp_path):
    from tfae.tuning import tune

    folder = SearchFolder(tmp_path / "search")
    config = TuneConfig(FitConfig(model="deep", epochs=1, limit=300), tuner="random",
                        max_trials=1)
    with folder.in_use():
        with pytest.raises(TfaeError, match="search is in use by another tfae process"):
            tune(config, folder.path, export=False, verbose=0)
    assert not (tmp_path / "search/search").exists()  # no trial was run
