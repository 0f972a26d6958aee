"""Anomaly scores: how unlike the images a run was trained on (its normal ones) an image is.

Scores per image (``SCORES``):

- ``reconstruction``: the mean squared error of its reconstruction, per pixel (in [0, 1]);
- ``codes``: the mean distance of its code to the ``NEIGHBOURS`` nearest codes of the run's
  training images (a seeded sample of ``REFERENCE_CODES``), as batched matrix products;
- ``transformations``, for a ``geometric`` model: how badly its classifier tells which
  quarter turn and mirroring the image was shown in (GEOM's score,
  ``tfae.models.geometric``), in nats;
- ``combined``: the sum of the others but ``elbo`` (``COMBINED_PARTS``), each standardised by
  its median and standard deviation over the validation images, so that each weighs by how far
  it strays from its spread on normal images;
- ``elbo``, for a variational autoencoder (``vae``): its negative ELBO in nats, the mean of
  ``ELBO_DRAWS`` seeded draws of the code, a bound on the image's negative log-likelihood under
  the model.

``AnomalyDetector`` is the one detector, in PyOD's shape: fitted (calibrated) on normal
images, it gives ``decision_function(images)`` (higher is more anomalous), ``threshold_`` and
``predict(images)`` (1 for flagged); every path that scores (``tfae score``, ``tfae.score``, an
export's ``score`` signatures, evaluation, ``tfae plot``) calls it. Calibrating it keeps the
reference codes and the scores of every validation image, which are normal images the model
never trained on; the threshold is the ``1 - contamination`` quantile of the validation scores:
``contamination`` is the share of normal images one accepts to see flagged. Without a guess of
that share, ``contamination="auto"`` takes Tukey's upper fence of the validation scores instead
(``threshold_of``). A run's calibration
is kept in its folder (``calibrate``, ``anomaly.npz``) until the model changes.

Examples:
    >>> from tfae.opened import open_model
    >>> detector = open_model("runs/digit-3").detector(contamination=0.05)  # doctest: +SKIP
    >>> detector.threshold_, detector.predict(images)  # doctest: +SKIP
    (0.0213, array([0, 1, 0]))
"""

import dataclasses
import zipfile

import numpy as np

from tfae.errors import TfaeError
from tfae.files import file_identity, write_npz
from tfae.runs import RunFolder

SCORES = ("reconstruction", "codes", "combined", "elbo", "transformations")
# What a calibration keeps of each validation image, the scores the others are made of;
# ``elbo`` only for a model with a posterior, ``transformations`` for one with a classifier of
# turns.
PARTS = ("reconstruction", "codes", "elbo", "transformations")
# The parts ``combined`` adds up, those a model has. Not ``elbo``: it is the reconstruction's
# likelihood again, plus a KL term that fails on some data sets (docs/results/anomaly.md).
COMBINED_PARTS = ("reconstruction", "codes", "transformations")
# What each part needs, named when a model lacks it.
PART_NEEDS = {"elbo": "a variational autoencoder (--model vae): the negative ELBO of its posterior",
              "transformations": "a model with a classifier of turns (--model geometric or "
                                 "geometric-conv)"}
ELBO_DRAWS = 4
NEIGHBOURS = 5
REFERENCE_CODES = 10_000
BATCH_SIZE = 256
DEFAULT_SCORE = "reconstruction"
# A model with a classifier of turns was made for the parts together (``default_score``).
GEOMETRIC_DEFAULT_SCORE = "combined"
DEFAULT_CONTAMINATION = 0.05


# A threshold without a guess of the share of normal images to flag: Tukey's upper fence.
AUTO = "auto"
FENCE_IQRS = 1.5


def check_contamination(contamination):
    """Refuses a ``contamination`` that is neither ``AUTO`` nor a share in (0, 0.5).

    Examples:
        >>> check_contamination("auto")
        >>> check_contamination(0.5)
        Traceback (most recent call last):
        ...
        tfae.errors.TfaeError: contamination must be auto or between 0 and 0.5 (the share of normal images flagged), got 0.5
    """
    if contamination == AUTO:
        return
    if isinstance(contamination, bool) or not isinstance(contamination, (int, float)) \
            or not 0 < contamination < 0.5:
        raise TfaeError("{contamination} must be auto or between 0 and 0.5 (the share of normal "
                        "images flagged), got %s" % (contamination,), options=["contamination"])


def threshold_of(scores, contamination):
    """The score above which an image is flagged, from normal images' ``scores``: their
    ``1 - contamination`` quantile, or for ``AUTO`` Tukey's upper fence, the third quartile
    plus ``FENCE_IQRS`` interquartile ranges, which guesses no share: it flags the normal images
    that lie far out of the bulk of their scores, however many that is.

    Examples:
        >>> scores = np.arange(1.0, 101.0)
        >>> threshold_of(scores, 0.05), threshold_of(scores, "auto")
        (95.05, 149.5)
    """
    if contamination == AUTO:
        low, high = np.quantile(scores, [0.25, 0.75])
        return float(high + FENCE_IQRS * (high - low))
    return float(np.quantile(scores, 1 - contamination))


def contamination_text(contamination):
    """How messages name a threshold's contamination.

    Examples:
        >>> contamination_text(0.05), contamination_text("auto")
        ('5%', "auto (Tukey's upper fence)")
    """
    if contamination == AUTO:
        return "auto (Tukey's upper fence)"
    return f"{contamination * 100:g}%"


def default_score(model):
    """The score a detector of ``model`` (a ``tfae.opened.OpenedModel``) gives unless told
    otherwise: ``combined`` for a model with a classifier of turns (``geometric``), whose
    parts were made to be added up, else ``DEFAULT_SCORE``.

    Examples:
        >>> from tfae.families import build_model
        >>> from tfae.opened import OpenedModel
        >>> default_score(OpenedModel.of_model(build_model("deep", (8, 8, 1), hidden=(4,), latent_dim=2)))
        'reconstruction'
    """
    return DEFAULT_SCORE if model.transformation_surprise is None else GEOMETRIC_DEFAULT_SCORE


def check_model_scores(model, score):
    """Refuses a ``score`` that is a part ``model`` (a run's or Keras model's
    ``tfae.opened.OpenedModel``) lacks, before any calibration's work.

    Examples:
        >>> from tfae.families import build_model
        >>> from tfae.opened import OpenedModel
        >>> check_model_scores(OpenedModel.of_model(build_model("deep", (8, 8, 1), hidden=(4,),
        ...                                                     latent_dim=2)), "elbo")
        Traceback (most recent call last):
        ...
        tfae.errors.TfaeError: score elbo needs a variational autoencoder (--model vae): the negative ELBO of its posterior
    """
    if score in PART_NEEDS and _optional_parts(model)[score] is None:
        raise _lacking(score)


def _optional_parts(model):
    """The function computing each optional part (``PART_NEEDS``) under ``model``, or None where
    the model has none."""
    return {"elbo": model.negative_elbo, "transformations": model.transformation_surprise}


def _lacking(score):
    return TfaeError("{score} %s needs %s" % (score, PART_NEEDS[score]), options=["score"])


def check_score(score):
    """Refuses a ``score`` not in ``SCORES``.

    Examples:
        >>> check_score("likelihood")
        Traceback (most recent call last):
        ...
        tfae.errors.TfaeError: score must be one of reconstruction, codes, combined, elbo, transformations, got 'likelihood'
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
        """The score above which an image is flagged (``threshold_of``) from the validation
        images' ``score``."""
        check_contamination(contamination)
        return threshold_of(self.combined(self.validation, score), contamination)

    def scores(self):
        """The ``SCORES`` this calibration gives: a part only for a model that has it.

        Examples:
            >>> Calibration(np.zeros((1, 2)), {"reconstruction": np.ones(3),
            ...                                "codes": np.ones(3)}, ()).scores()
            ['reconstruction', 'codes', 'combined']
        """
        return [score for score in SCORES if score not in PARTS or score in self.validation]

    def combined(self, parts, score):
        """The ``score`` (one of ``SCORES``) from an image's ``parts`` (``image_scores``).

        Examples:
            >>> calibration = Calibration(np.zeros((1, 2)), {
            ...     "reconstruction": np.array([1.0, 2.0, 3.0]), "codes": np.array([0.0, 0.0, 6.0])}, ())
            >>> calibration.combined({"reconstruction": np.array([2.0]), "codes": np.array([3.0])},
            ...                      "combined").round(3)  # (2 - 2) / 0.816 + (3 - 0) / 2.828
            array([1.061])
        """
        check_score(score)
        if score in PARTS:  # numpy arrays or tensors (an export's score signature)
            if score not in parts:
                raise _lacking(score)
            return parts[score]
        total = 0
        for part in COMBINED_PARTS:
            if part in self.validation:
                normal = self.validation[part]
                # A floor: codes that collapsed to one point do not spread at all.
                spread = float(max(np.std(normal), 1e-12))
                total = total + (parts[part] - float(np.median(normal))) / spread
        return total

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
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
            return None  # damaged or cut short: made again


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


class AnomalyDetector:
    """How unlike a model's normal images an image is, in PyOD's ``BaseDetector`` shape.

    Args:
        score: one of ``SCORES``.
        contamination: the share of normal (validation) images the threshold flags, in
            (0, 0.5), or ``AUTO``: Tukey's upper fence of their scores (``threshold_of``).

    Attributes (once fitted):
        threshold_: the score above which an image is flagged.
        decision_scores_: the validation images' scores.
        calibration_: the ``Calibration`` (``None`` for an export's detector, whose calibration
            is inside its ``score`` signature).

    Examples:
        >>> from tfae.data import load
        >>> from tfae.families import build_model
        >>> from tfae.opened import OpenedModel
        >>> model = OpenedModel.of_model(build_model("deep", (28, 28, 1), hidden=(8,), latent_dim=2))
        >>> detector = AnomalyDetector(contamination=0.1).fit(model, load("mnist", limit=100))
        >>> images = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
        >>> scores = detector.decision_function(images)
        >>> bool(np.all(detector.predict(images) == (scores > detector.threshold_)))
        True
        >>> round(float((detector.decision_scores_ > detector.threshold_).mean()), 2)
        0.1
    """

    def __init__(self, score=DEFAULT_SCORE, contamination=DEFAULT_CONTAMINATION):
        check_score(score)
        check_contamination(contamination)
        self.score, self.contamination = score, contamination
        self.model_ = self.calibration_ = self.threshold_ = self.decision_scores_ = None
        self._signature = None

    def __repr__(self):
        return (f"AnomalyDetector(score={self.score!r}, contamination={self.contamination!r}, "
                f"threshold_={self.threshold_!r})")

    def fit(self, model, splits, progress=None):
        """Calibrates on the normal images of ``splits``: a seeded sample of ``REFERENCE_CODES``
        training codes and the scores of every validation image.

        Args:
            model: a ``tfae.opened.OpenedModel`` (``encode``, ``decode``, ``negative_elbo``).
            splits: ``tfae.data.Splits`` whose training and validation images are normal.
            progress: a ``tfae.progress.Progress`` to show the stages on.

        Returns:
            The detector itself.
        """
        return self.calibrated(model, calibration_of(model, splits, progress))

    def calibrated(self, model, calibration):
        """The detector fitted with a ``Calibration`` made before (``fit``'s, or a run's kept one).

        Raises:
            TfaeError: for the ``elbo`` score of a model without a posterior.
        """
        self.model_, self.calibration_ = model, calibration
        self.decision_scores_ = np.asarray(calibration.combined(calibration.validation,
                                                                self.score))
        # Calibration.threshold's, of the scores just combined rather than again.
        self.threshold_ = threshold_of(self.decision_scores_, self.contamination)
        return self

    @classmethod
    def exported(cls, signature, settings):
        """The detector of an export: its ``score`` signature and its ``anomaly.json``."""
        detector = cls(settings["score"], settings["contamination"])
        detector.threshold_ = float(settings["threshold"])
        detector._signature = signature
        return detector

    def outputs(self, images, reference_codes=None, every_part=True):
        """Per image, as tensors: ``scores``, ``flagged``, ``error_maps`` (the per-pixel squared
        errors), and the parts (``reconstruction``, ``codes``, for a model with a posterior
        ``elbo``, and for one with a classifier of turns ``transformations``; an export's
        detector gives ``reconstruction`` only). This is also
        the body of an export's ``score`` signatures (``tfae.exports``), traced with
        ``reference_codes`` a variable of the export and ``every_part`` off (only the parts its
        score adds up: no ELBO draws or classifier passes it does not use).

        Raises:
            TfaeError: for a detector not fitted.
        """
        import tensorflow as tf

        if self._signature is not None:
            outputs = dict(self._signature(tf.convert_to_tensor(images, tf.float32)))
            outputs["reconstruction"] = tf.reduce_mean(outputs["error_maps"], axis=(1, 2, 3))
            return outputs
        if self.calibration_ is None:
            raise TfaeError("the anomaly detector is not fitted: fit it on normal images first")
        # Only the parts the score adds up, unless every part is asked for: the ELBO's draws and
        # the classifier's 8 passes are the costly ones.
        needed = PARTS if every_part else COMBINED_PARTS if self.score == "combined" \
            else (self.score,)
        parts, error_maps = score_parts(
            self.model_, images, self.calibration_.reference_codes if reference_codes is None
            else reference_codes, needed)
        scores = self.calibration_.combined(parts, self.score)
        return {"scores": scores, "flagged": scores > self.threshold_, "error_maps": error_maps,
                **parts}

    def decision_function(self, images):
        """Each image's anomaly score (higher: more unlike the normal images), as numpy."""
        return np.asarray(self.outputs(images, every_part=False)["scores"])

    def predict(self, images):
        """1 for each image scoring above ``threshold_``, 0 for the others (PyOD's labels)."""
        return (self.decision_function(images) > self.threshold_).astype(np.int64)

    def flagged_range(self, level=0.95):
        """``(images, low, high)``: how many validation images the threshold rests on, and the
        range in which the share of normal images it flags plausibly lies (``level``): of ``n``
        images, ``m`` above the threshold, that share is Beta(m + 1, n - m) distributed (the
        coverage of an order statistic). ``None`` for an export's detector, whose validation
        scores are not kept.

        Examples:
            >>> detector = AnomalyDetector(contamination=0.05)
            >>> detector.decision_scores_, detector.threshold_ = np.arange(16.0), 15.0
            >>> images, low, high = detector.flagged_range()
            >>> images, round(low, 3), round(high, 3)
            (16, 0.002, 0.206)
        """
        from scipy.stats import beta

        if self.decision_scores_ is None:
            return None
        count = len(self.decision_scores_)
        above = int(np.sum(self.decision_scores_ > self.threshold_))
        low, high = beta.ppf([(1 - level) / 2, (1 + level) / 2], above + 1, count - above)
        return count, float(low), float(high)

    def warnings(self):
        """Lines worth a warning: a threshold resting on so few validation images that the
        share of normal images it flags may plausibly be twice the stated ``contamination``.

        Examples:
            >>> detector = AnomalyDetector(contamination=0.05)
            >>> detector.decision_scores_, detector.threshold_ = np.arange(16.0), 15.0
            >>> detector.warnings()
            ['the threshold rests on 16 validation images: at a stated 5%, between 0.2% and 20.6% of normal images may be flagged (95% range); more normal images make it firmer']
        """
        support = self.flagged_range()
        # AUTO states no share to be twice of.
        if support is None or self.contamination == AUTO or support[2] <= 2 * self.contamination:
            return []
        count, low, high = support
        return [f"the threshold rests on {count:,} validation images: at a stated "
                f"{self.contamination:.0%}, between {low:.1%} and {high:.1%} of normal images "
                "may be flagged (95% range); more normal images make it firmer"]

    def scores_of(self, parts):
        """The detector's score from parts computed before (``split_scores``)."""
        return np.asarray(self.calibration_.combined(parts, self.score))


def score_parts(model, images, reference_codes, optional=tuple(PART_NEEDS)):
    """``(parts, error maps)`` of a batch of float images under ``model`` (a
    ``tfae.opened.OpenedModel``), as tensors: the ``PARTS`` by name (of the ``optional`` ones,
    ``elbo`` and ``transformations``, those the model has) and the per-pixel squared errors of
    the reconstructions.

    Examples:
        >>> from tfae.families import build_model
        >>> from tfae.opened import OpenedModel
        >>> model = OpenedModel.of_model(build_model("deep", (8, 8, 1), hidden=(4,), latent_dim=2))
        >>> parts, error_maps = score_parts(model, np.zeros((3, 8, 8, 1), np.float32),
        ...                                 np.zeros((5, 2), np.float32))
        >>> sorted(parts), tuple(error_maps.shape)
        (['codes', 'reconstruction'], (3, 8, 8, 1))
    """
    import tensorflow as tf

    images = tf.convert_to_tensor(images, tf.float32)
    count = tf.shape(images)[0]
    # The model is its decoder after its encoder: encoding once gives both the codes and,
    # decoded, the reconstructions.
    codes = tf.cast(model.encode(images), tf.float32)
    error_maps = tf.square(tf.cast(model.decode(codes), tf.float32) - images)
    parts = {"reconstruction": tf.reduce_mean(tf.reshape(error_maps, (count, -1)), axis=1),
             "codes": nearest_distances(tf.reshape(codes, (count, -1)), reference_codes)}
    for part, compute in _optional_parts(model).items():
        if part in optional and compute is not None:
            parts[part] = compute(images)
    return parts, error_maps


def error_overlay(images, error_maps):
    """Each image in grey with its error map over it in red, as RGB in [0, 1]: a pixel's red
    is its error over the image's largest (the map shows where the error is; the score says how
    large), so a person sees which part of a flagged image the model could not reconstruct.
    ``tfae score --maps``, ``tfae plot --kind anomalies`` and ``tfae serve``'s page draw it.

    Examples:
        >>> images = np.full((1, 1, 2, 1), 0.5, np.float32)
        >>> error_overlay(images, np.array([[[[0.0], [0.2]]]], np.float32))[0, 0].round(2)
        array([[0.3, 0.3, 0.3],
               [1. , 0. , 0. ]], dtype=float32)
    """
    images = np.asarray(images, np.float32)
    errors = np.asarray(error_maps, np.float32).mean(axis=-1)
    largest = errors.reshape(len(errors), -1).max(axis=1).reshape(-1, 1, 1)
    strength = np.divide(errors, largest, out=np.zeros_like(errors), where=largest > 0)[..., None]
    grey = 0.6 * images.mean(axis=-1, keepdims=True)
    red = grey + (1 - grey) * strength
    rest = grey * (1 - strength)
    return np.concatenate([red, rest, rest], axis=-1)


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


def calibrate(path, model, progress=None, splits=None):
    """The ``Calibration`` of the run folder at ``path``: read from its ``anomaly.npz`` if that
    was made for its model (and reads), else made from the run's own data (its ``--classes``
    too) and kept.

    Args:
        path: a run folder.
        model: its ``tfae.opened.OpenedModel``.
        progress: a ``tfae.progress.Progress`` to show the stages on.
        splits: the run's data, when the caller has it already.

    Examples:
        >>> calibrate("runs/digit-3", open_model("runs/digit-3")).reference_codes.shape  # doctest: +SKIP
        (5421, 32)
    """
    from tfae.config import DataConfig
    from tfae.data import load_config
    from tfae.progress import Progress

    folder = RunFolder(path)
    identity = file_identity(folder.model_path)
    saved = Calibration.load(folder.calibration_path)
    if saved is not None and saved.model == identity:
        return saved
    progress = progress or Progress(enabled=False)
    if splits is None:
        config, source = folder.config(), folder.info().get("data") or {}
        settings = {name: config[name] for name in DataConfig().data_fields() if name in config}
        if source.get("kind") in ("folder", "npz"):  # by its absolute path: any working folder
            settings["dataset"] = source["dataset"]
        with progress.stage("reading the run's data"):
            splits = load_config(DataConfig(**settings))
    calibration = calibration_of(model, splits, progress, identity)
    calibration.save(folder.calibration_path)
    return calibration


def calibration_of(model, splits, progress=None, identity=()):
    """The ``Calibration`` of a model on the normal images of ``splits``: a seeded sample of
    ``REFERENCE_CODES`` training codes, and the ``PARTS`` of every validation image.

    Args:
        model: a ``tfae.opened.OpenedModel``.
        splits: ``tfae.data.Splits`` whose training and validation images are normal.
        progress: a ``tfae.progress.Progress`` to show the stages on.
        identity: what ``Calibration.model`` records.

    Examples:
        >>> from tfae.data import load
        >>> from tfae.families import build_model
        >>> from tfae.opened import OpenedModel
        >>> model = OpenedModel.of_model(build_model("deep", (28, 28, 1), hidden=(8,), latent_dim=2))
        >>> calibration = calibration_of(model, load("mnist", limit=64))
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
            codes = model.encode(images)
            references.append(np.reshape(np.asarray(codes, np.float32), (len(images), -1)))
            tick(len(images))
            if sum(map(len, references)) >= taken:
                break
    reference_codes = np.concatenate(references)[:taken]
    count = int(splits.validation.cardinality())
    with progress.stage(f"scoring {count:,} validation images", total=count,
                        unit="image") as tick:
        validation, _ = split_scores(model, splits.validation, reference_codes, tick=tick)
    return Calibration(reference_codes, validation, tuple(identity or ()))


def split_scores(model, split, reference_codes, batch_size=BATCH_SIZE, tick=None):
    """``(parts, labels)``: the ``PARTS`` of every image of ``split`` under ``model`` (a
    ``tfae.opened.OpenedModel``), a batch at a time, and their labels, as numpy arrays;
    ``tick(images)`` after each batch.

    Examples:
        >>> from tfae.data import load
        >>> from tfae.families import build_model
        >>> from tfae.opened import OpenedModel
        >>> model = OpenedModel.of_model(build_model("deep", (28, 28, 1), hidden=(8,), latent_dim=2))
        >>> parts, labels = split_scores(model, load("mnist", limit=10).test,
        ...                              np.zeros((3, 2), np.float32))
        >>> {name: part.shape for name, part in parts.items()}, labels.shape
        ({'reconstruction': (10,), 'codes': (10,)}, (10,))
    """
    from tfae.data import pipeline

    parts, labels = {}, []
    for images, _, batch_labels in pipeline(split, batch_size, with_labels=True):
        for name, value in score_parts(model, images, reference_codes)[0].items():
            parts.setdefault(name, []).append(np.asarray(value))
        labels.append(batch_labels.numpy())
        if tick:
            tick(len(batch_labels))
    return {name: np.concatenate(part) for name, part in parts.items()}, np.concatenate(labels)
