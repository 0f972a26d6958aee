import json
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

import tfae
from tfae_cli.main import tfae as tfae_command
from tfae.errors import TfaeError
from tfae import data
from tfae.corruptions import parse_corruption
from tfae.evaluation import evaluate
from tfae.measurements.jacobian_norm import jacobian_norm
from tfae.measurements.manifold import manifold_convergence
from tfae.probes import knn_probe, linear_probe, psnr
from tfae.exports import export_saved_model
from tfae.families import build_model

RNG = np.random.default_rng(0)
CENTRES = RNG.normal(size=(10, 8)) * 10  # one well-separated cluster a class


def _clusters(count, spread):
    labels = np.repeat(np.arange(10), count)
    return CENTRES[labels] + RNG.normal(size=(len(labels), 8)) * spread, labels


def test_probes_separate_separable_codes_perfectly():
    codes, labels = _clusters(30, spread=0.1)
    test_codes, test_labels = _clusters(10, spread=0.1)
    assert linear_probe(codes, labels).score(test_codes, test_labels) == 1.0
    assert knn_probe(codes, labels).score(test_codes, test_labels) == 1.0


def test_linear_probe_is_scikit_learns_logistic_regression_on_standardised_codes():
    # Overlapping classes and correlated, unevenly scaled codes: the solution is the
    # regularised one, which the whitened coordinates and the written-out gradient must reach.
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    codes, labels = _clusters(40, spread=8.0)
    codes = codes @ RNG.normal(size=(8, 8)) * np.geomspace(0.01, 100, 8)
    probe = linear_probe(codes, labels)
    direct = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-8, max_iter=5000))
    direct.fit(codes, labels)
    logits = codes @ probe.weights + probe.bias
    ours = np.exp(logits - logits.max(axis=1, keepdims=True))
    ours /= ours.sum(axis=1, keepdims=True)
    # 0.002 here (float32 against float64 solvers); 0.12 with the penalty's gradient halved
    assert probe.converged and np.abs(ours - direct.predict_proba(codes)).max() < 5e-3


def test_probes_on_shuffled_labels_are_near_chance():
    codes, labels = _clusters(100, spread=0.1)
    shuffled = RNG.permutation(labels)
    test_codes, test_labels = _clusters(50, spread=0.1)
    for probe in (linear_probe, knn_probe):
        assert probe(codes, shuffled).score(test_codes, test_labels) < 0.25


def test_psnr_and_jacobian_norm_have_known_values():
    assert psnr(np.zeros((2, 4)), np.full((2, 4), 0.01)) == pytest.approx(40.0)
    matrix = tf.constant(RNG.normal(size=(6, 3)), tf.float32)
    norm = jacobian_norm(lambda images: tf.matmul(tf.reshape(images, (-1, 6)), matrix),
                         RNG.random((5, 6)))
    assert norm == pytest.approx(float(tf.norm(matrix)), rel=1e-5)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("evaluate")
    run = tfae.fit(tfae.FitConfig(model="shallow", model_options={"latent_dim": 16}, epochs=2,
                                  limit=1000), work / "run", export=True,
                   export_dir=work / "export", verbose=0)
    return work, run


@pytest.fixture(scope="module")
def run_metrics(small_run):
    """The small run measured once on 500 test images (which writes its metrics.json): tests of
    those metrics must not rely on another test, which may run in another worker, to make them."""
    work, _ = small_run
    return evaluate(work / "run", limit=500, verbose=0)


def test_evaluate_on_an_export_equals_evaluate_on_its_run(small_run, run_metrics):
    work, run = small_run
    from_export = evaluate(run.export_path, limit=500, verbose=0)
    for section in ("reconstruction", "probe", "denoising", "occlusion"):
        np.testing.assert_allclose(
            np.array(_leaves(from_export[section])), np.array(_leaves(run_metrics[section])),
            rtol=1e-4)
    assert run_metrics["jacobian_norm"] == pytest.approx(from_export["jacobian_norm"], rel=1e-4)
    assert run_metrics["parameters"] == from_export["parameters"] == run.model.count_params()
    # 500 images are not the run's own 1,000: their metrics are written beside its own.
    assert run_metrics["written_to"] == str(work / "run/metrics-mnist-limit500.json")
    assert json.loads((work / "run/metrics-mnist-limit500.json").read_text())["probe"] == \
        run_metrics["probe"]


def test_evaluate_measures_with_the_runs_own_settings_and_writes_other_data_apart(small_run):
    from tfae.evaluation import measured_data
    from tfae.opened import open_model

    work, _ = small_run
    own = evaluate(work / "run", verbose=0)  # the run's --limit 1000, so its own metrics.json
    assert own["test_images"] == 1000 and own["limit"] == 1000
    assert own["settings"]["dataset"] == "mnist"
    assert own["written_to"] == str(work / "run/metrics.json")
    written = (work / "run/metrics.json").read_bytes()
    elsewhere = evaluate(work / "run", limit=300, verbose=0, out=work / "elsewhere.json")
    assert json.loads((work / "elsewhere.json").read_text())["test_images"] == 300
    assert elsewhere["written_to"] == str(work / "elsewhere.json")
    assert (work / "run/metrics.json").read_bytes() == written
    every = measured_data(work / "run", open_model(work / "run"), limit=0)
    assert every.settings["limit"] is None and every.name == "mnist"
    assert int(every.splits.test.cardinality()) == 10000


def test_probes_fitted_on_a_seeded_sample_say_so_and_are_written_apart(small_run):
    work, _ = small_run
    sampled = evaluate(work / "run", limit=500, probe_limit=200, verbose=0)
    again = evaluate(work / "run", limit=500, probe_limit=200, verbose=0)
    assert sampled["probe_images"] == 200 and sampled["train_images"] == 500
    assert "a seeded sample of 200 of the 500 training images" in " ".join(sampled["notes"])
    assert sampled["probe"] == again["probe"]  # the same sample every time
    assert sampled["written_to"] == str(work / "run/metrics-mnist-limit500-probes200.json")
    every = evaluate(work / "run", limit=500, probe_limit=0, verbose=0,
                     out=work / "every.json")
    assert every["probe_images"] == 500


def test_a_streamed_split_fits_its_probes_on_a_sample(monkeypatch, tmp_path):
    from conftest import write_images
    from tfae import measurements
    from tfae.data import load
    from tfae.measurements import Measuring

    write_images(tmp_path / "photos/a", 40)
    write_images(tmp_path / "photos/b", 40, seed=1)
    streamed = load(str(tmp_path / "photos"), memory_budget=1e-9,
                    prepared_dir=str(tmp_path / "prepared"))
    monkeypatch.setattr(measurements, "STREAMED_PROBE_IMAGES", 25)
    sample = Measuring(None, streamed).probe_images
    assert int(sample.cardinality()) == 25
    held = load(str(tmp_path / "photos"))
    assert Measuring(None, held).probe_images is held.train  # held in memory: every image


def test_a_streamed_test_split_is_reconstructed_whole_and_its_codes_scored_on_a_sample(
        monkeypatch, tmp_path):
    from conftest import write_images
    from tfae import measurements
    from tfae.data import load
    from tfae.families import build_model
    from tfae.measurements import Measuring, get_measurement
    from tfae.opened import OpenedModel

    write_images(tmp_path / "photos/a", 60)
    write_images(tmp_path / "photos/b", 60, seed=1)
    held = load(str(tmp_path / "photos"))
    streamed = load(str(tmp_path / "photos"), memory_budget=1e-9,
                    prepared_dir=str(tmp_path / "prepared"))
    model = build_model("deep", (8, 8, 1), hidden=(16,), latent_dim=4)
    opened = OpenedModel.of_model(model)
    monkeypatch.setattr(measurements, "STREAMED_PROBE_IMAGES", 5)
    measured = {}
    for name, splits in (("held", held), ("streamed", streamed)):
        measuring = Measuring(opened, splits, batch_size=4)
        measured[name] = {key: get_measurement(key).measure(measuring)
                          for key in ("reconstruction", "denoising")}
        measured[name]["scored"] = len(measuring.test.codes)
        measured[name]["notes"] = measuring.notes
    for key in ("reconstruction", "denoising"):  # every one of the 12 test images, either way
        np.testing.assert_allclose(flat_numbers(measured["streamed"][key]),
                                   flat_numbers(measured["held"][key]), rtol=1e-6)
    assert measured["held"]["scored"] == 12 and measured["streamed"]["scored"] == 5
    assert "a seeded sample of 5 of the 12 test images" in " ".join(measured["streamed"]["notes"])
    assert measured["held"]["notes"] == []


def flat_numbers(value):
    """A measurement's numbers, nested dictionaries flattened in key order."""
    if isinstance(value, dict):
        return [number for key in sorted(value) for number in flat_numbers(value[key])]
    return [value]


def test_metrics_are_sensible(run_metrics):
    metrics = run_metrics
    assert metrics["test_images"] == 500 and metrics["training_seconds"] > 0
    assert 0.5 < metrics["probe"]["linear"] <= 1 and 0.5 < metrics["probe"]["knn"] <= 1
    noisy = metrics["denoising"]["gaussian:0.5"]
    assert 8 < noisy["noisy_psnr"] < 11  # gaussian 0.5 noise on MNIST: about 9.5 dB
    assert metrics["occlusion"]["14x14"]["linear_probe"] < metrics["probe"]["linear"]
    manifold = metrics["manifold"]
    assert len(manifold["label_kept_by_step"]) == manifold["steps"] + 1 == 21
    assert manifold["label_kept_by_step"][-1] == manifold["label_kept"]


def _leaves(tree):
    if isinstance(tree, dict):
        return [leaf for key in sorted(tree) for leaf in _leaves(tree[key])]
    return [tree]


def test_export_of_another_shape_is_a_clear_error(tmp_path):
    export = export_saved_model(build_model("shallow", (8, 8, 1), latent_dim=2), tmp_path / "x")
    with pytest.raises(TfaeError, match=r"takes images of shape \(8, 8, 1\)"):
        evaluate(export, limit=10, verbose=0)


def test_evaluate_command_prints_a_table_and_json(small_run, monkeypatch):
    work, _ = small_run
    monkeypatch.chdir(work)
    table = CliRunner().invoke(tfae_command, ["evaluate", "run", "--limit", "300"])
    assert table.exit_code == 0, table.output
    assert "linear probe" in table.output and "denoising gaussian:0.5" in table.output
    assert re.search(r"manifold convergence +label kept [\d.]+% \(start [\d.]+%, 1 step [\d.]+%\)",
                     table.output), table.output
    as_json = CliRunner().invoke(tfae_command, ["evaluate", "run", "--limit", "300", "--json"])
    assert json.loads(as_json.stdout)["test_images"] == 300


def test_evaluate_shows_its_stages_on_stderr_keeps_warnings_in_the_notes_and_quiet_is_silent(
        small_run, monkeypatch):
    import warnings

    from tfae.measurements import Measurement, register_measurement, unregister_measurement

    def warns(measuring):
        warnings.warn("lbfgs failed to converge")
        return 1.0

    register_measurement(Measurement("warns", "a measurement that warns", warns,
                                     rows=lambda value: []))
    work, _ = small_run
    monkeypatch.chdir(work)
    try:
        shown = CliRunner().invoke(tfae_command, ["evaluate", "run", "--limit", "200"])
        quiet = CliRunner().invoke(tfae_command, ["evaluate", "run", "--limit", "200", "--quiet"])
    finally:
        unregister_measurement("warns")
    assert shown.exit_code == 0 and quiet.exit_code == 0, shown.output + quiet.output
    for stage in ("starting TensorFlow", "training images: encoding:",
                  "linear probe on codes: fitting", "kNN probe on codes: searching",
                  "denoising gaussian:0.5: reconstructing", "encoder's Jacobian norm"):
        assert stage in shown.stderr, shown.stderr
    assert "lbfgs failed" not in shown.stderr
    assert re.search(r"note +warns: lbfgs failed to converge", shown.stdout), shown.stdout
    assert quiet.stderr == "" and "linear probe" in quiet.stdout


def test_metrics_that_cannot_be_saved_are_printed_first_then_one_line_error(small_run,
                                                                            monkeypatch):
    from tfae import evaluation as evaluate_module

    def disk_full(path, value):
        raise TfaeError(f"cannot write {path}: No space left on device")

    monkeypatch.setattr(evaluate_module, "write_json", disk_full)
    work, _ = small_run
    monkeypatch.chdir(work)
    result = CliRunner().invoke(tfae_command, ["evaluate", "run", "--limit", "200", "--quiet",
                                               "--out", "elsewhere.json"])
    assert result.exit_code == 1 and "linear probe" in result.stdout
    assert result.stderr.strip().splitlines() == [
        "Error: metrics not saved: cannot write elsewhere.json: No space left on device"]


def test_a_model_replaced_while_it_is_measured_leaves_no_metrics_for_it(small_run, monkeypatch):
    from tfae import evaluation as evaluate_module

    work, _ = small_run
    model_file = work / "run/model.keras"
    opened = evaluate_module.open_model_and_data

    def opened_then_replaced(*args, **kwargs):  # as `tfae fit` extending the run replaces it
        result = opened(*args, **kwargs)
        replacement = model_file.with_name("replacement.keras")
        replacement.write_bytes(model_file.read_bytes())
        os.replace(replacement, model_file)
        return result

    monkeypatch.setattr(evaluate_module, "open_model_and_data", opened_then_replaced)
    out = work / "replaced-metrics.json"
    metrics = evaluate(work / "run", limit=200, verbose=0, out=out)
    assert metrics["written_to"] is None and "was replaced while it was measured" in \
        metrics["not_written"]
    assert not out.exists() and metrics["probe"]["linear"] > 0.5  # measured, not saved


def test_evaluate_refuses_a_folder_without_a_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(tfae_command, ["evaluate", "."])
    assert result.exit_code == 1
    assert "neither a run folder (model.keras) nor a SavedModel" in result.output


def test_iterating_a_trained_autoencoder_moves_noisy_images_towards_the_data(mnist):
    keras.utils.set_random_seed(0)
    model = build_model("shallow", (28, 28, 1), latent_dim=64)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy")
    model.fit(data.pipeline(mnist.train, 64, shuffle=True), epochs=30, verbose=0)
    noisy, _ = next(iter(data.pipeline(mnist.test, 8, corruption=parse_corruption("gaussian:0.5"))))
    reference = next(iter(data.pipeline(mnist.train, 512)))[0].numpy()
    frames, distances = manifold_convergence(model.predict_on_batch, noisy.numpy(), 5, reference)
    assert frames.shape == (6, 8, 28, 28, 1) and distances.shape == (6, 8)
    np.testing.assert_allclose(frames[0], noisy.numpy())
    assert (distances[1] < 0.7 * distances[0]).all()  # one pass removes most of the noise
    assert (distances[-1] < 0.8 * distances[0]).all()  # and iterating stays near the data
    assert len(np.unique(distances[-1].round(3))) > 1  # not all collapsed to one point


def test_a_measurement_of_ones_own_is_one_registration(small_run, monkeypatch):
    from tfae.measurements import Measurement, register_measurement, unregister_measurement
    from tfae.report import Row, _table

    def sparsity(measuring):  # the share of code entries near zero, on the shared test codes
        return float(np.mean(np.abs(measuring.test.codes) < 1e-3))

    register_measurement(Measurement(
        "sparsity", "the share of code entries near zero", sparsity,
        rows=lambda value: [("code sparsity", f"{value:.1%}")],
        columns=lambda value: [("sparsity", f"{value:.1%}")]))
    work, _ = small_run
    monkeypatch.chdir(work)
    try:
        table = CliRunner().invoke(tfae_command, ["evaluate", "run", "--limit", "200"])
        assert table.exit_code == 0, table.output
        assert re.search(r"code sparsity +\d+\.\d%", table.output), table.output
        metrics = json.loads((work / "run/metrics-mnist-limit200.json").read_text())
        assert 0 <= metrics["sparsity"] <= 1
        header, cells = _table([Row("shallow", {"epochs_finished": 2, "config": {"model": "shallow"}},
                                    metrics, {})])
        assert header[-1] == "sparsity" and cells[0][-1] == f"{metrics['sparsity']:.1%}"
    finally:
        unregister_measurement("sparsity")


def test_baselines_are_measured_or_left_out_as_asked_and_auto_says_why(small_run, monkeypatch,
                                                                       capsys):
    from tfae import measurements

    work, _ = small_run
    never = evaluate(work / "run", limit=300, verbose=0, baselines="never",
                     out=work / "never.json")
    assert never["baselines"] is None and "manifold" not in never
    assert "were not measured: --baselines never" in " ".join(never["notes"])
    assert "warning" not in capsys.readouterr().err  # asked for: nothing to warn of
    # 300 images of 784 pixels are 940,800 bytes as float32: auto's limit set just below.
    monkeypatch.setattr(measurements, "BASELINE_PIXEL_BYTES", 940_799)
    auto = evaluate(work / "run", limit=300, verbose=0, out=work / "auto.json")
    assert auto["baselines"] is None
    said = "the 300 training images' pixels take 0.0 GB as float32, over --baselines auto's"
    assert said in capsys.readouterr().err and said in " ".join(auto["notes"])
    always = evaluate(work / "run", limit=300, verbose=0, baselines="always",
                      out=work / "always.json")
    assert always["baselines"]["pixels"]["linear"] > 0.5 and "manifold" in always
    monkeypatch.setattr(measurements, "BASELINE_PIXEL_BYTES", 940_800)
    assert evaluate(work / "run", limit=300, verbose=0, out=work / "auto.json")["baselines"]
    result = CliRunner().invoke(tfae_command, ["evaluate", "run", "--baselines", "sometimes"])
    assert result.exit_code == 2 and "'sometimes' is not one of 'auto', 'always', 'never'" \
        in result.output
