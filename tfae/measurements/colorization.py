"""``colorization``, on colour images: PSNR of grayscale inputs and of the model's output from
them, both against the colour originals (the measure of a run trained with ``--noise grayscale``).

Examples:
    >>> from tfae.measurements import get_measurement
    >>> get_measurement("colorization").rows({"grayscale_psnr": 26.8, "colorized_psnr": 28.1})
    [('colorization', '26.80 -> 28.10 dB')]
"""

from tfae.measurements import Measurement, register_measurement


def _measure(measuring):
    errors = measuring.errors("grayscale", name="colorization: reconstructing grayscale images")
    return {"grayscale_psnr": errors.mean("input_psnr"), "colorized_psnr": errors.mean("psnr")}


def _rows(value):
    return [("colorization", f"{value['grayscale_psnr']:.2f} -> {value['colorized_psnr']:.2f} dB")]


register_measurement(Measurement(
    "colorization", "PSNR of grayscale inputs and of their colourisation (colour images only)",
    _measure, _rows,
    colour=True))
