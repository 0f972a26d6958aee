"""``tfae serve`` under load and under abuse, over REST and gRPC, on loopback.

Exports an untrained ``deep`` model (784-500-200-100-10; weights do not change the cost), serves
it with ``tfae serve --workers W`` for each W of ``--workers``, and runs ``--clients`` concurrent
clients per protocol and batch size (1 and 64), each a process on its own connection, for
``--seconds`` or ``--requests`` requests each, whichever ends first. Every answer is checked;
errors are counted. The clients share the 2 cores with the server, so, like ``wrk``, the REST
clients send a prepared request over a raw socket and read the answer by its Content-Length, and
the gRPC clients reuse one prepared ``PredictRequest`` with TF Serving's official stub.

Then, against the last server: **abuse** (50 half-open connections held ``--abuse-seconds``, and
the hostile requests of tests/test_serve_hostile.py sent over and over meanwhile), timing every
hostile answer and a normal request every 50 ms; **big requests** (the largest REST body taken,
then a 20,000-image gRPC request) timing a normal request every 20 ms meanwhile; and **SIGTERM**
while a large request is in flight, timing the exit.

Usage:
    python bench/serve_load.py [--clients 8] [--seconds 15] [--requests 2000] [--workers 1,2]
                               [--abuse-seconds 20] [--write docs/performance.md]
"""

import argparse
import json
import multiprocessing
import pathlib
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import grpc
import keras
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from fit_throughput import cpu_model, write_section
from tfae.exports import export_saved_model
from tfae.families import build_model

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from test_serve_hostile import CASES, PREDICT  # noqa: E402  the one list of hostile requests

SECTION = "## tfae serve under load"
SPAWN = multiprocessing.get_context("spawn")  # no forked copy of the server's TensorFlow state


def rest_client(port, batch, seconds, requests, ready, results):
    """One REST client process: keep-alive requests until its count or time is up, once all
    are ready (waiting keeps the clients' start-up off the clock)."""
    body = json.dumps({"signature_name": "encode", "instances": _images(batch).tolist()})
    request = (f"POST /v1/models/deep:predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
               ).encode() + body.encode()
    latencies, errors = [], 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        answers = connection.makefile("rb")
        ready.wait()
        deadline = time.perf_counter() + seconds
        while len(latencies) < requests and time.perf_counter() < deadline:
            start = time.perf_counter()
            connection.sendall(request)
            status, answer = read_answer(answers)
            latencies.append(time.perf_counter() - start)
            errors += status != 200 or len(json.loads(answer)["predictions"]) != batch
    results.put((latencies, errors))


def grpc_client(port, batch, seconds, requests, ready, results):
    """One gRPC client process, calling ``Predict`` as a TF Serving user's code does."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "deep", "encode"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(_images(batch)))
    latencies, errors = [], 0
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        stub.Predict(request, timeout=30)  # connects
        ready.wait()
        deadline = time.perf_counter() + seconds
        while len(latencies) < requests and time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                response = stub.Predict(request, timeout=30)
                errors += response.outputs["codes"].tensor_shape.dim[0].size != batch
            except grpc.RpcError:
                errors += 1
            latencies.append(time.perf_counter() - start)
    results.put((latencies, errors))


def _images(batch):
    return np.random.default_rng(0).random((batch, 28, 28, 1)).round(3).astype(np.float32)


def read_answer(answers):
    """``(status, body)`` of the next HTTP/1.1 answer on a keep-alive connection's file."""
    status = int(answers.readline().split()[1])
    length = 0
    while (line := answers.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return status, answers.read(length)


def load(client, port, batch, clients, seconds, requests):
    """``clients`` client processes (not threads: they would share a GIL), started before the
    clock; requests/s, latency percentiles and errors."""
    ready, queue = SPAWN.Barrier(clients + 1), SPAWN.Queue()
    processes = [SPAWN.Process(target=client, args=(port, batch, seconds, requests, ready, queue))
                 for _ in range(clients)]
    for process in processes:
        process.start()
    ready.wait()
    start = time.perf_counter()
    results = [queue.get() for _ in processes]
    elapsed = time.perf_counter() - start
    for process in processes:
        process.join()
    milliseconds = sorted(1000 * latency for latencies, _ in results for latency in latencies)
    return {"batch": batch, "requests": len(milliseconds), "rate": len(milliseconds) / elapsed,
            "p50": statistics.median(milliseconds),
            "p99": milliseconds[min(len(milliseconds) - 1, int(0.99 * len(milliseconds)))],
            "errors": sum(errors for _, errors in results)}


def start_server(export_dir, workers):
    server = subprocess.Popen(
        [sys.executable, "-m", "tfae_cli.main", "serve", str(export_dir), "--port", "0",
         "--grpc-port", "0", "--workers", str(workers)], stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True)
    line = server.stdout.readline()  # printed once both protocols answer
    rest_port = int(line.split(" on ")[1].split()[0].split(":")[2].split("/")[0])
    grpc_port = int(line.split(" and ")[1].split()[0].split(":")[1])
    return server, rest_port, grpc_port


def normal_request_seconds(port):
    """One batch-1 REST request on a new connection, as a bystander during abuse sends it."""
    body = json.dumps({"signature_name": "encode", "instances": _images(1).tolist()}).encode()
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(PREDICT + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        status, _ = read_answer(connection.makefile("rb"))
    assert status == 200, status
    return time.perf_counter() - start


def abuse(port, seconds):
    """Half-open connections and the hostile set, over and over, for ``seconds``; the slowest
    hostile answer and the bystander's latencies."""
    half_open = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
    for connection in half_open:
        connection.sendall(PREDICT + b"Content-Length: 100\r\n\r\n{")
    stop, bystander = threading.Event(), []

    def watch():
        while not stop.is_set():
            bystander.append(normal_request_seconds(port))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    slowest, refused, deadline = 0.0, 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name, data, statuses in CASES:
            start = time.monotonic()
            with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
                try:
                    connection.sendall(data)
                    answer = connection.recv(64)
                except (BrokenPipeError, ConnectionResetError):
                    answer = b""
            status = int(answer.split()[1]) if answer.startswith(b"HTTP/1.1 ") else None
            assert status in statuses, (name, status)
            slowest, refused = max(slowest, time.monotonic() - start), refused + 1
    stop.set()
    watcher.join()
    for connection in half_open:
        connection.close()
    return {"hostile": refused, "slowest": slowest, "bystander_p50": statistics.median(bystander),
            "bystander_max": max(bystander)}


def big_requests(rest_port, grpc_port):
    """A bystander's batch-1 REST latency while one client sends the largest REST request the
    server takes (a JSON body just under ``--max-json-mb``'s 16 MiB) and another a gRPC request
    of 20,000 images (63 MB), each three times; and how long those took."""
    images = _images(2200)
    body = json.dumps({"signature_name": "encode",
                       "instances": images.astype(float).round(3).tolist()}).encode()
    assert len(body) < 16 * 2**20, len(body)
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "deep", "encode"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(np.tile(images, (9, 1, 1, 1))[:20000]))
    stop, bystander, big = threading.Event(), [], {"REST": [], "gRPC": []}

    def watch():
        while not stop.is_set():
            bystander.append(normal_request_seconds(rest_port))
            time.sleep(0.02)

    def rest_big():
        for _ in range(3):
            start = time.perf_counter()
            with socket.create_connection(("127.0.0.1", rest_port), timeout=120) as connection:
                connection.sendall(PREDICT + b"Content-Length: %d\r\n\r\n" % len(body) + body)
                assert read_answer(connection.makefile("rb"))[0] == 200
            big["REST"].append(time.perf_counter() - start)

    def grpc_big():
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}", options=[
                ("grpc.max_send_message_length", 2**30),
                ("grpc.max_receive_message_length", 2**30)]) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for _ in range(3):
                start = time.perf_counter()
                stub.Predict(request, timeout=120)
                big["gRPC"].append(time.perf_counter() - start)

    watcher = threading.Thread(target=watch)
    watcher.start()
    for sender in (rest_big, grpc_big):
        thread = threading.Thread(target=sender)
        thread.start()
        thread.join()
    stop.set()
    watcher.join()
    return {"bystander_p50": statistics.median(bystander), "bystander_max": max(bystander),
            "rest_mb": len(body) / 1e6, "rest_seconds": statistics.median(big["REST"]),
            "grpc_mb": request.ByteSize() / 1e6, "grpc_seconds": statistics.median(big["gRPC"])}


def sigterm_drain(export_dir):
    """Seconds from SIGTERM to exit with a 2,048-image request in flight, and its status."""
    server, port, _ = start_server(export_dir, 1)
    body = json.dumps({"signature_name": "encode",
                       "instances": _images(2048).astype(float).round(3).tolist()}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
        connection.sendall(PREDICT + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        start = time.perf_counter()
        server.send_signal(signal.SIGTERM)
        status, _ = read_answer(connection.makefile("rb"))
    code = server.wait(timeout=60)
    return {"status": status, "exit": code, "seconds": time.perf_counter() - start}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--workers", default="1,2", help="server processes to try, comma-separated")
    parser.add_argument("--abuse-seconds", type=float, default=20)
    parser.add_argument("--write", type=pathlib.Path)
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        export_dir = pathlib.Path(folder) / "deep"
        export_saved_model(build_model("deep", (28, 28, 1), hidden=(500, 200, 100),
                                       latent_dim=10), export_dir)
        for workers in [int(count) for count in args.workers.split(",")]:
            server, rest_port, grpc_port = start_server(export_dir, workers)
            for protocol, client, port in (("REST", rest_client, rest_port),
                                           ("gRPC", grpc_client, grpc_port)):
                load(client, port, 1, args.clients, 2, 50)  # warm-up: each worker's first calls
                rows += [{"workers": workers, "protocol": protocol,
                          **load(client, port, batch, args.clients, args.seconds, args.requests)}
                         for batch in (1, 64)]
            if workers == int(args.workers.split(",")[-1]):
                abused = abuse(rest_port, args.abuse_seconds)
                crowded = big_requests(rest_port, grpc_port)
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        drained = sigterm_drain(export_dir)

    lines = [SECTION, "",
             f"`python bench/serve_load.py --clients {args.clients} --seconds {args.seconds:g} "
             f"--requests {args.requests} --workers {args.workers} --abuse-seconds "
             f"{args.abuse_seconds:g}` on {time.strftime('%Y-%m-%d')}; {cpu_model()}, 2 cores "
             "(client processes and server share them), TensorFlow "
             f"{tf.__version__}, Keras {keras.__version__}. `encode` of the `deep` export; REST "
             "in the JSON row format on keep-alive connections, gRPC with TF Serving's stub. "
             "Goals: REST batch-1 p50 <= 3 ms, gRPC <= 2 ms, no errors, batch-64 >= 5,000 "
             "images/s.", "",
             "| workers | protocol | batch | requests | requests/s | images/s | p50 ms | p99 ms "
             "| errors |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {row['workers']} | {row['protocol']} | {row['batch']} | {row['requests']:,} | "
              f"{row['rate']:,.0f} | {row['rate'] * row['batch']:,.0f} | {row['p50']:.2f} | "
              f"{row['p99']:.2f} | {row['errors']} |" for row in rows]
    lines += ["", f"Abuse ({args.abuse_seconds:g} s, {args.workers.split(',')[-1]} worker(s)): "
              f"50 half-open connections held throughout; {abused['hostile']:,} hostile requests "
              f"({len(CASES)} kinds), the slowest answered in {1000 * abused['slowest']:.0f} ms "
              f"(goal < 1,000 ms); a normal request meanwhile: p50 "
              f"{1000 * abused['bystander_p50']:.1f} ms, slowest "
              f"{1000 * abused['bystander_max']:.1f} ms (goal < 100 ms).", "",
              f"Big requests ({args.workers.split(',')[-1]} worker(s)): a REST body of "
              f"{crowded['rest_mb']:.1f} MB (2,200 images, under `--max-json-mb 16`) took "
              f"{crowded['rest_seconds']:.2f} s and a gRPC request of {crowded['grpc_mb']:.0f} MB "
              f"(20,000 images) {crowded['grpc_seconds']:.2f} s, three of each, one after the "
              f"other; a batch-1 REST request sent every 20 ms meanwhile: p50 "
              f"{1000 * crowded['bystander_p50']:.1f} ms, slowest "
              f"{1000 * crowded['bystander_max']:.0f} ms (reading a JSON body holds the worker; "
              "the model runs 1,024 rows at a time, others' requests between).", "",
              f"SIGTERM with a 2,048-image request in flight: it was answered {drained['status']}"
              f" and the server exited {drained['exit']} after {drained['seconds']:.2f} s "
              "(goal: answered, exit within 5 s)."]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.write:
        write_section(args.write, report)


if __name__ == "__main__":
    main()
