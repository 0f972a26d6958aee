"""``anomaly``: how well a run trained on some classes (``--classes``) tells the test images of
the other classes from those of its own, by its anomaly scores (``tfae.anomaly``).

For each score: AUROC and AUPRC (the other classes the positives), and the F1 of the flags at
the threshold of ``tfae.anomaly.DEFAULT_CONTAMINATION`` calibrated on the normal classes'
training and validation images of the measured data, with the share of normal and anomalous test images flagged. Left
out for a run trained on every class, an export, or unlabelled data.

Examples:
    >>> from tfae.measurements import get_measurement
    >>> get_measurement("anomaly").rows({"normal_classes": "1", "reconstruction": {
    ...     "auroc": 0.99, "auprc": 0.98, "f1": 0.9}})[0]
    ('anomaly AUROC, reconstruction (normal: 1)', '99.00%')
"""

import numpy as np

from tfae.anomaly import DEFAULT_CONTAMINATION, SCORES, AnomalyDetector, split_scores
from tfae.measurements import Measurement, register_measurement


def _measure(measuring):
    """Each score's AUROC, AUPRC and F1 on the test images, normal classes against the rest."""
    from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

    from tfae.data.classes import class_indices, keep_classes
    from tfae.errors import TfaeError

    classes = (measuring.opened.data_settings or {}).get("classes")
    if not classes or not measuring.splits.labelled:
        return None
    try:
        normal = class_indices(measuring.splits, classes)
        fitted = AnomalyDetector().fit(measuring.opened, keep_classes(measuring.splits, classes),
                                       measuring.progress)
    except TfaeError as error:  # other data, without the run's classes
        measuring.notes.append(f"anomaly: not measured: {error}")
        return None
    test = measuring.test_images
    with measuring.progress.stage("anomaly scores", total=int(test.cardinality()),
                                  unit="image") as tick:
        parts, labels = split_scores(measuring.opened, test,
                                     fitted.calibration_.reference_codes, measuring.batch_size,
                                     tick)
    anomalous = ~np.isin(labels, normal)
    if anomalous.all() or not anomalous.any():
        measuring.notes.append("anomaly: not measured: the test images are all of one kind")
        return None
    value = {"normal_classes": classes, "contamination": DEFAULT_CONTAMINATION,
             "anomalous_test_images": int(anomalous.sum())}
    for score in fitted.calibration_.scores():
        detector = AnomalyDetector(score).calibrated(measuring.opened, fitted.calibration_)
        scores = detector.scores_of(parts)
        flagged = scores > detector.threshold_
        value[score] = {"auroc": float(roc_auc_score(anomalous, scores)),
                        "auprc": float(average_precision_score(anomalous, scores)),
                        "f1": float(f1_score(anomalous, flagged)),
                        "flagged_normal": float(flagged[~anomalous].mean()),
                        "flagged_anomalous": float(flagged[anomalous].mean())}
    return value


def _rows(value):
    normal = value["normal_classes"]
    return [row for score in SCORES if score in value for row in (
        (f"anomaly AUROC, {score} (normal: {normal})", f"{value[score]['auroc']:.2%}"),
        (f"anomaly AUPRC, {score}", f"{value[score]['auprc']:.2%}"),
        (f"anomaly F1 at the threshold, {score}", f"{value[score]['f1']:.3f}"))]


register_measurement(Measurement(
    "anomaly", "AUROC, AUPRC and F1 of the anomaly scores of a run trained on some classes",
    _measure, _rows, columns=lambda value: [
        ("anomaly AUROC", f"{value['reconstruction']['auroc']:.2%}")]))
