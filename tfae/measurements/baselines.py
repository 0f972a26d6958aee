"""``baselines``: the raw pixels and PCA with the model's code size, on the same splits.

The probes on the pixels and on PCA's codes, and PCA's reconstruction (``tfae.probes.baselines``):
what the model's numbers are read against. A report shows them as rows of their own.

Examples:
    >>> from tfae.measurements import get_measurement
    >>> get_measurement("baselines").rows({"pixels": {"linear": 0.9, "knn": 0.97}})
    [('raw pixels', 'linear 90.00%, kNN 97.00%')]
"""

from tfae.measurements import Measurement, register_measurement


def _measure(measuring):
    rows, _ = measuring.baselines
    return rows  # None when not measured (``--baselines``): said in the notes


def label(name, values):
    """How a baseline is named: ``raw pixels`` or ``PCA-<components>``.

    Examples:
        >>> label("pixels", {}), label("pca", {"components": 32})
        ('raw pixels', 'PCA-32')
    """
    return "raw pixels" if name == "pixels" else f"PCA-{values['components']}"


def _rows(value):
    found = []
    for name, values in value.items():
        probes = ("" if values["linear"] is None else
                  f"linear {values['linear']:.2%}, kNN {values['knn']:.2%}")
        psnr_text = f"PSNR {values['psnr']:.2f} dB" if "psnr" in values else ""
        text = ", ".join(part for part in (probes, psnr_text) if part)
        if text:
            found.append((label(name, values), text))
    return found


register_measurement(Measurement(
    "baselines", "the probes on raw pixels and PCA, and PCA's reconstruction", _measure, _rows))
