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
    import numpy as np

    model = measuring.endpoints.variational
    if model is None:
        return None
    split = measuring.splits.test
    count = int(split.cardinality())
    elbos, first = [], []
    with measuring.progress.stage("negative ELBO of the test images", total=count,
                                  unit="image") as tick:
        for index, (images, _, _) in enumerate(measuring.batches(split)):
            elbos.append(model.negative_elbo(images, seed=SEED + index).numpy())
            if sum(map(len, first)) < IMAGES:
                first.append(images[:IMAGES - sum(map(len, first))])
            tick(len(images))
    first = np.concatenate(first)
    nll = []
    with measuring.progress.stage(f"likelihood by {SAMPLES} importance samples",
                                  total=len(first), unit="image") as tick:
        for start in range(0, len(first), IMPORTANCE_BATCH):
            batch = first[start:start + IMPORTANCE_BATCH]
            nll.append(model.negative_log_likelihood(batch, SAMPLES, seed=SEED + start).numpy())
            tick(len(batch))
    return {"negative_elbo": float(np.mean(np.concatenate(elbos))),
            "negative_log_likelihood": float(np.mean(np.concatenate(nll))),
            "importance_samples": SAMPLES, "images": len(first), "likelihood": model.likelihood}


register_measurement(Measurement(
    "likelihood", "a variational autoencoder's test likelihood, in nats per image", _measure,
    rows=lambda value: [
        ("negative ELBO", f"{value['negative_elbo']:.2f} nats"),
        (f"NLL, {value['importance_samples']} importance samples, {value['images']:,} images",
         f"{value['negative_log_likelihood']:.2f} nats")],
    columns=lambda value: [("−ELBO (nats)", f"{value['negative_elbo']:.1f}")]))
