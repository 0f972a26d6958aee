"""SavedModel export, in TensorFlow Serving's ``<name>/<version>/`` layout, taking what clients have.

An export loads with ``tf.saved_model.load`` where tfae is not installed, serves with TF Serving,
and answers eight signatures:

- ``serving_default`` (``images`` -> ``reconstructions``), ``encode`` (``images`` -> ``codes``):
  float32 images in [0, 1] of the size and channels the model takes;
- ``reconstruct_bytes`` and ``encode_bytes``: ``image_bytes``, a batch of encoded PNG, JPEG,
  BMP or GIF files (TF Serving's REST sends them as ``{"b64": ...}``, gRPC as a ``DT_STRING``
  tensor) of any size and colour;
- ``reconstruct_pixels`` and ``encode_pixels``: ``pixels``, uint8 images of any size with the
  model's channels;
- ``decode`` (``codes`` -> ``images``);
- ``prepare_bytes`` (``image_bytes`` -> ``images``): an image file as the model sees it, decoded
  and resized as the other bytes signatures do (``tfae serve``'s page shows it);
- for a variational autoencoder (``vae``), ``sample`` (``noise`` -> ``images``): images decoded
  from codes drawn from its prior, N(0, I), by the client (``tfae sample`` draws them seeded).

An export of a run folder also answers ``score`` (``images`` -> ``scores``, ``flagged`` and
``error_maps``, the per-pixel squared errors), ``score_bytes`` (``image_bytes``) and
``score_pixels`` (``pixels``): the run's anomaly detector (``tfae.anomaly.AnomalyDetector``)
traced, its reference codes saved as weights and its threshold and medians as constants, so TF
Serving flags images as ``tfae score`` does, a JPEG as ``tfae score`` flags the file; its
settings and threshold are in the version's ``anomaly.json`` (``tfae.runs.ExportFolder``),
which ``tfae score`` reads.

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

import tensorflow as tf

from tfae import __version__
from tfae.anomaly import DEFAULT_CONTAMINATION, check_contamination
from tfae.errors import TfaeError
from tfae.config import RESIZE_MODES
from tfae.files import as_path, write_json
from tfae.opened import OpenedModel
from tfae.runs import ExportFolder, RunFolder
from tfae.signatures import signatures_archive

def export_saved_model(model, export_dir, resize="stretch", detector=None, family=None):
    """Writes ``model`` as the next version of the SavedModel folder ``export_dir``.

    Args:
        model: a ``tfae.models.Autoencoder``.
        export_dir: the model's folder in TF Serving's layout; versions are its subfolders.
        resize: how the bytes and pixels signatures fit images of another aspect ratio to the
            model's size: the run's ``resize`` (``tfae.data.splits.conform``).
        detector: the model's fitted ``tfae.anomaly.AnomalyDetector``, for the ``score``
            signatures.
        family: the model's family, recorded in the version's ``INFO_FILE`` with ``resize``
            (``tfae serve``'s page shows them).

    Returns:
        The ``pathlib.Path`` of the new version folder.

    Examples:
        >>> export_saved_model(model, "saved_models/deep")  # doctest: +SKIP
        PosixPath('saved_models/deep/1')
    """
    if resize not in RESIZE_MODES:
        raise TfaeError("{resize} must be one of %s, got %r" % (", ".join(RESIZE_MODES), resize),
                        options=["resize"])
    folder = ExportFolder(as_path(export_dir, "export_dir"))
    export_dir = folder.path
    try:
        export_dir.mkdir(parents=True, exist_ok=True)
        folder.remove_stale_staging()
        staging = pathlib.Path(tempfile.mkdtemp(prefix=f"{folder.STAGING_PREFIX}{os.getpid()}-",
                                                dir=export_dir))
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the version from a serving user
        (staging / folder.STAGING_MARK).write_text(f"{os.getpid()}\n")
    except OSError as error:
        raise TfaeError(f"cannot write to export folder {export_dir}: {error.strerror}") from None
    try:
        archive = signatures_archive(model, resize, detector)
        archive.write_out(str(staging), verbose=False)
        write_json(staging / folder.INFO_FILE, {"model": family, "resize": resize,
                                                "tfae": __version__})
        if detector is not None:
            write_json(staging / folder.ANOMALY_FILE, {
                "score": detector.score, "contamination": detector.contamination,
                "threshold": detector.threshold_})
        (staging / folder.STAGING_MARK).unlink()  # not part of the version
        version = folder.next_version()
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


def export(run_dir, export_dir=None, score=None, contamination=DEFAULT_CONTAMINATION,
           progress=None, format="saved_model", quantize=None, out=None):
    """Exports the model of a finished run folder, with its anomaly ``score`` signature
    (calibrated, ``tfae.anomaly.calibrate``), and records the export in its ``run.json``.

    Args:
        run_dir: a folder written by ``tfae.fit``, not being trained.
        export_dir: where SavedModel versions go; default ``saved_models/<model>``.
        score, contamination: the anomaly score the export gives (default the model's,
            ``tfae.anomaly.default_score``) and its threshold's share of validation images
            flagged (``tfae.anomaly``).
        progress: a ``tfae.progress.Progress`` to show the calibration's stages on.
        format: ``saved_model``, or a file for a device, ``litert`` or ``onnx``
            (``tfae.device_files``).
        quantize: for ``litert``, ``float16`` or ``int8``.
        out: the device file to write; default ``saved_models/<model>[-<quantize>].tflite``
            or ``.onnx``.

    Returns:
        The ``pathlib.Path`` of the new version folder, or of the device file.

    Examples:
        >>> export("runs/deep")  # doctest: +SKIP
        PosixPath('saved_models/deep/2')
        >>> export("runs/deep", format="litert", quantize="int8")  # doctest: +SKIP
        PosixPath('saved_models/deep-int8.tflite')
    """
    from tfae.device_files import check_export_options, export_file

    check_export_options(format, quantize, score, out)
    if format == "saved_model" and out is not None:
        raise TfaeError("{out} names a device file; a SavedModel goes to {export_dir}",
                        options=["out", "export_dir"])
    if format != "saved_model" and export_dir is not None:
        raise TfaeError("{export_dir} is a SavedModel's folder; {format} %s writes one file, "
                        "to {out}" % format, options=["export_dir", "format", "out"])
    check_contamination(contamination)  # before the calibration's minutes, not after
    folder = RunFolder(run_dir)
    if format != "saved_model":
        written = export_file(run_dir, out, format, score, contamination, quantize, progress)
        folder.write_info({f"export_{format}": str(written)})
        return written
    folder.check_finished()
    folder.check_not_training()
    config = folder.config()
    model = folder.load_model(training=False)
    opened = OpenedModel.of_model(model, folder.path, "run")
    version_dir = export_saved_model(
        model, export_dir or pathlib.Path("saved_models") / config["model"],
        resize=config.get("resize") or "stretch",
        detector=opened.detector(score, contamination, progress), family=config["model"])
    folder.write_info({"export": str(version_dir)})
    return version_dir
