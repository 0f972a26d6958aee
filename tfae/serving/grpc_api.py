"""TensorFlow Serving's gRPC API on ``grpc.aio``, with the ``tensorflow-serving-api`` definitions.

Implemented: ``tensorflow.serving.PredictionService/Predict`` and ``GetModelMetadata`` (the
``signature_def`` field), and ``tensorflow.serving.ModelService/GetModelStatus``. Tensors travel
as ``TensorProto`` (``tf.make_tensor_proto`` / ``tf.make_ndarray``). Errors carry the codes TF
Serving gives: ``NOT_FOUND`` for an unknown model or version, ``INVALID_ARGUMENT`` for a bad
tensor or an unknown version label, ``FAILED_PRECONDITION`` for an unknown signature. The other
methods (``Classify``, ``Regress``, ``MultiInference``, ``HandleReloadConfigRequest``) answer
``UNIMPLEMENTED``.

A client uses it exactly as it uses TF Serving:

Examples:
    >>> channel = grpc.insecure_channel("127.0.0.1:8500")  # doctest: +SKIP
    >>> stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)  # doctest: +SKIP
    >>> request = predict_pb2.PredictRequest()  # doctest: +SKIP
    >>> request.model_spec.name, request.model_spec.signature_name = "deep", "encode"  # doctest: +SKIP
    >>> request.inputs["images"].CopyFrom(tf.make_tensor_proto(images))  # doctest: +SKIP
    >>> codes = tf.make_ndarray(stub.Predict(request, timeout=10).outputs["codes"])  # doctest: +SKIP
"""

import math
import time

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import error_codes_pb2
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)

from tfae.serving.servables import ServingError, check_input, shown


async def start(repository, address, max_message_bytes, reuse_port=False, log=None):
    """A started ``grpc.aio`` server on ``address`` (``host:port``) answering for ``repository``.

    ``reuse_port`` lets every worker process bind the same port, the kernel sharing connections
    among them; ``log(client, "gRPC", call, status, seconds)``, when given, hears of every call.
    Stop it with ``await server.stop(grace_seconds)``.

    Examples:
        >>> server = await start(Repository("saved_models/deep", "deep"), "127.0.0.1:8500", 1 << 26)  # doctest: +SKIP
        >>> await server.stop(3)  # doctest: +SKIP
    """
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", max_message_bytes),
                                      ("grpc.max_send_message_length", max_message_bytes),
                                      ("grpc.so_reuseport", int(reuse_port))])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(repository, log), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(repository, log),
                                                              server)
    server.add_insecure_port(address)
    await server.start()
    return server


def _spec(model_spec):
    """``(name, version, label)`` of a ``ModelSpec``, ``None`` for what it leaves unset."""
    version = model_spec.version.value if model_spec.HasField("version") else None
    return model_spec.name, version, model_spec.version_label or None


async def _answering(context, answer, log=None, call=None):
    """``await answer``, a ``ServingError`` becoming the call's gRPC status; ``log`` (the access
    log's, if on) hears of the ``call`` with its status and time."""
    start, status = time.perf_counter(), "OK"
    try:
        return await answer
    except ServingError as error:
        status = error.code
        await context.abort(getattr(grpc.StatusCode, error.code), str(error))
    finally:
        if log is not None:
            client = context.peer().rpartition(":")[0].removeprefix("ipv4:")
            log(client, "gRPC", call, status, time.perf_counter() - start)


# The input types of tfae's signatures: the TensorProto type each takes, and how many bytes of
# tensor_content one value fills (strings travel only in string_val).
_PROTO_TYPES = {"float32": (types_pb2.DT_FLOAT, 4), "uint8": (types_pb2.DT_UINT8, 1),
                "string": (types_pb2.DT_STRING, None)}


def _array(tensor, name, dtype="float32"):
    """A ``TensorProto`` of the signature's ``dtype`` as numpy, once its declared shape is known
    to match the values it holds: ``tf.make_ndarray`` fills a shape declared without values with
    zeros, so a 40-byte request could otherwise make the server allocate gigabytes.

    Examples:
        >>> _array(tf.make_tensor_proto(np.zeros((2, 3), np.float32)), "codes").shape
        (2, 3)
        >>> _array(tf.make_tensor_proto([b"a png", b"a jpeg"]), "image_bytes", "string").tolist()
        [b'a png', b'a jpeg']
    """
    expected, width = _PROTO_TYPES[dtype]
    if tensor.dtype != expected:
        try:
            given = f"{tf.as_dtype(tensor.dtype).name} ({types_pb2.DataType.Name(tensor.dtype)})"
        except (TypeError, ValueError):
            given = f"dtype {tensor.dtype}"
        raise ServingError("INVALID_ARGUMENT", f"Input '{name}' is {given}, expected {dtype} "
                                               f"({types_pb2.DataType.Name(expected)})")
    shape = [dim.size for dim in tensor.tensor_shape.dim]
    if tensor.tensor_shape.unknown_rank or any(size < 0 for size in shape):
        raise ServingError("INVALID_ARGUMENT", f"Input '{name}' has no fully defined shape")
    declared = math.prod(shape)
    values = {"float32": tensor.float_val, "uint8": tensor.int_val,
              "string": tensor.string_val}[dtype]
    held = len(tensor.tensor_content) / width if width and tensor.tensor_content else len(values)
    if held != declared:
        raise ServingError("INVALID_ARGUMENT",
                           f"Input '{name}' declares shape {shape} ({declared:,} values) but holds "
                           f"{held:,g} values")
    return tf.make_ndarray(tensor)


async def _unimplemented(context, method):
    await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                        f"tfae serve answers Predict and GetModelMetadata, not {method}: an "
                        "autoencoder's export has no classification or regression signature")


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """``Predict`` and ``GetModelMetadata``.

    Examples:
        >>> prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        ...     PredictionService(repository), server)  # doctest: +SKIP
    """

    def __init__(self, repository, log=None):
        self.repository = repository
        self.log = log

    async def Predict(self, request, context):
        return await _answering(context, self._predict(request), self.log,
                                f"Predict {request.model_spec.name}/"
                                f"{request.model_spec.signature_name or 'serving_default'}")

    async def Classify(self, request, context):
        await _unimplemented(context, "Classify")

    async def Regress(self, request, context):
        await _unimplemented(context, "Regress")

    async def MultiInference(self, request, context):
        await _unimplemented(context, "MultiInference")

    async def GetModelMetadata(self, request, context):
        return await _answering(context, self._metadata(request), self.log,
                                f"GetModelMetadata {request.model_spec.name}")

    async def _predict(self, request):
        version, signatures = await self.repository.resolve(*_spec(request.model_spec))
        signature_name = request.model_spec.signature_name or "serving_default"
        if signature_name not in signatures:
            raise ServingError("FAILED_PRECONDITION",
                               f'Serving signature key "{shown(signature_name)}" not found.')
        batcher = signatures[signature_name]
        if set(request.inputs) != {batcher.input_name}:
            raise ServingError("INVALID_ARGUMENT",
                               f"input keys {shown(sorted(request.inputs))} do not match the "
                               f"signature's ['{batcher.input_name}']")
        unknown = set(request.output_filter) - set(batcher.output_names)
        if unknown:
            raise ServingError("INVALID_ARGUMENT", f"output tensor alias not found in signature: "
                                                   f"{shown(sorted(unknown)[0])}")
        array = _array(request.inputs[batcher.input_name], batcher.input_name, batcher.input_dtype)
        output = await batcher(check_input(array, batcher.input_name, batcher.input_shape,
                                           batcher.input_dtype))
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.repository.name
        response.model_spec.version.value = version
        response.model_spec.signature_name = signature_name
        outputs = output if isinstance(output, dict) else {batcher.output_names[0]: output}
        for name, value in outputs.items():
            if not request.output_filter or name in request.output_filter:
                response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response

    async def _metadata(self, request):
        if not request.metadata_field:
            raise ServingError("INVALID_ARGUMENT",
                               "GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != "signature_def":
                raise ServingError("INVALID_ARGUMENT", f"Metadata field {field} is not supported")
        version, _ = await self.repository.resolve(*_spec(request.model_spec))
        definitions = get_model_metadata_pb2.SignatureDefMap()
        for key, definition in self.repository.signature_defs(version).items():
            definitions.signature_def[key].CopyFrom(definition)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = self.repository.name
        response.model_spec.version.value = version
        response.metadata["signature_def"].Pack(definitions)
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """``GetModelStatus``: every version on disk, or the one asked for, each loaded first; one
    that does not load is ``END`` with its error, as TF Serving reports a failed load.

    Examples:
        >>> model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(repository),
        ...                                                           server)  # doctest: +SKIP
    """

    def __init__(self, repository, log=None):
        self.repository = repository
        self.log = log

    async def GetModelStatus(self, request, context):
        return await _answering(context, self._status(request), self.log,
                                f"GetModelStatus {request.model_spec.name}")

    async def HandleReloadConfigRequest(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                            "tfae serve has no model config to reload: it serves one export "
                            "folder and picks up new versions in it by itself")

    async def _status(self, request):
        response = get_model_status_pb2.GetModelStatusResponse()
        states = get_model_status_pb2.ModelVersionStatus
        for each, failure in await self.repository.statuses(*_spec(request.model_spec)):
            status = response.model_version_status.add(
                version=each, state=states.END if failure else states.AVAILABLE)
            if failure:
                status.status.error_code = error_codes_pb2.UNKNOWN
                status.status.error_message = failure
        return response
