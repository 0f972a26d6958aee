"""Checks a GPU run in minutes: where the corruption ran, and what the GPU gives each family.

For a short ``tfae.fit`` of each family, one process records:

- where its corruption ops ran, read from TensorFlow's own device placement log
  (``tf.debugging.set_log_device_placement``; the ops are those under ``tfae.data.pipeline``'s
  ``tfae_corruption`` name scope), each family trained with its own noise or, if it has none,
  ``gaussian:0.5``, on one device or, with ``--strategy mirrored``, on every local GPU;
- images/s at float32 and at mixed precision (``mixed_float16`` on a GPU, ``mixed_bfloat16``
  on a CPU; the layer-wise ``randomized`` family trains in float32 only), the median epoch
  after the warm-up one, validation included, as ``suite.py`` measures;
- the same layers in a plain ``keras.Model.fit`` script on numpy arrays, on the same device
  (the ratio tfae / plain), for the families that train with ``Model.fit``;
- the share of the device's measured matrix-multiply peak (float32, and 16-bit for the mixed
  runs) that each epoch's arithmetic reaches (``suite.forward_flops``);
- the peak GPU memory of each fit (``tf.config.experimental.get_memory_info``; a CPU has none).

It writes ``device_check.json`` and ``device_check.md`` into ``--out``, prints the table and,
with ``--write``, puts it in a Markdown page in place of its previous run. It exits 1 if a GPU
is visible and any corruption op ran on a CPU. ``--smoke`` runs it in seconds on small subsets,
on whatever device there is (the tests run it on the CPU).

Usage:
    python bench/device_check.py [--smoke] [--families deep,conv] [--epochs 3]
                                 [--strategy mirrored] [--out device_check]
                                 [--write docs/performance.md]
"""

import argparse
import json
import math
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

import tensorflow as tf

import tfae
from fit_throughput import machine, publish
from suite import (KERAS_FAMILIES, _timed, as_arrays, forward_flops, matmul_ceiling,
                   plain_keras_seconds, tfae_seconds)
from tfae import data
from tfae.data.pipeline import CORRUPTION_SCOPE
from tfae.families import build_model, family_names, get_family
from tfae.files import write_text
from tfae.train import execution_for, execution_options

SECTION = "## Device check"
PLACEMENT = re.compile(rf"({CORRUPTION_SCOPE}/\S+): \((\w+)\): (\S+)")
LAYER_WISE = {name for name in family_names() if get_family(name).trainer is not None}


def corruption_placements(families, limit, batch_size, strategy):
    """``{family: {device: [op names]}}``: where each family's corruption ops were placed in a
    one-epoch fit on ``limit`` images, from TensorFlow's placement log.

    The log must be switched on before TensorFlow starts, and it slows every op, so the fits
    run in a child process (``--placements-child``) whose standard error is the log; it writes
    a line ``@@ family`` there before each family's fit. The child's TensorFlow log level is
    its own (0, every line): the level a user sets for their runs (``TF_CPP_MIN_LOG_LEVEL``,
    which silences the placement lines from 1) must not change the verdict.
    """
    child = subprocess.run(
        [sys.executable, __file__, "--placements-child", ",".join(families), "--limit-child",
         str(limit), "--batch-size", str(batch_size), "--strategy", strategy],
        capture_output=True, text=True, errors="replace", check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"})
    if child.returncode != 0:
        sys.exit(f"device_check: the placement run failed:\n{child.stderr[-3000:]}")
    return parse_placements(child.stderr)


def placement_fits(families, limit, batch_size, strategy):
    """``corruption_placements``' child: one-epoch fits with the placement log on."""
    tf.debugging.set_log_device_placement(True)
    with tempfile.TemporaryDirectory() as folder:
        for family in families:
            print(f"\n@@ {family}", file=sys.stderr, flush=True)
            noise = get_family(family).fit_defaults.get("noise", "none")
            config = tfae.FitConfig(model=family, epochs=1, limit=limit, batch_size=batch_size,
                                    noise="gaussian:0.5" if noise == "none" else noise)
            tfae.fit(config, pathlib.Path(folder) / family, export=False, verbose=0,
                     strategy=strategy)
            sys.stderr.flush()


def parse_placements(log):
    """``{family: {device: sorted op names}}`` from a placement log with ``@@ family`` marks.

    TensorFlow prints each placement twice (to stderr and through its logger); names count once.

    Examples:
        >>> parse_placements("@@ deep\\n"
        ...     "tfae_corruption/Cast: (Cast): /job:localhost/replica:0/task:0/device:GPU:0\\n"
        ...     "I0000 placer.cc:162] tfae_corruption/Cast: (Cast): /job:localhost/replica:0/"
        ...     "task:0/device:GPU:0\\n")
        {'deep': {'GPU:0': ['tfae_corruption/Cast']}}
    """
    placements, family = {}, None
    for line in log.splitlines():
        if line.startswith("@@ "):
            family = line[3:].strip()
            placements[family] = {}
            continue
        match = PLACEMENT.search(line)
        if match and family is not None:
            name, _, device = match.groups()
            device = device.rsplit("device:", 1)[-1]
            names = placements[family].setdefault(device, [])
            if name not in names:
                names.append(name)
    return {family: {device: sorted(names) for device, names in devices.items()}
            for family, devices in placements.items()}


def misplaced(placements, gpu_visible):
    """The families whose corruption ran (in part) on a CPU while a GPU was visible, or that
    placed no corruption op at all, each with why.

    Examples:
        >>> misplaced({"deep": {"CPU:0": ["tfae_corruption/Cast"]}}, gpu_visible=True)
        {'deep': '1 corruption op(s) on CPU:0'}
        >>> misplaced({"deep": {"CPU:0": ["tfae_corruption/Cast"]}}, gpu_visible=False)
        {}
        >>> misplaced({"deep": {}}, gpu_visible=False)
        {'deep': 'no corruption op in the placement log'}
    """
    wrong = {}
    for family, devices in placements.items():
        if not devices:
            wrong[family] = "no corruption op in the placement log"
        elif gpu_visible:
            on_cpu = {device: names for device, names in devices.items()
                      if device.startswith("CPU")}
            if on_cpu:
                wrong[family] = ", ".join(f"{len(names)} corruption op(s) on {device}"
                                          for device, names in on_cpu.items())
    return wrong


def peak_memory(device):
    """Peak bytes TensorFlow's allocator held on ``device`` since the last reset; ``None`` for a
    CPU, whose allocator keeps no such count."""
    if device.startswith("CPU"):
        return None
    return tf.config.experimental.get_memory_info(device)["peak"]


def timed_fit(family, args, precision, device):
    """A fit's epoch seconds and peak device memory."""
    if not device.startswith("CPU"):
        tf.config.experimental.reset_memory_stats(device)
    seconds = tfae_seconds(family, args.epochs, args.batch_size, args.limit, precision=precision)
    return _timed(seconds), peak_memory(device)


def family_row(family, args, train, validation, device, peaks):
    """One family's measurements (``main``'s rows), ``train`` and ``validation`` the plain
    script's arrays."""
    model = build_model(family, train.shape[1:])
    # 3x the forward pass for a training step, 1x for validation; the ridge solves of a
    # layer-wise family are not that arithmetic, so it has no share.
    epoch_flops = forward_flops(model) * (3 * len(train) + len(validation))
    row = {"family": family}
    for name, precision in (("float32", "float32"), ("mixed", args.mixed)):
        if name == "mixed" and family in LAYER_WISE:
            continue  # it refuses 16-bit compute (tests/test_precision.py)
        seconds, memory = timed_fit(family, args, precision, device)
        row[name] = {"images_per_s": len(train) / statistics.median(seconds),
                     "epoch_seconds": seconds, "peak_memory_bytes": memory}
        if family not in LAYER_WISE:
            row[name]["peak_share"] = epoch_flops / statistics.median(seconds) / 1e9 / peaks[name]
    if family in KERAS_FAMILIES:
        steps = args.epochs * math.ceil(len(train) / args.batch_size)
        execution = execution_for(model, execution_options(family), steps)
        seconds = _timed(plain_keras_seconds(model, train, validation, args.epochs,
                                             args.batch_size, **execution))
        row["plain_keras"] = {"images_per_s": len(train) / statistics.median(seconds),
                              "epoch_seconds": seconds}
    return row


def markdown(result):
    """The report: the command, the machine, the corruption's placement and one row a family."""
    def rate(row, name):
        return f"{row[name]['images_per_s']:,.0f}" if name in row else "–"

    def share(row, name):
        value = row.get(name, {}).get("peak_share")
        return "–" if value is None else f"{value:.0%}"

    def memory(row, name):
        value = row.get(name, {}).get("peak_memory_bytes")
        return "–" if value is None else f"{value / 2 ** 20:,.0f} MB"

    lines = [SECTION, "",
             f"`{result['command']}` on {result['date']}, {result['seconds']:.0f} s in all. "
             f"Device: **{result['device']}** ({result['device_name']}). Machine: "
             f"{result['machine']}. Training images an epoch: {result['train_images']:,}; "
             f"mixed precision: `{result['mixed']}`; the placement fits' strategy: "
             f"`{result['strategy']}`.", "",
             f"Matrix-multiply peak on the device: {result['peaks']['float32']:,.0f} GFLOP/s "
             f"float32, {result['peaks']['mixed']:,.0f} GFLOP/s in the mixed runs' 16 bits.", "",
             "| family | corruption ops, where | images/s float32 | mixed | plain Keras | "
             "tfae / Keras | of peak, float32 | of peak, mixed | peak memory float32 | mixed |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in result["families"]:
        devices = result["placements"].get(row["family"], {})
        where = ", ".join(f"{len(names)} on {device}" for device, names in devices.items())
        ratio = (f"{row['float32']['images_per_s'] / row['plain_keras']['images_per_s']:.2f}"
                 if "plain_keras" in row else "–")
        lines.append(f"| `{row['family']}` | {where or 'none'} | {rate(row, 'float32')} | "
                     f"{rate(row, 'mixed')} | {rate(row, 'plain_keras')} | {ratio} | "
                     f"{share(row, 'float32')} | {share(row, 'mixed')} | "
                     f"{memory(row, 'float32')} | {memory(row, 'mixed')} |")
    verdict = ("**every corruption op ran on the GPU**" if result["gpu_visible"] and
               not result["misplaced"] else
               "no GPU was visible: the corruption ran on the CPU, as it must"
               if not result["misplaced"] else
               "**misplaced**: " + "; ".join(f"`{family}` {why}"
                                             for family, why in result["misplaced"].items()))
    return "\n".join(lines + ["", f"Corruption placement: {verdict}.", ""])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="small subsets and matrices: seconds, on any device")
    parser.add_argument("--families", default=",".join(family_names()))
    parser.add_argument("--epochs", type=int, help="epochs a fit (default 3; 2 with --smoke)")
    parser.add_argument("--batch-size", type=int, help="default 256; 32 with --smoke")
    parser.add_argument("--strategy", default="default", choices=("default", "mirrored"),
                        help="of the placement fits: mirrored checks every local GPU's pipeline")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("device_check"))
    parser.add_argument("--write", type=pathlib.Path, help="replace this section of a Markdown file")
    parser.add_argument("--placements-child", help=argparse.SUPPRESS)
    parser.add_argument("--limit-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.placements_child:
        placement_fits(args.placements_child.split(","), args.limit_child, args.batch_size,
                       args.strategy)
        return
    families = [name.strip() for name in args.families.split(",") if name.strip()]
    unknown = sorted(set(families) - set(family_names()))
    if unknown or not families:
        parser.error(f"--families: unknown {', '.join(unknown) or '(none given)'}; "
                     f"choose from {', '.join(family_names())}")
    args.epochs = args.epochs or (2 if args.smoke else 3)
    args.batch_size = args.batch_size or (32 if args.smoke else 256)
    args.limit = 1280 if args.smoke else None

    start = time.perf_counter()
    gpus = tf.config.list_physical_devices("GPU")
    device = "GPU:0" if gpus else "CPU:0"
    details = tf.config.experimental.get_device_details(gpus[0]) if gpus else {}
    args.mixed = "mixed_float16" if gpus else "mixed_bfloat16"
    size, repeats = (512, 2) if args.smoke else (8192 if gpus else 4096, 5)
    peaks = {"float32": matmul_ceiling(size, repeats),
             "mixed": matmul_ceiling(size, repeats, dtype=args.mixed.split("_")[1])}
    placements = corruption_placements(families, 512 if args.smoke else 2048, 64, args.strategy)
    splits = data.load("mnist", limit=args.limit)
    train, validation = as_arrays(splits.train), as_arrays(splits.validation)
    rows = [family_row(family, args, train, validation, device, peaks) for family in families]
    result = {
        "command": "python bench/device_check.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"), "machine": machine(), "device": device,
        "device_name": details.get("device_name", "the CPU"), "gpu_visible": bool(gpus),
        "mixed": args.mixed, "strategy": args.strategy, "train_images": int(splits.train.cardinality()), "peaks": peaks,
        "placements": placements, "misplaced": misplaced(placements, bool(gpus)),
        "families": rows, "seconds": time.perf_counter() - start,
    }
    report = markdown(result)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "device_check.json", json.dumps(result, indent=2) + "\n")
    write_text(args.out / "device_check.md", report)
    publish(report, args.write)
    if result["misplaced"]:
        print(f"device_check: corruption misplaced: {result['misplaced']}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
