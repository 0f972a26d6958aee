"""The one-class protocol (Ruff et al. 2018): each class in turn normal, the other nine anomalous.

For each seed of ``--seeds`` and class of ``--dataset``, every family of ``--models`` is trained
on that class's training images only (``tfae.fit`` with ``--classes``, its default epochs and
batches of 64) and scores the whole test split by each of its anomaly scores (``tfae.anomaly``);
the AUROC of each, anomalies the positives. Each score is the detector's as a user gets it:
calibrated on the class's own validation images, never on the test split. Baselines on the
same splits, in the same run, as their users would run them: 5 nearest neighbours on the
pixels (the mean distance to the class's 5 nearest training images), scikit-learn's
``OneClassSVM`` (RBF kernel, ``gamma="scale"``, ``nu=0.1``) and ``IsolationForest`` (defaults)
on the pixels, and PCA's reconstruction error at each family's code size; they are seeded, so
one seed's run of them stands for all.

Each (seed, class)'s AUROCs are kept in ``--results`` (JSON) as it ends, so a stopped run goes
on where it stopped, and a model added to ``--models`` trains alone where the file lacks it.
The table gives, per class, the mean over seeds, and for the mean over classes its standard
deviation over seeds (a row lacking some seeds says how many it has); ``--published`` (a
Markdown file of published rows, ``| method | 0 | ... | 9 | mean | source |`` under a
``## <data set>`` heading) puts those rows beside them, their sources named.

Usage:
    python bench/one_class.py [--dataset mnist] [--models deep,geometric] [--seeds 0,1,2]
        [--classes 0,1,...] [--epochs N] [--results FILE.json] [--published FILE.md]
        [--write docs/results/anomaly.md]
"""

import argparse
import json
import pathlib
import statistics
import sys
import tempfile
import time

import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.svm import OneClassSVM

from fit_throughput import machine, publish
import tfae
from tfae.anomaly import nearest_distances, split_scores
from tfae.config import FitConfig
from tfae.data import load, pipeline
from tfae.files import write_text
from tfae.opened import OpenedModel

SECTION = "## One-class anomaly detection on {dataset}, {seeds} seeds"
PUBLISHED_HEADINGS = {"mnist": "## MNIST", "fashion_mnist": "## Fashion-MNIST"}
NEIGHBOURS = 5


def arrays(split):
    """A split's float images, flattened, and labels, as numpy."""
    images, labels = [], []
    for batch, _, batch_labels in pipeline(split, 1024, with_labels=True):
        images.append(batch.numpy().reshape(len(batch), -1))
        labels.append(batch_labels.numpy())
    return np.concatenate(images), np.concatenate(labels)


def family_aurocs(model, everything, normal_splits, anomalous):
    """The AUROC of each of ``model``'s anomaly scores on the test split, each calibrated on
    the normal class's validation images as ``tfae score`` calibrates it."""
    opened = OpenedModel.of_model(model)
    detector = opened.detector(splits=normal_splits)
    calibration = detector.calibration_
    parts, _ = split_scores(opened, everything.test, calibration.reference_codes, 1024)
    return {score: roc_auc_score(anomalous, calibration.combined(parts, score))
            for score in calibration.scores()}


def baseline_aurocs(train, test, anomalous, code_sizes):
    """The AUROC of each baseline: higher scores more anomalous."""
    found = {
        f"{NEIGHBOURS}-NN distance, raw pixels": roc_auc_score(anomalous, np.concatenate([
            nearest_distances(test[start:start + 1000], train, NEIGHBOURS).numpy()
            for start in range(0, len(test), 1000)])),
        "OneClassSVM, raw pixels": roc_auc_score(
            anomalous, -OneClassSVM(gamma="scale", nu=0.1).fit(train).decision_function(test)),
        "IsolationForest, raw pixels": roc_auc_score(
            anomalous, -IsolationForest(random_state=0).fit(train).score_samples(test))}
    # A code as wide as the pixels or wider (shallow's 2,048) has no PCA of its size: PCA with
    # every component reconstructs every image, and its AUROC would read rounding noise.
    for size in sorted({size for size in code_sizes if size < min(train.shape)}):
        pca = PCA(size, random_state=0).fit(train)
        error = np.square(pca.inverse_transform(pca.transform(test)) - test).mean(axis=1)
        found[f"PCA-{size} reconstruction"] = roc_auc_score(anomalous, error)
    return found


def published_rows(path, dataset):
    """``(name, cells, source)`` of each row of the ``path``'s table under ``dataset``'s
    heading: cells the 10 classes and the mean, as written (``""`` where none was read)."""
    rows, inside = [], False
    for line in pathlib.Path(path).read_text().splitlines():
        if line.startswith("## "):
            inside = line.strip() == PUBLISHED_HEADINGS[dataset]
        elif inside and line.startswith("| ") and not line.startswith("| method"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows.append((cells[0], cells[1:-1], cells[-1]))
    return rows


def run_one(arguments, models, seed, normal, everything, test, labels, work, baselines):
    """The AUROCs of one (seed, class): each of ``models``' scores, and the baselines' if
    ``baselines``."""
    normal_splits = load(arguments.dataset, manual_dir=arguments.manual_dir, classes=normal)
    anomalous = labels != int(normal)
    found, code_sizes, seconds = {}, [], {}
    for model_name in models:
        start = time.perf_counter()
        run = tfae.fit(FitConfig(model=model_name, dataset=arguments.dataset,
                                 manual_dir=arguments.manual_dir, classes=normal,
                                 epochs=arguments.epochs, batch_size=64, seed=seed),
                       pathlib.Path(work) / f"{model_name}-{seed}-{normal}", export=False,
                       verbose=0)
        seconds[model_name] = time.perf_counter() - start
        code_sizes.append(int(np.prod(run.model.encoder.output_shape[1:])))
        for score, value in family_aurocs(run.model, everything, normal_splits,
                                          anomalous).items():
            found[f"`{model_name}`, {score}"] = value
    if baselines:
        train, _ = arrays(normal_splits.train)
        found.update({f"*{name}*": value for name, value in
                      baseline_aurocs(train, test, anomalous, code_sizes).items()})
    return {"aurocs": found, "seconds": seconds}


def table(arguments, results, seeds, classes):
    """The page's section: mean over seeds per class, and the class mean's spread over seeds."""
    names = list(dict.fromkeys(name for result in results.values()
                               for name in result["aurocs"]))
    fits = {}
    for result in results.values():
        for model_name, second in result["seconds"].items():
            fits.setdefault(model_name, []).append(second)
    times = "; ".join(f"`{name}` {min(seconds):.0f}-{max(seconds):.0f} s (median "
                      f"{statistics.median(seconds):.0f} s, {len(seconds)} runs)"
                      for name, seconds in fits.items())
    lines = [SECTION.format(dataset=arguments.dataset, seeds=len(seeds)), "",
             f"`python bench/one_class.py --dataset {arguments.dataset}"
             f"{f' --manual-dir {arguments.manual_dir}' if arguments.manual_dir else ''} "
             f"--models {arguments.models} --seeds {arguments.seeds}"
             f"{f' --epochs {arguments.epochs}' if arguments.epochs else ''}"
             f"{f' --published {arguments.published}' if arguments.published else ''}` on "
             f"{time.strftime('%Y-%m-%d')}, {machine()}: each class of {arguments.dataset} in "
             "turn normal (its training images only, batches of 64), the whole test split "
             "scored, the other classes the positives; AUROC in %, each tfae cell the mean of "
             f"seeds {arguments.seeds}, and beside the mean over classes its standard deviation "
             "over seeds. Baselines in italics, on the same splits in the same run (seeded: one "
             f"run stands for every seed). Training a model on one class (tfae.fit): "
             f"{times}.", "",
             "| | " + " | ".join(classes) + " | mean | source |",
             "|---" * (len(classes) + 3) + "|"]
    for name in names:
        # a seed counts for a row once every class has it: a stopped run's part is left out
        by_seed = {seed: [results[f"{seed}/{normal}"]["aurocs"][name] for normal in classes]
                   for seed in seeds if all(name in results.get(f"{seed}/{normal}", {}).get(
                       "aurocs", {}) for normal in classes)}
        cells = [f"{100 * statistics.mean(values[index] for values in by_seed.values()):.1f}"
                 for index in range(len(classes))]
        means = [100 * statistics.mean(values) for values in by_seed.values()]
        spread = f" ± {statistics.stdev(means):.1f}" if len(means) > 1 else ""
        if len(means) < len(seeds) and not name.startswith("*"):  # baselines: seeded, once
            spread += f" ({len(means)} of the {len(seeds)} seeds)"
        lines.append(f"| {name} | " + " | ".join(cells)
                     + f" | **{statistics.mean(means):.1f}**{spread} | this run |")
    if arguments.published:
        for name, cells, source in published_rows(arguments.published, arguments.dataset):
            lines.append(f"| {name} | " + " | ".join(cells[:len(classes)])
                         + f" | {cells[-1]} | {source} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist", choices=sorted(PUBLISHED_HEADINGS))
    parser.add_argument("--manual-dir")
    parser.add_argument("--models", default="deep,geometric")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
    parser.add_argument("--results", type=pathlib.Path)
    parser.add_argument("--published", type=pathlib.Path)
    parser.add_argument("--write", type=pathlib.Path)
    arguments = parser.parse_args()
    seeds = [int(seed) for seed in arguments.seeds.split(",")]
    classes = arguments.classes.split(",")
    results = {}
    if arguments.results and arguments.results.exists():
        results = json.loads(arguments.results.read_text())
    everything = load(arguments.dataset, manual_dir=arguments.manual_dir)
    test, labels = arrays(everything.test)
    with tempfile.TemporaryDirectory() as work:
        for seed in seeds:
            for normal in classes:
                # A stopped run resumes, and a model added to a results file trains alone.
                done = results.get(f"{seed}/{normal}", {"aurocs": {}, "seconds": {}})
                models = [name for name in arguments.models.split(",")
                          if name not in done["seconds"]]
                if not models:
                    continue
                start = time.perf_counter()
                # seeded, the baselines are measured once, at seed 0
                baselines = seed == 0 and not any(name.startswith("*") for name in done["aurocs"])
                found = run_one(arguments, models, seed, normal, everything, test, labels, work,
                                baselines)
                results[f"{seed}/{normal}"] = {
                    "aurocs": {**found["aurocs"], **done["aurocs"]},
                    "seconds": {**done["seconds"], **found["seconds"]}}
                if arguments.results:
                    write_text(arguments.results, json.dumps(results, indent=1))
                print(f"seed {seed}, class {normal}: {time.perf_counter() - start:.0f} s",
                      file=sys.stderr, flush=True)
    publish(table(arguments, results, seeds, classes), arguments.write)


if __name__ == "__main__":
    sys.exit(main())
