"""``reconstruction``: how close the model's reconstructions of clean test images are to them.

MSE, PSNR (dB, pixels in [0, 1]) and binary cross-entropy over the test split.

Examples:
    >>> from tfae.measurements import get_measurement
    >>> get_measurement("reconstruction").rows({"mse": 0.01, "psnr": 20.0, "bce": 0.1})[1]
    ('PSNR', '20.00 dB')
"""

from tfae.measurements import Measurement, register_measurement


def _measure(measuring):
    """MSE, PSNR and binary cross-entropy of the test split's reconstructions."""
    import numpy as np

    from tfae.probes import psnr

    images, reconstructions = measuring.test.targets, measuring.test.reconstructions
    clipped = np.clip(reconstructions, 1e-7, 1 - 1e-7)
    return {"mse": float(np.mean((reconstructions - images) ** 2)),
            "psnr": psnr(images, reconstructions),
            "bce": float(-np.mean(images * np.log(clipped) + (1 - images) * np.log(1 - clipped)))}


def _rows(value):
    return [("MSE", f"{value['mse']:.5f}"), ("PSNR", f"{value['psnr']:.2f} dB"),
            ("BCE", f"{value['bce']:.4f}")]


register_measurement(Measurement(
    "reconstruction", "MSE, PSNR and binary cross-entropy of test reconstructions", _measure, _rows,
    columns=lambda value: [("MSE", f"{value['mse']:.4f}")]))
