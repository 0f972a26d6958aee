"""``denoising``: PSNR of noisy test images and of the model's reconstructions of them.

For gaussian noise of 0.25 and 0.5 and salt-and-pepper 0.2, the same seeded noise for every
model; reports show ``REPORTED``.

Examples:
    >>> from tfae.measurements import get_measurement
    >>> get_measurement("denoising").rows({"gaussian:0.5": {"noisy_psnr": 9.1,
    ...                                                     "reconstruction_psnr": 18.2}})
    [('denoising gaussian:0.5', '9.10 -> 18.20 dB')]
"""

from tfae.measurements import Measurement, register_measurement

SPECS = ("gaussian:0.25", "gaussian:0.5", "salt-pepper:0.2")
REPORTED = "gaussian:0.5"  # the noise of the report's column and goals


def _measure(measuring):
    value = {}
    for spec in SPECS:
        errors = measuring.errors(spec, name=f"denoising {spec}: reconstructing")
        value[spec] = {"noisy_psnr": errors.mean("input_psnr"),
                       "reconstruction_psnr": errors.mean("psnr")}
    return value


def _rows(value):
    return [(f"denoising {spec}", f"{values['noisy_psnr']:.2f} -> "
                                  f"{values['reconstruction_psnr']:.2f} dB")
            for spec, values in value.items()]


register_measurement(Measurement(
    "denoising", "PSNR of noisy test images and of their reconstructions", _measure, _rows,
    columns=lambda value: [(f"denoising PSNR, {REPORTED.replace(':', ' ')}",
                            f"{value[REPORTED]['reconstruction_psnr']:.1f} dB")]))
