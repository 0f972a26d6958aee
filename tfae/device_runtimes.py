"""The runtimes of LiteRT and ONNX files (``tfae.device_files``), and where a file's settings are.

``LiteRTFile`` runs a ``.tflite`` file with ``ai-edge-litert``'s interpreter and ``OnnxFile`` an
``.onnx`` file with ``onnxruntime``, neither importing TensorFlow; ``tfae.opened`` opens such a
file with them as it opens a run or an export.

Examples:
    >>> from tfae.device_runtimes import LiteRTFile, settings_path
    >>> settings_path("models/washers.tflite")
    PosixPath('models/washers.tflite.json')
    >>> LiteRTFile("washers.tflite").run("encode", images, ["codes"])["codes"].shape  # doctest: +SKIP
    (8, 16)
"""

import pathlib

import numpy as np

from tfae.errors import TfaeError

FILE_SUFFIXES = {"litert": ".tflite", "onnx": ".onnx"}
FORMAT_NAMES = {"litert": "LiteRT", "onnx": "ONNX"}
SETTINGS_SUFFIX = ".json"
# What each format's runtime is installed as, for the line that says how to get it.
RUNTIMES = {"litert": ("ai_edge_litert", "tfae[litert]"), "onnx": ("onnxruntime", "tfae[onnx]")}
BATCH = 256  # rows a LiteRT call takes at once


def settings_path(path):
    """The settings file beside a device file: ``washers.tflite`` -> ``washers.tflite.json``.

    Examples:
        >>> settings_path("models/washers.tflite")
        PosixPath('models/washers.tflite.json')
    """
    path = pathlib.Path(path)
    return path.with_name(path.name + SETTINGS_SUFFIX)


def is_device_file(path):
    """Whether ``path`` names a LiteRT or ONNX file (by its suffix).

    Examples:
        >>> is_device_file("washers.onnx"), is_device_file("saved_models/washers")
        (True, False)
    """
    return pathlib.Path(path).suffix in FILE_SUFFIXES.values()


def runtime(format):
    """The runtime module of ``format``, or a one-line error saying how to install it.

    Examples:
        >>> runtime("onnx").__name__
        'onnxruntime'
    """
    import importlib

    module, extra = RUNTIMES[format]
    try:
        return importlib.import_module(module if format == "onnx" else module + ".interpreter")
    except ImportError:
        raise TfaeError(f"{FORMAT_NAMES[format]} files need {module.replace('_', '-')}: "
                        f"pip install '{extra}'") from None


class LiteRTFile:
    """A LiteRT model (its bytes or a path) run by ``ai-edge-litert``'s interpreter, batch by
    batch, quantizing float images for an int8 file's uint8 input.

    Examples:
        >>> model = LiteRTFile("saved_models/deep-int8.tflite")  # doctest: +SKIP
        >>> model.input_settings()  # doctest: +SKIP
        {'name': 'images', 'dtype': 'uint8', 'scale': 0.00392156862745098, 'zero_point': 0}
        >>> model.run("score", images, ["scores"])["scores"].shape  # doctest: +SKIP
        (8,)
    """

    def __init__(self, model):
        interpreter = runtime("litert").Interpreter
        try:
            self.interpreter = (interpreter(model_content=model) if isinstance(model, bytes)
                                else interpreter(model_path=str(model)))
        except ValueError as error:
            raise TfaeError(f"{model if not isinstance(model, bytes) else 'the LiteRT file'} is "
                            f"not a LiteRT model: {str(error).splitlines()[0]}") from None

    def signatures(self):
        return {name: {"inputs": list(parts["inputs"]), "outputs": list(parts["outputs"])}
                for name, parts in self.interpreter.get_signature_list().items()}

    def input_settings(self):
        details = self.interpreter.get_signature_runner("encode").get_input_details()["images"]
        scale, zero_point = details["quantization"]
        if details["dtype"] == np.uint8:
            return {"name": "images", "dtype": "uint8", "scale": float(scale),
                    "zero_point": int(zero_point)}
        return {"name": "images", "dtype": "float32", "range": [0.0, 1.0]}

    def run(self, signature, values, outputs=None):
        """The signature's ``outputs`` (all by default) for ``values`` (one input's array), as
        numpy, ``BATCH`` rows at a time."""
        runner = self.interpreter.get_signature_runner(signature)
        (name, details), = runner.get_input_details().items()
        values = np.asarray(values, np.float32)
        if details["dtype"] == np.uint8:
            scale, zero_point = details["quantization"]
            values = np.clip(np.round(values / scale + zero_point), 0, 255).astype(np.uint8)
        parts = [runner(**{name: values[start:start + BATCH]})
                 for start in range(0, len(values), BATCH)] or [runner(**{name: values})]
        return {key: np.concatenate([part[key] for part in parts])
                for key in (outputs or parts[0])}


class OnnxFile:
    """An ONNX model run by ``onnxruntime`` on the CPU, one session for each set of outputs
    asked for: onnxruntime computes every output of the graph it is given, so each set runs
    on the part of the graph that computes it alone (``onnx.utils.Extractor``), an encoder's
    codes without the score's decoder and neighbours.

    Its one graph stands for the signatures ``CARRIED``, which ``run`` takes as a LiteRT file's
    are taken: the outputs asked for say which part runs.

    Examples:
        >>> OnnxFile("saved_models/deep.onnx").run("encode", images, ["codes"])["codes"].shape  # doctest: +SKIP
        (8, 256)
    """

    CARRIED = ("encode", "serving_default", "score")

    def __init__(self, path):
        import onnx

        self.runtime = runtime("onnx")
        try:
            self.model = onnx.load(str(path))
            onnx.checker.check_model(self.model)
        except Exception as error:  # onnx's own (DecodeError, ValidationError, ...)
            raise TfaeError(f"{path} is not an ONNX model onnxruntime can run: "
                            f"{str(error).strip().splitlines()[0]}") from None
        self.sessions = {}

    def session(self, outputs):
        import onnx.utils

        if outputs not in self.sessions:
            part = onnx.utils.Extractor(self.model).extract_model(["images"], list(outputs))
            self.sessions[outputs] = self.runtime.InferenceSession(
                part.SerializeToString(), providers=["CPUExecutionProvider"])
        return self.sessions[outputs]

    def signatures(self):
        """The signatures the graph answers for (``CARRIED``)."""
        return self.CARRIED

    def run(self, signature, images, outputs):
        """``outputs`` for ``images`` (``signature``, one of ``CARRIED``, is the graph's)."""
        outputs = tuple(outputs)
        return dict(zip(outputs, self.session(outputs).run(
            list(outputs), {"images": np.asarray(images, np.float32)})))
