import keras
import numpy as np
import pytest
import tensorflow as tf

from click.testing import CliRunner

from conftest import run_tfae
from tfae_cli.main import tfae
from tfae.config import FitConfig
from tfae.errors import TfaeError
from tfae.exports import export_saved_model
from tfae.opened import SAMPLE_SIGNATURE
from tfae.families import build_model
from tfae.models.variational import (kl_divergence, negative_log_likelihood, prior_codes,
                                     traversal_codes)
from tfae.runs import load_model
from tfae.train import fit

IMAGES = tf.random.stateless_uniform((6, 12, 12, 1), seed=[0, 2])


def test_kl_term_is_the_closed_form_of_two_gaussians():
    rng = np.random.default_rng(0)
    mean, log_variance = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    variance = np.exp(log_variance)
    # KL(N(m, s^2) || N(0, 1)) = log(1/s) + (s^2 + m^2) / 2 - 1/2, per number, summed
    expected = (-0.5 * log_variance + (variance + mean ** 2) / 2 - 0.5).sum(axis=1)
    np.testing.assert_allclose(kl_divergence(tf.constant(mean), tf.constant(log_variance)),
                               expected, rtol=1e-6)


def test_reconstruction_term_is_the_bernoulli_negative_log_likelihood_in_nats():
    images = np.array([[1.0, 0.0, 0.25]], np.float32)
    pixels = np.array([[0.9, 0.2, 0.5]], np.float32)
    expected = -(np.log(0.9) + np.log(0.8) + 0.25 * np.log(0.5) + 0.75 * np.log(0.5))
    np.testing.assert_allclose(negative_log_likelihood(images, pixels), [expected], rtol=1e-5)
    np.testing.assert_allclose(negative_log_likelihood(images, pixels, "mse"),
                               [0.01 + 0.04 + 0.0625], rtol=1e-5)
    saturated = negative_log_likelihood(np.ones((1, 2), np.float32), np.zeros((1, 2), np.float32))
    assert np.isfinite(saturated).all()


@pytest.mark.parametrize("options", [{"hidden": (16,)}, {"filters": (4, 8)}])
def test_a_saved_vae_loads_safely_with_its_posterior_and_draws_the_same_samples(options, tmp_path):
    model = build_model("vae", (12, 12, 1), latent_dim=3, beta=2.0, **options)
    model.compile(optimizer="adam", loss="bce")
    model.fit(IMAGES, IMAGES, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras")
    assert type(loaded).__name__ == "VariationalAutoencoder" and loaded.beta == 2.0
    for mine, theirs in zip(model.posterior(IMAGES), loaded.posterior(IMAGES)):
        np.testing.assert_allclose(mine, theirs, atol=1e-6)
    np.testing.assert_allclose(loaded.encoder(IMAGES), model.posterior(IMAGES)[0], atol=1e-6)
    np.testing.assert_allclose(loaded.sample(5, seed=3), model.sample(5, seed=3), atol=1e-6)
    assert not np.allclose(model.sample(5, seed=3), model.sample(5, seed=4))


def test_training_logs_both_terms_and_beta_weighs_the_kl_term():
    images = tf.random.stateless_uniform((64, 12, 12, 1), seed=[1, 1])
    logs = {}
    for beta in (1.0, 4.0):
        keras.utils.set_random_seed(0)
        model = build_model("vae", (12, 12, 1), hidden=(16,), latent_dim=2, beta=beta)
        model.compile(optimizer="adam", loss="bce")
        history = model.fit(images, images, epochs=1, batch_size=64, verbose=0).history
        logs[beta] = {name: values[0] for name, values in history.items()}
    for beta, values in logs.items():
        assert set(values) == {"loss", "reconstruction", "kl"}
        assert values["loss"] == pytest.approx(values["reconstruction"] + beta * values["kl"],
                                               rel=1e-5)


def test_importance_sampled_likelihood_agrees_with_the_closed_form_elbo_and_tightens_it():
    images = tf.random.stateless_uniform((64, 12, 12, 1), seed=[3, 1])
    keras.utils.set_random_seed(0)
    model = build_model("vae", (12, 12, 1), hidden=(16,), latent_dim=3)
    model.compile(optimizer="adam", loss="bce")
    model.fit(images, images, epochs=3, batch_size=16, verbose=0)
    # One sample's estimate, -log p(x|z) - log p(z) + log q(z|x), averages to the negative ELBO,
    # whose KL term is in closed form: the two agree only if the log-density ratio is right.
    one_sample = np.mean([model.negative_log_likelihood(images[:8], 1, seed) for seed in range(300)])
    elbo = np.mean([model.negative_elbo(images[:8], seed) for seed in range(300)])
    assert one_sample == pytest.approx(elbo, rel=2e-3)
    assert np.mean(model.negative_log_likelihood(images[:8], 500)) < elbo


def test_a_loss_other_than_bce_or_mse_is_refused():
    model = build_model("vae", (12, 12, 1), hidden=(8,), latent_dim=2)
    model.compile(optimizer="adam", loss="mae")
    with pytest.raises(TfaeError, match="loss must be one of bce, mse, got 'mae'"):
        model.likelihood


def test_traversal_covers_the_prior_plane_row_by_row():
    codes, values = traversal_codes(5)
    assert values == sorted(values) and values[2] == pytest.approx(0.0, abs=1e-9)
    assert tuple(codes[0]) == (values[0], values[-1])  # top left: first small, second large
    assert tuple(codes[-1]) == (values[-1], values[0])


def test_export_samples_as_the_run_does(tmp_path):
    model = build_model("vae", (12, 12, 1), hidden=(16,), latent_dim=3)
    served = tf.saved_model.load(str(export_saved_model(model, tmp_path / "vae")))
    noise = prior_codes(4, 3, seed=9)
    np.testing.assert_allclose(served.signatures[SAMPLE_SIGNATURE](noise=noise)["images"],
                               model.sample(4, seed=9), atol=1e-6)
    plain = tf.saved_model.load(str(export_saved_model(
        build_model("deep", (12, 12, 1), hidden=(8,), latent_dim=3), tmp_path / "deep")))
    assert SAMPLE_SIGNATURE not in plain.signatures


@pytest.mark.slow
def test_vae_on_mnist_models_digits_better_than_independent_pixels_and_samples_them(tmp_path):
    """A VAE trained briefly on 6,000 MNIST digits: its test negative ELBO (nats per image) beats
    the best model of independent pixels, each its own Bernoulli of the training mean; and
    ``tfae sample`` from its run and from its export writes the same images."""
    run = fit(FitConfig(model="vae", epochs=8, limit=6000, batch_size=64,
                        model_options={"hidden": (256,), "latent_dim": 8}),
              tmp_path / "run", export=True, export_dir=tmp_path / "export", verbose=0)
    history = run.history
    assert history["val_loss"][-1] < history["val_loss"][0]
    assert history["kl"][-1] > 1.0  # the codes carry information: the posterior did not collapse
    from tfae.data import load

    splits = load("mnist", limit=6000)
    train = np.concatenate([images for images, _ in splits.train.batch(6000)]) / np.float32(255)
    test = np.concatenate([images for images, _ in splits.test.batch(6000)]) / np.float32(255)
    means = np.clip(train.mean(axis=0, keepdims=True), 1e-7, 1 - 1e-7)
    independent = negative_log_likelihood(test, np.broadcast_to(means, test.shape)).numpy().mean()
    reconstruction, kl = run.model.loss_terms(test, test, seed=0)
    elbo = float(tf.reduce_mean(reconstruction + kl))
    assert elbo < independent - 40, (elbo, independent)

    run_tfae("sample", tmp_path / "run", "-n", "12", "--seed", "4", "--out", "a.npz", "--quiet",
             cwd=tmp_path)
    run_tfae("sample", run.export_path, "-n", "12", "--seed", "4", "--out", "b.npz", "--quiet",
             cwd=tmp_path)
    samples = np.load(tmp_path / "a.npz")["samples"]
    np.testing.assert_allclose(samples, np.load(tmp_path / "b.npz")["samples"], atol=1e-5)
    # Digits, not noise: as much ink as the training images have, in the same places.
    assert abs(samples.mean() - train.mean()) < 0.05
    assert np.corrcoef(samples.mean(axis=0).ravel(), train.mean(axis=0).ravel())[0, 1] > 0.8


def test_sample_refuses_what_it_cannot_do_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = build_model("deep", (12, 12, 1), hidden=(8,), latent_dim=3)
    version = export_saved_model(model, tmp_path / "deep")
    vae = export_saved_model(build_model("vae", (12, 12, 1), hidden=(8,), latent_dim=3),
                             tmp_path / "vae")
    (tmp_path / "full").mkdir()
    (tmp_path / "full/mine.png").write_bytes(b"keep")
    for args, words in [
            ((version, "--out", "s"), "has no prior to sample from"),
            ((vae, "--out", "full"), "full already holds files"),
            ((vae, "--out", "s.csv"), "must be a folder (for PNG files) or an .npz file"),
            ((vae, "-n", "0", "--out", "s"), "Invalid value for '-n'"),
            ((vae, "--out", "missing/s.npz"), "folder missing does not exist")]:
        result = CliRunner().invoke(tfae, ["sample", *map(str, args), "--quiet"])
        errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
        assert result.exit_code != 0 and len(errors) == 1 and words in errors[0], result.output
    assert (tmp_path / "full/mine.png").read_bytes() == b"keep"
    assert not (tmp_path / "s").exists()
    result = CliRunner().invoke(tfae, ["sample", str(vae), "-n", "3", "--out", "s"])
    assert sorted(path.name for path in (tmp_path / "s").iterdir()) == [
        "sample-0000.png", "sample-0001.png", "sample-0002.png"]
    assert "wrote 3 samples (12x12x1, HxWxC)" in result.stdout


@pytest.mark.slow
def test_a_vae_trained_on_ones_gives_the_other_digits_a_higher_elbo_score(tmp_path):
    import csv

    from sklearn.metrics import roc_auc_score

    from tfae.apply import score

    fit(FitConfig(model="vae", epochs=5, limit=3000, batch_size=32, classes="1",
                  model_options={"hidden": (256,), "latent_dim": 8}),
        tmp_path / "ones", export=False, verbose=0)
    scored = score(tmp_path / "ones", tmp_path / "scores.csv", split="test", limit=1000,
                   score="elbo", verbose=False)
    assert scored.score == "elbo" and scored.images == 1000
    with open(tmp_path / "scores.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert {"negative_elbo", "reconstruction_error", "code_distance"} <= set(rows[0])
    anomalous = [row["label"] != "1" for row in rows]
    assert roc_auc_score(anomalous, [float(row["score"]) for row in rows]) > 0.95
    assert all(row["score"] == row["negative_elbo"] for row in rows)


def test_the_sample_figure_adds_the_codes_plane_for_a_two_number_code(tmp_path):
    from PIL import Image

    from tfae.figures import draw

    widths = {}
    for latent_dim in (2, 3):
        model = build_model("vae", (12, 12, 1), hidden=(8,), latent_dim=latent_dim)
        version = export_saved_model(model, tmp_path / f"vae-{latent_dim}")
        path = draw(version, "sample", out_dir=tmp_path / f"figures-{latent_dim}", verbose=0)
        widths[latent_dim] = Image.open(path).size[0]
    assert widths[2] == 2 * widths[3]  # the samples' panel, and the plane's beside it
    plain = export_saved_model(build_model("deep", (12, 12, 1), hidden=(8,), latent_dim=2),
                               tmp_path / "deep")
    with pytest.raises(TfaeError, match="--kind sample needs a model with a prior"):
        draw(plain, "sample", out_dir=tmp_path / "plain", verbose=0)


def test_sample_streams_its_codes_and_refuses_what_it_has_no_room_for(tmp_path):
    from tfae.apply import sample

    fit(FitConfig(model="vae", epochs=1, limit=300, batch_size=32,
                  model_options={"hidden": (16,), "latent_dim": 4}), tmp_path / "run", verbose=0)
    whole = sample(tmp_path / "run", count=300, seed=2, verbose=False).outputs
    in_batches = sample(tmp_path / "run", count=300, seed=2, batch_size=7, verbose=False).outputs
    np.testing.assert_allclose(in_batches, whole, atol=1e-6)  # the same codes in any batches
    with pytest.raises(TfaeError, match=r"1,000,000,000,000 samples would take .* GB, more than"):
        sample(tmp_path / "run", tmp_path / "huge.npz", count=10**12, verbose=False)
    assert not list(tmp_path.glob("*huge*"))
    with pytest.raises(TfaeError, match="seed must be a whole number of at least 0, got -1"):
        sample(tmp_path / "run", count=2, seed=-1, verbose=False)
