"""SavedModel export, in TensorFlow Serving's ``<name>/<version>/`` layout, taking what clients have.

An export loads with ``tf.saved_model.load`` where tfae is not installed, serves with TF Serving,
and answers seven signatures:

- ``serving_default`` (``images`` -> ``reconstructions``), ``encode`` (``images`` -> ``codes``):
  float32 images in [0, 1] of the size and channels the model takes;
- ``reconstruct_bytes`` and ``encode_bytes``: ``image_bytes``, a batch of encoded PNG, JPEG,
  BMP or GIF files (TF Serving's REST sends them as ``{"b64": ...}``, gRPC as a ``DT_STRING``
  tensor) of any size and colour;
- ``reconstruct_pixels`` and ``encode_pixels``: ``pixels``, uint8 images of any size with the
  model's channels;
- ``decode`` (``codes`` -> ``images``);
- for a variational autoencoder (``vae``), ``sample`` (``noise`` -> ``images``): images decoded
  from codes drawn from its prior, N(0, I), by the client (``tfae sample`` draws them seeded).

An export of a run folder also answers ``score`` (``images`` -> ``scores``, ``flagged`` and
``error_maps``, the per-pixel squared errors): the run's anomaly scores (``tfae.anomaly``), its
reference codes saved as weights and its threshold and medians as constants, so TF Serving
flags images as ``tfae score`` does; its settings and threshold are in the version's
``anomaly.json``, which ``tfae score`` reads.

The bytes and pixels signatures do inside the model what the run did to its images, as Keras'
examples put ``Resizing`` and ``Rescaling`` inside a model: decode, convert the channels, resize to
the model's size as the run resized (``stretch``, ``crop`` or ``pad``) and scale to [0, 1]; so a
client sends an image as it has it, never a tensor it must prepare exactly as tfae did.

Each version is written to a temporary folder and renamed into place, so a crash never leaves half
a version and an existing version is never overwritten.

Examples:
    >>> from tfae.exports import export_saved_model
    >>> version_dir = export_saved_model(model, "saved_models/deep", resize="crop")  # doctest: +SKIP
    >>> import tensorflow as tf
    >>> served = tf.saved_model.load(str(version_dir))  # doctest: +SKIP
    >>> codes = served.signatures["encode"](images=images)["codes"]  # doctest: +SKIP
    >>> jpeg = open("cat.jpg", "rb").read()  # doctest: +SKIP
    >>> codes = served.signatures["encode_bytes"](image_bytes=tf.constant([jpeg]))["codes"]  # doctest: +SKIP
"""

import os
import pathlib
import shutil
import tempfile

import keras
import tensorflow as tf

from tfae.anomaly import calibrate, check_contamination, elbo_score, nearest_distances
from tfae.data.pipeline import unit_floats
from tfae.data.splits import conform, decode
from tfae.errors import TfaeError
from tfae.files import process_exists, write_json
from tfae.runs import RunFolder

SIGNATURES = ("serving_default", "encode", "reconstruct_bytes", "encode_bytes",
              "reconstruct_pixels", "encode_pixels", "decode")
SCORE_SIGNATURE = "score"  # beside SIGNATURES in an export made with a run's calibration
SAMPLE_SIGNATURE = "sample"  # beside SIGNATURES in an export of a model with a prior (vae)
ANOMALY_FILE = "anomaly.json"  # in such a version folder: its score, contamination, threshold
REFERENCE_CODES_LAYER = "anomaly_reference_codes"  # its variables: not the model's parameters


def versions(export_dir):
    """The version numbers of the SavedModels in ``export_dir``, ascending ([] for none).

    Examples:
        >>> versions("/nonexistent/folder")
        []
    """
    export_dir = pathlib.Path(export_dir)
    if not export_dir.is_dir():
        return []
    return sorted(int(child.name) for child in export_dir.iterdir()
                  if child.name.isdigit() and (child / "saved_model.pb").is_file())


def next_version(export_dir):
    """The next free integer version in ``export_dir`` (1 for a new folder).

    Examples:
        >>> next_version("/nonexistent/folder")
        1
    """
    return max(versions(export_dir), default=0) + 1


# Inside a staging folder while tfae writes a version into it: only such folders are removed as
# left by a killed export.
STAGING_MARK = ".tfae-staging"


def export_saved_model(model, export_dir, resize="stretch", calibration=None,
                       score="reconstruction", contamination=0.05):
    """Writes ``model`` as the next version of the SavedModel folder ``export_dir``.

    Args:
        model: a ``tfae.models.Autoencoder``.
        export_dir: the model's folder in TF Serving's layout; versions are its subfolders.
        resize: how the bytes and pixels signatures fit images of another aspect ratio to the
            model's size: the run's ``resize`` (``tfae.data.splits.conform``).
        calibration: the run's ``tfae.anomaly.Calibration``, for a ``score`` signature.
        score, contamination: which anomaly score it gives, and which threshold flags.

    Returns:
        The ``pathlib.Path`` of the new version folder.

    Examples:
        >>> export_saved_model(model, "saved_models/deep")  # doctest: +SKIP
        PosixPath('saved_models/deep/1')
    """
    export_dir = pathlib.Path(export_dir)
    try:
        export_dir.mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(export_dir)
        staging = pathlib.Path(tempfile.mkdtemp(prefix=f".export-{os.getpid()}-", dir=export_dir))
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the version from a serving user
        (staging / STAGING_MARK).write_text(f"{os.getpid()}\n")
    except OSError as error:
        raise TfaeError(f"cannot write to export folder {export_dir}: {error.strerror}") from None
    try:
        archive = _archive(model, resize)
        if calibration is not None:
            _add_score(archive, model, calibration, score, contamination)
        archive.write_out(str(staging), verbose=False)
        if calibration is not None:
            write_json(staging / ANOMALY_FILE, {
                "score": score, "contamination": contamination,
                "threshold": calibration.threshold(score, contamination)})
        (staging / STAGING_MARK).unlink()  # not part of the version
        version = next_version(export_dir)
        while True:
            try:
                # os.rename onto an existing non-empty folder fails, so a version written by a
                # concurrent export is never replaced: take the next number instead.
                os.rename(staging, export_dir / str(version))
                return export_dir / str(version)
            except OSError:
                if not (export_dir / str(version)).exists():
                    raise
                version += 1
    except (OSError, tf.errors.OpError) as error:  # a full disk, most often
        reason = error.message if isinstance(error, tf.errors.OpError) else error.strerror
        raise TfaeError(f"cannot export to {export_dir}: {str(reason).splitlines()[0]} (nothing "
                        "was left there)") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remove_stale_staging(export_dir):
    """Removes the staging folders of exports killed before their rename: those tfae marked as
    its own (``STAGING_MARK`` inside) whose process (named in the folder, ``.export-<pid>-...``)
    is gone. A running export's folder stays, and so does any folder of the user's."""
    for staging in export_dir.glob(".export-*"):
        pid = staging.name.split("-")[1]
        if (staging / STAGING_MARK).is_file() and pid.isdigit() and not process_exists(int(pid)):
            shutil.rmtree(staging, ignore_errors=True)


def _archive(model, resize):
    height, width, channels = model.image_shape
    image_spec = tf.TensorSpec((None, *model.image_shape), tf.float32, name="images")
    bytes_spec = tf.TensorSpec((None,), tf.string, name="image_bytes")
    pixels_spec = tf.TensorSpec((None, None, None, channels), tf.uint8, name="pixels")
    code_spec = tf.TensorSpec((None, model.latent_dim), tf.float32, name="codes")

    def prepared(images):  # uint8 images of any size -> what the model takes
        return unit_floats(conform(images, (height, width), resize=resize))

    def decoded(image_bytes):
        return tf.map_fn(lambda content: prepared(decode(content, channels)), image_bytes,
                         fn_output_signature=tf.TensorSpec(model.image_shape, tf.float32))

    reconstruct = lambda images: {"reconstructions": model(images, training=False)}  # noqa: E731
    encode = lambda images: {"codes": model.encoder(images, training=False)}  # noqa: E731
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", reconstruct, input_signature=[image_spec])
    archive.add_endpoint("encode", encode, input_signature=[image_spec])
    archive.add_endpoint("reconstruct_bytes", lambda image_bytes: reconstruct(
        decoded(image_bytes)), input_signature=[bytes_spec])
    archive.add_endpoint("encode_bytes", lambda image_bytes: encode(decoded(image_bytes)),
                         input_signature=[bytes_spec])
    archive.add_endpoint("reconstruct_pixels", lambda pixels: reconstruct(prepared(pixels)),
                         input_signature=[pixels_spec])
    archive.add_endpoint("encode_pixels", lambda pixels: encode(prepared(pixels)),
                         input_signature=[pixels_spec])
    archive.add_endpoint(
        "decode", lambda codes: {"images": model.decoder(codes, training=False)},
        input_signature=[code_spec])
    if hasattr(model, "posterior"):  # a prior to sample from
        archive.add_endpoint(
            SAMPLE_SIGNATURE, lambda noise: {"images": model.decoder(noise, training=False)},
            input_signature=[tf.TensorSpec((None, model.latent_dim), tf.float32, name="noise")])
    return archive


class _ReferenceCodes(keras.layers.Layer):
    """A run's reference codes (``tfae.anomaly.Calibration``) as a weight of the export: saved
    in its variables, not as a constant in its graph."""

    def __init__(self, reference_codes):
        super().__init__(trainable=False, name=REFERENCE_CODES_LAYER)
        self.codes = self.add_weight(shape=reference_codes.shape, initializer="zeros",
                                     trainable=False, name="codes")
        self.codes.assign(reference_codes)
        self.built = True  # no inputs to build from: the weight is made here


def _add_score(archive, model, calibration, score, contamination):
    """The ``score`` signature: images -> ``scores``, ``flagged``, ``error_maps``."""
    threshold = calibration.threshold(score, contamination)  # refuses elbo without a posterior
    reference = _ReferenceCodes(calibration.reference_codes)
    archive.track(reference)

    def scored(images):
        count = tf.shape(images)[0]
        # The model is its decoder after its encoder: encoding once gives both the codes and,
        # decoded, the reconstructions.
        codes = model.encoder(images, training=False)
        error_maps = tf.square(model.decoder(codes, training=False) - images)
        errors = tf.reduce_mean(tf.reshape(error_maps, (count, -1)), axis=1)
        parts = {"reconstruction": errors,
                 "codes": nearest_distances(tf.reshape(codes, (count, -1)), reference.codes)}
        if score == "elbo":
            parts["elbo"] = elbo_score(model)(images)
        scores = calibration.combined(parts, score)
        return {"scores": scores, "flagged": scores > threshold, "error_maps": error_maps}

    archive.add_endpoint(SCORE_SIGNATURE, scored, input_signature=[
        tf.TensorSpec((None, *model.image_shape), tf.float32, name="images")])


def export(run_dir, export_dir=None, score="reconstruction", contamination=0.05, progress=None):
    """Exports the model of a finished run folder, with its anomaly ``score`` signature
    (calibrated, ``tfae.anomaly.calibrate``), and records the export in its ``run.json``.

    Args:
        run_dir: a folder written by ``tfae.fit``.
        export_dir: where versions go; default ``saved_models/<model>``.
        score, contamination: the anomaly score the export gives and its threshold's share of
            validation images flagged (``tfae.anomaly``).
        progress: a ``tfae.progress.Progress`` to show the calibration's stages on.

    Returns:
        The ``pathlib.Path`` of the new version folder.

    Examples:
        >>> export("runs/deep")  # doctest: +SKIP
        PosixPath('saved_models/deep/2')
    """
    check_contamination(contamination)  # before the calibration's minutes, not after
    folder = RunFolder(run_dir)
    model = folder.load_model()
    config = folder.config()
    calibration = calibrate(run_dir, progress=progress)
    version_dir = export_saved_model(
        model, export_dir or pathlib.Path("saved_models") / config["model"],
        resize=config.get("resize") or "stretch", calibration=calibration, score=score,
        contamination=contamination)
    folder.write_info({"export": str(version_dir)})
    return version_dir
