"""``tfae evaluate`` and ``tfae plot --kind tsne`` against the clock, and tfae's probes against
scikit-learn's on the same codes.

For each run folder given:

- ``tfae evaluate RUN --quiet`` and ``tfae plot RUN --kind tsne --quiet`` as whole processes:
  wall time and peak resident memory (the goals: < 60 s and < 2 GB; < 20 s); ``evaluate``
  twice, with an empty cache folder and again with the baselines the first kept;
- with ``--old-tree PATH`` (a checkout of an earlier tfae, say ``git worktree add /tmp/old
  d470bb6``), the same ``evaluate`` of that tree, for the ratio;
- in this process, on the run's training and test codes, on the raw pixels and on PCA of the
  code's size: tfae's linear and kNN probes, and scikit-learn's as tfae used them before
  (``make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))``,
  ``KNeighborsClassifier(5)``): accuracy and seconds of each (the goal: within 0.3 points);
- t-SNE of 5,000 test codes: tfae's (openTSNE on PCA-50) against scikit-learn's ``TSNE`` on the
  codes as tfae drew them before.

Usage:
    python bench/evaluate_speed.py RUN [RUN ...] [--old-tree PATH] [--write docs/performance.md]
"""

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.manifold import TSNE
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fit_throughput import machine, publish
from tfae.evaluation import measured_data
from tfae.opened import open_model
from tfae.measurements import Measuring
from tfae.plots import tsne_embedding
from tfae.probes import knn_probe, linear_probe

SECTION = "## Evaluation: `tfae evaluate` in under a minute"
OLD_COMMAND = ("import sys; sys.path.insert(0, {tree!r}); sys.argv[0] = 'tfae'; "
               "from cli.main import tfae; tfae()")


def process(command, cache=None):
    """``(seconds, peak GB)`` of a command run to its end, its peak memory as GNU time reports
    it: a child's own ``ru_maxrss`` starts at its parent's, this large process's, as Linux keeps
    the peak across fork and exec."""
    start = time.perf_counter()
    environment = {**os.environ, **({"TFAE_CACHE_DIR": str(cache)} if cache else {})}
    finished = subprocess.run(["/usr/bin/time", "-f", "%M", *command], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, env=environment)
    seconds = time.perf_counter() - start
    if finished.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{finished.stderr}")
    return seconds, int(finished.stderr.split()[-1]) / 1e6


def timed(function, *arguments):
    start = time.perf_counter()
    result = function(*arguments)
    return result, time.perf_counter() - start


def compare_probes(train, train_labels, test, test_labels):
    """Accuracies and seconds of tfae's probes and scikit-learn's on the same features."""
    ours, linear_seconds = timed(linear_probe, train, train_labels)
    knn, knn_fit = timed(knn_probe, train, train_labels)
    knn_accuracy, knn_seconds = timed(knn.score, test, test_labels)
    theirs, their_linear_seconds = timed(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit, train,
        train_labels)
    neighbours = KNeighborsClassifier(5).fit(train, train_labels)
    their_knn, their_knn_seconds = timed(neighbours.score, test, test_labels)
    return {"linear": (ours.score(test, test_labels), theirs.score(test, test_labels),
                       linear_seconds, their_linear_seconds),
            "knn": (knn_accuracy, their_knn, knn_fit + knn_seconds, their_knn_seconds)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=pathlib.Path)
    parser.add_argument("--old-tree", type=pathlib.Path)
    parser.add_argument("--write", type=pathlib.Path, help="replace this section of a Markdown file")
    args = parser.parse_args()

    tfae = [sys.executable, "-m", "tfae"]
    processes, probes, tsne = [], [], []
    pixels_done = False
    for run in args.runs:
        # First with no baselines measured before (a new data set), then as every later
        # evaluation on the same images reads them (tfae.probes.baselines).
        cache = tempfile.mkdtemp(prefix="tfae-bench-cache-")
        evaluate = process([*tfae, "evaluate", str(run), "--quiet"], cache)
        again = process([*tfae, "evaluate", str(run), "--quiet"], cache)
        plot = process([*tfae, "plot", str(run), "--kind", "tsne", "--quiet",
                        "--out", str(run / "bench-figures")])
        old = (process([sys.executable, "-c", OLD_COMMAND.format(tree=str(args.old_tree)),
                        "evaluate", str(run), "--quiet"]) if args.old_tree else None)
        processes.append((run.name, evaluate, again, plot, old))
        print(run.name, evaluate, again, plot, old, flush=True)

        opened = open_model(run)
        measuring = Measuring(opened, measured_data(run, opened).splits)
        train_codes = np.asarray(measuring.train.codes)
        train_labels, test = np.asarray(measuring.train.labels), measuring.test
        features = [("codes", train_codes, test.codes)]
        train_pixels = np.concatenate([inputs.numpy().reshape(len(inputs), -1) for inputs, _, _
                                       in measuring.batches(measuring.splits.train)])
        test_pixels = test.targets.reshape(len(test.targets), -1)
        if not pixels_done:
            features.append(("raw pixels", train_pixels, test_pixels))
            pixels_done = True
        components = min(train_codes.shape[1], train_pixels.shape[1])
        pca = PCA(components, random_state=0).fit(train_pixels)
        features.append((f"PCA-{components}", pca.transform(train_pixels),
                         pca.transform(test_pixels)))
        for name, train, test_features in features:
            row = compare_probes(train, train_labels, test_features, test.labels)
            probes.append((run.name, name, train.shape[1], row))
            print(run.name, name, row, flush=True)

        codes = test.codes[:5000]
        _, ours = timed(tsne_embedding, codes)
        _, theirs = timed(lambda: TSNE(2, init="pca", perplexity=30, random_state=0)
                          .fit_transform(codes))
        tsne.append((run.name, codes.shape[1], ours, theirs))

    lines = [
        SECTION, "",
        f"`python bench/evaluate_speed.py {' '.join(str(run) for run in args.runs)}"
        f"{' --old-tree ' + str(args.old_tree) if args.old_tree else ''}` on "
        f"{time.strftime('%Y-%m-%d')}; runs on full MNIST (54,000 training, 10,000 test images).",
        f"Machine: {machine()}.", "",
        "### Whole commands (goals: evaluate < 60 s and < 2 GB; t-SNE < 20 s)", "",
        "`tfae evaluate`: first with no baselines measured before on these images, then again, "
        "as every later evaluation on them reads the baselines kept by the first; before: the "
        "earlier tree's (`--old-tree`).", "",
        "| run | `tfae evaluate`, first | peak memory | again | before | "
        "`tfae plot --kind tsne` |",
        "|---|---|---|---|---|---|",
    ]
    for name, (seconds, memory), (again, _), (plot_seconds, _), old in processes:
        before = f"{old[0]:.0f} s, {old[1]:.2f} GB ({old[0] / seconds:.1f}x)" if old else "–"
        lines.append(f"| {name} | {seconds:.1f} s | {memory:.2f} GB | {again:.1f} s | {before} "
                     f"| {plot_seconds:.1f} s |")
    lines += ["", "### Probes: tfae's against scikit-learn's on the same features "
              "(goal: within 0.3 points)", "",
              "| run | features | numbers | linear: tfae | scikit-learn | seconds (x faster) | "
              "kNN: tfae | scikit-learn | seconds (x faster) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for run, name, width, row in probes:
        cells = []
        for ours, theirs, seconds, their_seconds in (row["linear"], row["knn"]):
            cells += [f"{ours:.2%}", f"{theirs:.2%}",
                      f"{seconds:.1f} vs {their_seconds:.1f} ({their_seconds / seconds:.1f}x)"]
        lines.append(f"| {run} | {name} | {width} | {' | '.join(cells)} |")
    lines += ["", "### t-SNE of 5,000 test codes (in the process, encoding excluded)", "",
              "| run | numbers | tfae (openTSNE, PCA-50) | scikit-learn `TSNE` | x faster |",
              "|---|---|---|---|---|"]
    lines += [f"| {name} | {width} | {ours:.1f} s | {theirs:.1f} s | {theirs / ours:.1f}x |"
              for name, width, ours, theirs in tsne]
    publish("\n".join(lines) + "\n", args.write)


if __name__ == "__main__":
    main()
