"""``tfae serve`` under hostile requests, against a real server process on 127.0.0.1.

Every request here gets an answer (a 4xx) or a closed connection within a bounded time, and the
server goes on answering a normal request; after the whole set it is idle again and has not
grown. Each case is sent over a raw socket, as an attacker would, not through an HTTP library
that would refuse to send it.
"""

import base64
import json
import os
import pathlib
import struct
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib

import numpy as np
import pytest


PREDICT = b"POST /v1/models/deep:predict HTTP/1.1\r\nHost: x\r\n"


def _with_body(body):
    return PREDICT + b"Content-Length: %d\r\n\r\n" % len(body) + body


def _codes(values):
    return _with_body(b'{"signature_name": "decode", "instances": [[%s, 0, 0, 0]]}' % values)


def _png_declaring(width, height):
    """A PNG file's first bytes declaring ``width`` x ``height`` pixels: all a decoder needs to
    set out to allocate them (a real one compresses to 514 KB at 23000x23000)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0,
                                                             0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b""))


def _files(signature, *files):
    instances = ", ".join('{"b64": "%s"}' % base64.b64encode(file).decode() for file in files)
    return _with_body(b'{"signature_name": "%s", "instances": [%s]}' % (
        signature.encode(), instances.encode()))


# (name, bytes sent, statuses accepted; None where the server may close instead of answering).
CASES = [
    ("content-length over the limit, then the client hangs up",
     PREDICT + b"Content-Length: 1000000000000000000\r\n\r\n", {413, None}),
    ("content-length -1 and a body", PREDICT + b"Content-Length: -1\r\n\r\n" + b"x" * 4096,
     {400}),
    ("content-length abc", PREDICT + b"Content-Length: abc\r\n\r\n", {400}),
    ("content-length -5", PREDICT + b"Content-Length: -5\r\n\r\n", {400}),
    ("signature_name a list", _with_body(b'{"signature_name": ["a"], "instances": [[0]]}'), {400}),
    ("JSON nested 1,000 deep", _with_body(b'{"instances": ' + b"[" * 1000 + b"0" + b"]" * 1000
                                          + b"}"), {400}),
    ("JSON nested 100,000 deep", _with_body(b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000
                                            + b"}"), {400}),
    ("1e999", _codes(b"1e999"), {400}),
    ("1e39, beyond float32", _codes(b"1e39"), {400}),
    ("NaN", _codes(b"NaN"), {400}),
    ("Infinity", _codes(b"-Infinity"), {400}),
    ("null", _codes(b"null"), {400}),
    ("true", _codes(b"true"), {400}),
    ("a string for a number", _codes(b'"1.5"'), {400}),
    ("a ragged array", _with_body(b'{"signature_name": "decode", "instances": [[0, 0, 0, 0], [0]]}'),
     {400}),
    ("a wrong shape", _with_body(b'{"signature_name": "decode", "instances": [[0, 0, 0]]}'), {400}),
    ("an unknown model", b"POST /v1/models/other:predict HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Length: 2\r\n\r\n{}", {404}),
    ("an unknown version", b"GET /v1/models/deep/versions/0 HTTP/1.1\r\nHost: x\r\n\r\n", {404}),
    ("an unknown label", b"GET /v1/models/deep/labels/canary HTTP/1.1\r\nHost: x\r\n\r\n", {400}),
    ("an unknown signature", _with_body(b'{"signature_name": "x", "instances": [[0]]}'), {400}),
    ("PUT", b"PUT /v1/models/deep HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", {405}),
    ("not HTTP", b"\x00\x01\x02 garbage\r\n\r\n", {400}),
    ("an 80 MB body", PREDICT + b"Content-Length: 80000000\r\n\r\n" + b"[" * 1_000_000, {413, None}),
    ("an 80 MB chunked body", PREDICT + b"Transfer-Encoding: chunked\r\n\r\n"
     + (b"100000\r\n" + b"1" * 0x100000 + b"\r\n") * 80, {413, None}),
    # A small request asking for a large answer: 0.2 MB of codes, 250 MB of JSON decoded.
    ("decode of 20,000 rows", _with_body(b'{"signature_name": "decode", "instances": ['
                                         + b",".join([b"[0, 0, 0, 0]"] * 20_000) + b"]}"),
     {400}),
    ("reconstruct_bytes of a PNG declaring 23000x23000",
     _files("reconstruct_bytes", _png_declaring(23_000, 23_000)), {400}),
    ("24 such PNGs to encode_bytes",
     _files("encode_bytes", *[_png_declaring(23_000, 23_000)] * 24), {400}),
    ("1,000 headers", PREDICT + b"".join(b"X-%d: y\r\n" % number for number in range(1000))
     + b"\r\n", {431, None}),
    ("a 1 MB header", PREDICT + b"X-Big: " + b"y" * 1_000_000 + b"\r\n\r\n", {431, 400, None}),
]


def _start(export_dir):
    process = subprocess.Popen([sys.executable, "-m", "tfae_cli.main", "serve", str(export_dir),
                                "--port", "0", "--grpc-port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    assert "serving" in line
    return process, int(line.split(" on ")[1].split()[0].split(":")[2].split("/")[0])


@pytest.fixture(scope="module")
def server(export_dir):
    process, port = _start(export_dir)
    yield process, port
    process.terminate()
    process.wait(timeout=30)


def _send(port, data, timeout=5):
    """The HTTP status answered to ``data``, or ``None`` if the server closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        try:
            connection.sendall(data)
        except (BrokenPipeError, ConnectionResetError):  # answered and closed while we sent
            pass
        try:
            answer = connection.recv(4096)
        except ConnectionResetError:
            return None
    return int(answer.split()[1]) if answer.startswith(b"HTTP/1.1 ") else None


def _typical_request_seconds(port):
    """The median of five normal requests' times: one alone may wait for a core the test's own
    load (or the other tests') holds, which says nothing of the server."""
    return sorted(_normal_request_seconds(port) for _ in range(5))[2]


def _normal_request_seconds(port):
    body = json.dumps({"signature_name": "encode",
                       "instances": np.zeros((1, 28, 28, 1)).tolist()}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/deep:predict", data=body)
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 200 and len(json.loads(answer.read())["predictions"][0]) == 4
    return time.perf_counter() - start


@pytest.mark.parametrize("name, data, statuses", CASES, ids=[case[0] for case in CASES])
def test_a_hostile_request_is_refused_within_a_second_and_serving_goes_on(server, name, data,
                                                                         statuses):
    _, port = server
    start = time.monotonic()
    assert _send(port, data) in statuses
    assert time.monotonic() - start < 1
    assert _typical_request_seconds(port) < 0.1


@pytest.mark.parametrize("data", [
    b"\x00\x01\x02 garbage\r\n\r\n",
    PREDICT + b"Content-Length: -1\r\n\r\n",
    b"GET /" + b"a" * 1_000_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
], ids=["garbage", "negative length", "1 MB URL"])
def test_malformed_http_is_answered_in_tf_servings_json(server, data):
    _, port = server
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        try:
            connection.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") and b"content-type: application/json" in head
    assert json.loads(body)["error"].startswith("Malformed request")
    assert _typical_request_seconds(port) < 0.1


@pytest.mark.parametrize("opening", [
    b"POST /v1/models/deep:predict HTTP/1.1\r\n",  # headers never finished
    PREDICT + b"Content-Length: 100\r\n\r\n[",  # a body never finished
])
def test_a_request_not_received_by_its_deadline_is_answered_408_in_process(export_dir,
                                                                            monkeypatch, opening):
    """The fast tier's deadline, shortened to 1 s in a server in this process; the test below
    waits out the real 10 s against a server process, a byte a second."""
    from tfae.serving import ServerSettings
    from tfae.serving import server as server_module

    monkeypatch.setattr(server_module, "REQUEST_SECONDS", 1)
    with server_module.Server(ServerSettings(str(export_dir), "deep", port=0,
                                             grpc_port=0)) as server:
        port = server.settings.port
        with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
            start = time.monotonic()
            connection.sendall(opening)
            answer = connection.recv(4096)
            assert time.monotonic() - start < 3
        assert answer.startswith(b"HTTP/1.1 408 ") and b"not received within 1 s" in answer
        assert _normal_request_seconds(port) < 1


def test_an_answer_of_many_numbers_is_sent_a_part_at_a_time_and_reads_as_one(export_dir):
    """Over ``STREAMED_NUMBERS`` numbers, the answer is written as it is sent (chunked), not
    built whole first; its JSON is the SavedModel's decode all the same."""
    import tensorflow as tf

    from tfae.serving import Server, ServerSettings
    from tfae.serving.rest import STREAMED_NUMBERS

    codes = np.random.default_rng(0).random((100, 4), dtype=np.float32)
    assert codes.size * 784 // 4 > STREAMED_NUMBERS
    body = json.dumps({"signature_name": "decode", "instances": codes.tolist()}).encode()
    with Server(ServerSettings(str(export_dir), "deep", port=0, grpc_port=0)) as server:
        request = urllib.request.Request(server.rest_url + ":predict", data=body)
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.headers["Transfer-Encoding"] == "chunked"
            predictions = np.array(json.loads(answer.read())["predictions"], np.float32)
    served = tf.saved_model.load(str(export_dir / "1"))
    expected = served.signatures["decode"](codes=tf.constant(codes))["images"].numpy()
    np.testing.assert_allclose(predictions, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # waits out the server process's 10 s request deadline: the full tier
@pytest.mark.parametrize("opening, trickle", [
    (b"POST /v1/models/deep:predict HTTP/1.1\r\n", b"X"),  # headers, a byte a second
    (PREDICT + b"Content-Length: 100\r\n\r\n", b"["),  # a body, a byte a second
])
def test_a_client_trickling_its_request_is_cut_off(server, opening, trickle):
    _, port = server
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(opening)
        answer = None
        while time.monotonic() - start < 20:
            try:
                connection.sendall(trickle)
                connection.settimeout(1)
                answer = connection.recv(4096)
                break
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                answer = b""
                break
    assert time.monotonic() - start < 13  # REQUEST_SECONDS and a little
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 ")
    assert _typical_request_seconds(port) < 0.1


@pytest.mark.slow  # a signal to a server process: the full tier
def test_sigterm_while_a_request_is_still_arriving_answers_it_503_and_exits_within_5_s(
        export_dir):
    process, port = _start(export_dir)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            connection.sendall(PREDICT + b"Content-Length: 1000\r\n\r\n{")  # and never the rest
            time.sleep(0.2)  # the request is in flight
            start = time.monotonic()
            process.send_signal(signal.SIGTERM)
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 "), answer
        assert "shutting down" in json.loads(body)["error"]
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - start < 5
    finally:
        process.kill()
        process.wait()


@pytest.mark.slow  # a signal to a server process: the full tier
def test_sigterm_while_a_model_call_runs_answers_503_and_exits_within_5_s(export_dir):
    import io

    from PIL import Image

    black = io.BytesIO()
    Image.fromarray(np.zeros((6000, 6000), np.uint8)).save(black, "PNG")  # 36 M pixels, 35 kB
    request = _files("encode_bytes", *[black.getvalue()] * 250)  # ~10 s of decoding, one call
    process, port = _start(export_dir)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
            connection.sendall(request)
            time.sleep(1)  # the call is running
            start = time.monotonic()
            process.send_signal(signal.SIGTERM)
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 503 "), answer[:200]
        assert process.wait(timeout=30) == 0
        assert time.monotonic() - start < 5
    finally:
        process.kill()
        process.wait()


def test_a_request_whose_client_hangs_up_stops_before_its_next_part(export_dir, monkeypatch):
    from tfae.serving import ServerSettings
    from tfae.serving.server import Server
    from tfae.serving.servables import Batcher

    calls = []
    call = Batcher._call

    def slow_call(self, array):
        calls.append(len(array))
        time.sleep(0.5)
        return call(self, array)

    monkeypatch.setattr(Batcher, "_call", slow_call)
    body = json.dumps({"signature_name": "encode",
                       "instances": np.zeros((4096, 28, 28, 1), np.uint8).tolist()}).encode()
    settings = ServerSettings(str(export_dir), "deep", port=0, grpc_port=0)
    with Server(settings) as server:
        port = server.settings.port
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            connection.sendall(_with_body(body))  # four parts of 1,024 rows
            while not calls:
                time.sleep(0.01)
        time.sleep(2.5)  # the time the other three parts would take
        assert calls == [1024]
        assert _typical_request_seconds(port) < 0.6  # slowed by slow_call alone


def _peak_reset(pid):
    pathlib.Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM starts again from VmRSS


def _tiny_png():
    import io

    from PIL import Image

    file = io.BytesIO()
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(file, "PNG")
    return file.getvalue()


@pytest.mark.slow  # a server process's memory: the full tier
@pytest.mark.parametrize("name, body", [
    ("decode of 5,300 codes", json.dumps(
        {"signature_name": "decode", "instances": [[0.5, 0, 0, 0]] * 5300}).encode()),
    ("reconstruct_bytes of 5,300 one-pixel PNGs", json.dumps(
        {"signature_name": "reconstruct_bytes",
         "instances": [{"b64": base64.b64encode(_tiny_png()).decode()}] * 5300}).encode()),
], ids=["decode", "reconstruct_bytes"])
def test_a_request_under_1_mb_allocates_under_100_mb_and_holds_under_50_mb(server, name, body):
    # Each answers 16.6 MB of numbers (25 MB of JSON), just within --max-answer-mb.
    process, port = server
    assert len(body) < 1e6
    _normal_request_seconds(port)
    before = _memory_bytes(process.pid)
    _peak_reset(process.pid)
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/deep:predict",
                                     data=body)
    with urllib.request.urlopen(request, timeout=60) as answer:
        assert len(json.loads(answer.read())["predictions"]) == 5300
    peak = _memory_bytes(process.pid, "VmHWM")
    time.sleep(1)
    assert peak - before < 100e6, f"{name}: {(peak - before) / 1e6:.0f} MB allocated"
    assert _memory_bytes(process.pid) - before < 50e6


def _cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _memory_bytes(pid, field="VmRSS"):
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    return int(status.split(f"{field}:")[1].split()[0]) * 1024


@pytest.mark.slow  # a server process's memory after the whole set: the full tier
def test_after_the_whole_hostile_set_the_server_is_idle_answers_fast_and_has_not_grown(
        export_dir):
    process, port = _start(export_dir)
    try:
        _normal_request_seconds(port)  # the first call's own costs, before the baseline
        memory_before = _memory_bytes(process.pid)
        # Idle and half-open connections, held while everything else happens.
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(1000)]
        half_open = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
        for connection in half_open:
            connection.sendall(PREDICT + b"Content-Length: 100\r\n\r\n{")  # and never the rest
        for _ in range(3):
            for _, data, statuses in CASES:
                assert _send(port, data) in statuses
        assert _typical_request_seconds(port) < 0.1
        time.sleep(1)  # whatever the set started has a second to finish
        cpu_before = _cpu_seconds(process.pid)
        time.sleep(1)
        assert _cpu_seconds(process.pid) - cpu_before < 0.1  # idle
        assert _memory_bytes(process.pid) - memory_before < 100e6
        # Connections that never sent a request are closed by the server (keep-alive timeout).
        deadline = time.monotonic() + 15
        for connection in idle[:20]:
            connection.settimeout(max(0.1, deadline - time.monotonic()))
            assert connection.recv(1) == b""
        for connection in idle + half_open:
            connection.close()
        assert _typical_request_seconds(port) < 0.1
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_client_refused_413_is_disconnected_and_cannot_hold_the_connection(server):
    _, port = server
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(PREDICT + b"Content-Length: 999999999999\r\n\r\n")
        answer = b""
        while chunk := connection.recv(65536):  # the answer, then the server closes
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 ") and b"connection: close" in answer.lower()


def test_an_answer_over_the_limit_is_refused_before_the_model_runs_naming_the_limit(
        export_dir):
    import tensorflow as tf

    from tfae.serving.servables import Batcher, Limits, ServingError

    served = tf.saved_model.load(str(export_dir / "1"))
    decode = Batcher(served.signatures["decode"], limits=Limits(max_answer_bytes=1 << 20))
    assert decode.row_bytes == 28 * 28 * 4
    decode.check_limits(np.zeros((334, 4), np.float32))  # 1.0 MiB answers
    with pytest.raises(ServingError, match=r"The answer to 335 rows would be 1.0 MiB, over the "
                                           r"limit of 1 MiB \(--max-answer-mb\)") as refused:
        decode.check_limits(np.zeros((335, 4), np.float32))
    assert refused.value.code == "INVALID_ARGUMENT"
    files = Batcher(served.signatures["encode_bytes"], limits=Limits(max_image_pixels=100))
    files.check_limits(np.array([_png_declaring(10, 10)], object))
    with pytest.raises(ServingError, match="item 1 declares 11x10 pixels, over the limit of 100"):
        files.check_limits(np.array([_png_declaring(10, 10), _png_declaring(11, 10)], object))


@pytest.mark.slow  # a server process's log: the full tier
def test_a_client_gone_mid_body_leaves_no_traceback_in_the_log(export_dir, tmp_path):
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "tfae_cli.main", "serve", str(export_dir),
                                "--port", "0", "--grpc-port", "0"],
                               stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        port = int(process.stdout.readline().split(" on ")[1].split()[0].split(":")[2]
                   .split("/")[0])
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
                connection.sendall(PREDICT + b"Content-Length: 1000\r\n\r\n{\"instances\": [")
                time.sleep(0.2)  # the body is being read: then the client hangs up
        assert _typical_request_seconds(port) < 0.1
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    assert "Traceback" not in (tmp_path / "serve.log").read_text()


def test_a_long_signature_name_is_not_echoed_back_whole(server):
    _, port = server
    body = json.dumps({"signature_name": "x" * 10_000, "instances": [[0]]}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/deep:predict", body)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    message = json.loads(refused.value.read())["error"]
    assert refused.value.code == 400 and len(message) < 200 and "10,000 characters" in message


def test_pixels_of_an_image_over_the_pixel_limit_are_refused_before_the_model_runs(export_dir):
    import tensorflow as tf

    from tfae.serving.servables import Batcher, Limits, ServingError

    served = tf.saved_model.load(str(export_dir / "1"))
    pixels = Batcher(served.signatures["encode_pixels"], limits=Limits(max_image_pixels=1000))
    pixels.check_limits(np.zeros((1, 10, 100, 1), np.uint8))
    with pytest.raises(ServingError, match="images of 101x10 pixels, over the limit of 1,000"):
        pixels.check_limits(np.zeros((1, 10, 101, 1), np.uint8))
