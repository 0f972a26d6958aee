"""``tfae serve`` against requests built as TF Serving's REST documentation shows them."""

import json
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from tfae.export import export_saved_model
from tfae.families import build_model
from tfae.serve import BatchingSignature, _serve_until_stopped, make_server

IMAGES = np.random.default_rng(2).random((3, 28, 28, 1), dtype=np.float32)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    export_dir = tmp_path_factory.mktemp("serve") / "deep"
    export_saved_model(build_model("deep", (28, 28, 1), hidden=(16,), latent_dim=4), export_dir)
    server = make_server(export_dir, "deep", port=0, max_body_bytes=200_000)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/models/deep", export_dir
    server.shutdown()
    server.server_close()


def _call(url, body=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _in_process(export_dir, version, signature, images):
    served = tf.saved_model.load(str(export_dir / str(version)))
    function = served.signatures[signature]
    (input_name, _), = function.structured_input_signature[1].items()
    (output,) = function(**{input_name: tf.constant(images)}).values()
    return output.numpy()


def test_status_and_metadata(server):
    url, _ = server
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
def test_row_and_columnar_predictions_equal_the_saved_model(server, signature, input_name):
    url, export_dir = server
    inputs = IMAGES if input_name == "images" else IMAGES.reshape(3, -1)[:, :4]
    expected = _in_process(export_dir, 1, signature, inputs)
    status, rows = _call(url + ":predict", {"signature_name": signature,
                                            "instances": inputs.tolist()})
    assert status == 200
    np.testing.assert_allclose(rows["predictions"], expected, atol=1e-6)
    status, named_rows = _call(url + ":predict", {"signature_name": signature, "instances": [
        {input_name: instance} for instance in inputs.tolist()]})
    np.testing.assert_allclose(named_rows["predictions"], expected, atol=1e-6)
    status, columns = _call(url + "/versions/1:predict", {"signature_name": signature,
                                                          "inputs": {input_name: inputs.tolist()}})
    assert status == 200
    np.testing.assert_allclose(columns["outputs"], expected, atol=1e-6)


@pytest.mark.parametrize("raw, status, words", [
    (b"{not json", 400, "JSON Parse error"),
    (json.dumps({"signature_name": "nope", "instances": []}).encode(), 400, "not found"),
    (json.dumps({"instances": np.zeros((2, 28, 28)).tolist()}).encode(), 400, "has shape [2, 28, 28]"),
    (json.dumps({"instances": [["a"]]}).encode(), 400, "array of numbers"),
    (b'{"instances": [[[[NaN]]]]}', 400, "NaN is not a valid"),
    (json.dumps({"instances": np.zeros((130, 28, 28, 1)).tolist()}).encode(), 413, "over the limit"),
    (json.dumps({"rows": []}).encode(), 400, "'instances' or 'inputs'"),
])
def test_bad_requests_get_4xx_and_serving_goes_on(server, raw, status, words):
    url, _ = server
    answer = _call(url + ":predict", raw=raw)
    assert answer[0] == status and words in answer[1]["error"]
    good = _call(url + ":predict", {"signature_name": "encode", "instances": IMAGES.tolist()})
    assert good[0] == 200 and np.array(good[1]["predictions"]).shape == (3, 4)


def test_concurrent_requests_each_get_their_own_answer(server):
    url, export_dir = server
    images = np.random.default_rng(3).random((16, 2, 28, 28, 1), dtype=np.float32)
    answers = [None] * len(images)

    def client(index):
        answers[index] = _call(url + ":predict", {"signature_name": "encode",
                                                  "instances": images[index].tolist()})

    threads = [threading.Thread(target=client, args=(index,)) for index in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = _in_process(export_dir, 1, "encode", images.reshape(-1, 28, 28, 1))
    assert [status for status, _ in answers] == [200] * len(images)
    np.testing.assert_allclose([answer["predictions"] for _, answer in answers],
                               expected.reshape(16, 2, -1), atol=1e-6)


def test_requests_queued_while_the_model_runs_run_as_one_batch(server):
    _, export_dir = server
    served = tf.saved_model.load(str(export_dir / "1"))
    batching = BatchingSignature(served.signatures["encode"], max_rows=5)
    calls = []
    signature = batching.signature
    batching.signature = lambda **inputs: calls.append(len(inputs["images"])) or signature(**inputs)
    images = np.random.default_rng(4).random((4, 2, 28, 28, 1), dtype=np.float32)
    outputs = [None] * len(images)

    def call(index):
        outputs[index] = batching(images[index])

    with batching._run_lock:  # as if a batch were running: the four requests queue meanwhile
        threads = [threading.Thread(target=call, args=(index,)) for index in range(len(images))]
        for thread in threads:
            thread.start()
        while len(batching._queue) < len(images):
            time.sleep(0.01)
    for thread in threads:
        thread.join()
    assert calls == [4, 4]  # 2 + 2 rows per call: a third request would pass max_rows
    np.testing.assert_allclose(np.stack(outputs),
                               _in_process(export_dir, 1, "encode", images.reshape(-1, 28, 28, 1))
                               .reshape(4, 2, -1), atol=1e-6)


def test_unknown_model_and_version_are_404(server):
    url, _ = server
    assert _call(url.replace("/deep", "/other"))[0] == 404
    assert _call(url + "/versions/9:predict", {"instances": IMAGES.tolist()})[0] == 404


def test_a_new_version_is_served_without_a_restart(server):
    url, export_dir = server
    shutil.copytree(export_dir / "1", export_dir / "2")
    assert [entry["version"] for entry in _call(url)[1]["model_version_status"]] == ["2", "1"]
    assert _call(url + "/metadata")[1]["model_spec"]["version"] == "2"


def test_serve_command_stops_cleanly_on_sigterm(server, tmp_path):
    _, export_dir = server
    process = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", str(export_dir),
                                "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    line = process.stdout.readline()  # printed once the socket is bound
    assert "serving" in line and "127.0.0.1" in line
    time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


def test_sigterm_landing_while_a_request_is_handed_over_still_stops_the_server(server):
    _, export_dir = server
    listening = make_server(export_dir, "deep", port=0)

    def hand_over(request, client_address):  # where socketserver swallows any Exception
        signal.raise_signal(signal.SIGTERM)

    listening.process_request = hand_over
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    watchdog_fired = threading.Event()
    watchdog = threading.Timer(30, lambda: (watchdog_fired.set(), listening.shutdown()))
    watchdog.start()
    threading.Thread(target=socket.create_connection, args=(listening.server_address,),
                     daemon=True).start()
    _serve_until_stopped(listening)
    watchdog.cancel()
    assert not watchdog_fired.is_set(), "the stop was swallowed and serving went on"
    assert {number: signal.getsignal(number) for number in handlers} == handlers


def test_serve_command_with_two_workers_answers_and_stops_both(server):
    url, export_dir = server
    process = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", str(export_dir),
                                "--port", "0", "--workers", "2"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    assert "with 2 workers" in line, line + process.stderr.read()
    port_url = line.split(" on ")[1].split(" with ")[0]
    children = pathlib.Path(f"/proc/{process.pid}/task/{process.pid}/children")
    worker = int(children.read_text().split()[-1])  # the spawned worker (the last child started)
    answers = [_call(port_url + ":predict", {"signature_name": "encode",
                                             "instances": IMAGES.tolist()}) for _ in range(4)]
    assert [status for status, _ in answers] == [200] * 4
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert not pathlib.Path(f"/proc/{worker}").exists()
