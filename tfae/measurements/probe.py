"""``probe``: how well the codes separate the classes, as the study judged them.

A linear probe (logistic regression) and 5 nearest neighbours, fitted on the training split's
codes and scored on the test split's (``tfae.probes``). ``None`` without labels of two classes or
more, with a note saying why.

Examples:
    >>> from tfae.measurements import get_measurement
    >>> get_measurement("probe").rows({"linear": 0.9, "knn": 0.95})[0]
    ('linear probe', '90.00%')
"""

from tfae.measurements import Measurement, percent, register_measurement


def _measure(measuring):
    """The probes' accuracies on the test codes, or ``None`` without labels."""
    return measuring.probe_accuracies


def _rows(value):
    if value is None:
        return []
    return [("linear probe", percent(value["linear"])), ("kNN (k=5)", percent(value["knn"]))]


def _columns(value):
    value = value or {}
    return [("linear probe", percent(value.get("linear"))),
            ("kNN (k=5)", percent(value.get("knn")))]


# Written as None without labels, so a page tells "no labels" from "not measured".
register_measurement(Measurement(
    "probe", "linear and 5-NN probes of the codes", _measure, _rows, _columns))
