"""A run's model as one file for a device: LiteRT (``.tflite``) or ONNX (``.onnx``).

``tfae export RUN --format litert`` or ``--format onnx`` writes one file and, beside it,
``<file>.json`` (``SETTINGS_SUFFIX``): what the file takes and gives, and the run's anomaly
settings. Both formats are converted from the run's SavedModel signatures (``tfae.exports``),
so they compute what an export computes, the anomaly score with its calibration inside (the
reference codes as constants, the threshold in the ``flagged`` output):

- **LiteRT**, by TensorFlow's own converter (``pip install tfae[litert]``, whose
  ``ai-edge-litert`` runs the file without TensorFlow): the signatures ``encode`` (``images``
  -> ``codes``), ``serving_default`` (``images`` -> ``reconstructions``), ``score`` (``images``
  -> ``scores``, ``flagged``, ``error_maps``), and in a float file ``decode`` (``codes`` ->
  ``images``) and a VAE's ``sample`` (``noise`` -> ``images``). ``quantize="float16"`` halves
  the weights; ``quantize="int8"`` quantizes the network's weights and activations, calibrated
  on ``REPRESENTATIVE_IMAGES`` of the run's own training images, takes uint8 pixels (the
  ``input`` entry of the settings gives their scale, 1/255, and zero point, 0) and computes the
  anomaly score itself in float32 (``FLOAT_SCORE_OPS``), so it flags as the run does with the
  run's threshold. It carries no ``decode`` or ``sample``, whose inputs are codes, not pixels.
- **ONNX**, by ``tf2onnx`` (``pip install tfae[onnx]``): one graph from ``images`` to every
  output, ``codes``, ``reconstructions``, ``scores``, ``flagged`` and ``error_maps``; run it with
  ``onnxruntime``, asking for the outputs wanted. It carries no ``decode`` or ``sample``.

Images are float32 in [0, 1] of the run's size and channels (an int8 LiteRT file's: uint8
pixels); the bytes and pixels signatures of a SavedModel, which decode and resize images inside
the model, are not carried: a device passes images of the model's size. The ``elbo`` score is
not carried either: its draws are random ops that neither format has (``--score
reconstruction``, ``codes`` or ``combined`` are).

``tfae.opened.open_model`` opens such a file (with ``tfae.device_runtimes``) as it opens a
run, so ``tfae score`` and ``tfae encode`` check a deployed file against its run.

Examples:
    >>> from tfae.device_files import export_file
    >>> export_file("runs/washers", "washers.tflite", "litert", "reconstruction", 0.05,
    ...             quantize="int8")  # doctest: +SKIP
    PosixPath('washers.tflite')
    >>> from tfae.opened import open_model
    >>> open_model("washers.tflite").encode(images).shape  # doctest: +SKIP
    (8, 16)
"""

import os
import pathlib
import shutil

from tfae import __version__
from tfae.compat import private_name, require
from tfae.device_runtimes import FILE_SUFFIXES, FORMAT_NAMES, LiteRTFile, runtime, settings_path
from tfae.errors import TfaeError
from tfae.files import as_path, partial_path, remove_stale
from tfae.runs import RunFolder
from tfae.startup import native_stderr_hidden

FORMATS = ("saved_model", "litert", "onnx")
QUANTIZATIONS = ("float16", "int8")
REPRESENTATIVE_IMAGES = 300
ONNX_OPSET = 17
ONNX_OUTPUTS = ("codes", "reconstructions", "scores", "flagged", "error_maps")
# The ops of the anomaly score an int8 file computes in float32 (``_quantized_but_the_score``);
# the network's own ops of these kinds (a reshape) stay float32 too, between a dequantize and a
# quantize.
FLOAT_SCORE_OPS = ("SQUARED_DIFFERENCE", "SQUARE", "MEAN", "SUM", "SUB", "ADD", "MUL", "DIV",
                   "SQRT", "MAXIMUM", "NEG", "TOPK_V2", "BATCH_MATMUL", "GREATER", "RESHAPE")


def check_export_options(format, quantize=None, score=None, out=None):
    """Refuses, before any work, what ``format`` cannot carry.

    Examples:
        >>> check_export_options("onnx", quantize="int8")
        Traceback (most recent call last):
        ...
        tfae.errors.TfaeError: quantize int8: only a LiteRT file (format litert) is quantized
    """
    if format not in FORMATS:
        raise TfaeError("{format} must be one of %s, got %r" % (", ".join(FORMATS), format),
                        options=["format"])
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise TfaeError("{quantize} must be one of %s, got %r" % (", ".join(QUANTIZATIONS),
                                                                    quantize),
                        options=["quantize"])
    if quantize is not None and format != "litert":
        raise TfaeError(f"{{quantize}} {quantize}: only a LiteRT file ({{format}} litert) is "
                        "quantized", options=["quantize", "format"])
    if format == "saved_model":
        return
    if score == "elbo":
        raise TfaeError(f"{{score}} elbo: its draws are random ops, which "
                        f"{FORMAT_NAMES[format]} cannot hold; export --score reconstruction, "
                        "codes or combined",
                        options=["score"])
    if out is not None and pathlib.Path(out).suffix != FILE_SUFFIXES[format]:
        raise TfaeError(f"{{out}} must end in {FILE_SUFFIXES[format]} for {{format}} {format}, "
                        f"got {pathlib.Path(out).name}", options=["out", "format"])


def default_file(model, format, quantize=None):
    """Where a run's device file goes unless told: ``saved_models/<model>[-<quantize>]<suffix>``,
    beside the model's SavedModel folder.

    Examples:
        >>> default_file("deep", "litert", "int8")
        PosixPath('saved_models/deep-int8.tflite')
    """
    return pathlib.Path("saved_models") / (
        model + (f"-{quantize}" if quantize else "") + FILE_SUFFIXES[format])


def export_file(run_dir, out, format, score, contamination, quantize=None, progress=None):
    """Writes the model of the finished run ``run_dir`` as the device file ``out`` and its
    settings beside it, each whole or not at all; an existing file is never replaced.

    Args:
        run_dir: a folder written by ``tfae.fit``, not being trained.
        out: the file to write (``.tflite`` for ``litert``, ``.onnx`` for ``onnx``); ``None``
            for ``default_file``.
        format: ``litert`` or ``onnx``.
        score, contamination: the anomaly score the file gives and its threshold's share of
            validation images flagged (``tfae.anomaly``).
        quantize: ``None``, ``float16`` or ``int8`` (LiteRT only).
        progress: a ``tfae.progress.Progress`` to show the stages on.

    Returns:
        ``out`` as a ``pathlib.Path``.

    Raises:
        TfaeError: for an option the format cannot carry, an existing ``out``, a run still
            training, or a runtime the format needs that is not installed.

    Examples:
        >>> export_file("runs/deep", "deep.onnx", "onnx", "reconstruction", 0.05)  # doctest: +SKIP
        PosixPath('deep.onnx')
        >>> export_file("runs/deep", "deep.onnx", "onnx", "elbo", 0.05)
        Traceback (most recent call last):
        ...
        tfae.errors.TfaeError: score elbo: its draws are random ops, which ONNX cannot hold; export --score reconstruction, codes or combined
    """
    from tfae.progress import Progress

    progress = progress or Progress(enabled=False)
    check_export_options(format, quantize, score, out)
    folder = RunFolder(as_path(run_dir, "run_dir"))
    folder.check_finished()
    folder.check_not_training()
    family = folder.config()["model"]
    out = default_file(family, format, quantize) if out is None else as_path(out, "out")
    for path in (out, settings_path(out)):
        if path.exists() or path.is_symlink():
            raise _existing(path)
    if not out.parent.is_dir():
        raise TfaeError(f"{{out}}: folder {out.parent} does not exist", options=["out"])
    runtime(format)  # each format's extra: its runtime reads back what is written
    remove_stale(out)
    staging = partial_path(out)
    staging = staging.with_name(staging.name + ".saved_model")
    try:
        with progress.stage("opening the run"):
            model, opened, detector = _opened_run(folder, score, contamination, progress)
        settings = {
            "format": format, "quantize": quantize, "model": family,
            "image_shape": list(opened.image_shape), "latent_dim": int(opened.latent_dim),
            "parameters": int(opened.parameters), "run": str(folder.path.resolve()),
            "tfae": __version__}
        if format == "litert":
            content, settings = _litert(model, folder, opened, detector, quantize, settings,
                                        staging, progress)
        else:
            content, settings = _onnx(model, folder, detector, settings, staging, progress)
        _write_new(out, content, settings)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _opened_run(folder, score, contamination, progress):
    from tfae.opened import OpenedModel

    model = folder.load_model(training=False)
    opened = OpenedModel.of_model(model, folder.path, "run")
    return model, opened, opened.detector(score, contamination, progress)


def _saved_model(model, folder, detector, staging):
    """The run's SavedModel signatures written to ``staging``, what both formats convert."""
    from tfae.signatures import signatures_archive

    signatures_archive(model, folder.config().get("resize") or "stretch", detector).write_out(
        str(staging), verbose=False)
    return staging


def _litert(model, folder, opened, detector, quantize, settings, staging, progress):
    import tensorflow as tf

    signatures = ["serving_default", "encode", "score"]
    if quantize != "int8":
        signatures += ["decode"] + (["sample"] if opened.sample is not None else [])
    representative = None
    if quantize == "int8":
        with progress.stage(f"reading {REPRESENTATIVE_IMAGES} training images to calibrate "
                            "int8 on"):
            representative = _representative_images(folder, opened)
    with progress.stage(f"converting to LiteRT{f' ({quantize})' if quantize else ''}"):
        _saved_model(model, folder, detector, staging)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(staging),
                                                             signature_keys=signatures)
        if quantize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        elif quantize == "int8":
            converter.representative_dataset = lambda: (
                (signature, {"images": image[None]}) for image in representative
                for signature in signatures)
            # Calibrated only: the quantization below keeps the score's ops float.
            require(converter, ("_experimental_calibrate_only",), "tensorflow")
            converter._experimental_calibrate_only = True
        try:
            with native_stderr_hidden():  # the converter's C++ lines; shown if it fails
                content = converter.convert()
                if quantize == "int8":
                    content = _quantized_but_the_score(content)
        except Exception as error:  # the converter's own (ConverterError), one line of it
            raise TfaeError(f"TensorFlow's LiteRT converter failed: "
                            f"{str(error).strip().splitlines()[0]}") from None
    written = LiteRTFile(content)  # the settings as the runtime reads the file
    settings.update(signatures=written.signatures(), input=written.input_settings(),
                    anomaly=_anomaly(detector))
    return content, settings


def _quantized_but_the_score(calibrated):
    """A calibrated LiteRT model quantized to int8 with uint8 input, but for the anomaly
    score's ops (``FLOAT_SCORE_OPS``): rounded to int8, the squared errors lose their smallest
    values and the scores saturate at the largest a normal image gave in calibration, so an
    anomaly's score would sit at the threshold (measured: 38% of MNIST's test images flagged as
    the run flags them); in float32 they agree (99.8%). TensorFlow's converter takes no list of
    ops to keep float; its quantizer, which the quantization debugger calls, does."""
    import tensorflow as tf

    mlir_quantize = private_name("tensorflow.lite.python.convert", "mlir_quantize", "tensorflow")
    return mlir_quantize(calibrated, input_data_type=tf.uint8, output_data_type=tf.float32,
                         denylisted_ops=list(FLOAT_SCORE_OPS))


def _onnx(model, folder, detector, settings, staging, progress):
    import tensorflow as tf
    import tf2onnx

    with progress.stage("converting to ONNX"):
        served = tf.saved_model.load(str(_saved_model(model, folder, detector, staging)))
        signatures = served.signatures

        @tf.function(input_signature=[tf.TensorSpec((None, *model.image_shape), tf.float32,
                                                    name="images")])
        def everything(images):
            scored = signatures["score"](images=images)
            return {"codes": signatures["encode"](images=images)["codes"],
                    "reconstructions": signatures["serving_default"](
                        images=images)["reconstructions"],
                    **{name: scored[name] for name in ("scores", "flagged", "error_maps")}}

        try:
            with native_stderr_hidden():  # tf2onnx logs each rewrite; shown if it fails
                proto, _ = tf2onnx.convert.from_function(
                    everything, input_signature=everything.input_signature, opset=ONNX_OPSET)
        except Exception as error:  # tf2onnx's own, one line of it
            raise TfaeError(f"tf2onnx failed to convert the model: "
                            f"{str(error).strip().splitlines()[0]}") from None
    settings.update(
        signatures={"onnx": {"inputs": ["images"], "outputs": list(ONNX_OUTPUTS)}},
        input={"name": "images", "dtype": "float32", "range": [0.0, 1.0]},
        anomaly=_anomaly(detector))
    return proto.SerializeToString(), settings


def _anomaly(detector):
    return {"score": detector.score, "contamination": detector.contamination,
            "threshold": float(detector.threshold_)}


def _representative_images(folder, opened):
    """A seeded sample of ``REPRESENTATIVE_IMAGES`` of the run's training images, float32 in
    [0, 1], as numpy: what int8 ranges are calibrated on."""
    from tfae.config import DataConfig
    from tfae.data import load_config, pipeline
    from tfae.opened import own_data_settings

    splits = load_config(DataConfig(**own_data_settings(folder.path, opened)))
    images, _ = next(iter(pipeline(splits.train, REPRESENTATIVE_IMAGES, shuffle=True, seed=0)))
    return images.numpy()


def _write_new(out, content, settings):
    """Writes ``out`` and its settings, each to a partial file and linked into place: a link
    never replaces a file, so an export racing another loses cleanly, and nothing is left half
    written."""
    import json

    written = []
    try:
        for path, data in ((settings_path(out), (json.dumps(settings, indent=2) + "\n").encode()),
                           (out, content)):
            partial = partial_path(path)
            partial.write_bytes(data)
            try:
                os.link(partial, path)
            except FileExistsError:
                raise _existing(path) from None
            finally:
                partial.unlink(missing_ok=True)
            written.append(path)
    except (OSError, TfaeError) as error:  # a full disk, a read-only folder, a race lost
        for path in written:
            path.unlink(missing_ok=True)
        if isinstance(error, TfaeError):
            raise
        raise TfaeError(f"cannot write {out}: {error.strerror or error} (nothing was left "
                        "there)") from None


def _existing(path):
    return TfaeError(f"{{out}} {path} exists: tfae never replaces a file; remove it or choose "
                     "another", options=["out"])
