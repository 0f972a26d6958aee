"""Probes and baselines: how well codes separate classes, and what they are read against.

A probe is a classifier fitted on training codes and scored on test codes, each as its users
fit it with scikit-learn: logistic regression on standardised codes (``linear_probe``), and plain
5 nearest neighbours by Euclidean distance on the codes as they are (``knn_probe``): standardising
first lets the near-constant dimensions swamp the distances (PCA-784's kNN fell from the pixels'
97% to 46% on MNIST). Images without a label (-1) are left out of both; without two classes
there is no probe.

``baselines`` measures the same probes on the raw pixels, and on PCA with the autoencoder's code
size, with PCA's reconstruction PSNR: PCA is the best *linear* autoencoder of that size, so a
nonlinear one should beat it, and the pixels are what the probes reach with no autoencoder at all.

Examples:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> images, labels = rng.random((90, 4, 4, 1)), np.arange(90) % 3
    >>> rows, _ = baselines(images[:60], labels[:60], images[60:], labels[60:], code_size=5)
    >>> sorted(rows), rows["pca"]["components"]
    (['pca', 'pixels'], 5)
"""

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def linear_probe(train_codes, train_labels):
    """Logistic regression on standardised codes; returns the fitted scikit-learn pipeline.

    Examples:
        >>> probe = linear_probe(np.eye(4).repeat(5, axis=0), np.arange(4).repeat(5))
        >>> probe.score(np.eye(4), np.arange(4))
        1.0
    """
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        train_codes, train_labels)


def knn_probe(train_codes, train_labels, neighbours=5):
    """A k-nearest-neighbour classifier, by Euclidean distance on the codes as they are; returns
    the fitted classifier.

    Examples:
        >>> probe = knn_probe(np.eye(4).repeat(5, axis=0), np.arange(4).repeat(5))
        >>> probe.score(np.eye(4), np.arange(4))
        1.0
    """
    return KNeighborsClassifier(neighbours).fit(train_codes, train_labels)


def psnr(reference, images):
    """Mean over images of the peak signal-to-noise ratio in dB, for pixels in [0, 1].

    Examples:
        >>> round(psnr(np.zeros((1, 4)), np.full((1, 4), 0.1)), 3)
        20.0
    """
    axes = tuple(range(1, np.ndim(reference)))
    errors = np.maximum(np.mean((np.asarray(reference) - np.asarray(images)) ** 2, axis=axes), 1e-10)
    return float(np.mean(10 * np.log10(1.0 / errors)))


def fit_probes(train_codes, train_labels, test_labels):
    """The linear and kNN probes fitted on the labelled training codes, or ``None`` and why not.

    Examples:
        >>> probes, reason = fit_probes(np.zeros((4, 2)), np.full(4, -1), np.full(2, -1))
        >>> probes, reason
        (None, 'probes left out: the data set has no labels')
    """
    labelled = train_labels >= 0
    classes = np.unique(train_labels[labelled])
    if len(classes) < 2 or not np.any(test_labels >= 0):
        reason = ("the data set has no labels" if not len(classes) else
                  f"the training images hold a single class ({classes[0]})"
                  if len(classes) == 1 else "the test images have no labels")
        return None, f"probes left out: {reason}"
    codes, labels = train_codes[labelled], train_labels[labelled]
    return {"linear": linear_probe(codes, labels), "knn": knn_probe(codes, labels)}, None


def score(probe, codes, labels):
    """A probe's accuracy on the labelled ones of ``codes``.

    Examples:
        >>> probe = linear_probe(np.eye(2).repeat(3, axis=0), np.arange(2).repeat(3))
        >>> score(probe, np.eye(2), np.array([0, -1]))
        1.0
    """
    labelled = labels >= 0
    return float(probe.score(codes[labelled], labels[labelled]))


# Baselines already measured in this process, by the caller's key for its splits: a report
# evaluates every family on the same images, and the pixel probes are its slowest part.
_MEASURED = {}


def baselines(train_images, train_labels, test_images, test_labels, code_size, key=None):
    """The raw pixels and PCA with ``code_size`` components (capped at the pixel count), on the
    same splits: probes for both, reconstruction PSNR for PCA.

    ``key``, when given, names the splits (say, their data's fingerprint and sizes): measurements
    of the same key are reused within the process.

    Returns:
        ``(rows, pixel_probes)``: ``{"pixels": {"linear", "knn"}, "pca": {"components",
        "psnr", "mse", "linear", "knn"}}`` (probe entries ``None`` without labels), and the probes
        fitted on the pixels (``None`` without labels), a classifier of images.

    Examples:
        >>> images, labels = np.random.default_rng(1).random((60, 3, 3)), np.arange(60) % 2
        >>> rows, pixel_probes = baselines(images[:40], labels[:40], images[40:], labels[40:], 2)
        >>> 0 <= rows["pixels"]["linear"] <= 1 and rows["pca"]["psnr"] > 0
        True
    """
    train, test = _flat(train_images), _flat(test_images)
    components = int(min(code_size, train.shape[1], len(train)))
    if key is None or (key, "pixels") not in _MEASURED:
        pixel_probes, _ = fit_probes(train, train_labels, test_labels)
        pixels = (_scores(pixel_probes, test, test_labels), pixel_probes)
        if key is not None:
            _MEASURED[key, "pixels"] = pixels
    else:
        pixels = _MEASURED[key, "pixels"]
    if key is None or (key, components) not in _MEASURED:
        pca = PCA(components, random_state=0).fit(train)
        train_codes, test_codes = pca.transform(train), pca.transform(test)
        reconstructions = np.clip(pca.inverse_transform(test_codes), 0, 1)
        pca_probes, _ = fit_probes(train_codes, train_labels, test_labels)
        pca_row = {"components": components, "psnr": psnr(test, reconstructions),
                   "mse": float(np.mean((test - reconstructions) ** 2)),
                   **_scores(pca_probes, test_codes, test_labels)}
        if key is not None:
            _MEASURED[key, components] = pca_row
    else:
        pca_row = _MEASURED[key, components]
    return {"pixels": pixels[0], "pca": pca_row}, pixels[1]


def _scores(probes, codes, labels):
    if probes is None:
        return {"linear": None, "knn": None}
    return {name: score(probe, codes, labels) for name, probe in probes.items()}


def _flat(images):
    return np.asarray(images, np.float32).reshape(len(images), -1)
