"""A folder of image files against the bundled MNIST: preparation time and epoch speed.

Writes MNIST's 70,000 images as 28x28 PNG files (``train/<digit>/`` and ``test/<digit>/``, not
timed), then times ``tfae.load`` of that folder (listing, reading, fingerprinting and decoding
every file: the goal is under 60 s) and trains the same family on the folder and on the bundled
MNIST in this process, alternating for ``--rounds`` rounds. Each is scored by its median epoch
after the first of each round (the goal: the folder at >= 0.95x the bundled path's speed).

Usage:
    python bench/own_data.py [--model deep] [--epochs 3] [--rounds 2] [--quick]
                             [--write docs/performance.md]
"""

import argparse
import pathlib
import statistics
import tempfile
import time

import tensorflow as tf

import tfae
from tfae import data
from fit_throughput import machine, publish

SECTION = "## Your own images: a folder of PNGs against the bundled MNIST"


def write_pngs(splits, folder):
    """Writes every image of ``splits`` as ``folder/{train,test}/<label>/<n>.png``."""
    count = 0
    for name, split in (("train", splits.train.concatenate(splits.validation)),
                        ("test", splits.test)):
        for index, (image, label) in enumerate(split.as_numpy_iterator()):
            path = folder / name / str(label) / f"{index}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(tf.io.encode_png(image).numpy())
            count += 1
    return count


def epoch_seconds(model, epochs, dataset, run_dir, limit):
    config = tfae.FitConfig(model=model, epochs=epochs, dataset=str(dataset), limit=limit)
    return tfae.fit(config, run_dir, export=False, verbose=0).history["seconds"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deep")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="2,000 images: checks, no numbers")
    parser.add_argument("--write", type=pathlib.Path, help="replace this section of a Markdown file")
    args = parser.parse_args()

    limit = 2000 if args.quick else None
    with tempfile.TemporaryDirectory() as work:
        work = pathlib.Path(work)
        files = write_pngs(data.load("mnist", limit=limit), work / "mnist-pngs")
        start = time.perf_counter()
        splits = data.load(str(work / "mnist-pngs"))
        prepare = time.perf_counter() - start
        # The folder's train/ holds MNIST's training images, validation included: the same
        # 54,000 train and 6,000 validation images as the bundled path, and the same test split.
        sizes = [int(split.cardinality()) for split in (splits.train, splits.validation,
                                                         splits.test)]
        print(f"folder splits: {sizes}")
        bundled, folder = [], []
        for round_ in range(args.rounds):
            bundled += epoch_seconds(args.model, args.epochs, "mnist", work / f"b{round_}",
                                     limit)[1:]
            folder += epoch_seconds(args.model, args.epochs, work / "mnist-pngs",
                                    work / f"f{round_}", limit)[1:]
    ratio = statistics.median(bundled) / statistics.median(folder)
    report = "\n".join([
        SECTION, "",
        f"`python bench/own_data.py --model {args.model} --epochs {args.epochs} --rounds "
        f"{args.rounds}{' --quick' if args.quick else ''}` on {time.strftime('%Y-%m-%d')}: MNIST "
        f"written as {files:,} PNG files, then prepared by `tfae.load` and trained on, beside "
        f"the bundled MNIST, in one process; median epoch after each run's first.",
        f"Machine: {machine()}.", "",
        "| measure | value | goal | |", "|---|---|---|---|",
        f"| preparing the folder ({files:,} files: list, read, fingerprint, decode) | "
        f"{prepare:.1f} s | < 60 s | {'met' if prepare < 60 else '**missed**'} |",
        f"| `{args.model}` epoch on the bundled MNIST | {statistics.median(bundled):.2f} s | | |",
        f"| `{args.model}` epoch on the folder | {statistics.median(folder):.2f} s | | |",
        f"| folder speed / bundled speed | **{ratio:.3f}** | >= 0.95 | "
        f"{'met' if ratio >= 0.95 else '**missed**'} |", ""])
    publish(report, args.write)


if __name__ == "__main__":
    main()
