"""TensorFlow Serving's REST API as an ASGI application (Starlette), for uvicorn to run.

- ``GET /v1/models/NAME[/versions/N | /labels/L]``: version status;
- ``GET /v1/models/NAME[/versions/N | /labels/L]/metadata``: the signatures;
- ``POST /v1/models/NAME[/versions/N | /labels/L]:predict`` with
  ``{"signature_name": ..., "instances": [...]}`` (row format, answered ``{"predictions": ...}``)
  or ``{"inputs": ...}`` (columnar, answered ``{"outputs": ...}``); image files for the
  ``*_bytes`` signatures as ``{"b64": "<base64>"}``, as TF Serving takes binary values.

Every answer, errors included, is JSON; an error is ``{"error": "..."}`` with the HTTP status TF
Serving gives. JSON goes through orjson: it writes numpy arrays directly, without the lists
``json.dumps(array.tolist())`` needs, and reads requests faster (docs/performance.md); reading
stays the cost of a large REST request, which gRPC's binary tensors avoid.

Examples:
    >>> app = create_app(Repository("saved_models/deep", "deep"), max_body_bytes=1 << 20)  # doctest: +SKIP
    >>> uvicorn.run(app, port=8501)  # doctest: +SKIP
"""

import asyncio
import base64
import binascii
import re

import numpy as np
import orjson
from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tfae.serving.page import page_routes
from tfae.serving.servables import ServingError, check_input, shape_text, shown

_ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)"
                    r"(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
                    r"(?P<what>/metadata|:predict)?$")


def create_app(repository, max_body_bytes, page=False):
    """The Starlette application answering for ``repository`` (a ``Repository``).

    Args:
        repository: the served model's versions.
        max_body_bytes: larger request bodies are answered 413 without being read.
        page: also answer a person's browser at ``/`` (``tfae.serving.page``).

    Examples:
        >>> app = create_app(Repository("saved_models/deep", "deep"), 1 << 26)  # doctest: +SKIP
        >>> uvicorn.run(app, port=8501)  # doctest: +SKIP
    """
    async def model(request):
        try:
            return await answer(request)
        except asyncio.CancelledError:  # uvicorn's shutdown ran out of its grace period
            return _json({"error": "The server is shutting down; send the request again"}, 503)
        except ClientDisconnect:  # gone while its body was read: nobody to answer, nothing to log
            return Response(status_code=499)

    async def answer(request):
        match = _ROUTE.match(request.url.path)
        if not match:
            raise HTTPException(404, f"Malformed request: {request.method} {request.url.path}")
        version = int(match["version"]) if match["version"] else None
        spec = (match["name"], version, match["label"])
        what = match["what"]
        if request.method == "POST":
            if what != ":predict":
                raise HTTPException(405, "only :predict takes POST")
            parsed = _parse(await _read(request, max_body_bytes))
            return _json(await _unless_gone(request, _predict(repository, spec, parsed)))
        if what == ":predict":
            raise HTTPException(405, "predict needs POST")
        if what == "/metadata":
            version, _ = await repository.resolve(*spec)
            definitions = repository.signature_defs(version)
            return _json({"model_spec": {"name": repository.name, "signature_name": "",
                                         "version": str(version)},
                          "metadata": {"signature_def": {"signature_def": {
                              key: json_format.MessageToDict(value,
                                                             preserving_proto_field_name=True)
                              for key, value in definitions.items()}}}})
        return _json({"model_version_status": [
            {"version": str(each), "state": "END" if failure else "AVAILABLE",
             "status": {"error_code": "UNKNOWN" if failure else "OK",
                        "error_message": failure or ""}}
            for each, failure in await repository.statuses(*spec)]})

    async def refused(request, error):
        if isinstance(error, ServingError):
            return _json({"error": str(error)}, error.http_status)
        return _json({"error": error.detail}, error.status_code, error.headers)

    routes = [Route("/v1/models/{path:path}", model, methods=["GET", "POST"])]
    if page:
        routes += [Route(path, handler, methods=["GET"])
                   for path, handler in page_routes(repository, max_body_bytes).items()]
    return Starlette(routes=routes,
                     exception_handlers={HTTPException: refused, ServingError: refused})


async def _read(request, limit):
    """The body, refused with 413 beyond ``limit`` bytes, before reading it when it says so."""
    length = request.headers.get("content-length")
    if length is not None and not length.isdigit():
        raise HTTPException(400, f"Content-Length {length!r} is not a number of bytes")
    if length is not None and int(length) > limit:
        # Closed after the answer: a client that goes on sending the body it announced must
        # not hold the connection open byte by byte.
        raise HTTPException(413, f"Request body of {length} bytes is over the limit of {limit} "
                                 f"(--max-json-mb; fewer images a request, or gRPC, take more)",
                            headers={"connection": "close"})
    chunks, size = [], 0
    async for chunk in request.stream():  # a chunked body says nothing of its size beforehand
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"Request body is over the limit of {limit} bytes "
                                     f"(--max-json-mb; fewer images a request, or gRPC, take more)",
                                headers={"connection": "close"})
        chunks.append(chunk)
    return b"".join(chunks)


async def _unless_gone(request, work):
    """Awaits ``work`` unless the client hangs up first: then it is cancelled (the parts of a
    large request not begun are never run) and ``ClientDisconnect`` raised."""
    async def hung_up():
        # The body has been read: what the server gets next from the client is its leaving.
        while (await request.receive())["type"] != "http.disconnect":
            pass

    working, leaving = asyncio.ensure_future(work), asyncio.ensure_future(hung_up())
    try:
        await asyncio.wait({working, leaving}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (working, leaving):
            if not task.done():
                task.cancel()
    if working.done() and not working.cancelled():
        return working.result()
    raise ClientDisconnect()


def _parse(raw):
    try:
        body = orjson.loads(raw)
    except (orjson.JSONDecodeError, RecursionError) as error:
        raise HTTPException(400, f"JSON Parse error: {error}") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "JSON Value is not an object")
    # orjson reads true and false as numbers would be; a boolean among numbers is refused below.
    return body, b"true" in raw or b"false" in raw


async def _predict(repository, spec, parsed):
    body, may_hold_booleans = parsed
    signature_name = body.get("signature_name", "serving_default")
    if not isinstance(signature_name, str):
        raise HTTPException(400, "'signature_name' must be a string")
    _, signatures = await repository.resolve(*spec)
    if signature_name not in signatures:
        raise HTTPException(400, f'Serving signature name: "{shown(signature_name)}" not found '
                                 "in signature def")
    batcher = signatures[signature_name]
    name = batcher.input_name
    row_format = "instances" in body
    if row_format == ("inputs" in body):
        raise HTTPException(400, "Missing 'instances' or 'inputs' key (exactly one is needed)")
    values = body["instances"] if row_format else body["inputs"]
    if row_format and isinstance(values, list):
        values = [_named(value, name) if _names_inputs(value) else value for value in values]
    elif _names_inputs(values):
        values = _named(values, name)
    if batcher.input_dtype == "string":
        array = _files(values, name)
    else:
        try:
            array = np.asarray(values)
        except (TypeError, ValueError, RecursionError):
            array = None
        if array is None or array.dtype.kind not in "iuf" or (
                may_hold_booleans and _holds_boolean(values)):
            raise HTTPException(400, f"Input '{name}' must be a rectangular array of numbers, "
                                     f"shaped {shape_text(batcher.input_shape)}")
    output = await batcher(check_input(array, name, batcher.input_shape, batcher.input_dtype))
    if row_format and isinstance(output, dict):  # as TF Serving: an object of outputs per row
        output = [dict(zip(output, row)) for row in zip(*output.values())]
    return {"predictions": output} if row_format else {"outputs": output}


def _names_inputs(value):
    """Whether ``value`` is a ``{input name: value}`` object, not a ``{"b64": ...}`` one."""
    return isinstance(value, dict) and set(value) != {"b64"}


def _files(values, name):
    """The files of a string input, each sent as TF Serving's ``{"b64": "<base64>"}``, as a
    numpy array of bytes."""
    usage = f'Input \'{name}\' takes a list of files, each as {{"b64": "<its base64>"}}'
    if not isinstance(values, list):
        raise HTTPException(400, usage)
    files = []
    for value in values:
        if not (isinstance(value, dict) and set(value) == {"b64"}
                and isinstance(value["b64"], str)):
            raise HTTPException(400, usage)
        try:
            files.append(base64.b64decode(value["b64"], validate=True))
        except (binascii.Error, ValueError):
            raise HTTPException(400, f"Input '{name}': item {len(files)} is not valid "
                                     "base64") from None
    array = np.empty(len(files), object)
    array[:] = files
    return array


def _named(inputs, name):
    """The value of the signature's one input in a ``{name: value}`` object, which may name no
    other (as gRPC refuses unknown input keys, so does REST)."""
    if set(inputs) != {name}:
        raise HTTPException(400, f"input keys {shown(sorted(inputs))} do not match the "
                                 f"signature's ['{name}']")
    return inputs[name]


def _holds_boolean(values):
    if isinstance(values, list):
        return any(_holds_boolean(value) for value in values)
    return isinstance(values, bool)


# An answer of more numbers than this is written and sent a part at a time: orjson reserves
# room for the longest number it could write for every number of an array, about ten times the
# JSON it writes (a 25 MB answer took 540 MB at once, and 260 MB stayed with the process).
STREAMED_NUMBERS = 1 << 16


def _json(payload, status_code=200, headers=None):
    if _numbers(payload) <= STREAMED_NUMBERS:
        return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY),
                        status_code=status_code, headers=headers, media_type="application/json")
    return StreamingResponse(_json_parts(payload), status_code=status_code, headers=headers,
                             media_type="application/json")


def _numbers(value):
    """How many numbers the arrays of ``value`` (a prediction's answer) hold."""
    if isinstance(value, np.ndarray):
        return value.size
    if isinstance(value, dict):
        return sum(_numbers(each) for each in value.values())
    if isinstance(value, list):
        return len(value) * _numbers(value[0]) if value else 0
    return 1


def _json_parts(value):
    """``value`` as JSON, in parts of about ``STREAMED_NUMBERS`` numbers: arrays and lists are
    written a slice of rows at a time; the parts joined are ``orjson.dumps(value)``.

    Examples:
        >>> b"".join(_json_parts({"outputs": np.arange(3)})) == orjson.dumps(
        ...     {"outputs": np.arange(3)}, option=orjson.OPT_SERIALIZE_NUMPY)
        True
    """
    if isinstance(value, dict):
        for number, (key, each) in enumerate(value.items()):
            yield (b"{" if number == 0 else b",") + orjson.dumps(key) + b":"
            yield from _json_parts(each)
        yield b"}" if value else b"{}"
    elif isinstance(value, (np.ndarray, list)) and len(value) > 1:
        rows = max(1, STREAMED_NUMBERS // max(1, _numbers(value[0])))
        for start in range(0, len(value), rows):
            yield b"[" if start == 0 else b","
            yield orjson.dumps(value[start:start + rows],
                               option=orjson.OPT_SERIALIZE_NUMPY)[1:-1]
        yield b"]"
    else:
        yield orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
