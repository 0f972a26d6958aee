"""``likelihood``: a variational autoencoder's test likelihood, in nats per image: the negative
ELBO of every test image (one draw of its code) and the negative log-likelihood estimated with
``SAMPLES`` importance samples on the first ``IMAGES`` (``tfae.models.variational``). Measured
on runs of a model with a posterior (``vae``); an export, or another family, has none.

Under ``--loss bce`` the likelihood is Bernoulli: on binary images, the figure published VAE
results quote; on grey ones, a cross-entropy that compares models on the same images only.

Examples:
    >>> from tfae.measurements import get_measurement
    >>> get_measurement("likelihood").rows({"negative_elbo": 101.2, "negative_log_likelihood": 96.0,
    ...                                     "importance_samples": 200, "images": 1000,
    ...                                     "likelihood": "bce"})
    [('negative ELBO', '101.20 nats'), ('NLL, 200 importance samples, 1,000 images', '96.00 nats')]
"""

from tfae.measurements import SEED, Measurement, register_measurement

SAMPLES = 200
IMAGES = 1000  # for the importance-sampled estimate: 200 decodings of each
IMPORTANCE_BATCH = 50


def _measure(measuring):
    model = measuring.opened.variational
    if model is None:
        return None
    images = measuring.test.targets  # the test images the other measurements read, held once
    elbo = _mean_over(lambda batch, seed: model.negative_elbo(batch, seed=seed), images,
                      measuring.batch_size, measuring.progress, "negative ELBO of the test images")
    nll = _mean_over(lambda batch, seed: model.negative_log_likelihood(batch, SAMPLES, seed=seed),
                     images[:IMAGES], IMPORTANCE_BATCH, measuring.progress,
                     f"likelihood by {SAMPLES} importance samples")
    return {"negative_elbo": elbo, "negative_log_likelihood": nll, "importance_samples": SAMPLES,
            "images": len(images[:IMAGES]), "likelihood": model.likelihood}


def _mean_over(per_image, images, batch_size, progress, stage):
    """The mean of ``per_image(batch, seed)`` over ``images``, a batch at a time, each batch with
    a seed of its own, shown as a stage of ``progress``."""
    import numpy as np

    values = []
    with progress.stage(stage, total=len(images), unit="image") as tick:
        for start in range(0, len(images), batch_size):
            values.append(np.asarray(per_image(images[start:start + batch_size], SEED + start)))
            tick(len(values[-1]))
    return float(np.mean(np.concatenate(values)))


register_measurement(Measurement(
    "likelihood", "a variational autoencoder's test likelihood, in nats per image", _measure,
    rows=lambda value: [
        ("negative ELBO", f"{value['negative_elbo']:.2f} nats"),
        (f"NLL, {value['importance_samples']} importance samples, {value['images']:,} images",
         f"{value['negative_log_likelihood']:.2f} nats")],
    columns=lambda value: [("−ELBO (nats)", f"{value['negative_elbo']:.1f}")]))
