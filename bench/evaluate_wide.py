"""``tfae evaluate`` on wide images: time and memory as the pixel count grows.

Makes photo crops (40-120 px squares at seeded places in scikit-learn's two colour photographs,
labelled by photograph and half: four classes), resized to S x S x 3 and written as ``.npz``
files (not timed); trains a ``conv`` run on each for one epoch (not timed: the model's quality
does not change what evaluation costs), then times ``tfae evaluate RUN --quiet`` as a whole
process with an empty cache folder (so the baselines are measured, as on a new data set): wall
time and peak resident memory. The cases, with issue 51's goals:

- 800 crops at 64x64x3: < 30 s, < 2 GB;
- the same 800 crops at 32x32x3, 64x64x3 and 96x96x3: time as d doubles <= 2.5x;
- 20,000 crops at 96x96x3: < 120 s, < 3 GB (``--baselines auto`` then leaves the baselines out:
  their pixels take 2.2 GB as float32; the row says so).

Usage:
    python bench/evaluate_wide.py [--large 20000] [--work DIR] [--write docs/performance.md]
"""

import argparse
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_images

from evaluate_speed import process
from fit_throughput import machine, publish

SECTION = "## Evaluation of wide images: photo crops from 32x32x3 to 96x96x3"


def crops(count, size, seed=0):
    """``(images, labels)``: ``count`` seeded square crops of the sample photographs, each
    40-120 px, resized to ``size`` x ``size``; label = photograph x 2 + (right half)."""
    rng = np.random.default_rng(seed)
    photos = load_sample_images().images
    images = np.empty((count, size, size, 3), np.uint8)
    labels = np.empty(count, np.int64)
    for index in range(count):
        photo = int(rng.integers(len(photos)))
        height, width, _ = photos[photo].shape
        side = int(rng.integers(40, 121))
        top, left = int(rng.integers(height - side)), int(rng.integers(width - side))
        crop = Image.fromarray(photos[photo][top:top + side, left:left + side])
        images[index] = np.asarray(crop.resize((size, size), Image.BILINEAR))
        labels[index] = photo * 2 + int(left + side / 2 > width / 2)
    return images, labels


def case(work, count, size):
    """``(seconds, peak GB, metrics)`` of the first ``tfae evaluate`` of a conv run on ``count``
    crops at ``size``."""
    import json

    data = work / f"crops-{count}-{size}.npz"
    if not data.exists():
        images, labels = crops(count, size)
        np.savez(data, x=images, y=labels)
    run = work / f"run-{count}-{size}"
    if not (run / "model.keras").exists():  # a --work folder's runs are reused
        subprocess.run([sys.executable, "-m", "tfae", "fit", "--model", "conv", "--dataset",
                        str(data), "--epochs", "1", "--no-export", "--out", str(run),
                        "--quiet"], check=True)
    seconds, memory = process([sys.executable, "-m", "tfae", "evaluate", str(run), "--quiet"],
                              tempfile.mkdtemp(prefix="tfae-bench-cache-"))
    return seconds, memory, json.loads((run / "metrics.json").read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=800)
    parser.add_argument("--large", type=int, default=20_000)
    parser.add_argument("--work", type=pathlib.Path)
    parser.add_argument("--write", type=pathlib.Path)
    args = parser.parse_args()
    work = args.work or pathlib.Path(tempfile.mkdtemp(prefix="tfae-wide-"))
    work.mkdir(parents=True, exist_ok=True)

    rows = []
    for count, size in [(args.count, 32), (args.count, 64), (args.count, 96),
                        (args.large, 96)]:
        seconds, memory, metrics = case(work, count, size)
        baselines = "measured" if metrics.get("baselines") else "left out (auto)"
        rows.append((count, size, seconds, memory, metrics["probe_images"], baselines))
        print(rows[-1], flush=True)

    by_size = {size: seconds for count, size, seconds, *_ in rows if count == args.count}
    lines = [
        SECTION, "",
        f"`python bench/evaluate_wide.py --count {args.count} --large {args.large}` on "
        f"{time.strftime('%Y-%m-%d')}: seeded crops of scikit-learn's two sample photographs "
        "(four classes), a `conv` run of one epoch on each set, then the first `tfae evaluate "
        "RUN --quiet` as a whole process, with an empty cache (the baselines measured as on a "
        "new data set). Goals (issue 51): 800 crops at 64x64x3 < 30 s and < 2 GB; 20,000 at "
        "96x96x3 < 120 s and < 3 GB; time as the pixels double <= 2.5x.",
        f"Machine: {machine()}.", "",
        "| images | size | pixels | `tfae evaluate`, first | peak memory | probes fitted on | "
        "baselines |",
        "|---|---|---|---|---|---|---|",
    ]
    for count, size, seconds, memory, probe_images, baselines in rows:
        lines.append(f"| {count:,} | {size}x{size}x3 | {size * size * 3:,} | {seconds:.1f} s | "
                     f"{memory:.2f} GB | {probe_images:,} | {baselines} |")
    lines += ["", "Time as the pixels grow, same 800 images: "
              f"32->64 ({4}x the pixels) {by_size[64] / by_size[32]:.2f}x, "
              f"64->96 ({9 / 4:.2f}x) {by_size[96] / by_size[64]:.2f}x; "
              f"per doubling of d: {(by_size[96] / by_size[32]) ** (1 / np.log2(9)):.2f}x."]
    publish("\n".join(lines) + "\n", args.write)


if __name__ == "__main__":
    main()
