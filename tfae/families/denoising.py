"""``denoising``: ``deep-conv`` trained to undo gaussian noise (standard deviation 0.5).

The inputs are corrupted inside the ``tf.data`` pipeline, fresh every epoch, and the targets are
the clean images. Any family denoises with ``--noise``; the study's dense denoiser is
``--model deep --noise gaussian:0.5``.

Examples:
    >>> from tfae.families import get_family
    >>> get_family("denoising").fit_defaults
    {'noise': 'gaussian:0.5', 'epochs': 20}
"""

from tfae.families import Family, register
from tfae.families.conv import conv_builder
from tfae.families.deep_conv import DeepConvOptions, search_space as deep_conv_search_space


def search_space(hp):
    """``deep-conv``'s space and the noise's standard deviation.

    Examples:
        >>> import keras_tuner
        >>> search_space(keras_tuner.HyperParameters())[1]
        {'noise': 'gaussian:0.1'}
    """
    options, fit_fields = deep_conv_search_space(hp)
    noise = f"gaussian:{hp.Float('noise', 0.1, 0.7, step=0.1):.1f}"
    return options, {**fit_fields, "noise": noise}


register(Family("denoising", "deep-conv, trained to undo gaussian noise (0.5)", DeepConvOptions,
                conv_builder("denoising"), fit_defaults={"noise": "gaussian:0.5", "epochs": 20},
                search_space=search_space))
