"""``tfae serve`` driven as TF Serving users drive TF Serving: plain HTTP in its documented REST
formats, and the official ``tensorflow_serving.apis`` gRPC stubs; every answer is compared with
the SavedModel called in this process."""

import asyncio
import http.client
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow.core.protobuf import error_codes_pb2
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)

from tfae.serving import Server, ServerSettings
from tfae.serving.servables import Batcher

IMAGES = np.random.default_rng(2).random((3, 28, 28, 1), dtype=np.float32)


@pytest.fixture(scope="module")
def server(export_dir):
    settings = ServerSettings(str(export_dir), "deep", port=0, grpc_port=0,
                              labels={"stable": 1}, max_request_bytes=1 << 20,
                              max_json_bytes=1 << 20)
    with Server(settings) as server:
        yield server


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.grpc_target) as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _call(url, body=None, raw=None, method=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data,
                                     method=method or ("POST" if data is not None else "GET"))
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _in_process(export_dir, version, signature, inputs):
    served = tf.saved_model.load(str(export_dir / str(version)))
    function = served.signatures[signature]
    (input_name, _), = function.structured_input_signature[1].items()
    (output,) = function(**{input_name: tf.constant(inputs)}).values()
    return output.numpy()


def _predict_request(signature="encode", inputs=IMAGES, name="deep", version=None, label=None,
                     input_name="images"):
    """A ``PredictRequest`` built as TF Serving's gRPC client example builds one."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    request.inputs[input_name].CopyFrom(tf.make_tensor_proto(inputs))
    return request


def _inputs(input_name):
    return IMAGES if input_name == "images" else IMAGES.reshape(3, -1)[:, :4]


def test_rest_status_and_metadata(server):
    url = server.rest_url
    assert _call(url) == (200, {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})
    status, metadata = _call(url + "/metadata")
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    assert status == 200 and metadata["model_spec"]["version"] == "1"
    assert {"serving_default", "encode", "decode"} <= set(signatures)
    images = signatures["encode"]["inputs"]["images"]
    assert images["dtype"] == "DT_FLOAT"
    assert [dim["size"] for dim in images["tensor_shape"]["dim"]] == ["-1", "28", "28", "1"]


@pytest.mark.parametrize("signature, input_name", [
    ("serving_default", "images"), ("encode", "images"), ("decode", "codes")])
def test_rest_row_and_columnar_predictions_equal_the_saved_model(server, export_dir, signature,
                                                                 input_name):
    url, inputs = server.rest_url, _inputs(input_name)
    expected = _in_process(export_dir, 1, signature, inputs)
    status, rows = _call(url + ":predict", {"signature_name": signature,
                                            "instances": inputs.tolist()})
    assert status == 200
    np.testing.assert_allclose(rows["predictions"], expected, atol=1e-6)
    status, named_rows = _call(url + ":predict", {"signature_name": signature, "instances": [
        {input_name: instance} for instance in inputs.tolist()]})
    np.testing.assert_allclose(named_rows["predictions"], expected, atol=1e-6)
    for path in ("/versions/1:predict", "/labels/stable:predict"):
        status, columns = _call(url + path, {"signature_name": signature,
                                             "inputs": {input_name: inputs.tolist()}})
        assert status == 200
        np.testing.assert_allclose(columns["outputs"], expected, atol=1e-6)


@pytest.mark.parametrize("signature, input_name", [
    ("serving_default", "images"), ("encode", "images"), ("decode", "codes")])
def test_grpc_predict_with_the_official_stub_equals_the_saved_model(server, stub, export_dir,
                                                                    signature, input_name):
    inputs = _inputs(input_name)
    for spec in ({}, {"version": 1}, {"label": "stable"}):
        response = stub.Predict(_predict_request(signature, inputs, input_name=input_name, **spec),
                                timeout=30)
        (output,) = response.outputs.values()
        np.testing.assert_allclose(tf.make_ndarray(output),
                                   _in_process(export_dir, 1, signature, inputs), atol=1e-6)
        assert (response.model_spec.name, response.model_spec.version.value,
                response.model_spec.signature_name) == ("deep", 1, signature)


def test_grpc_metadata_and_status(server, stub):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "deep"
    request.metadata_field.append("signature_def")
    response = stub.GetModelMetadata(request, timeout=30)
    definitions = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(definitions)
    encode = definitions.signature_def["encode"]
    assert response.model_spec.version.value == 1
    assert [dim.size for dim in encode.inputs["images"].tensor_shape.dim] == [-1, 28, 28, 1]
    assert list(encode.outputs) == ["codes"]
    with grpc.insecure_channel(server.grpc_target) as channel:
        status_request = get_model_status_pb2.GetModelStatusRequest()
        status_request.model_spec.name = "deep"
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status_request,
                                                                                 timeout=30)
    assert [(each.version, each.state) for each in status.model_version_status] == [
        (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]


@pytest.mark.parametrize("request_options, code, words", [
    ({"name": "other"}, grpc.StatusCode.NOT_FOUND, "Latest(other)"),
    ({"version": 9}, grpc.StatusCode.NOT_FOUND, "Specific(deep, 9)"),
    ({"label": "canary"}, grpc.StatusCode.INVALID_ARGUMENT, "version label: canary"),
    ({"signature": "nope"}, grpc.StatusCode.FAILED_PRECONDITION, '"nope" not found'),
    ({"inputs": np.zeros((2, 3), np.float32)}, grpc.StatusCode.INVALID_ARGUMENT, "shape [2, 3]"),
    ({"inputs": IMAGES.astype(np.float64)}, grpc.StatusCode.INVALID_ARGUMENT, "float64"),
    ({"inputs": np.full((1, 28, 28, 1), np.inf, np.float32)}, grpc.StatusCode.INVALID_ARGUMENT,
     "not finite"),
    ({"input_name": "pixels"}, grpc.StatusCode.INVALID_ARGUMENT, "['pixels']"),
    ({"inputs": np.zeros((1100, 28, 28, 1), np.float32)}, grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
])
def test_grpc_errors_carry_tf_servings_codes_and_serving_goes_on(stub, request_options, code,
                                                                 words):
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(_predict_request(**request_options), timeout=30)
    assert error.value.code() == code and words in error.value.details()
    assert tf.make_ndarray(stub.Predict(_predict_request(), timeout=30).outputs["codes"]).shape \
        == (3, 4)


def _declared(shape, dtype=types_pb2.DT_FLOAT, content=b""):
    """A ``TensorProto`` declaring ``shape`` and ``dtype`` over ``content``, as an attacker sends."""
    tensor = tensor_pb2.TensorProto(dtype=dtype, tensor_content=content)
    for size in shape:
        tensor.tensor_shape.dim.add(size=size)
    return tensor


@pytest.mark.parametrize("tensor, words", [
    (_declared([100_000, 28, 28, 1]), "(78,400,000 values) but holds 0 values"),
    (_declared([10**6, 10**4, 10**4, 1]), "but holds 0 values"),
    (_declared([1, 28, 28, 1], content=b"\0" * 13), "holds 3.25 values"),
    (_declared([-1, 28, 28, 1]), "no fully defined shape"),
    (_declared([1, 28, 28, 1], dtype=types_pb2.DT_VARIANT), "is variant (DT_VARIANT), expected float32"),
    (_declared([1, 28, 28, 1], dtype=types_pb2.DT_RESOURCE), "is resource (DT_RESOURCE), expected float32"),
    (_declared([1], dtype=999), "is dtype 999, expected float32"),
])
def test_a_tensor_whose_shape_or_type_does_not_match_its_values_is_refused_unread(
        server, stub, tensor, words):
    request = _predict_request()
    request.inputs["images"].CopyFrom(tensor)
    pid = os.getpid()  # the server runs in this process: its memory is ours
    before = _memory_bytes(pid)
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(request, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in error.value.details(), error.value.details()
    assert _memory_bytes(pid) - before < 10e6
    _assert_answers(server)


def _memory_bytes(pid):
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) * 1024


@pytest.mark.parametrize("method", ["Classify", "Regress", "MultiInference"])
def test_tf_servings_other_methods_answer_unimplemented_with_a_reason(server, method):
    from tensorflow_serving.apis import classification_pb2, inference_pb2, regression_pb2

    requests = {"Classify": classification_pb2.ClassificationRequest(),
                "Regress": regression_pb2.RegressionRequest(),
                "MultiInference": inference_pb2.MultiInferenceRequest()}
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            getattr(stub, method)(requests[method], timeout=30)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert f"answers Predict and GetModelMetadata, not {method}" in error.value.details()


@pytest.mark.parametrize("raw, status, words", [
    (b"{not json", 400, "JSON Parse error"),
    (json.dumps({"signature_name": "nope", "instances": []}).encode(), 400, "not found"),
    (json.dumps({"instances": np.zeros((2, 28, 28)).tolist()}).encode(), 400, "has shape [2, 28, 28]"),
    (json.dumps({"instances": [["a"]]}).encode(), 400, "array of numbers"),
    (b'{"instances": [[[[NaN]]]]}', 400, "JSON Parse error"),
    (json.dumps({"rows": []}).encode(), 400, "'instances' or 'inputs'"),
    (json.dumps({"signature_name": "encode", "inputs": {"images": IMAGES.tolist(), "bogus": 1}}
                ).encode(), 400, "input keys ['bogus', 'images'] do not match"),
    (json.dumps({"signature_name": "encode", "instances": [{"images": IMAGES[0].tolist(),
                                                            "bogus": 1}]}).encode(), 400,
     "input keys ['bogus', 'images'] do not match"),
])
def test_rest_bad_requests_get_4xx_and_serving_goes_on(server, raw, status, words):
    url = server.rest_url
    answer = _call(url + ":predict", raw=raw)
    assert answer[0] == status and words in answer[1]["error"]
    _assert_answers(server)


def test_a_body_over_the_limit_is_refused_before_it_is_read(server):
    body = json.dumps({"instances": np.zeros((400, 28, 28, 1)).tolist()}).encode()  # 2 MB > 1 MB
    address = urllib.parse.urlsplit(server.rest_url)
    # The headers and the body's first 64 KB only: the answer comes from Content-Length. (A client
    # that insists on sending all 2 MB first may find the connection closed under it, as it would
    # with any server that refuses a body without reading it.)
    with socket.create_connection((address.hostname, address.port), timeout=30) as connection:
        connection.sendall(b"POST %s:predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                           % (address.path.encode(), len(body)) + body[:1 << 16])
        response = http.client.HTTPResponse(connection)
        response.begin()
        assert response.status == 413 and "over the limit" in json.loads(response.read())["error"]
    _assert_answers(server)


def test_answers_are_sent_without_waiting_for_the_clients_ack(server):
    # Headers and body are two writes: with Nagle's algorithm on, the body waits for the client's
    # delayed ACK (40 ms on Linux) and every keep-alive request takes 44 ms instead of 1-3.
    address = urllib.parse.urlsplit(server.rest_url)
    with socket.create_connection((address.hostname, address.port), timeout=30):
        deadline = time.monotonic() + 10
        while not server._server.server_state.connections and time.monotonic() < deadline:
            time.sleep(0.01)
        connections = list(server._server.server_state.connections)
        assert connections and all(
            connection.transport.get_extra_info("socket").getsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1 for connection in connections)


def _assert_answers(server):
    """A good request after a bad one is answered as ever."""
    good = _call(server.rest_url + ":predict",
                 {"signature_name": "encode", "instances": IMAGES.tolist()})
    assert good[0] == 200 and np.array(good[1]["predictions"]).shape == (3, 4)


def test_concurrent_rest_and_grpc_requests_each_get_their_own_answer(server, stub, export_dir):
    images = np.random.default_rng(3).random((16, 2, 28, 28, 1), dtype=np.float32)
    answers = [None] * len(images)

    def client(index):
        if index % 2:
            response = stub.Predict(_predict_request(inputs=images[index]), timeout=60)
            answers[index] = tf.make_ndarray(response.outputs["codes"])
        else:
            status, body = _call(server.rest_url + ":predict",
                                 {"signature_name": "encode", "instances": images[index].tolist()})
            answers[index] = np.array(body["predictions"]) if status == 200 else status

    threads = [threading.Thread(target=client, args=(index,)) for index in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = _in_process(export_dir, 1, "encode", images.reshape(-1, 28, 28, 1))
    np.testing.assert_allclose(np.stack(answers), expected.reshape(16, 2, -1), atol=1e-6)


def _files(images):
    """PNG files of float images in [0, 1], and the images as the files hold them."""
    pixels = np.round(images * 255).astype(np.uint8)
    return [tf.io.encode_png(image).numpy() for image in pixels], pixels.astype(np.float32) / 255


def test_both_protocols_take_image_files_and_uint8_pixels(server, stub, export_dir):
    import base64

    files, held = _files(IMAGES)
    expected = _in_process(export_dir, 1, "encode", held)
    b64 = [{"b64": base64.b64encode(file).decode()} for file in files]
    status, rows = _call(server.rest_url + ":predict", {"signature_name": "encode_bytes",
                                                        "instances": b64})
    assert status == 200
    np.testing.assert_allclose(rows["predictions"], expected, atol=1e-5)
    status, columns = _call(server.rest_url + ":predict", {
        "signature_name": "reconstruct_bytes", "inputs": {"image_bytes": b64[:1]}})
    assert status == 200
    np.testing.assert_allclose(columns["outputs"], _in_process(export_dir, 1, "serving_default",
                                                               held[:1]), atol=1e-5)
    answer = stub.Predict(_predict_request("encode_bytes", np.array(files, object),
                                           input_name="image_bytes"), timeout=30)
    np.testing.assert_allclose(tf.make_ndarray(answer.outputs["codes"]), expected, atol=1e-5)
    photo = np.random.default_rng(5).integers(0, 256, (1, 40, 30, 1), dtype=np.uint8)
    status, rows = _call(server.rest_url + ":predict", {"signature_name": "encode_pixels",
                                                        "instances": photo.tolist()})
    assert status == 200
    np.testing.assert_allclose(rows["predictions"],
                               _in_process(export_dir, 1, "encode_pixels", photo), atol=1e-5)
    answer = stub.Predict(_predict_request("encode_pixels", photo, input_name="pixels"),
                          timeout=30)
    np.testing.assert_allclose(tf.make_ndarray(answer.outputs["codes"]), rows["predictions"],
                               atol=1e-5)


@pytest.mark.parametrize("body, words", [
    ({"signature_name": "encode_bytes", "instances": ["not base64 wrapped"]},
     'takes a list of files, each as {"b64": "<its base64>"}'),
    ({"signature_name": "encode_bytes", "instances": [{"b64": "%%%"}]}, "item 0 is not valid"),
    ({"signature_name": "encode_bytes", "instances": [{"b64": "bm90IGFuIGltYWdl"}]},
     "Unknown image file format"),
    ({"signature_name": "encode_pixels", "instances": [[[[300]]]]}, "from 0 to 255"),
    ({"signature_name": "encode_pixels", "instances": [[[[0.5]]]]}, "from 0 to 255"),
    ({"signature_name": "encode", "instances": np.full((1, 28, 28, 1), 255).tolist()},
     "takes float32 pixels in [0, 1], got values from 255 to 255; send 0-255 pixels to the "
     "*_pixels signatures"),
])
def test_bad_files_or_pixels_are_400_with_a_reason(server, body, words):
    status, answer = _call(server.rest_url + ":predict", body)
    assert status == 400 and words in answer["error"], answer
    _assert_answers(server)


def test_a_file_that_does_not_decode_fails_only_its_own_request(export_dir):
    served = tf.saved_model.load(str(export_dir / "1"))
    batcher = Batcher(served.signatures["encode_bytes"])
    signature, calls, release = batcher.signature, [], threading.Event()

    def held_signature(**inputs):  # the first call runs until the others have queued behind it
        calls.append(len(inputs["image_bytes"]))
        release.wait(30)
        return signature(**inputs)

    batcher.signature = held_signature
    files, held = _files(IMAGES)

    async def run():
        first = asyncio.ensure_future(batcher(np.array(files[:1], object)))
        while not calls:
            await asyncio.sleep(0.01)
        bad = asyncio.ensure_future(batcher(np.array([b"not an image"], object)))
        good = asyncio.ensure_future(batcher(np.array(files[1:], object)))
        await asyncio.sleep(0.05)
        release.set()
        return await asyncio.gather(first, bad, good, return_exceptions=True)

    first, bad, good = asyncio.run(run())
    assert calls == [1, 3, 1, 2]  # the batch of the two later requests failed, each ran alone
    assert bad.code == "INVALID_ARGUMENT" and "Unknown image file format" in str(bad)
    np.testing.assert_allclose(np.concatenate([first, good]),
                               _in_process(export_dir, 1, "encode", held), atol=1e-5)


def test_the_access_log_has_a_line_for_every_request_of_either_protocol(export_dir, monkeypatch):
    from tfae.serving import server as server_module

    lines = []
    monkeypatch.setattr(server_module, "access_line", lambda *line: lines.append(line))
    settings = ServerSettings(str(export_dir), "deep", port=0, grpc_port=0, access_log=True)
    with Server(settings) as server, grpc.insecure_channel(server.grpc_target) as channel:
        assert _call(server.rest_url + ":predict", {"signature_name": "encode",
                                                    "instances": IMAGES.tolist()})[0] == 200
        assert _call(server.rest_url + "/nope")[0] == 404
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        stub.Predict(_predict_request(), timeout=30)
        with pytest.raises(grpc.RpcError):
            stub.Predict(_predict_request(signature="nope"), timeout=30)
    assert [line[:4] for line in lines] == [
        ("127.0.0.1", "REST", "POST /v1/models/deep:predict", 200),
        ("127.0.0.1", "REST", "GET /v1/models/deep/nope", 404),
        ("127.0.0.1", "gRPC", "Predict deep/encode", "OK"),
        ("127.0.0.1", "gRPC", "Predict deep/nope", "FAILED_PRECONDITION")]
    assert all(0 < line[4] < 30 for line in lines)



def test_an_access_line_names_client_protocol_request_status_and_time():
    import contextlib
    import io

    from tfae.serving.server import access_line

    written = io.StringIO()
    with contextlib.redirect_stderr(written):
        access_line("127.0.0.1", "gRPC", "Predict deep/encode", "OK", 0.0021)
    assert re.fullmatch(r'tfae serve: \S+ \S+ 127\.0\.0\.1 gRPC "Predict deep/encode" OK 2\.1 ms\n',
                        written.getvalue())


def test_requests_queued_while_the_model_runs_run_as_one_batch(export_dir):
    served = tf.saved_model.load(str(export_dir / "1"))
    batcher = Batcher(served.signatures["encode"], max_rows=5)
    calls, release = [], threading.Event()
    signature = batcher.signature

    def held_signature(**inputs):  # the first call runs until the others have queued behind it
        calls.append(len(inputs["images"]))
        release.wait(30)
        return signature(**inputs)

    batcher.signature = held_signature
    images = np.random.default_rng(4).random((5, 2, 28, 28, 1), dtype=np.float32)

    async def run():
        first = asyncio.ensure_future(batcher(images[0]))
        while not calls:
            await asyncio.sleep(0.01)
        rest = [asyncio.ensure_future(batcher(array)) for array in images[1:]]
        await asyncio.sleep(0.05)
        release.set()
        return await asyncio.gather(first, *rest)

    outputs = asyncio.run(run())
    assert calls == [2, 4, 4]  # 2 + 2 rows per later call: a third request would pass max_rows
    np.testing.assert_allclose(np.stack(outputs),
                               _in_process(export_dir, 1, "encode", images.reshape(-1, 28, 28, 1))
                               .reshape(5, 2, -1), atol=1e-6)


class _SlowSignature:
    """A stand-in for a signature that takes 0.05 s a call, recording the rows of each call."""

    structured_input_signature = ((), {"codes": tf.TensorSpec([None, 2])})
    structured_outputs = {"images": tf.TensorSpec([None, 2])}

    def __init__(self):
        self.calls = []

    def __call__(self, codes):
        self.calls.append(len(codes))
        time.sleep(0.05)
        return {"images": codes * 2}


def test_a_big_request_runs_in_parts_and_requests_arriving_meanwhile_run_between_them():
    signature = _SlowSignature()
    batcher = Batcher(signature, max_rows=100)
    big, small = np.arange(2000, dtype=np.float32).reshape(1000, 2), np.ones((3, 2), np.float32)
    finished = []

    async def run():
        async def timed(name, array):
            output = await batcher(array)
            finished.append(name)
            return output

        big_task = asyncio.ensure_future(timed("big", big))
        await asyncio.sleep(0.12)  # the big request is two parts in
        small_output = await timed("small", small)
        return await big_task, small_output

    big_output, small_output = asyncio.run(run())
    assert finished == ["small", "big"]  # it did not wait for the big one's ten parts
    assert sum(signature.calls) == 1003 and max(signature.calls) <= 100  # max_rows a call
    np.testing.assert_array_equal(big_output, big * 2)
    np.testing.assert_array_equal(small_output, small * 2)


def test_unknown_model_version_and_label_are_refused(server):
    url = server.rest_url
    assert _call(url.replace("/deep", "/other"))[0] == 404
    assert _call(url + "/versions/9:predict", {"instances": IMAGES.tolist()})[0] == 404
    assert _call(url + "/versions/0")[0] == 404
    assert _call(url + "/labels/canary")[0] == 400


def test_a_new_version_is_served_by_both_protocols_without_a_restart(server, stub, export_dir):
    shutil.copytree(export_dir / "1", export_dir / "2")
    try:
        assert [entry["version"] for entry in _call(server.rest_url)[1]["model_version_status"]] \
            == ["2", "1"]
        assert _call(server.rest_url + "/metadata")[1]["model_spec"]["version"] == "2"
        assert stub.Predict(_predict_request(), timeout=30).model_spec.version.value == 2
        assert stub.Predict(_predict_request(label="stable"), timeout=30).model_spec.version.value \
            == 1
    finally:
        shutil.rmtree(export_dir / "2")


def test_a_newer_version_that_does_not_load_leaves_the_last_good_one_served(
        server, stub, export_dir, capfd):
    broken, half_copied = export_dir / "2", export_dir / "3"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"garbage")
    half_copied.mkdir()
    shutil.copy(export_dir / "1/saved_model.pb", half_copied)  # a copy in progress: no variables
    try:
        for _ in range(3):  # each failure is reported once, not at every request
            assert _call(server.rest_url + ":predict", {"signature_name": "encode",
                                                         "instances": IMAGES.tolist()})[0] == 200
            assert stub.Predict(_predict_request(), timeout=30).model_spec.version.value == 1
        reported = [line for line in capfd.readouterr().err.splitlines() if "did not load" in line]
        assert len(reported) == 2, reported
        assert "Traceback" not in capfd.readouterr().err
        statuses = _call(server.rest_url)[1]["model_version_status"]
        assert [(each["version"], each["state"], each["status"]["error_code"])
                for each in statuses] == [("3", "END", "UNKNOWN"), ("2", "END", "UNKNOWN"),
                                          ("1", "AVAILABLE", "OK")]
        assert "version 2 did not load" in statuses[1]["status"]["error_message"]
        with grpc.insecure_channel(server.grpc_target) as channel:
            status_request = get_model_status_pb2.GetModelStatusRequest()
            status_request.model_spec.name = "deep"
            status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
                status_request, timeout=30)
        assert [(each.version, each.state, each.status.error_code)
                for each in status.model_version_status] == [
            (3, get_model_status_pb2.ModelVersionStatus.END, error_codes_pb2.UNKNOWN),
            (2, get_model_status_pb2.ModelVersionStatus.END, error_codes_pb2.UNKNOWN),
            (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE, error_codes_pb2.OK)]
        asked = _call(server.rest_url + "/versions/2:predict", {"signature_name": "encode",
                                                                "instances": IMAGES.tolist()})
        assert asked[0] == 404 and "version 2 did not load" in asked[1]["error"]
        # The copy completes: its files change, it is tried again and served.
        shutil.rmtree(half_copied)
        shutil.copytree(export_dir / "1", half_copied)
        assert stub.Predict(_predict_request(), timeout=30).model_spec.version.value == 3
        assert "tfae serve: loaded version 3 of 'deep'" in capfd.readouterr().err
    finally:
        shutil.rmtree(broken)
        shutil.rmtree(half_copied, ignore_errors=True)


def _start(export_dir, *options):
    """``tfae serve`` as a process; ``(process, rest url, grpc target)`` once it answers."""
    process = subprocess.Popen([sys.executable, "-m", "tfae_cli.main", "serve", str(export_dir),
                                "--port", "0", "--grpc-port", "0", *options],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()  # printed once both protocols answer
    assert "serving" in line, line + process.stderr.read()
    url = line.split(" on ")[1].split()[0]
    target = line.split(" and ")[1].split()[0]
    return process, url, target


def test_a_busy_port_or_a_label_of_no_version_is_one_line_and_nothing_starts(export_dir):
    from click.testing import CliRunner

    from tfae_cli.main import tfae

    with socket.create_server(("127.0.0.1", 0)) as held:
        port = str(held.getsockname()[1])
        for options in (["--port", port], ["--port", "0", "--grpc-port", port]):
            result = CliRunner().invoke(tfae, ["serve", str(export_dir), *options])
            assert result.exit_code == 1 and "Traceback" not in result.output
            assert f"cannot bind 127.0.0.1 port {port} for " in result.output, result.output
    result = CliRunner().invoke(tfae, ["serve", str(export_dir / "1")])
    assert result.exit_code == 1 and "is one version of an export: serve the folder of " \
        f"versions, {export_dir}" in result.output
    result = CliRunner().invoke(tfae, ["serve", str(export_dir), "--label", "stable=7"])
    assert result.exit_code == 1
    assert "--label stable=7: " in result.output and "has no version 7 (it has 1)" in result.output
    corrupt = export_dir.parent / "corrupt"
    shutil.copytree(export_dir / "1", corrupt / "3")
    (corrupt / "3/saved_model.pb").write_bytes(b"\x00garbage")
    result = CliRunner().invoke(tfae, ["serve", str(corrupt)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "3/saved_model.pb is not a readable SavedModel" in result.output, result.output
    (corrupt / "4").mkdir()  # a copy in progress: the graph, not yet its variables
    shutil.copy(export_dir / "1/saved_model.pb", corrupt / "4")
    result = CliRunner().invoke(tfae, ["serve", str(corrupt)])
    assert result.exit_code == 1 and len(result.output.splitlines()) == 1
    assert "4 has no variables/variables.index (a copy in progress?); " in result.output
    result = CliRunner().invoke(tfae, ["serve", str(export_dir), "--host", "999.1.1.1"])
    assert result.exit_code == 1 and "cannot bind 999.1.1.1 port 8501 for REST: " in result.output
    assert "Unknown error" not in result.output and "while attempting" not in result.output


@pytest.mark.slow  # a signal to a server process: the full tier
def test_sigterm_lets_a_request_in_flight_finish_and_exits_within_5_s(export_dir):
    process, url, _ = _start(export_dir)
    parts = urllib.parse.urlsplit(url)
    images = np.random.default_rng(5).random((2048, 28, 28, 1)).round(3)
    body = json.dumps({"signature_name": "encode", "instances": images.tolist()})
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    # The body is several times the sockets' buffers, so once it is sent the server has read the
    # request's headers: the request is in flight, not waiting to be accepted.
    connection.request("POST", parts.path + ":predict", body=body)
    start = time.monotonic()
    process.send_signal(signal.SIGTERM)
    answer = connection.getresponse()
    assert answer.status == 200 and len(json.loads(answer.read())["predictions"]) == 2048
    assert process.wait(timeout=30) == 0
    assert time.monotonic() - start < 5


@pytest.mark.slow  # the serve command's worker processes: the full tier
def test_serve_command_with_two_workers_answers_both_protocols_and_stops_both(export_dir):
    process, url, target = _start(export_dir, "--workers", "2")
    children = pathlib.Path(f"/proc/{process.pid}/task/{process.pid}/children")
    workers = [int(pid) for pid in children.read_text().split()
               if b"spawn_main" in pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(workers) == 2
    answers = [_call(url + ":predict", {"signature_name": "encode", "instances": IMAGES.tolist()})
               for _ in range(4)]
    assert [status for status, _ in answers] == [200] * 4
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        assert stub.Predict(_predict_request(), timeout=30).model_spec.version.value == 1
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert not any(pathlib.Path(f"/proc/{pid}").exists() for pid in workers)


def test_a_vae_export_serves_new_images_from_noise_over_both_protocols(tmp_path):
    from tfae.exports import export_saved_model
    from tfae.opened import SAMPLE_SIGNATURE
    from tfae.families import build_model
    from tfae.models.variational import prior_codes

    model = build_model("vae", (28, 28, 1), hidden=(16,), latent_dim=3)
    export_saved_model(model, tmp_path / "vae")
    noise = prior_codes(4, 3, seed=5)
    expected = model.sample(4, seed=5).numpy()
    settings = ServerSettings(str(tmp_path / "vae"), "vae", port=0, grpc_port=0)
    with Server(settings) as server:
        status, answer = _call(server.rest_url + ":predict", {
            "signature_name": SAMPLE_SIGNATURE, "inputs": noise.tolist()})
        assert status == 200
        np.testing.assert_allclose(answer["outputs"], expected, atol=1e-5)
        with grpc.insecure_channel(server.grpc_target) as channel:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                _predict_request(SAMPLE_SIGNATURE, noise, name="vae", input_name="noise"),
                timeout=60)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["images"]), expected, atol=1e-5)
