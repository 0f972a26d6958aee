"""Image files to ``tfae serve``: a JPEG or PNG request against the float32 request of the same image.

A lone client on a keep-alive REST connection sends one image at a time, in turns: as float32
JSON to ``encode`` (the image as tfae's pipeline makes it), and as the file, ``{"b64": ...}``,
to ``encode_bytes``, which decodes, resizes and scales inside the SavedModel. Two images: an
MNIST-sized 28x28 grayscale PNG and JPEG, and a 96x96 colour JPEG (a crop of a sample
photograph), which the export resizes to its 28x28 grayscale. Goal: the file's p50 latency
within 1.5x of the float32 request's.

Usage:
    python bench/serve_images.py [--requests 500] [--write docs/performance.md]
"""

import argparse
import base64
import json
import pathlib
import signal
import socket
import statistics
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

from fit_throughput import machine, publish
from serve_load import PREDICT, read_answer, start_server
from tfae.exports import export_saved_model
from tfae.families import build_model

SECTION = "## Serving image files: a JPEG against float32"


def latencies(port, bodies, requests):
    """Each body's request latencies in milliseconds, the bodies sent in turns on one
    keep-alive connection."""
    times = {name: [] for name in bodies}
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        answers = connection.makefile("rb")
        for _ in range(requests):
            for name, body in bodies.items():
                start = time.perf_counter()
                connection.sendall(PREDICT + b"Content-Length: %d\r\n\r\n" % len(body) + body)
                status, answer = read_answer(answers)
                times[name].append(1000 * (time.perf_counter() - start))
                assert status == 200, (name, answer[:200])
    return times


def bodies():
    """The requests: each image as float32 JSON and as its file."""
    from sklearn.datasets import load_sample_images

    digit = np.random.default_rng(0).integers(0, 256, (28, 28, 1), dtype=np.uint8)
    photo = load_sample_images().images[0][100:196, 200:296]
    photo_as_model_takes = tf.image.resize(tf.image.rgb_to_grayscale(photo), (28, 28),
                                           antialias=True).numpy().round()

    def floats(image):
        return json.dumps({"signature_name": "encode",
                           "instances": (np.asarray(image)[np.newaxis] / 255).round(4).tolist()})

    def file(encoded):
        return json.dumps({"signature_name": "encode_bytes", "instances": [
            {"b64": base64.b64encode(encoded.numpy()).decode()}]})

    return {"28x28 float32": floats(digit), "28x28 PNG": file(tf.io.encode_png(digit)),
            "28x28 JPEG": file(tf.io.encode_jpeg(digit, quality=95)),
            "96x96 colour float32 (resized first)": floats(photo_as_model_takes),
            "96x96 colour JPEG": file(tf.io.encode_jpeg(photo, quality=95))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--write", type=pathlib.Path)
    args = parser.parse_args()
    requests = {name: body.encode() for name, body in bodies().items()}
    with tempfile.TemporaryDirectory() as folder:
        export_dir = pathlib.Path(folder) / "deep"
        export_saved_model(build_model("deep", (28, 28, 1), hidden=(500, 200, 100),
                                       latent_dim=10), export_dir)
        server, rest_port, _ = start_server(export_dir, 1)
        try:
            latencies(rest_port, requests, 20)  # warm-up: each signature's first calls
            times = latencies(rest_port, requests, args.requests)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    p50 = {name: statistics.median(values) for name, values in times.items()}
    ratios = {"28x28 PNG": p50["28x28 PNG"] / p50["28x28 float32"],
              "28x28 JPEG": p50["28x28 JPEG"] / p50["28x28 float32"],
              "96x96 colour JPEG": p50["96x96 colour JPEG"]
              / p50["96x96 colour float32 (resized first)"]}
    lines = [SECTION, "",
             f"`python bench/serve_images.py --requests {args.requests}` on "
             f"{time.strftime('%Y-%m-%d')}, {machine()}: one client on a keep-alive REST "
             "connection sends each request in turns, one image a request, to `tfae serve` (one "
             "worker) of the `deep` export (784-500-200-100-10); the float32 requests go to "
             "`encode`, the files to `encode_bytes`. Goal: a file's p50 within 1.5x of the "
             "float32 request of the same image.", "",
             "| request | bytes | p50 ms | p90 ms | x float32 |", "|---|---|---|---|---|"]
    for name, values in times.items():
        ordered = sorted(values)
        ratio = f"{ratios[name]:.2f}x" if name in ratios else ""
        lines.append(f"| {name} | {len(requests[name]):,} | {p50[name]:.2f} | "
                     f"{ordered[int(0.9 * len(ordered))]:.2f} | {ratio} |")
    worst = max(ratios.values())
    lines += ["", f"Goal (<= 1.5x): {'met' if worst <= 1.5 else '**missed**'}, the worst "
              f"{worst:.2f}x. The file requests are smaller (the JSON of a float32 image spells "
              "every pixel), and decoding a small file costs less than reading its JSON.", ""]
    publish("\n".join(lines), args.write)


if __name__ == "__main__":
    sys.exit(main())
