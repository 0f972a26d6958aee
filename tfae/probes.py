"""Probes and baselines: how well codes separate classes, and what they are read against.

A probe is a classifier fitted on training codes and scored on test codes, each the model its
users fit with scikit-learn, computed by numpy's BLAS and TensorFlow on the same memory (the
codes as given, never a copy of them), so that a full MNIST evaluation takes seconds rather than
minutes:

- ``linear_probe``: multinomial logistic regression on standardised codes, scikit-learn's
  ``make_pipeline(StandardScaler(), LogisticRegression())`` model and objective (mean
  cross-entropy plus ``||W||^2 / 2Cn``, C = 1). scikit-learn's L-BFGS needs hundreds of passes
  over the codes, as correlated codes make the problem ill-conditioned; here the same objective is
  minimised over whitened coordinates (the weights ``W = P Λ^-1/2 V``, the penalty carried over
  exactly), where L-BFGS converges in tens of passes. Directions in which the training codes do
  not vary (eigenvalues below ``1e-6`` of the largest) are left out; scikit-learn's solution
  there is zero too. Whitening costs the d x d covariance's eigendecomposition, d^3, so inputs
  wider than ``WHITENED_WIDTH`` (the raw pixels of colour photographs: d = 12,288 at 64x64x3
  took 553 s and 8.6 GB) are only standardised, as scikit-learn's pipeline does: the same
  objective, each L-BFGS pass O(n d) in time and nothing d x d in memory, at the cost of more
  passes.
- ``knn_probe``: plain 5 nearest neighbours by Euclidean distance on the codes as they are
  (standardising first lets near-constant dimensions swamp the distances: PCA-784's kNN fell from
  the pixels' 97% to 46% on MNIST), as batched matrix products and top-k; ties between classes
  go to the smallest label, as in scikit-learn.

Images without a label (-1) are left out of both; without two classes there is no probe.

``baselines`` measures the same probes on the raw pixels, and on PCA with the autoencoder's code
size, with PCA's reconstruction PSNR: PCA is the best *linear* autoencoder of that size, so a
nonlinear one should beat it, and the pixels are what the probes reach with no autoencoder at all.
docs/performance.md compares both probes with scikit-learn's on the results pages' runs.

Examples:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> images, labels = rng.random((90, 4, 4, 1)), np.arange(90) % 3
    >>> rows, _ = baselines(images[:60], labels[:60], images[60:], labels[60:], code_size=5)
    >>> sorted(rows), rows["pca"]["components"]
    (['pca', 'pixels'], 5)
"""

import hashlib
import json
import zipfile

import numpy as np
import scipy.optimize
import tensorflow as tf
from sklearn.decomposition import PCA

from tfae.errors import TfaeError
from tfae.files import cache_folder, write_npz
from tfae.progress import Progress

# L-BFGS iterations at most, scikit-learn's default; whitened, MNIST's codes converge in 13 to
# 120, and the accuracies of 100 and 200 agree within 0.1 point (docs/performance.md).
LINEAR_ITERATIONS = 100
# scikit-learn's tolerance on the gradient; on the value, what float32 sums can still tell apart.
GRADIENT_TOLERANCE, VALUE_TOLERANCE = 1e-4, 1e-7
KEPT_VARIANCE = 1e-6  # whitening leaves out directions of less variance, relative to the largest
# Wider inputs are standardised, not whitened: an eigendecomposition of 4,096 x 4,096 takes
# seconds, of 12,288 x 12,288 minutes and gigabytes.
WHITENED_WIDTH = 4096
NEIGHBOURS = 5  # the kNN probe's k
DISTANCES_PER_CHUNK = 2 ** 25  # test x training distances held at once (128 MB)


class LinearProbe:
    """Multinomial logistic regression on standardised codes (see the module docstring).

    Attributes:
        classes: the labels, in the order of the weights' columns.
        iterations: L-BFGS iterations the fit took.
        converged: whether it stopped by the tolerances rather than ``LINEAR_ITERATIONS``.
        whitened: whether it was solved in whitened coordinates (inputs up to
            ``WHITENED_WIDTH`` wide), or in standardised ones.

    Examples:
        >>> probe = LinearProbe().fit(np.eye(4).repeat(5, axis=0), np.arange(4).repeat(5))
        >>> probe.score(np.eye(4), np.arange(4)), probe.predict(np.eye(4)[:1])
        (1.0, array([0]))
    """

    def __init__(self, inverse_regularisation=1.0):
        self.inverse_regularisation = inverse_regularisation

    def fit(self, codes, labels, tick=None):
        """Fits the probe on ``codes`` (an array or tensor, one row per label); ``tick()`` is
        called after every L-BFGS iteration."""
        # Moments, the standardised codes' covariance and the logits are computed from the codes
        # themselves (standardising is folded into the weights), numpy and TensorFlow each on
        # the same memory: a wide training split is the largest array of an evaluation.
        rows, codes = _rows(codes), _tensor(codes)
        self.classes, targets = np.unique(labels, return_inverse=True)
        count = len(targets)
        mean = np.mean(rows, axis=0, dtype=np.float64)
        self.whitened = rows.shape[1] <= WHITENED_WIDTH
        if self.whitened:
            # by numpy's BLAS: TensorFlow's product of a tall matrix's transpose took 2.4x
            second_moments = (rows.T @ rows).astype(np.float64) / count
            variance = np.maximum(np.diag(second_moments) - mean ** 2, 0)
        else:  # a pass over the rows, a batch at a time: nothing d x d
            variance = np.maximum(_mean_squares(rows) - mean ** 2, 0)
        scale = np.where(variance > 0, np.sqrt(variance), 1.0)
        if self.whitened:
            covariance = (second_moments - np.outer(mean, mean)) / np.outer(scale, scale)
            eigenvalues, eigenvectors = np.linalg.eigh(covariance)
            kept = eigenvalues > max(eigenvalues.max(), 0) * KEPT_VARIANCE
            # W = P Λ^-1/2 V in standardised units; divided by the scale, in the codes' own.
            unscaled = tf.constant(eigenvectors[:, kept] / np.sqrt(eigenvalues[kept])
                                   / scale[:, None], tf.float32)
            penalty = tf.constant(1 / eigenvalues[kept], tf.float32)[:, None]
            width = int(kept.sum())
        else:  # standardised coordinates: W = V / scale, the penalty ||V||^2 as it is
            unscaled = tf.constant(1 / scale, tf.float32)[:, None]
            penalty = tf.constant(1.0, tf.float32)
            width = rows.shape[1]
        shape = (width, len(self.classes))

        def to_codes(whitened_weights):  # the weights on the codes, from those optimised
            return (unscaled @ whitened_weights if self.whitened
                    else unscaled * whitened_weights)

        def from_codes(gradient):  # the gradient as to the optimised weights
            return (tf.matmul(unscaled, gradient, transpose_a=True) if self.whitened
                    else unscaled * gradient)
        strength = 1 / (2 * self.inverse_regularisation * count)
        mean = tf.constant(mean, tf.float32)
        one_hot = tf.one_hot(targets, shape[1])

        def linear_map(parameters):
            """The whitened weights, and the weights and bias on the codes as they are."""
            whitened_weights = tf.reshape(parameters[:-shape[1]], shape)
            weights = to_codes(whitened_weights)
            return whitened_weights, weights, parameters[-shape[1]:] - tf.linalg.matvec(
                weights, mean, transpose_a=True)

        # The gradient written out rather than taken by a GradientTape, whose gradient of
        # `codes @ weights` is TensorFlow's slow product of the codes' transpose (0.6 s of
        # every 0.8 s step on 2,048-number codes): by the logits' error G, it is codes' G.
        # The codes are an argument, not captured: a traced function is held in reference
        # cycles, which would keep a captured training split alive until Python's next full
        # collection.
        @tf.function
        def loss_and_gradient(parameters, codes, one_hot):
            whitened_weights, weights, bias = linear_map(parameters)
            logits = codes @ weights + bias
            loss = (tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(one_hot, logits))
                    + strength * tf.reduce_sum(penalty * whitened_weights ** 2))
            error = (tf.nn.softmax(logits) - one_hot) / count
            error_sums = tf.reduce_sum(error, axis=0)
            weights_gradient = (tf.transpose(tf.matmul(error, codes, transpose_a=True))
                                - mean[:, None] * error_sums[None, :])
            whitened_gradient = (from_codes(weights_gradient)
                                 + 2 * strength * penalty * whitened_weights)
            return loss, tf.concat([tf.reshape(whitened_gradient, [-1]), error_sums], axis=0)

        def objective(parameters):
            loss, gradient = loss_and_gradient(tf.constant(parameters, tf.float32), codes,
                                               one_hot)
            return float(loss), gradient.numpy().astype(np.float64)

        result = scipy.optimize.minimize(
            objective, np.zeros(shape[0] * shape[1] + shape[1]), jac=True, method="L-BFGS-B",
            callback=tick and (lambda _: tick()),
            options={"maxiter": LINEAR_ITERATIONS, "gtol": GRADIENT_TOLERANCE,
                     "ftol": VALUE_TOLERANCE})
        _, weights, bias = linear_map(tf.constant(result.x, tf.float32))
        self.weights, self.bias = weights.numpy(), bias.numpy()
        self.iterations, self.converged = result.nit, result.nit < LINEAR_ITERATIONS
        return self

    def predict(self, codes):
        """The label of each code."""
        codes = np.asarray(codes, np.float32).reshape(len(codes), -1)
        return self.classes[np.argmax(codes @ self.weights + self.bias, axis=1)]

    def score(self, codes, labels):
        """The accuracy on ``codes``."""
        return float(np.mean(self.predict(codes) == np.asarray(labels)))


class NearestNeighbours:
    """A k-nearest-neighbour classifier by Euclidean distance (see the module docstring).

    Examples:
        >>> probe = NearestNeighbours(3).fit(np.array([[0.], [1], [2], [10]]), np.array([0, 0, 1, 1]))
        >>> probe.predict(np.array([[0.5], [9]]))
        array([0, 1])
    """

    def __init__(self, neighbours=NEIGHBOURS):
        self.neighbours = neighbours

    def fit(self, codes, labels):
        """Keeps the training codes (an array or tensor, as a tensor) and their labels."""
        self.classes, targets = np.unique(labels, return_inverse=True)
        # By numpy, on the codes as given: TensorFlow would square a copy of all the codes,
        # and its product with their transpose takes twice as long as numpy's BLAS.
        self._rows = _rows(codes)
        self._squared_norms = np.einsum("ij,ij->i", self._rows, self._rows)
        self._targets = tf.constant(targets)
        return self

    def chunks(self, count):
        """How many chunks of test codes ``predict`` takes ``count`` codes in."""
        return -(-count // max(1, DISTANCES_PER_CHUNK // len(self._targets)))

    def predict(self, codes, tick=None):
        """The label of each code, in chunks of test codes; ``tick()`` after each."""
        codes = np.asarray(codes, np.float32).reshape(len(codes), -1)
        neighbours, classes = min(self.neighbours, len(self._targets)), len(self.classes)
        # Votes minus a fraction of the class index: equal votes go to the smallest label.
        order = tf.range(classes, dtype=tf.float32) / (classes + 1)

        chunks = np.array_split(codes, self.chunks(len(codes)))
        # One buffer for every chunk's distances, which TensorFlow's top-k reads in place.
        distances = aligned_empty((len(chunks[0]), len(self._rows)), np.float32)

        def nearest_labels(chunk):
            # -||a - b||^2 but for the test code's own norm, the same for all its candidates
            closeness = np.matmul(2 * chunk, self._rows.T, out=distances[:len(chunk)])
            closeness -= self._squared_norms
            _, nearest = tf.math.top_k(_tensor(closeness), neighbours)
            votes = tf.reduce_sum(tf.one_hot(tf.gather(self._targets, nearest), classes), axis=1)
            return tf.argmax(votes - order, axis=1)

        found = [np.zeros(0, np.int64)]
        for chunk in chunks:
            found.append(nearest_labels(chunk).numpy())
            if tick:
                tick()
        return self.classes[np.concatenate(found)]

    def score(self, codes, labels, tick=None):
        """The accuracy on ``codes``."""
        return float(np.mean(self.predict(codes, tick) == np.asarray(labels)))


def linear_probe(train_codes, train_labels, tick=None):
    """A fitted ``LinearProbe``.

    Examples:
        >>> probe = linear_probe(np.eye(4).repeat(5, axis=0), np.arange(4).repeat(5))
        >>> probe.score(np.eye(4), np.arange(4))
        1.0
    """
    return LinearProbe().fit(train_codes, train_labels, tick)


def knn_probe(train_codes, train_labels, neighbours=NEIGHBOURS):
    """A fitted ``NearestNeighbours`` classifier.

    Examples:
        >>> probe = knn_probe(np.eye(4).repeat(5, axis=0), np.arange(4).repeat(5))
        >>> probe.score(np.eye(4), np.arange(4))
        1.0
    """
    return NearestNeighbours(neighbours).fit(train_codes, train_labels)


def psnr(reference, images):
    """Mean over images of the peak signal-to-noise ratio in dB, for pixels in [0, 1].

    Examples:
        >>> round(psnr(np.zeros((1, 4)), np.full((1, 4), 0.1)), 3)
        20.0
    """
    axes = tuple(range(1, np.ndim(reference)))
    errors = np.maximum(np.mean((np.asarray(reference) - np.asarray(images)) ** 2, axis=axes), 1e-10)
    return float(np.mean(10 * np.log10(1.0 / errors)))


def batch_errors(inputs, targets, reconstructions):
    """A batch's sums, in float64: the reconstructions' squared errors and binary cross-entropies
    (clipped as Keras clips them) over every pixel, and its images' PSNRs (``psnr``) of the
    reconstructions and of the inputs, all against the targets.

    Examples:
        >>> sums = batch_errors(np.zeros((1, 4)), np.zeros((1, 4)), np.full((1, 4), 0.1))
        >>> round(float(sums["squared_error"]), 4), round(float(sums["input_psnr"]))
        (0.04, 100)
    """
    inputs, targets, reconstructions = (tf.cast(tensor, tf.float64)
                                        for tensor in (inputs, targets, reconstructions))
    axes = list(range(1, len(targets.shape)))
    squared = tf.square(reconstructions - targets)
    clipped = tf.clip_by_value(reconstructions, 1e-7, 1 - 1e-7)

    def image_psnrs(images):
        errors = tf.maximum(tf.reduce_mean(tf.square(images - targets), axis=axes), 1e-10)
        return tf.reduce_sum(10 * tf.math.log(1.0 / errors) / tf.math.log(tf.constant(10.0,
                                                                                     tf.float64)))

    return {"squared_error": tf.reduce_sum(squared),
            "cross_entropy": -tf.reduce_sum(targets * tf.math.log(clipped)
                                            + (1 - targets) * tf.math.log(1 - clipped)),
            "psnr": image_psnrs(reconstructions), "input_psnr": image_psnrs(inputs)}


def fit_probes(train_codes, train_labels, test_labels, progress=None, of="codes"):
    """The linear and kNN probes fitted on the labelled training codes, or ``None`` and why not.

    ``progress`` (a ``tfae.progress.Progress``) shows the linear probe's fit as a stage named
    after ``of``, what the codes are.

    Examples:
        >>> probes, reason = fit_probes(np.zeros((4, 2)), np.full(4, -1), np.full(2, -1))
        >>> probes, reason
        (None, 'probes left out: the data set has no labels')
    """
    train_labels = np.asarray(train_labels)
    labelled = train_labels >= 0
    classes = np.unique(train_labels[labelled])
    if len(classes) < 2 or not np.any(test_labels >= 0):
        reason = ("the data set has no labels" if not len(classes) else
                  f"the training images hold a single class ({classes[0]})"
                  if len(classes) == 1 else "the test images have no labels")
        return None, f"probes left out: {reason}"
    # One array of the codes serves both probes; a copy only when some are unlabelled.
    codes = train_codes if labelled.all() else _rows(train_codes)[labelled]
    labels = train_labels[labelled]
    with (progress or Progress(enabled=False)).stage(
            f"linear probe on {of}: fitting", unit="iteration") as tick:
        linear = linear_probe(codes, labels, tick)
    return {"linear": linear, "knn": knn_probe(codes, labels)}, None


def score(probe, codes, labels, progress=None, of="codes"):
    """A probe's accuracy on the labelled ones of ``codes``; a kNN probe's search shows as a
    stage of ``progress`` named after ``of``.

    Examples:
        >>> probe = linear_probe(np.eye(2).repeat(3, axis=0), np.arange(2).repeat(3))
        >>> score(probe, np.eye(2), np.array([0, -1]))
        1.0
    """
    labelled = labels >= 0
    codes, labels = codes[labelled], labels[labelled]
    if not isinstance(probe, NearestNeighbours):
        return probe.score(codes, labels)
    with (progress or Progress(enabled=False)).stage(
            f"kNN probe on {of}: searching", total=probe.chunks(len(codes)),
            unit="chunk") as tick:
        return probe.score(codes, labels, tick)


# Baselines measured before, by the digest of the images and labels they were measured on: kept
# in the process (a report evaluates every family on the same images) and in the cache folder
# (every later evaluation on the same images), as the pixel probes are an evaluation's slowest
# part. Part of the digest: raise it when the probes or PCA measure differently.
BASELINES_VERSION = 1
_MEASURED = {}


def baselines(train_images, train_labels, test_images, test_labels, code_size, progress=None,
              cache=True):
    """The raw pixels and PCA with ``code_size`` components (capped at the training images'
    count), on the same splits: probes for both, reconstruction PSNR for PCA. A code at least as
    wide as the image, with more training images than pixels, has no PCA row: PCA then keeps
    every pixel (its PSNR the 100 dB cap), no compression to compare with.

    With ``cache``, baselines measured before on the same images and labels (by their digest,
    ``images_digest``) are read instead, from this process or from
    ``tfae.files.cache_folder("baselines")``, and new ones are kept there. ``progress`` shows
    each part as a stage.

    Returns:
        ``(rows, pixel_classifier)``: ``{"pixels": {"linear", "knn"}, "pca": {"components",
        "psnr", "mse", "linear", "knn"}}`` (probe entries ``None`` without labels; no ``"pca"``
        for a code as wide as the image), and the
        linear probe fitted on the pixels (``None`` without labels), a classifier of images. The
        kNN probes, which hold their training images, are let go once scored.

    Examples:
        >>> images, labels = np.random.default_rng(1).random((60, 3, 3)), np.arange(60) % 2
        >>> rows, classifier = baselines(images[:40], labels[:40], images[40:], labels[40:], 2,
        ...                              cache=False)
        >>> 0 <= rows["pixels"]["linear"] <= 1 and rows["pca"]["psnr"] > 0
        True
        >>> "pca" in baselines(images[:40], labels[:40], images[40:], labels[40:], 9,
        ...                    cache=False)[0]
        False
    """
    progress = progress or Progress(enabled=False)
    train_pixels, train, test = train_images, _rows(train_images), _rows(test_images)
    components = int(min(code_size, len(train)))
    digest = cache and images_digest(train, train_labels, test, test_labels)
    pixels = digest and _recalled(digest, "pixels", progress)
    if not pixels:
        pixel_probes, _ = fit_probes(train_pixels, train_labels, test_labels, progress,
                                     "raw pixels")
        pixels = (_scores(pixel_probes, test, test_labels, progress, "raw pixels"),
                  pixel_probes and pixel_probes["linear"])
        if digest:
            _keep(digest, "pixels", pixels)
    if components >= train.shape[1]:
        return {"pixels": pixels[0]}, pixels[1]
    pca_row = digest and _recalled(digest, f"pca-{components}", progress)
    if not pca_row:
        with progress.stage(f"PCA-{components}: fitting"):
            pca = PCA(components, random_state=0).fit(train)
            # PCA's transform in float32 (scikit-learn's would make a float64 copy of the split)
            projection = pca.components_.T.astype(np.float32)
            train_codes = np.matmul(train, projection,
                                    out=aligned_empty((len(train), components), np.float32))
            train_codes -= pca.mean_.astype(np.float32) @ projection
            test_codes = pca.transform(test)
            reconstructions = np.clip(pca.inverse_transform(test_codes), 0, 1)
        name = f"PCA-{components} codes"
        pca_probes, _ = fit_probes(train_codes, train_labels, test_labels, progress, name)
        pca_row = {"components": components, "psnr": psnr(test, reconstructions),
                   "mse": float(np.mean((test - reconstructions) ** 2)),
                   **_scores(pca_probes, test_codes, test_labels, progress, name)}
        if digest:
            _keep(digest, f"pca-{components}", pca_row)
    return {"pixels": pixels[0], "pca": pca_row}, pixels[1]


def images_digest(*arrays):
    """A digest of arrays' contents, shapes and types, and of how baselines are measured
    (``BASELINES_VERSION`` and the probes' settings): equal only for the same measurement.

    Examples:
        >>> images_digest(np.zeros(3)) == images_digest(np.zeros(3)) != images_digest(np.ones(3))
        True
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((BASELINES_VERSION, LINEAR_ITERATIONS, GRADIENT_TOLERANCE,
                        VALUE_TOLERANCE, KEPT_VARIANCE, NEIGHBOURS)).encode())
    for array in arrays:
        array = np.ascontiguousarray(array)  # a tensor's own memory: no copy
        digest.update(repr((array.dtype.str, array.shape)).encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def _recalled(digest, part, progress):
    """A part of the baselines measured before on the images of ``digest``, or ``None``. A
    cached file that cannot be read is measured again (and written anew)."""
    if (digest, part) not in _MEASURED:
        try:
            with np.load(cache_folder("baselines") / digest / f"{part}.npz",
                         allow_pickle=False) as stored:
                _MEASURED[digest, part] = _from_arrays(part, stored)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return None
    named = "raw pixels" if part == "pixels" else part.replace("pca", "PCA")
    with progress.stage(f"{named}: measured before on the same images"):
        return _MEASURED[digest, part]


def _keep(digest, part, value):
    """Keeps a part of the baselines in the process and in the cache folder (``write_npz``: a
    reader never sees half a file); a cache that cannot be written is passed by."""
    _MEASURED[digest, part] = value
    folder = cache_folder("baselines") / digest
    rows, classifier = value if part == "pixels" else (value, None)
    arrays = {"row": np.array(json.dumps(rows))}
    if classifier is not None:
        arrays.update(weights=classifier.weights, bias=classifier.bias,
                      classes=classifier.classes)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_npz(folder / f"{part}.npz", **arrays)
    except (OSError, TfaeError):
        pass


def _from_arrays(part, stored):
    """A part as ``_keep`` wrote it: a PCA row, or the pixels' ``(rows, classifier)``."""
    row = json.loads(str(stored["row"]))
    if part != "pixels":
        return row
    classifier = None
    if "weights" in stored:
        classifier = LinearProbe()
        classifier.weights, classifier.bias = stored["weights"], stored["bias"]
        classifier.classes = stored["classes"]
    return row, classifier


def _scores(probes, codes, labels, progress, of):
    if probes is None:
        return {"linear": None, "knn": None}
    return {name: score(probe, codes, labels, progress, of) for name, probe in probes.items()}


def _mean_squares(rows, batch=4096):
    """The mean of each column's squares, in float64, a batch of rows at a time.

    Examples:
        >>> _mean_squares(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32), batch=1).tolist()
        [5.0, 10.0]
    """
    total = np.zeros(rows.shape[1])
    for start in range(0, len(rows), batch):
        part = rows[start:start + batch].astype(np.float64)
        total += np.einsum("ij,ij->j", part, part)
    return total / len(rows)


def _rows(codes):
    """Codes (an array or tensor) as a float32 numpy array, one row each: a view of them, not
    a copy, where they are float32 already."""
    rows = np.asarray(codes, np.float32)
    return rows.reshape(len(rows), -1)


def _tensor(codes):
    """Codes as a float32 tensor, one row each: a tensor as it is, an array on its memory where
    TensorFlow can take it (DLPack: C-ordered, writeable and 64-byte aligned, as
    ``aligned_empty``'s are), else a copy. TensorFlow's products of a tall matrix by a narrow
    one take 0.6x the time of numpy's."""
    if isinstance(codes, tf.Tensor) and codes.dtype == tf.float32:
        return tf.reshape(codes, (tf.shape(codes)[0], -1))
    rows = _rows(codes)
    if rows.flags.c_contiguous and rows.flags.writeable and rows.ctypes.data % 64 == 0:
        return tf.experimental.dlpack.from_dlpack(rows.__dlpack__())
    return tf.constant(rows)


def aligned_empty(shape, dtype):
    """``np.empty(shape, dtype)`` on a 64-byte boundary, so that TensorFlow can share it
    (``_tensor``); numpy aligns to 16 bytes only.

    Examples:
        >>> aligned_empty((3, 5), np.float32).ctypes.data % 64
        0
    """
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(size + 64, np.uint8)
    start = -raw.ctypes.data % 64
    return raw[start:start + size].view(dtype).reshape(shape)
