"""One opened model: a run folder or a SavedModel export, decided here and nowhere else.

``open_model(path)`` gives an ``OpenedModel``: what applying, measuring, drawing and scoring read
of a model, whichever it is. A run folder (``model.keras``) gives its Keras model's parts and
what the run recorded (its data, training time); an export (a version folder, or a folder of
versions, the highest taken as TF Serving takes it) gives its signatures. ``detector`` is the
model's anomaly detector (``tfae.anomaly.AnomalyDetector``): a run's is calibrated on its own
normal images (once, then kept in the run folder), an export's is its ``score`` signature.

Examples:
    >>> opened = open_model("runs/deep")  # doctest: +SKIP
    >>> opened.kind, opened.encode(images).shape  # doctest: +SKIP
    ('run', TensorShape([8, 256]))
    >>> open_model("saved_models/deep").detector().threshold_  # doctest: +SKIP
    0.0213
"""

import dataclasses
import functools
import pathlib

import numpy as np

from tfae.anomaly import (DEFAULT_CONTAMINATION, AnomalyDetector, calibrate, check_contamination,
                          check_model_scores, check_score, contamination_text, default_score,
                          elbo_score)
from tfae.config import DataConfig
from tfae.errors import TfaeError
from tfae.device_runtimes import FORMAT_NAMES, LiteRTFile, OnnxFile, is_device_file, settings_path
from tfae.files import as_path, read_json
from tfae.runs import ExportFolder, RunFolder

# The names of an export's signatures that are not the model's own endpoints (tfae.exports).
SCORE_SIGNATURE = "score"
SAMPLE_SIGNATURE = "sample"
REFERENCE_CODES_LAYER = "anomaly_reference_codes"  # its variables: not the model's parameters


@dataclasses.dataclass
class OpenedModel:
    """A model as applying, measuring, drawing and scoring read it, a run's or an export's.

    Attributes:
        path: the run folder, or the export's version folder.
        kind: ``run`` or ``export``.
        encode: images -> codes.
        decode: codes -> images.
        reconstruct: images -> reconstructions.
        image_shape: the input image shape.
        latent_dim: the size of a code.
        parameters: the number of weights.
        training_seconds: from the run, or ``None`` for an export.
        data_settings: the run's ``DataConfig`` fields, or ``None`` for an export.
        data_source: where the run's data came from (``Splits.source``), if known.
        jacobian_squared_norm: images -> ||J_f(x)||_F^2 without the full Jacobian where the
            model allows it, or ``None`` for an export.
        sample: ``noise -> images``, codes drawn from the model's prior
            (``tfae.models.variational.prior_codes``) decoded, or ``None`` for a model without
            a prior.
        negative_elbo: images -> negative ELBO (``tfae.anomaly.elbo_score``) of a run's model
            with a posterior, else ``None``.
        transformation_surprise: images -> how badly a ``geometric`` run's classifier tells
            their turns (``tfae.models.geometric``), else ``None``.
        variational: a run's ``VariationalAutoencoder``, for its likelihood; ``None`` for
            other models and for exports.
        score_signature: an export's ``score`` signature, or ``None``.
        anomaly: the settings of an export's ``score`` signature (``score``,
            ``contamination``, ``threshold``), or ``None``.

    Examples:
        >>> from tfae.families import build_model
        >>> opened = OpenedModel.of_model(build_model("deep", (8, 8, 1), hidden=(4,),
        ...                                           latent_dim=2))
        >>> opened.kind, opened.image_shape, opened.latent_dim, opened.sample is None
        ('model', (8, 8, 1), 2, True)
    """

    path: pathlib.Path | None
    kind: str
    encode: callable
    decode: callable
    reconstruct: callable
    image_shape: tuple
    latent_dim: int
    parameters: int
    training_seconds: float | None = None
    data_settings: dict | None = None
    data_source: dict | None = None
    jacobian_squared_norm: callable = None
    sample: callable = None
    negative_elbo: callable = None
    transformation_surprise: callable = None
    variational: object = None
    score_signature: callable = None
    anomaly: dict | None = None

    @classmethod
    def of_model(cls, model, path=None, kind="model", **recorded):
        """A Keras ``tfae.models.Autoencoder`` opened (``kind`` ``model``, or ``run`` with what
        its run recorded)."""
        from tfae.models.contractive import contractive_penalty

        variational = model if hasattr(model, "posterior") else None  # has a prior
        return cls(
            path=path, kind=kind,
            encode=lambda images: model.encoder(images, training=False),
            decode=lambda codes: model.decoder(codes, training=False),
            reconstruct=lambda images: model(images, training=False),
            image_shape=tuple(model.image_shape), latent_dim=model.latent_dim,
            parameters=model.count_params(),
            jacobian_squared_norm=functools.partial(contractive_penalty, model.encoder,
                                                    method="exact"),
            sample=(lambda noise: model.decoder(noise, training=False)) if variational else None,
            negative_elbo=elbo_score(model),
            transformation_surprise=getattr(model, "transformation_surprise", None),
            variational=variational, **recorded)

    def detector(self, score=None, contamination=None, progress=None, splits=None):
        """The model's anomaly detector (``tfae.anomaly.AnomalyDetector``), fitted.

        A run's is calibrated on its own training and validation images on first use and kept
        in its folder (``tfae.anomaly.calibrate``; ``splits``, if given, are those images,
        already loaded); a Keras model's (``of_model``) on ``splits``. An export's is its ``score`` signature, which
        scores as it was made to.

        Args:
            score, contamination: which score, and the share of normal images flagged; default
                ``tfae.anomaly.default_score`` and ``DEFAULT_CONTAMINATION``, or an export's own.
            progress: a ``tfae.progress.Progress`` for the calibration's stages.
            splits: ``tfae.data.Splits`` of normal images to calibrate on.

        Raises:
            TfaeError: for a bad ``score`` or ``contamination``, an export without a ``score``
                signature or asked for other settings, or a model with nothing to calibrate on.
        """
        if score is not None:
            check_score(score)
        if contamination is not None:
            check_contamination(contamination)
        if self.kind == "export":
            return self._exported_detector(score, contamination)
        check_model_scores(self, score)
        detector = AnomalyDetector(score or default_score(self), DEFAULT_CONTAMINATION
                                   if contamination is None else contamination)
        if self.kind == "run":
            return detector.calibrated(self, calibrate(self.path, self, progress, splits))
        if splits is None:
            raise TfaeError("a model outside a run folder is calibrated on images given to it "
                            "(splits)")
        return detector.fit(self, splits, progress)

    def _exported_detector(self, score, contamination):
        if self.score_signature is None:
            raise TfaeError(f"export {self.path} has no score signature: it was made before tfae "
                            "scored anomalies; export its run again (tfae export RUN_DIR), or "
                            "score the run folder")
        asked = {"score": score, "contamination": contamination}
        for name, value in asked.items():
            if value is not None and value != self.anomaly[name]:
                raise TfaeError("{%s} %s: export %s scores %s at contamination %s; score its "
                                "run folder for other settings, or export it with them" % (
                                    name, value, self.path, self.anomaly["score"],
                                    contamination_text(self.anomaly["contamination"])),
                                options=[name])
        return AnomalyDetector.exported(self.score_signature, self.anomaly)


def open_model(path):
    """Opens a run folder (``model.keras``), a SavedModel export (a version folder or its
    parent, whose highest version is taken) or a LiteRT or ONNX file
    (``open_device_file``).

    Raises:
        TfaeError: for a folder that is neither, a corrupt model, or an export lacking the
            signatures tfae reads.

    Examples:
        >>> opened = open_model("saved_models/deep")  # doctest: +SKIP
        >>> opened.encode(images).shape  # doctest: +SKIP
        TensorShape([8, 10])
    """
    path = as_path(path, "path")
    if is_device_file(path) and path.is_file():
        return open_device_file(path)
    if RunFolder.holds_run(path):
        folder = RunFolder(path)
        info = folder.info()
        config = folder.config() if folder.config_path.exists() else {}
        settings = {name: config[name] for name in DataConfig().data_fields() if name in config}
        return OpenedModel.of_model(folder.load_model(training=False), path, "run",
                                    training_seconds=info.get("training_seconds"),
                                    data_settings=settings, data_source=info.get("data"))
    return _opened_export(ExportFolder(path).version_dir())


def _opened_export(path):
    import tensorflow as tf

    served = tf.saved_model.load(str(path))
    signatures = served.signatures
    missing = {"encode", "serving_default", "decode"} - set(signatures)
    if missing:
        raise TfaeError(f"export {path} lacks the signature(s) {', '.join(sorted(missing))}")
    anomaly_file = path / ExportFolder.ANOMALY_FILE
    scores = SCORE_SIGNATURE in signatures and anomaly_file.is_file()
    anomaly = read_json(anomaly_file) if scores else None
    if scores and not (isinstance(anomaly, dict) and {"score", "contamination", "threshold"}
                       <= set(anomaly)):
        raise TfaeError(f"{anomaly_file} is not an export's anomaly settings (score, "
                        "contamination, threshold); export its run again")
    # The lambdas hold `served` itself: its signatures alone do not keep its variables alive.
    return OpenedModel(
        path=path, kind="export",
        encode=lambda images: served.signatures["encode"](images=images)["codes"],
        decode=lambda codes: served.signatures["decode"](codes=codes)["images"],
        reconstruct=lambda images: served.signatures["serving_default"](
            images=images)["reconstructions"],
        image_shape=tuple(signatures["encode"].structured_input_signature[1]["images"].shape[1:]),
        latent_dim=signatures["encode"].structured_outputs["codes"].shape[-1],
        # The model's weights: not the reference codes its score signature keeps.
        parameters=int(sum(np.prod(variable.shape) for variable in served.variables
                           if not variable.name.startswith(REFERENCE_CODES_LAYER))),
        sample=(lambda noise: served.signatures[SAMPLE_SIGNATURE](noise=noise)["images"])
        if SAMPLE_SIGNATURE in signatures else None,
        score_signature=(lambda images: served.signatures[SCORE_SIGNATURE](images=images))
        if scores else None,
        anomaly=anomaly)


def own_data_settings(path, opened, dataset=None):
    """The ``DataConfig`` settings of the data the model at ``path`` was made for: a run's own
    (its folder or ``.npz`` file by absolute path), or MNIST for an export; for an export given
    other data (``dataset``), the image size and channels it takes.

    Raises:
        TfaeError: for a run trained on arrays given in Python, with no ``dataset``.

    Examples:
        >>> own_data_settings("saved_models/deep", open_model("saved_models/deep"))  # doctest: +SKIP
        {'dataset': 'mnist'}
    """
    source = opened.data_source or {}
    if opened.data_settings is None:  # an export: of MNIST, or of images of its own shape
        own = {"dataset": "mnist"}
        if dataset is not None:
            height, width, channels = opened.image_shape
            own.update(image_size=(height, width), channels=channels)
        return own
    own = dict(opened.data_settings)
    if source.get("kind") == "arrays" and dataset is None:
        raise TfaeError(f"{path} was trained on arrays given in Python; give the data "
                        "({dataset})", options=["dataset"])
    if source.get("kind") in ("folder", "npz"):  # its absolute path: any working folder
        own["dataset"] = source["dataset"]
    return own


def open_device_file(path):
    """Opens a LiteRT or ONNX file written by ``export_file`` as a ``tfae.opened.OpenedModel``
    (``kind`` ``export``): its encoder, reconstructions and anomaly score, with the settings
    written beside it.

    Raises:
        TfaeError: for a file without its settings, one that is not such a model, or a runtime
            that is not installed.

    Examples:
        >>> opened = open_device_file("saved_models/deep-int8.tflite")  # doctest: +SKIP
        >>> opened.detector().predict(images)  # doctest: +SKIP
        array([0, 1, 0])
        >>> open_device_file("nowhere.onnx")
        Traceback (most recent call last):
        ...
        tfae.errors.TfaeError: nowhere.onnx has no settings beside it (nowhere.onnx.json, written by tfae export --format); export its run again
    """
    path = as_path(path, "path")
    settings = read_json(settings_path(path)) if settings_path(path).is_file() else None
    if not (isinstance(settings, dict) and {"format", "image_shape", "latent_dim", "signatures",
                                            "anomaly"} <= set(settings)):
        raise TfaeError(f"{path} has no settings beside it ({settings_path(path).name}, written "
                        "by tfae export --format); export its run again")
    model = (LiteRTFile if settings["format"] == "litert" else OnnxFile)(path)
    carried = set(model.signatures())

    def call(signature, output):
        return lambda values: model.run(signature, values, [output])[output]

    kind = " ".join(filter(None, [settings.get("quantize"),
                                  FORMAT_NAMES.get(settings["format"], settings["format"])]))

    def lacking(what):
        def refuse(_):
            raise TfaeError(f"{path} carries no {what}: a {kind} file takes images only; use "
                            "its run or SavedModel export")
        return refuse

    return OpenedModel(
        path=path, kind="export",
        encode=call("encode", "codes"),
        decode=call("decode", "images") if "decode" in carried else lacking("decoder"),
        reconstruct=call("serving_default", "reconstructions"),
        image_shape=tuple(settings["image_shape"]), latent_dim=int(settings["latent_dim"]),
        parameters=int(settings.get("parameters", 0)),
        sample=call("sample", "images") if "sample" in carried else None,
        score_signature=lambda images: model.run("score", images,
                                                 ["scores", "flagged", "error_maps"]),
        anomaly=settings["anomaly"])
