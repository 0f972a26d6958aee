"""The one-class protocol (Ruff et al. 2018): each class in turn normal, the other nine anomalous.

For each class of ``--dataset``, every family of ``--models`` is trained on that class's training
images only (``tfae.fit`` with ``--classes``) and scores the whole test split by its anomaly
scores (``tfae.anomaly``: reconstruction, codes, combined); the AUROC of each, anomalies the
positives. Baselines on the same splits, in the same run, as their users would run them:
scikit-learn's ``OneClassSVM`` (RBF kernel, ``gamma="scale"``, ``nu=0.1``) and
``IsolationForest`` (defaults) on raw pixels, and PCA's reconstruction error at each family's
code size.

Usage:
    python bench/one_class.py [--dataset mnist] [--models deep,conv] [--epochs N]
        [--classes 0,1,...] [--write docs/results/anomaly.md]
"""

import argparse
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
from tfae.anomaly import calibration_of, elbo_score, split_scores
from tfae.config import FitConfig
from tfae.data import load, pipeline

SECTION = "## One-class anomaly detection on {dataset}"


def arrays(split):
    """A split's float images, flattened, and labels, as numpy."""
    images, labels = [], []
    for batch, _, batch_labels in pipeline(split, 1024, with_labels=True):
        images.append(batch.numpy().reshape(len(batch), -1))
        labels.append(batch_labels.numpy())
    return np.concatenate(images), np.concatenate(labels)


def family_aurocs(model, splits, normal_splits, anomalous):
    """The AUROC of each of ``model``'s anomaly scores on the test split."""
    encode = lambda images: model.encoder(images, training=False)  # noqa: E731
    negative_elbo = elbo_score(model)
    calibration = calibration_of(encode, model, normal_splits, negative_elbo=negative_elbo)
    parts, _ = split_scores(encode, model, splits.test, calibration.reference_codes, 1024,
                            negative_elbo=negative_elbo)
    return {score: roc_auc_score(anomalous, calibration.combined(parts, score))
            for score in calibration.scores()}


def baseline_aurocs(train, test, anomalous, code_sizes):
    """The AUROC of each baseline: higher scores more anomalous."""
    found = {"OneClassSVM, raw pixels": roc_auc_score(
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--manual-dir")
    parser.add_argument("--models", default="deep")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
    parser.add_argument("--write", type=pathlib.Path)
    arguments = parser.parse_args()
    models, classes = arguments.models.split(","), arguments.classes.split(",")
    everything = load(arguments.dataset, manual_dir=arguments.manual_dir)
    test, labels = arrays(everything.test)
    rows, seconds = {}, {}
    with tempfile.TemporaryDirectory() as work:
        for normal in classes:
            start = time.perf_counter()
            normal_splits = load(arguments.dataset, manual_dir=arguments.manual_dir,
                                 classes=normal)
            anomalous = labels != int(normal)
            train, _ = arrays(normal_splits.train)
            code_sizes = []
            for model_name in models:
                run = tfae.fit(FitConfig(model=model_name, dataset=arguments.dataset,
                                         manual_dir=arguments.manual_dir, classes=normal,
                                         epochs=arguments.epochs, batch_size=64),
                               pathlib.Path(work) / f"{model_name}-{normal}", export=False,
                               verbose=0)
                code_sizes.append(int(np.prod(run.model.encoder.output_shape[1:])))
                for score, value in family_aurocs(run.model, everything, normal_splits,
                                                  anomalous).items():
                    rows.setdefault(f"`{model_name}`, {score}", {})[normal] = value
            for name, value in baseline_aurocs(train, test, anomalous, code_sizes).items():
                rows.setdefault(f"*{name}*", {})[normal] = value
            seconds[normal] = time.perf_counter() - start
            print(f"class {normal}: {seconds[normal]:.0f} s", file=sys.stderr, flush=True)
    lines = [SECTION.format(dataset=arguments.dataset), "",
             f"`python bench/one_class.py --dataset {arguments.dataset} --models "
             f"{arguments.models}{f' --epochs {arguments.epochs}' if arguments.epochs else ''}` "
             f"on {time.strftime('%Y-%m-%d')}, {machine()}: each class of {arguments.dataset} "
             "in turn normal (its training images only, batches of 64), the whole test split "
             "scored, the other classes the positives; AUROC in %. Baselines in italics, on the "
             f"same splits in the same run. {sum(seconds.values()) / 60:.0f} minutes in all.", "",
             "| | " + " | ".join(classes) + " | mean |",
             "|---" * (len(classes) + 2) + "|"]
    for name, values in rows.items():
        cells = [f"{100 * values[normal]:.1f}" for normal in classes]
        lines.append(f"| {name} | " + " | ".join(cells)
                     + f" | **{100 * statistics.mean(values.values()):.1f}** |")
    publish("\n".join(lines) + "\n", arguments.write)


if __name__ == "__main__":
    sys.exit(main())
