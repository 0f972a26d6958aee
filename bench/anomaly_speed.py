"""Anomaly scores: ``tfae score`` on MNIST's test split, and the ``score`` signature served.

A ``deep`` run is trained on MNIST's ones (``--classes 1``, ``--epochs``), which calibrates and
exports it. Then, in this process once TensorFlow has started:

- ``tfae.apply.score`` of the 10,000 test images (the run's calibration kept from the export)
  against ``tfae.apply.encode`` of the same images, ``--rounds`` times in turns (medians);
  goal: scoring in < 5 s;
- ``tfae serve`` of the export (one worker), one client on a keep-alive REST connection sending
  batches of 64 float32 images (row format) to ``score`` and to ``encode`` in turns: images/s;
  goal: ``score`` >= 3,000 images/s; and the same through gRPC (``Predict``, one tensor).

Usage:
    python bench/anomaly_speed.py [--epochs 5] [--rounds 3] [--requests 100] [--write FILE]
"""

import argparse
import gc
import json
import pathlib
import signal
import socket
import statistics
import sys
import tempfile
import time

import grpc
import numpy as np
import orjson
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from fit_throughput import machine, publish
from serve_load import read_answer, start_server
import tfae
from tfae import apply
from tfae.config import FitConfig

SECTION = "## Anomaly scores: tfae score and the score signature"
BATCH = 64


def served_rate(port, signature, images, requests):
    """Images/s of ``requests`` row-format REST requests of ``images`` to ``signature``, one
    after another on a keep-alive connection (after 5 not timed)."""
    body = json.dumps({"signature_name": signature, "instances": images.tolist()}).encode()
    request = (f"POST /v1/models/ones:predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
               ).encode() + body
    # This process holds TensorFlow's millions of objects, which Python's garbage collector
    # walked for up to 0.3 s while the client read a score answer's 2,000 lists: a client's cost,
    # not the server's.
    gc.disable()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        answers = connection.makefile("rb")
        for count in range(5 + requests):
            if count == 5:
                start = time.perf_counter()
            connection.sendall(request)
            status, answer = read_answer(answers)
            # orjson, as tfae serve itself: Python's json took 20 ms to read a score answer.
            assert status == 200 and len(orjson.loads(answer)["predictions"]) == len(images), \
                answer[:300]
    rate = requests * len(images) / (time.perf_counter() - start)
    gc.enable()
    return rate


def grpc_rate(port, signature, images, requests):
    """Images/s of ``requests`` gRPC ``Predict`` calls of ``images`` to ``signature``, one after
    another on one channel (after 5 not timed), as a TF Serving client sends them."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "ones", signature
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(images))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for count in range(5 + requests):
            if count == 5:
                start = time.perf_counter()
            response = stub.Predict(request, timeout=60)
            assert len(tf.make_ndarray(next(iter(response.outputs.values())))) == len(images)
    return requests * len(images) / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--write", type=pathlib.Path)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        work = pathlib.Path(work)
        run = tfae.fit(FitConfig(model="deep", classes="1", epochs=arguments.epochs,
                                 batch_size=128),
                       work / "ones", export=True, export_dir=work / "exports" / "ones",
                       verbose=0)
        seconds = {"score": [], "encode": []}
        for _ in range(arguments.rounds):
            start = time.perf_counter()
            scored = apply.score(run.run_dir, split="test", verbose=False)
            seconds["score"].append(time.perf_counter() - start)
            start = time.perf_counter()
            apply.encode(run.run_dir, work / "codes.npz", split="test", verbose=False)
            seconds["encode"].append(time.perf_counter() - start)
        images = np.random.default_rng(0).random((BATCH, 28, 28, 1)).round(3).astype(np.float32)
        server, rest_port, grpc_port = start_server(work / "exports" / "ones", 1)
        try:
            rates = {(protocol, signature): [] for protocol in ("REST", "gRPC")
                     for signature in ("score", "encode")}
            for _ in range(arguments.rounds):
                for protocol, signature in rates:
                    measure = served_rate if protocol == "REST" else grpc_rate
                    rates[protocol, signature].append(measure(
                        rest_port if protocol == "REST" else grpc_port, signature, images,
                        arguments.requests))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    score_seconds, encode_seconds = (statistics.median(seconds[name])
                                     for name in ("score", "encode"))
    rate = {key: statistics.median(values) for key, values in rates.items()}
    lines = [SECTION, "",
             f"`python bench/anomaly_speed.py --epochs {arguments.epochs} --rounds "
             f"{arguments.rounds} --requests {arguments.requests}` on "
             f"{time.strftime('%Y-%m-%d')}, {machine()}: a `deep` run trained on MNIST's ones "
             f"({arguments.epochs} epochs), in one process after TensorFlow started; medians of "
             f"{arguments.rounds} rounds in turns.", "",
             "| | measured | against | goal |", "|---|---|---|---|",
             f"| `tfae.apply.score` of the 10,000 test images (reconstruction; {scored.flagged:,} "
             f"flagged) | {score_seconds:.2f} s | {score_seconds / encode_seconds:.2f}x "
             f"`encode` of them ({encode_seconds:.2f} s) | < 5 s: "
             f"{'met' if score_seconds < 5 else '**missed**'} |",
             *(f"| `score` signature through `tfae serve`'s {protocol}, batches of {BATCH}, one "
               f"client | {rate[protocol, 'score']:,.0f} images/s | "
               f"{rate[protocol, 'score'] / rate[protocol, 'encode']:.2f}x `encode` "
               f"({rate[protocol, 'encode']:,.0f} images/s) | " + (
                   f">= 3,000: {'met' if rate[protocol, 'score'] >= 3000 else '**missed**'} |"
                   if protocol == "REST" else "(the issue sets REST's) |")
               for protocol in ("REST", "gRPC")), "",
             "The REST client reads each answer with orjson, its garbage collector paused; the "
             "gRPC client sends the images as one tensor, as TF Serving's clients do. `encode`, "
             "which answers 10 numbers an image, is each protocol's ceiling for one client "
             f"sending {BATCH * 784:,} numbers a request; `score` answers 786 (the error map), "
             "decodes the codes it encodes and measures their distances to the reference codes.",
             ""]
    publish("\n".join(lines), arguments.write)


if __name__ == "__main__":
    sys.exit(main())
