"""A ``tfae serve`` worker's cost to start: time from launch to the first answer, and each
worker's peak resident memory.

Starts ``tfae serve EXPORT --workers 2`` (so the workers are processes of their own, as uvicorn
starts them), sends a one-image ``encode`` over REST until one is answered, then reads each
worker's peak RSS (``VmHWM`` in ``/proc``) and stops the server. Each round is a fresh server.

Usage:
    python bench/serve_worker.py EXPORT_DIR [--rounds 3] [--port 8611]
"""

import argparse
import json
import os
import signal
import subprocess
import time
import urllib.request


def one_round(export_dir, port):
    """``(seconds to the first answer, [each worker's peak RSS in MB])``."""
    start = time.monotonic()
    server = subprocess.Popen(
        ["tfae", "serve", export_dir, "--name", "model", "--port", str(port), "--grpc-port",
         str(port + 1), "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    body = json.dumps({"signature_name": "encode",
                       "instances": [[[[0.0]] * 28] * 28]}).encode()
    try:
        while True:
            try:
                urllib.request.urlopen(urllib.request.Request(
                    f"http://127.0.0.1:{port}/v1/models/model:predict", body), timeout=2).read()
                break
            except OSError:
                if server.poll() is not None:
                    raise SystemExit("serve_worker: the server stopped before answering")
                time.sleep(0.05)
        first = time.monotonic() - start
        time.sleep(1)  # the other worker, which did not answer, has loaded too
        workers = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True,
                                 text=True).stdout.split()
        peaks = []
        for pid in workers:
            status = open(f"/proc/{pid}/status").read()
            peak = int(status.split("VmHWM:")[1].split()[0]) / 1024
            if peak > 100:  # a worker, not uvicorn's small supervisor helpers
                peaks.append(round(peak))
        return first, peaks
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=8611)
    args = parser.parse_args()
    for _ in range(args.rounds):
        first, peaks = one_round(args.export_dir, args.port)
        print(json.dumps({"first_answer_s": round(first, 2), "worker_peak_rss_mb": peaks}))


if __name__ == "__main__":
    main()
