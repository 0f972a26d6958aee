"""Colourisation, the study's second future work: every family trained with ``--noise grayscale``.

The data are crops of scikit-learn's two sample photographs (``tfae.data.sample_photos``): training
crops from the left three quarters of each photograph, test crops from the right quarter. Each
family trains on grayscale inputs with the colour originals as targets, then ``tfae.evaluation``
measures on the held-out crops the PSNR of the grayscale inputs and of the colourised outputs,
both against the originals. The goal: the best family beats the grayscale input by >= 2 dB.

Usage:
    python bench/colorization.py [--epochs 10] [--size 32] [--stride 8] [--models all]
                                 [--quick] [--write docs/performance.md]
"""

import argparse
import pathlib
import tempfile
import time


import tfae
from fit_throughput import machine, publish
from tfae.data.sample_photos import write_crops
from tfae.families import family_names

SECTION = "## Colorization: grayscale crops of the sample photographs back to colour"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--models", default="all")
    parser.add_argument("--quick", action="store_true", help="few crops and one epoch: checks")
    parser.add_argument("--write", type=pathlib.Path, help="replace this section of a Markdown file")
    args = parser.parse_args()

    stride, epochs = (48, 1) if args.quick else (args.stride, args.epochs)
    models = family_names() if args.models == "all" else args.models.split(",")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        crops = write_crops(pathlib.Path(work) / "crops", args.size, stride)
        for model in models:
            config = tfae.FitConfig(model=model, dataset=str(crops), noise="grayscale",
                                    epochs=epochs)
            start = time.perf_counter()
            tfae.fit(config, pathlib.Path(work) / model, export=False, verbose=0)
            seconds = time.perf_counter() - start
            metrics = tfae.evaluate(pathlib.Path(work) / model, verbose=0)
            rows.append((model, metrics["colorization"], metrics["test_images"], seconds))
            print(model, metrics["colorization"], flush=True)
    best_model, best, test_images, _ = max(rows, key=lambda row: row[1]["colorized_psnr"])
    gain = best["colorized_psnr"] - best["grayscale_psnr"]
    lines = [
        SECTION, "",
        f"`python bench/colorization.py --epochs {epochs} --size {args.size} --stride {stride}"
        f"{' --quick' if args.quick else ''}` on {time.strftime('%Y-%m-%d')}: each family's "
        f"defaults with `--noise grayscale`, {epochs} epoch(s) (`randomized`: its layer-wise "
        f"solution), {args.size}x{args.size} crops; PSNR on {test_images:,} held-out crops.",
        f"Machine: {machine()}.", "",
        "| model | grayscale input PSNR | colourised PSNR | gain | training |",
        "|---|---|---|---|---|"]
    lines += [f"| `{model}` | {values['grayscale_psnr']:.2f} dB | {values['colorized_psnr']:.2f} dB "
              f"| {values['colorized_psnr'] - values['grayscale_psnr']:+.2f} dB | {seconds:.0f} s |"
              for model, values, _, seconds in rows]
    lines += ["", f"Goal: the best family beats the grayscale input by >= 2 dB: `{best_model}`, "
              f"{gain:+.2f} dB, {'met' if gain >= 2 else '**missed**'}.", ""]
    report = "\n".join(lines)
    publish(report, args.write)


if __name__ == "__main__":
    main()
