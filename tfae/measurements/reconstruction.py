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
    errors = measuring.errors()
    return {"mse": errors.mean("squared_error"), "psnr": errors.mean("psnr"),
            "bce": errors.mean("cross_entropy")}


def _rows(value):
    return [("MSE", f"{value['mse']:.5f}"), ("PSNR", f"{value['psnr']:.2f} dB"),
            ("BCE", f"{value['bce']:.4f}")]


register_measurement(Measurement(
    "reconstruction", "MSE, PSNR and binary cross-entropy of test reconstructions", _measure, _rows,
    columns=lambda value: [("MSE", f"{value['mse']:.4f}")]))
