"""Anomaly scores: how unlike the images a run was trained on (its normal ones) an image is.

Scores per image (``SCORES``):

- ``reconstruction``: the mean squared error of its reconstruction, per pixel (in [0, 1]);
- ``codes``: the mean distance of its code to the ``NEIGHBOURS`` nearest codes of the run's
  training images (a seeded sample of ``REFERENCE_CODES``), as batched matrix products;
- ``combined``: the mean of the two, each divided by its median over the validation images;
- ``elbo``, for a variational autoencoder (``vae``): its negative ELBO in nats, the mean of
  ``ELBO_DRAWS`` seeded draws of the code, a bound on the image's negative log-likelihood under
  the model.

A run is calibrated once (``calibrate``; kept in the run folder as ``anomaly.npz`` until the
model changes): the reference codes, and the scores of every validation image, which are normal
images the model never trained on. The threshold that flags an image is the ``1 -
contamination`` quantile of the validation scores: ``contamination`` is the share of normal
images one accepts to see flagged.

Examples:
    >>> calibration = calibrate("runs/digit-3")  # doctest: +SKIP
    >>> calibration.threshold("reconstruction", contamination=0.05)  # doctest: +SKIP
    0.0213
"""

import dataclasses

import numpy as np

from tfae.errors import TfaeError
from tfae.files import file_identity, write_npz

SCORES = ("reconstruction", "codes", "combined", "elbo")
# What a calibration keeps of each validation image, the scores the others are made of;
# ``elbo`` only for a model with a posterior.
PARTS = ("reconstruction", "codes", "elbo")
ELBO_DRAWS = 4
NEIGHBOURS = 5
REFERENCE_CODES = 10_000
CALIBRATION_FILE = "anomaly.npz"
BATCH_SIZE = 256


def check_contamination(contamination):
    """Refuses a ``contamination`` outside (0, 0.5).

    Examples:
        >>> check_contamination(0.5)
        Traceback (most recent call last):
        ...
        tfae.errors.TfaeError: contamination must be between 0 and 0.5 (the share of normal images flagged), got 0.5
    """
    if not 0 < contamination < 0.5:
        raise TfaeError("{contamination} must be between 0 and 0.5 (the share of normal images "
                        "flagged), got %g" % contamination, options=["contamination"])


def check_score(score):
    """Refuses a ``score`` not in ``SCORES``.

    Examples:
        >>> check_score("likelihood")
        Traceback (most recent call last):
        ...
        tfae.errors.TfaeError: score must be one of reconstruction, codes, combined, elbo, got 'likelihood'
    """
    if score not in SCORES:
        raise TfaeError("{score} must be one of %s, got %r" % (", ".join(SCORES), score),
                        options=["score"])


@dataclasses.dataclass(frozen=True)
class Calibration:
    """What scoring needs beside the model.

    Attributes:
        reference_codes: ``(n, code size)`` float32 codes of training images.
        validation: the ``PARTS`` of every validation image, by name (``elbo`` only for a
            model with a posterior).
        model: the ``tfae.files.file_identity`` of the model file it was made for.

    Examples:
        >>> calibration = Calibration(np.zeros((6, 2), np.float32), {
        ...     "reconstruction": np.arange(100) / 100, "codes": np.ones(100)}, ())
        >>> round(calibration.threshold("reconstruction", 0.1), 3)
        0.891
        >>> calibration.threshold("elbo", 0.1)
        Traceback (most recent call last):
        ...
        tfae.errors.TfaeError: score elbo needs a variational autoencoder (--model vae): the negative ELBO of its posterior
    """

    reference_codes: np.ndarray
    validation: dict
    model: tuple

    def threshold(self, score, contamination):
        """The score above which an image is flagged: the ``1 - contamination`` quantile of
        the validation images' ``score``."""
        check_contamination(contamination)
        return float(np.quantile(self.combined(self.validation, score), 1 - contamination))

    def scores(self):
        """The ``SCORES`` this calibration gives: ``elbo`` only for a model with a posterior."""
        return [score for score in SCORES if score != "elbo" or "elbo" in self.validation]

    def combined(self, parts, score):
        """The ``score`` (one of ``SCORES``) from an image's ``parts`` (``image_scores``)."""
        check_score(score)
        if score in PARTS:  # numpy arrays or tensors (an export's score signature)
            if score not in parts:
                raise TfaeError("{score} elbo needs a variational autoencoder (--model vae): "
                                "the negative ELBO of its posterior", options=["score"])
            return parts[score]
        medians = {part: float(max(np.median(self.validation[part]), 1e-12))
                   for part in ("reconstruction", "codes")}
        # A floor: codes that collapsed to one point have a median distance of 0.
        return (parts["reconstruction"] / medians["reconstruction"]
                + parts["codes"] / medians["codes"]) / 2

    def save(self, path):
        """Writes the calibration to ``path`` (``.npz``) through a temporary file and a rename."""
        write_npz(path, reference_codes=self.reference_codes,
                  model=np.array(self.model, np.int64),
                  **{f"validation_{part}": values for part, values in self.validation.items()})

    @classmethod
    def load(cls, path):
        """The calibration saved at ``path``, or ``None`` if there is none that reads."""
        try:
            with np.load(path, allow_pickle=False) as saved:
                validation = {part: saved[f"validation_{part}"] for part in PARTS
                              if f"validation_{part}" in saved.files}
                return cls(saved["reference_codes"], validation,
                           tuple(int(part) for part in saved["model"]))
        except (OSError, KeyError, ValueError):
            return None


def elbo_score(model):
    """``images -> elbo scores`` of a model with a posterior (a ``VariationalAutoencoder``, its
    negative ELBO averaged over ``ELBO_DRAWS`` seeded draws: the same for every call), or
    ``None`` for another model.

    Examples:
        >>> from tfae.families import build_model
        >>> elbo_score(build_model("deep", (8, 8, 1), hidden=(4,), latent_dim=2)) is None
        True
        >>> score = elbo_score(build_model("vae", (8, 8, 1), hidden=(4,), latent_dim=2))
        >>> images = np.random.default_rng(0).random((3, 8, 8, 1), dtype=np.float32)
        >>> bool(np.all(score(images).numpy() == score(images).numpy()))
        True
    """
    import tensorflow as tf

    if model is None or not hasattr(model, "negative_elbo"):
        return None
    return lambda images: tf.reduce_mean(
        [model.negative_elbo(images, seed=draw) for draw in range(ELBO_DRAWS)], axis=0)


def image_scores(encode, reconstruct, images, reference_codes, negative_elbo=None):
    """The ``PARTS`` of a batch of float images, as numpy arrays by name, under a model's
    ``encode`` and ``reconstruct`` (a Keras model's encoder and itself, or an export's
    ``tfae.evaluation.Endpoints``), and its ``negative_elbo`` (``elbo_score``) if it has one.

    Examples:
        >>> model = load_model("runs/digit-3/model.keras")  # doctest: +SKIP
        >>> sorted(image_scores(model.encoder, model, images, calibration.reference_codes))  # doctest: +SKIP
        ['codes', 'reconstruction']
    """
    import tensorflow as tf  # here: the command line imports SCORES before TensorFlow starts

    images = tf.convert_to_tensor(images, tf.float32)
    reconstructions = tf.cast(reconstruct(images), tf.float32)
    errors = tf.reduce_mean(tf.reshape(tf.square(reconstructions - images),
                                       (tf.shape(images)[0], -1)), axis=1)
    codes = tf.reshape(tf.cast(encode(images), tf.float32), (tf.shape(images)[0], -1))
    parts = {"reconstruction": errors.numpy(),
             "codes": nearest_distances(codes, reference_codes).numpy()}
    if negative_elbo is not None:
        parts["elbo"] = np.asarray(negative_elbo(images))
    return parts


def nearest_distances(codes, reference_codes, neighbours=NEIGHBOURS):
    """The mean Euclidean distance of each code to its ``neighbours`` nearest reference codes.

    Examples:
        >>> reference = np.array([[0.0, 0.0], [3.0, 4.0]], np.float32)
        >>> nearest_distances(np.array([[0.0, 0.0]], np.float32), reference, 1).numpy()
        array([0.], dtype=float32)
        >>> nearest_distances(np.array([[0.0, 0.0]], np.float32), reference, 2).numpy()
        array([2.5], dtype=float32)
    """
    import tensorflow as tf

    codes = tf.convert_to_tensor(codes, tf.float32)
    reference = tf.convert_to_tensor(reference_codes, tf.float32)
    squared = (tf.reduce_sum(tf.square(codes), 1, keepdims=True)
               - 2 * tf.matmul(codes, reference, transpose_b=True)
               + tf.reduce_sum(tf.square(reference), 1)[tf.newaxis])
    nearest, _ = tf.math.top_k(-squared, k=min(neighbours, int(reference.shape[0])))
    return tf.reduce_mean(tf.sqrt(tf.maximum(-nearest, 0.0)), axis=1)


def scored_run(path):
    """The ``tfae.runs.RunFolder`` at ``path``, which anomaly scores need.

    Raises:
        TfaeError: for anything else, such as an export (which knows neither its training nor
            its validation images: it carries its calibration in its ``score`` signature).

    Examples:
        >>> scored_run("saved_models/deep")  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        tfae.errors.TfaeError: saved_models/deep is not a run folder: anomaly scores are ...
    """
    from tfae.runs import RunFolder

    if not RunFolder.holds_run(path):
        raise TfaeError(f"{path} is not a run folder: anomaly scores are calibrated on the "
                        "training and validation images of a run")
    return RunFolder(path)


def calibrate(path, progress=None, model=None, splits=None):
    """The ``Calibration`` of the run folder at ``path``: read from its ``anomaly.npz`` if that
    was made for its model, else made from the run's own data (its ``--classes`` too) and kept.

    Args:
        path: a run folder.
        progress: a ``tfae.progress.Progress`` to show the stages on.
        model, splits: the run's model and data, when the caller has them already.

    Raises:
        TfaeError: for an export, which does not know the images it was trained on.

    Examples:
        >>> calibrate("runs/digit-3").reference_codes.shape  # doctest: +SKIP
        (5421, 32)
    """
    from tfae.config import DataConfig
    from tfae.data import load_config
    from tfae.progress import Progress

    folder = scored_run(path)
    identity = file_identity(folder.model_path)
    saved = Calibration.load(folder.path / CALIBRATION_FILE)
    if saved is not None and saved.model == identity:
        return saved
    progress = progress or Progress(enabled=False)
    model = model or folder.load_model()
    if splits is None:
        config, source = folder.config(), folder.info().get("data") or {}
        settings = {name: config[name] for name in DataConfig().data_fields() if name in config}
        if source.get("kind") in ("folder", "npz"):  # by its absolute path: any working folder
            settings["dataset"] = source["dataset"]
        with progress.stage("reading the run's data"):
            splits = load_config(DataConfig(**settings))
    calibration = calibration_of(lambda images: model.encoder(images, training=False), model,
                                 splits, progress, identity, elbo_score(model))
    calibration.save(folder.path / CALIBRATION_FILE)
    return calibration


def calibration_of(encode, reconstruct, splits, progress=None, model=(), negative_elbo=None):
    """The ``Calibration`` of a model's ``encode`` and ``reconstruct`` on the normal images of
    ``splits``: a seeded sample of ``REFERENCE_CODES`` training codes, and the ``PARTS`` of every
    validation image.

    Args:
        encode, reconstruct: images -> codes, images -> reconstructions.
        splits: ``tfae.data.Splits`` whose training and validation images are normal.
        progress: a ``tfae.progress.Progress`` to show the stages on.
        model: what ``Calibration.model`` records.
        negative_elbo: the model's ``elbo_score``, if it has one.

    Examples:
        >>> from tfae.data import load
        >>> from tfae.families import build_model
        >>> model = build_model("deep", (28, 28, 1), hidden=(8,), latent_dim=2)
        >>> calibration = calibration_of(model.encoder, model, load("mnist", limit=64))
        >>> calibration.reference_codes.shape, calibration.validation["codes"].shape
        ((64, 2), (64,))
    """
    from tfae.data import pipeline
    from tfae.progress import Progress

    progress = progress or Progress(enabled=False)
    references = []
    taken = min(REFERENCE_CODES, int(splits.train.cardinality()))
    with progress.stage(f"encoding {taken:,} training images", total=taken,
                        unit="image") as tick:
        for images, _ in pipeline(splits.train, BATCH_SIZE, shuffle=True, seed=0):
            codes = encode(images)
            references.append(np.reshape(np.asarray(codes, np.float32), (len(images), -1)))
            tick(len(images))
            if sum(map(len, references)) >= taken:
                break
    reference_codes = np.concatenate(references)[:taken]
    count = int(splits.validation.cardinality())
    with progress.stage(f"scoring {count:,} validation images", total=count,
                        unit="image") as tick:
        validation, _ = split_scores(encode, reconstruct, splits.validation, reference_codes,
                                     tick=tick, negative_elbo=negative_elbo)
    return Calibration(reference_codes, validation, tuple(model))


def split_scores(encode, reconstruct, split, reference_codes, batch_size=BATCH_SIZE,
                 tick=None, negative_elbo=None):
    """``(parts, labels)``: ``image_scores`` of every image of ``split``, a batch at a time, and
    their labels, as numpy arrays; ``tick(images)`` after each batch.

    Examples:
        >>> from tfae.data import load
        >>> from tfae.families import build_model
        >>> model = build_model("deep", (28, 28, 1), hidden=(8,), latent_dim=2)
        >>> parts, labels = split_scores(model.encoder, model, load("mnist", limit=10).test,
        ...                              np.zeros((3, 2), np.float32))
        >>> {name: part.shape for name, part in parts.items()}, labels.shape
        ({'reconstruction': (10,), 'codes': (10,)}, (10,))
    """
    from tfae.data import pipeline

    parts, labels = {}, []
    for images, _, batch_labels in pipeline(split, batch_size, with_labels=True):
        for name, value in image_scores(encode, reconstruct, images, reference_codes,
                                        negative_elbo).items():
            parts.setdefault(name, []).append(value)
        labels.append(batch_labels.numpy())
        if tick:
            tick(len(batch_labels))
    return {name: np.concatenate(part) for name, part in parts.items()}, np.concatenate(labels)
