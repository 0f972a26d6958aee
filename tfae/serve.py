"""A local server speaking TensorFlow Serving's REST API for tfae exports.

Clients written for TF Serving work against it unchanged:

- ``GET /v1/models/NAME[/versions/N]``: version status;
- ``GET /v1/models/NAME[/versions/N]/metadata``: the signatures;
- ``POST /v1/models/NAME[/versions/N]:predict`` with ``{"signature_name": ..., "instances": [...]}``
  (row format, answered with ``{"predictions": ...}``) or ``{"inputs": ...}`` (columnar, answered
  with ``{"outputs": ...}``).

It serves the highest version in the export folder by default and loads a newly exported version
on the next request, without a restart. Bad requests get a 4xx answer ``{"error": "..."}`` and the
server keeps serving. Requests that arrive while a signature is running wait and then run together
as one batch (``BatchingSignature``), as TF Serving's ``--enable_batching`` does: a model call costs
about the same for 1 image as for 64, so under concurrent load this multiplies throughput, and a
lone request runs at once, with no batching delay. The standard library's threading HTTP server is
enough here: its per-request cost is small next to parsing the JSON body (docs/performance.md), and
``serve(..., workers=N)`` answers with N processes for many concurrent clients.

Examples:
    >>> server = make_server("saved_models/deep", "deep", port=0)  # doctest: +SKIP
    >>> threading.Thread(target=server.serve_forever).start()  # doctest: +SKIP
"""

import gc
import http.server
import json
import multiprocessing
import pathlib
import re
import signal
import threading

import numpy as np
import tensorflow as tf

from tfae.errors import TfaeError
from tfae.export import versions

MAX_BODY_BYTES = 64 * 1024 * 1024
WORKER_START_SECONDS = 300  # a worker imports TensorFlow and loads the model
_ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?"
                    r"(?P<what>/metadata|:predict)?$")
_DTYPES = {tf.float32: "DT_FLOAT", tf.float64: "DT_DOUBLE", tf.int32: "DT_INT32",
           tf.int64: "DT_INT64"}


class RequestError(Exception):
    """A request the server refuses, with the HTTP status to answer.

    Examples:
        >>> error = RequestError(400, "JSON Value is not an object")
        >>> error.status, str(error)
        (400, 'JSON Value is not an object')
    """

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class BatchingSignature:
    """Calls a one-input signature, running the requests that queue up meanwhile as one batch.

    A caller queues its array; whoever holds the run lock takes the queue (up to ``max_rows``
    rows of the same shape), calls the signature once on their concatenation and hands each
    caller its rows. There is no waiting for a batch to fill: a lone request runs at once.

    Examples:
        >>> served = tf.saved_model.load("saved_models/deep/1")  # doctest: +SKIP
        >>> encode = BatchingSignature(served.signatures["encode"])  # doctest: +SKIP
        >>> encode(np.zeros((1, 28, 28, 1), np.float32)).shape  # doctest: +SKIP
        (1, 10)
    """

    def __init__(self, signature, max_rows=1024):
        self.signature = signature
        (self.input_name, self.input_spec), = signature.structured_input_signature[1].items()
        self._max_rows = max_rows
        self._queue = []
        self._queue_lock = threading.Lock()
        self._run_lock = threading.Lock()

    def __call__(self, array):
        """The signature's only output for ``array``, as a numpy array."""
        request = _Request(array)
        with self._queue_lock:
            self._queue.append(request)
        with self._run_lock:
            while not request.done.is_set():
                self._run(self._take())
        if request.error is not None:
            raise request.error
        return request.output

    def _take(self):
        """The oldest queued requests of the first one's shape, up to ``max_rows`` rows."""
        with self._queue_lock:
            shape = self._queue[0].array.shape[1:]
            taken, rows = [], 0
            for request in self._queue:
                if request.array.shape[1:] == shape and (
                        not taken or rows + len(request.array) <= self._max_rows):
                    taken.append(request)
                    rows += len(request.array)
            self._queue = [request for request in self._queue if request not in taken]
        return taken

    def _run(self, requests):
        arrays = [request.array for request in requests]
        try:
            outputs = self.signature(**{self.input_name: tf.constant(np.concatenate(arrays))})
            (output,), error = outputs.values(), None
            output = output.numpy()
        except tf.errors.OpError as failure:  # every caller in the batch must hear of it
            status = 400 if isinstance(failure, tf.errors.InvalidArgumentError) else 500
            error = RequestError(status, failure.message.splitlines()[0])
        start = 0
        for request in requests:
            if error is None:
                request.output = output[start:start + len(request.array)]
                start += len(request.array)
            request.error = error
            request.done.set()


class _Request:
    def __init__(self, array):
        self.array, self.output, self.error = array, None, None
        self.done = threading.Event()


class ModelRepository:
    """The versions of one exported model, loaded on first use and picked up when new ones appear.

    Each loaded version is a dict of its signatures by name, each a ``BatchingSignature``.

    Examples:
        >>> repository = ModelRepository("saved_models/deep")  # doctest: +SKIP
        >>> version, signatures = repository.get()  # doctest: +SKIP
        >>> sorted(signatures)  # doctest: +SKIP
        ['decode', 'encode', 'serving_default']
    """

    def __init__(self, export_dir):
        self.export_dir = pathlib.Path(export_dir)
        self._loaded = {}
        self._lock = threading.Lock()
        if not self.versions():
            raise TfaeError(f"{self.export_dir} holds no SavedModel versions (<version>/saved_model.pb)")

    def versions(self):
        """The version numbers present on disk, ascending."""
        return versions(self.export_dir)

    def get(self, version=None):
        """``(version, signatures by name)``; the highest version when ``version`` is ``None``."""
        versions = self.versions()
        version = versions[-1] if version is None else version
        if version not in versions:
            raise RequestError(404, f"Servable not found for request: Specific({version})")
        with self._lock:  # one load per version, however many requests ask at once
            if version not in self._loaded:
                served = tf.saved_model.load(str(self.export_dir / str(version)))
                self._loaded[version] = {name: BatchingSignature(signature)
                                         for name, signature in served.signatures.items()}
                # Parsing JSON makes many short-lived lists, which trigger the garbage collector;
                # a full collection walks every object TensorFlow and the model made, a pause in
                # which no request is answered. Frozen, they are never walked again.
                gc.freeze()
        return version, self._loaded[version]


def signature_metadata(signature):
    """A signature as TF Serving's metadata JSON describes it.

    Examples:
        >>> served = tf.saved_model.load("saved_models/deep/1")  # doctest: +SKIP
        >>> signature_metadata(served.signatures["encode"])["outputs"]["codes"]["dtype"]  # doctest: +SKIP
        'DT_FLOAT'
    """
    def tensor(spec):
        return {"dtype": _DTYPES.get(spec.dtype, spec.dtype.name), "name": spec.name,
                "tensor_shape": {"dim": [{"size": str(-1 if size is None else size), "name": ""}
                                         for size in spec.shape]}}

    inputs = signature.structured_input_signature[1]
    return {"inputs": {name: tensor(spec) for name, spec in inputs.items()},
            "outputs": {name: tensor(spec) for name, spec in signature.structured_outputs.items()},
            "method_name": "tensorflow/serving/predict"}


def predict(signatures, body):
    """Answers a ``:predict`` body (already parsed JSON) as TF Serving does.

    Args:
        signatures: ``BatchingSignature`` by name, as ``ModelRepository.get`` returns them.
        body: the parsed request.

    Examples:
        >>> _, signatures = ModelRepository("saved_models/deep").get()  # doctest: +SKIP
        >>> predict(signatures, {"signature_name": "encode", "instances": images.tolist()})  # doctest: +SKIP
        {'predictions': [[0.1, ...], ...]}
    """
    if not isinstance(body, dict):
        raise RequestError(400, "JSON Value is not an object")
    name = body.get("signature_name", "serving_default")
    if name not in signatures:
        raise RequestError(400, f"Serving signature name: \"{name}\" not found in signature def")
    signature = signatures[name]
    input_name, spec = signature.input_name, signature.input_spec
    row_format = "instances" in body
    if row_format == ("inputs" in body):
        raise RequestError(400, "Missing 'instances' or 'inputs' key (exactly one is needed)")
    values = body["instances"] if row_format else body["inputs"]
    if row_format and isinstance(values, list):
        values = [value[input_name] if isinstance(value, dict) and input_name in value else value
                  for value in values]
    elif isinstance(values, dict):
        if input_name not in values:
            raise RequestError(400, f"Missing input '{input_name}'")
        values = values[input_name]
    try:
        array = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise RequestError(400, f"Input '{input_name}' must be a rectangular array of numbers, "
                                f"shaped {_shape(spec)}") from None
    if array.ndim != len(spec.shape) or any(
            expected is not None and actual != expected
            for actual, expected in zip(array.shape, spec.shape)):
        raise RequestError(400, f"Input '{input_name}' has shape {list(array.shape)}, "
                                f"expected {_shape(spec)}")
    output = signature(array).tolist()
    return {"predictions": output} if row_format else {"outputs": output}


def _shape(spec):
    return "[" + ", ".join("-1" if size is None else str(size) for size in spec.shape) + "]"


def _reject_constant(constant):
    raise RequestError(400, f"{constant} is not a valid input value")


def make_server(export_dir, name, host="127.0.0.1", port=8501, max_body_bytes=MAX_BODY_BYTES,
                listening=None):
    """A ``ThreadingHTTPServer`` serving the export folder ``export_dir`` as model ``name``.

    It binds ``host:port``, or, given ``listening``, answers on that bound and listening socket
    (a worker process's, shared with the others).

    Examples:
        >>> server = make_server("saved_models/deep", "deep", port=0)  # doctest: +SKIP
        >>> server.server_address  # doctest: +SKIP
        ('127.0.0.1', 43117)
    """
    repository = ModelRepository(export_dir)
    repository.get()  # load the served version now rather than on the first request

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle's algorithm the second waits for the
        # client's delayed ACK, 40 ms on Linux, on every keep-alive request.
        disable_nagle_algorithm = True

        def log_message(self, format, *args):  # a line per request would drown the terminal
            pass

        def do_GET(self):
            self._answer(self._get)

        def do_POST(self):
            self._answer(self._post)

        def _route(self):
            match = _ROUTE.match(self.path)
            if not match:
                raise RequestError(404, f"Malformed request: {self.command} {self.path}")
            if match["name"] != name:
                raise RequestError(404, f"Servable not found for request: Latest({match['name']})")
            return match["version"] and int(match["version"]), match["what"]

        def _get(self):
            version, what = self._route()
            if what == ":predict":
                raise RequestError(405, "predict needs POST")
            if what == "/metadata":
                version, signatures = repository.get(version)
                return {"model_spec": {"name": name, "signature_name": "", "version": str(version)},
                        "metadata": {"signature_def": {"signature_def": {
                            key: signature_metadata(batching.signature)
                            for key, batching in signatures.items()}}}}
            versions = [version] if version else repository.versions()
            for each in versions:
                repository.get(each)
            return {"model_version_status": [
                {"version": str(each), "state": "AVAILABLE",
                 "status": {"error_code": "OK", "error_message": ""}}
                for each in sorted(versions, reverse=True)]}

        def _post(self):
            version, what = self._route()
            if what != ":predict":
                raise RequestError(405, "only :predict takes POST")
            length = int(self.headers.get("Content-Length") or 0)
            if length > max_body_bytes:
                # Read and drop it in chunks, never holding it, so the client gets the answer
                # instead of a broken pipe.
                for start in range(0, length, 1 << 20):
                    self.rfile.read(min(1 << 20, length - start))
                raise RequestError(413, f"Request body of {length} bytes is over the limit of "
                                        f"{max_body_bytes}")
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw, parse_constant=_reject_constant)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise RequestError(400, f"JSON Parse error: {error}") from None
            _, signatures = repository.get(version)
            return predict(signatures, body)

        def _answer(self, respond):
            try:
                status, payload = 200, respond()
            except RequestError as error:
                status, payload = error.status, {"error": str(error)}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    if listening is None:
        return http.server.ThreadingHTTPServer((host, port), Handler)
    server = http.server.ThreadingHTTPServer(listening.getsockname(), Handler,
                                             bind_and_activate=False)
    server.socket.close()
    server.socket = listening
    return server


def serve(export_dir, name, host="127.0.0.1", port=8501, workers=1):
    """Serves until SIGINT or SIGTERM, then stops cleanly.

    With ``workers`` > 1, that many processes answer on the one listening socket, each with its
    own copy of the model: one Python process parses JSON on one core at a time, so on a machine
    with several cores, concurrent clients are answered faster by several.

    Examples:
        >>> serve("saved_models/deep", "deep", workers=2)  # doctest: +SKIP
    """
    if workers < 1:
        raise TfaeError(f"--workers must be >= 1, not {workers}")
    server = make_server(export_dir, name, host, port)
    context = multiprocessing.get_context("spawn")  # a fork would copy TensorFlow's threads' locks
    ready = context.Barrier(workers)
    others = [context.Process(target=_serve_worker, args=(export_dir, name, server.socket, ready),
                              daemon=True) for _ in range(workers - 1)]
    for worker in others:
        worker.start()
    try:
        ready.wait(timeout=WORKER_START_SECONDS)
    except threading.BrokenBarrierError:
        for worker in others:
            worker.terminate()
        raise TfaeError(f"the {workers - 1} other workers did not load the model within "
                        f"{WORKER_START_SECONDS} s") from None
    print(f"serving {export_dir} as {name!r} on http://{host}:{server.server_address[1]}"
          f"/v1/models/{name} with {workers} worker{'s' * (workers > 1)}", flush=True)
    _serve_until_stopped(server)
    for worker in others:
        worker.terminate()  # SIGTERM: each stops as this one did
        worker.join()


def _serve_worker(export_dir, name, listening, ready):
    server = make_server(export_dir, name, listening=listening)
    ready.wait()
    _serve_until_stopped(server)


class _Stop(BaseException):
    """Raised by the SIGINT and SIGTERM handlers to leave ``serve_forever``.

    Not an ``Exception``: a signal that lands while the server hands a request to its thread
    raises there, and ``socketserver`` logs and swallows any ``Exception`` raised there.
    """


def _serve_until_stopped(server):
    """``serve_forever`` until SIGINT or SIGTERM, then closes the server.

    The handlers raise rather than call ``server.shutdown()``: a shutdown requested before
    ``serve_forever`` has started is forgotten when it starts, and the server would never stop.
    """
    def stop(signum, frame):
        raise _Stop

    previous = {number: signal.signal(number, stop) for number in (signal.SIGINT, signal.SIGTERM)}
    with server:
        try:
            server.serve_forever()
        except _Stop:
            pass
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
