"""What both protocols serve: an export folder's versions, their signatures, batched calls, errors.

REST (``tfae.serving.rest``) and gRPC (``tfae.serving.grpc_api``) differ only in how a request is
encoded; the model lookup, the checks of an input and the call itself live here, so both give the
same answer and the same error for the same request. Errors carry TF Serving's canonical codes
(``INVALID_ARGUMENT``, ``NOT_FOUND``, ...), which gRPC sends as they are and REST turns into HTTP
statuses as TF Serving does.

Examples:
    >>> repository = Repository("saved_models/deep", "deep")  # doctest: +SKIP
    >>> version, signatures = await repository.resolve("deep")  # doctest: +SKIP
    >>> codes = await signatures["encode"](np.zeros((1, 28, 28, 1), np.float32))  # doctest: +SKIP
"""

import asyncio
import dataclasses
import gc
import math
import pathlib
import re
import sys
import threading

import numpy as np

from tfae.config import MAX_IMAGE_PIXELS
from tfae.errors import TfaeError, first_line, op_error_message
from tfae.runs import ExportFolder
from tfae.files import file_identity

# TF Serving's mapping (http_rest_api_util.cc, ToHTTPStatusCode).
HTTP_STATUS = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400,
               "NOT_FOUND": 404, "UNIMPLEMENTED": 501, "RESOURCE_EXHAUSTED": 503,
               "INTERNAL": 500}


class ServingError(Exception):
    """A request the server refuses, with TF Serving's canonical error code.

    Examples:
        >>> error = ServingError("NOT_FOUND", "Servable not found for request: Latest(other)")
        >>> error.code, error.http_status, str(error)
        ('NOT_FOUND', 404, 'Servable not found for request: Latest(other)')
    """

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.http_status = HTTP_STATUS[code]


def signature_defs(version_dir):
    """The ``SignatureDef`` protos of a SavedModel, by name, read from its ``saved_model.pb``.

    They are what TF Serving's metadata answers hold; a file that does not parse is refused.

    Examples:
        >>> sorted(signature_defs("saved_models/deep/1"))  # doctest: +SKIP
        ['__saved_model_init_op', 'decode', 'encode', 'serving_default']
    """
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    path = pathlib.Path(version_dir) / "saved_model.pb"
    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString(path.read_bytes())
    except (OSError, DecodeError) as error:
        raise TfaeError(f"{path} is not a readable SavedModel ({error})") from None
    if not saved_model.meta_graphs:
        raise TfaeError(f"{path} is not a readable SavedModel (it holds no graph)")
    return dict(saved_model.meta_graphs[0].signature_def)


IMAGES_INPUT = "images"  # the float32 image input of an export's signatures (tfae.exports)


def check_input(array, name, shape, dtype="float32"):
    """``array`` as the signature's ``dtype`` if it fits ``shape`` (``None`` for any size) and
    holds values of that type: finite numbers for ``float32`` (in [0, 1] for ``images``), whole
    numbers from 0 to 255 for ``uint8``, byte strings for ``string``.

    Args:
        array: the request's input, a numpy array.
        name: the input's name, for the message.
        shape: the signature's input shape.
        dtype: the signature's input type: ``float32``, ``uint8`` or ``string``.

    Raises:
        ServingError: ``INVALID_ARGUMENT`` naming the input and what is wrong.

    Examples:
        >>> check_input(np.zeros((2, 3)), "codes", (None, 3)).dtype
        dtype('float32')
        >>> check_input(np.zeros((2, 4)), "codes", (None, 3))
        Traceback (most recent call last):
        ...
        tfae.serving.servables.ServingError: Input 'codes' has shape [2, 4], expected [-1, 3]
        >>> check_input(np.full((1, 2, 2, 1), 255.0), "images", (None, 2, 2, 1))
        Traceback (most recent call last):
        ...
        tfae.serving.servables.ServingError: Input 'images' takes float32 pixels in [0, 1], got values from 255 to 255; send 0-255 pixels to the *_pixels signatures, or image files to the *_bytes ones
        >>> check_input(np.array([[[[256]]]]), "pixels", (None, None, None, 1), "uint8")
        Traceback (most recent call last):
        ...
        tfae.serving.servables.ServingError: Input 'pixels' takes whole numbers from 0 to 255 (uint8)
    """
    if array.ndim != len(shape) or any(expected is not None and actual != expected
                                       for actual, expected in zip(array.shape, shape)):
        raise ServingError("INVALID_ARGUMENT", f"Input '{name}' has shape {list(array.shape)}, "
                                               f"expected {shape_text(shape)}")
    if dtype == "string":
        if not all(isinstance(value, bytes) for value in array.reshape(-1)):
            raise ServingError("INVALID_ARGUMENT", f"Input '{name}' takes byte strings (the "
                                                   "files' contents)")
        return array.astype(object)
    if dtype == "uint8":
        if array.dtype.kind not in "iu" or array.size and (array.min() < 0 or array.max() > 255):
            raise ServingError("INVALID_ARGUMENT",
                               f"Input '{name}' takes whole numbers from 0 to 255 (uint8)")
        return array.astype(np.uint8)
    with np.errstate(over="ignore"):  # beyond float32's range becomes inf, refused below
        array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise ServingError("INVALID_ARGUMENT", f"Input '{name}' holds values that are not finite "
                                               "(NaN, Infinity or beyond float32's range)")
    # A model's images are in [0, 1]; 0-255 pixels would be answered with saturated nonsense.
    if name == IMAGES_INPUT and array.size and (array.min() < 0 or array.max() > 1):
        raise ServingError("INVALID_ARGUMENT",
                           f"Input '{name}' takes float32 pixels in [0, 1], got values from "
                           f"{array.min():g} to {array.max():g}; send 0-255 pixels to the "
                           "*_pixels signatures, or image files to the *_bytes ones")
    return array


def shown(value, limit=64):
    """A client's ``value`` (a name, or a list of names) as an error message may echo it: cut to
    ``limit`` characters, so that a 10 kB name is not sent back whole.

    Examples:
        >>> shown("encode")
        'encode'
        >>> shown("x" * 100)
        'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... (100 characters)'
    """
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def shape_text(shape):
    """A shape as TF Serving prints it, -1 for any size.

    Examples:
        >>> shape_text((None, 28, 28, 1))
        '[-1, 28, 28, 1]'
    """
    return "[" + ", ".join("-1" if size is None else str(size) for size in shape) + "]"


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask of a worker, checked before any work starts.

    Attributes:
        max_answer_bytes: the largest answer, as its outputs' float32 (or uint8, bool) bytes:
            rows times a row's outputs. A few numbers can ask for a large answer (``decode`` of
            20,000 codes is 200 MB of JSON); like TF Serving's message limit, a request over it
            is refused, naming the limit, before the model runs.
        max_image_pixels: the most pixels an encoded image (``*_bytes``) may declare in its
            header: a 514 KB PNG can declare 23000x23000, 529 million pixels, which decoding
            would hold in memory. Read from the header before decoding (``declared_size``).

    Examples:
        >>> Limits().max_answer_bytes // 2**20, Limits().max_image_pixels
        (16, 40000000)
    """

    max_answer_bytes: int = 16 * 1024 * 1024
    max_image_pixels: int = MAX_IMAGE_PIXELS


def declared_size(content):
    """``(width, height)`` an encoded image declares in its header (PNG, JPEG, BMP, GIF), read
    without decoding it; ``None`` for bytes that are no image Pillow knows (TensorFlow's
    decoder then refuses them).

    Examples:
        >>> import io
        >>> from PIL import Image
        >>> buffer = io.BytesIO()
        >>> Image.new("L", (30, 20)).save(buffer, "PNG")
        >>> declared_size(buffer.getvalue())
        (30, 20)
        >>> declared_size(b"not an image") is None
        True
    """
    import io
    import warnings

    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(content)) as image:  # reads the header only
                return image.size
        except Image.DecompressionBombError as error:
            # Past Pillow's own limit, far past ours: it says the pixels ("Image size (N
            # pixels) exceeds ..."), not the sides.
            return int(re.search(r"\d+", str(error)).group()), 1
        except Exception:  # noqa: BLE001 - Pillow raises many kinds on bytes it cannot read
            return None


class Batcher:
    """Calls a one-input signature, running the requests that queue up meanwhile as one batch.
    A signature of one output gives an array; of several (``score``), a dict of arrays by name.

    Awaiting callers queue their arrays; one task at a time takes the queue (up to ``max_rows``
    rows of the same shape), calls the signature once on their concatenation in a thread, and
    hands each caller its rows. A model call costs about the same for 1 image as for 64, so under
    concurrent load this multiplies throughput, as TF Serving's ``--enable_batching`` does; there
    is no waiting for a batch to fill, so a lone request runs at once.

    Examples:
        >>> served = tf.saved_model.load("saved_models/deep/1")  # doctest: +SKIP
        >>> encode = Batcher(served.signatures["encode"])  # doctest: +SKIP
        >>> (await encode(np.zeros((1, 28, 28, 1), np.float32))).shape  # doctest: +SKIP
        (1, 10)
    """

    def __init__(self, signature, max_rows=1024, limits=Limits()):
        self.signature = signature
        (self.input_name, spec), = signature.structured_input_signature[1].items()
        self.input_shape = tuple(spec.shape)
        self.input_dtype = spec.dtype.name  # float32, uint8 or string
        self.output_names = tuple(signature.structured_outputs)
        # What one row of the answer weighs: every output's fixed dimensions times its type.
        self.row_bytes = sum(
            math.prod(size or 1 for size in output.shape[1:]) * output.dtype.size
            for output in signature.structured_outputs.values())
        self.limits = limits
        self._max_rows = max_rows
        self._queue = []
        self._draining = None

    async def __call__(self, array):
        """The signature's output for ``array`` (as ``check_input`` gives it), as numpy: one
        array, or a dict of them for a signature of several outputs.

        A request of more than ``max_rows`` rows is run ``max_rows`` at a time, each part queued
        only when the one before it is done, so requests that arrive meanwhile run between its
        parts instead of waiting for all of them.

        Raises:
            ServingError: ``INVALID_ARGUMENT`` for a request over ``limits``, before any work.
        """
        self.check_limits(array)
        parts = [await self._run(array[start:start + self._max_rows])
                 for start in range(0, max(len(array), 1), self._max_rows)]
        if len(parts) == 1:
            return parts[0]
        if isinstance(parts[0], dict):
            return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
        return np.concatenate(parts)

    def check_limits(self, array):
        """Refuses a request whose answer would pass ``limits.max_answer_bytes`` or one of
        whose image files declares more than ``limits.max_image_pixels``."""
        answer = len(array) * self.row_bytes
        if answer > self.limits.max_answer_bytes:
            raise ServingError("INVALID_ARGUMENT", f"The answer to {len(array):,} rows would be "
                               f"{answer / 2**20:,.1f} MiB, over the limit of "
                               f"{self.limits.max_answer_bytes / 2**20:g} MiB (--max-answer-mb); "
                               "send fewer rows a request")
        if self.input_dtype == "uint8" and array.ndim == 4 \
                and array.shape[1] * array.shape[2] > self.limits.max_image_pixels:
            raise ServingError("INVALID_ARGUMENT", f"Input '{self.input_name}' holds images of "
                               f"{array.shape[2]}x{array.shape[1]} pixels, over the limit of "
                               f"{self.limits.max_image_pixels:,} (--max-image-pixels)")
        if self.input_dtype != "string":
            return
        for index, content in enumerate(array.reshape(-1)):
            size = declared_size(content)
            if size and size[0] * size[1] > self.limits.max_image_pixels:
                raise ServingError("INVALID_ARGUMENT", f"Input '{self.input_name}': item {index} "
                                   f"declares {size[0]}x{size[1]} pixels, over the limit of "
                                   f"{self.limits.max_image_pixels:,} (--max-image-pixels)")

    async def _run(self, array):
        future = asyncio.get_running_loop().create_future()
        self._queue.append((array, future))
        if self._draining is None or self._draining.done():
            # A task of its own, not the caller's: a caller that hangs up is cancelled, and the
            # requests queued behind it must still be run.
            self._draining = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self):
        while self._queue:
            taken = self._take()
            if not taken:
                break
            try:
                self._hand_out(taken, await self._call_batch(taken))
            except ServingError as error:
                if error.code != "INVALID_ARGUMENT" or len(taken) == 1:
                    self._fail(taken, error)
                    continue
                # One request's bad input (an image file that does not decode) must not fail
                # the requests batched with it: each runs alone, and only its own call fails.
                for request in taken:
                    try:
                        self._hand_out([request], await self._call_batch([request]))
                    except ServingError as alone:
                        self._fail([request], alone)

    async def _call_batch(self, taken):
        """The signature's output for the queued requests ``taken``, run as one batch."""
        try:
            return await asyncio.to_thread(self._call,
                                           np.concatenate([array for array, _ in taken]))
        except ServingError:
            raise
        except Exception as error:  # every caller in the batch must hear of it, or wait forever
            raise ServingError("INTERNAL", f"{type(error).__name__}: {error}") from None

    @staticmethod
    def _hand_out(taken, output):
        start = 0
        for array, future in taken:
            if not future.done():
                rows = slice(start, start + len(array))
                future.set_result({name: value[rows] for name, value in output.items()}
                                  if isinstance(output, dict) else output[rows])
            start += len(array)

    @staticmethod
    def _fail(taken, error):
        for _, future in taken:
            if not future.done():
                future.set_exception(error)

    def _take(self):
        """The oldest queued requests of the first one's shape, up to ``max_rows`` rows (each is
        at most that many)."""
        # A caller gone (cancelled: its client hung up) is not worked for.
        self._queue = [request for request in self._queue if not request[1].done()]
        if not self._queue:
            return []
        shape = self._queue[0][0].shape[1:]
        taken, kept, rows = [], [], 0
        for request in self._queue:
            array = request[0]
            if array.shape[1:] == shape and rows + len(array) <= self._max_rows:
                taken.append(request)
                rows += len(array)
            else:
                kept.append(request)
        self._queue = kept
        return taken

    def _call(self, array):
        import tensorflow as tf

        with _running_calls:
            try:
                outputs = self.signature(**{self.input_name: tf.constant(array)})
            except tf.errors.InvalidArgumentError as failure:
                raise ServingError("INVALID_ARGUMENT", op_error_message(failure)) from None
            except tf.errors.OpError as failure:
                raise ServingError("INTERNAL", op_error_message(failure)) from None
            if len(self.output_names) == 1:
                return outputs[self.output_names[0]].numpy()
            return {name: outputs[name].numpy() for name in self.output_names}


class _RunningCalls:
    """How many model calls are running in this process's threads: a call cannot be stopped
    once begun, and a server stopping with one still running has nobody left to answer."""

    def __init__(self):
        self._lock, self.count = threading.Lock(), 0

    def __enter__(self):
        with self._lock:
            self.count += 1

    def __exit__(self, *_):
        with self._lock:
            self.count -= 1


_running_calls = _RunningCalls()


def calls_running():
    """Whether a model call is running in one of this process's threads.

    Examples:
        >>> calls_running()
        False
    """
    return _running_calls.count > 0


class Repository:
    """One exported model's versions: loaded on first use, new ones picked up without a restart.

    A version that fails to load (a corrupt file, a copy still in progress) is reported once on
    stderr and in the status answers, and the newest version that loads goes on being served, as
    TF Serving does; it is tried again only once its files change.

    Args:
        export_dir: the export folder, ``<version>/saved_model.pb`` inside.
        name: the model's name in requests.
        labels: version labels, ``{"stable": 1}``, as TF Serving's model config gives them.
        limits: what one request may ask (``Limits``).

    Examples:
        >>> repository = Repository("saved_models/deep", "deep", labels={"stable": 1})  # doctest: +SKIP
        >>> version, signatures = await repository.resolve("deep", label="stable")  # doctest: +SKIP
        >>> version, sorted(signatures)  # doctest: +SKIP
        (1, ['decode', 'encode', 'serving_default'])
    """

    def __init__(self, export_dir, name, labels=None, limits=Limits()):
        self.export_dir = pathlib.Path(export_dir)
        self.name = name
        self.labels = dict(labels or {})
        self.limits = limits
        found = self.versions()
        if not found and (self.export_dir / "saved_model.pb").is_file():
            raise TfaeError(f"{self.export_dir} is one version of an export: serve the folder "
                            f"of versions, {self.export_dir.parent}")
        if not found:
            raise TfaeError(f"{self.export_dir} holds no SavedModel versions "
                            "(<version>/saved_model.pb)")
        for label, version in self.labels.items():
            if version not in found:
                raise TfaeError(f"--label {label}={version}: {self.export_dir} has no version "
                                f"{version} (it has {', '.join(map(str, found))})")
        self._loaded = {}
        self._failed = {}  # version: (its files when it failed, why)
        self._load_lock = threading.Lock()

    def versions(self):
        """The version numbers on disk, ascending (read anew each time: exports come and go)."""
        return ExportFolder(self.export_dir).versions()

    def version(self, name, version=None, label=None):
        """The version a request names: ``version``, ``label``'s, or ``None`` for the newest that
        loads.

        Raises:
            ServingError: as TF Serving answers for an unknown model, version or label.
        """
        if name != self.name:
            raise ServingError("NOT_FOUND", f"Servable not found for request: Latest({name})")
        if version is not None and label is not None:
            raise ServingError("INVALID_ARGUMENT",
                               "ModelSpec has 'version' and 'version_label' both set")
        if label is not None:
            if label not in self.labels:
                raise ServingError("INVALID_ARGUMENT",
                                   f"Unrecognized servable version label: {label}")
            version = self.labels[label]
        if version is not None and version not in self.versions():
            raise ServingError("NOT_FOUND",
                               f"Servable not found for request: Specific({name}, {version})")
        return version

    async def resolve(self, name, version=None, label=None):
        """``(version, Batcher by signature name)`` for a request, loading the version if new."""
        version = self.version(name, version, label)
        self._forget_removed()
        if version is not None:
            await self._loading(version)
            return version, self._loaded[version][0]
        for newest in reversed(self.versions()):
            try:
                await self._loading(newest)
            except ServingError:
                continue  # reported when it failed; an older version is served meanwhile
            return newest, self._loaded[newest][0]
        raise ServingError("NOT_FOUND", f"Servable not found for request: Latest({name}): no "
                                        "version of it loads")

    async def statuses(self, name, version=None, label=None):
        """``(version, why it failed or None)`` for the versions a status request asks about
        (all when it names none), newest first.

        Each is loaded first, so AVAILABLE, as both protocols then call it, means it answers now.
        """
        named = self.version(name, version, label)
        self._forget_removed()
        wanted = self.versions() if named is None else [named]
        found = []
        for each in sorted(wanted, reverse=True):
            try:
                await self._loading(each)
            except ServingError as error:
                found.append((each, str(error)))
            else:
                found.append((each, None))
        return found

    async def _loading(self, version):
        """``load`` in a thread, unless ``version`` is loaded already: the hop to a thread costs
        more than a small request's model call."""
        if version not in self._loaded:
            await asyncio.to_thread(self.load, version)

    def _forget_removed(self):
        """Unloads the versions gone from disk or made again under the same number (their
        ``saved_model.pb`` is another file now), so a new one is loaded afresh."""
        for version, (_, _, graph_file) in list(self._loaded.items()):
            if file_identity(self.export_dir / str(version) / "saved_model.pb") != graph_file:
                self._loaded.pop(version, None)

    def load(self, version):
        """Loads ``version`` once, however many requests ask for it at once.

        Raises:
            ServingError: ``NOT_FOUND`` if it does not load, now or when it last failed with the
                same files.
        """
        import tensorflow as tf

        with self._load_lock:
            if version in self._loaded:
                return
            path = self.export_dir / str(version)
            files = _files(path)
            if files is not None and self._failed.get(version, (None,))[0] == files:
                raise ServingError("NOT_FOUND", self._failed[version][1])
            try:
                definitions = signature_defs(path)
                served = tf.saved_model.load(str(path))
            except Exception as error:  # whatever breaks in a load, the server must go on
                why = f"Servable {self.name} version {version} did not load: {first_line(error)}"
                self._failed[version] = (files, why)
                print(f"tfae serve: {why}; it is tried again when its files change",
                      file=sys.stderr, flush=True)
                raise ServingError("NOT_FOUND", why) from None
            self._failed.pop(version, None)
            print(f"tfae serve: loaded version {version} of {self.name!r}", file=sys.stderr,
                  flush=True)
            self._loaded[version] = ({name: Batcher(signature, limits=self.limits)
                                      for name, signature in served.signatures.items()},
                                     definitions,
                                     file_identity(path / "saved_model.pb"))
            # Parsing JSON makes many short-lived lists, which trigger the garbage
            # collector; a full collection walks every object TensorFlow and the model made,
            # a pause in which no request is answered. Frozen, they are never walked again.
            gc.freeze()

    def check_complete(self):
        """Raises ``TfaeError`` unless some version is a whole SavedModel: a graph that parses
        and its variables. (A cheap look before starting workers; loading may still fail.)"""
        reasons = []
        for version in reversed(self.versions()):
            path = self.export_dir / str(version)
            try:
                signature_defs(path)
            except TfaeError as error:
                reasons.append(str(error))
                continue
            if (path / "variables" / "variables.index").is_file():
                return
            reasons.append(f"{path} has no variables/variables.index (a copy in progress?)")
        raise TfaeError(f"no version in {self.export_dir} can be served: {'; '.join(reasons)}")

    def signature_defs(self, version):
        """The loaded ``version``'s ``SignatureDef`` protos by name (for metadata answers)."""
        return self._loaded[version][1]



def _files(folder):
    """What identifies the files of ``folder`` now: each one's path, size and modification time
    (``None`` while they change under the listing)."""
    try:
        return sorted((str(path), stat.st_size, stat.st_mtime_ns)
                      for path in folder.rglob("*") for stat in [path.stat()])
    except OSError:  # a file removed while listed: the folder is changing
        return None
