"""Load on loopback against ``tfae serve``: requests/s and latency percentiles, batch 1 and 64.

Exports an untrained ``deep`` model (784-500-200-100-10; weights do not change the cost), serves
it with ``tfae serve --workers W`` for each W of ``--workers``, and runs ``--clients`` concurrent
clients, each a process on its own keep-alive connection, for ``--seconds`` per batch size or ``--requests``
requests each, whichever ends first. Every answer's status and JSON are checked; errors are
counted. The clients share the 2 cores with the server, so, like ``wrk``, they send a prepared
request over a raw socket and read the answer by its Content-Length: ``http.client``'s header
parsing would cost the clients about as much CPU as the server spends on a request.

Usage:
    python bench/serve_load.py [--clients 8] [--seconds 15] [--requests 2000] [--workers 1,2]
                               [--write docs/performance.md]
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
import time
import urllib.parse

import keras
import numpy as np
import tensorflow as tf

from fit_throughput import cpu_model, write_section
from tfae.export import export_saved_model
from tfae.families import build_model

SECTION = "## tfae serve under load"
SPAWN = multiprocessing.get_context("spawn")  # no forked copy of the server's TensorFlow state


def client(port, body, seconds, requests, ready, results):
    """One client process: keep-alive requests until its count or time is up, once all are ready.

    Waiting at ``ready`` keeps the clients' start-up (each imports this module, TensorFlow and all)
    off the clock; the latencies and errors go to the ``results`` queue.
    """
    request = (f"POST /v1/models/deep:predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
               ).encode() + body.encode()
    latencies, errors = [], []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        answers = connection.makefile("rb")
        ready.wait()
        deadline = time.perf_counter() + seconds
        for _ in range(requests):
            if time.perf_counter() > deadline:
                break
            start = time.perf_counter()
            connection.sendall(request)
            status, answer = read_answer(answers)
            latencies.append(time.perf_counter() - start)
            if status != 200 or "predictions" not in json.loads(answer):
                errors.append(status)
    results.put((latencies, errors))


def read_answer(answers):
    """``(status, body)`` of the next HTTP/1.1 answer on a keep-alive connection's file."""
    status = int(answers.readline().split()[1])
    length = 0
    while (line := answers.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return status, answers.read(length)


def load(port, batch, clients, seconds, requests):
    """``clients`` client processes (not threads: they would share the server's GIL), started
    before the clock."""
    images = np.random.default_rng(0).random((batch, 28, 28, 1)).round(3).tolist()
    body = json.dumps({"signature_name": "encode", "instances": images})
    ready, queue = SPAWN.Barrier(clients + 1), SPAWN.Queue()
    processes = [SPAWN.Process(target=client, args=(port, body, seconds, requests, ready, queue))
                 for _ in range(clients)]
    for process in processes:
        process.start()
    ready.wait()  # every client started and connected
    start = time.perf_counter()
    results = [queue.get() for _ in processes]
    elapsed = time.perf_counter() - start
    for process in processes:
        process.join()
    latencies = [latency for latencies, _ in results for latency in latencies]
    errors = [error for _, errors in results for error in errors]
    milliseconds = sorted(1000 * latency for latency in latencies)
    return {"batch": batch, "requests": len(latencies), "rate": len(latencies) / elapsed,
            "p50": statistics.median(milliseconds),
            "p99": milliseconds[min(len(milliseconds) - 1, int(0.99 * len(milliseconds)))],
            "errors": len(errors)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--workers", default="1,2", help="server processes to try, comma-separated")
    parser.add_argument("--write", type=pathlib.Path)
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        export_dir = pathlib.Path(folder) / "deep"
        study_deep = build_model("deep", (28, 28, 1), hidden=(500, 200, 100), latent_dim=10)
        export_saved_model(study_deep, export_dir)
        for workers in [int(count) for count in args.workers.split(",")]:
            server = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "serve", str(export_dir), "--port", "0",
                 "--workers", str(workers)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True)
            line = server.stdout.readline()  # printed once every worker has loaded the model
            port = urllib.parse.urlsplit(line.split(" on ")[1].split()[0]).port
            load(port, 1, args.clients, 2, 50)  # warm-up: each worker's first calls
            rows += [{"workers": workers, **load(port, batch, args.clients, args.seconds,
                                                 args.requests)} for batch in (1, 64)]
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)

    lines = [SECTION, "",
             f"`python bench/serve_load.py --clients {args.clients} --seconds {args.seconds:g} "
             f"--requests {args.requests} --workers {args.workers}` on {time.strftime('%Y-%m-%d')}; {cpu_model()}, 2 cores "
             "(client processes and server share them), TensorFlow "
             f"{tf.__version__}, Keras {keras.__version__}. `encode` of the `deep` export, JSON row "
             "format, keep-alive connections. Goal: batch-1 p50 under 5 ms, no errors.", "",
             "| workers | batch | requests | requests/s | images/s | p50 ms | p99 ms | errors |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {row['workers']} | {row['batch']} | {row['requests']:,} | {row['rate']:,.0f} | "
              f"{row['rate'] * row['batch']:,.0f} | {row['p50']:.2f} | {row['p99']:.2f} | "
              f"{row['errors']} |" for row in rows]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.write:
        write_section(args.write, report)


if __name__ == "__main__":
    main()
