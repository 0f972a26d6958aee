"""``geometric``: ``deep``'s autoencoder and a classifier of how its images are turned, for
finding the odd ones out.

Trained on one class (``--classes``), its ``combined`` anomaly score adds to the reconstruction
error and the code distance how badly a small convolutional classifier tells which quarter turn
and mirroring an image was shown in (GEOM's self-supervision, Golan and El-Yaniv 2018;
``tfae.models.geometric``): ``tfae fit --model geometric --classes 3``. ``geometric-conv`` is the
same on ``deep-conv``'s autoencoder, level with it on MNIST and ahead on Fashion-MNIST; what
each reaches against the published methods: docs/results/anomaly.md.

Examples:
    >>> from tfae.families import build_model
    >>> model = build_model("geometric", (28, 28, 1), hidden=(64,), latent_dim=8)
    >>> type(model).__name__, model.latent_dim, model.transformer.output_shape
    ('GeometricAutoencoder', 8, (None, 8))
"""

import dataclasses

from tfae.families import Family, register
from tfae.families.deep import DeepOptions, search_space


@dataclasses.dataclass
class GeometricOptions(DeepOptions):
    """The options of ``geometric``: ``deep``'s, with its defaults.

    Examples:
        >>> GeometricOptions().hidden, GeometricOptions().latent_dim
        ((1000, 1000, 500), 256)
    """


def build(image_shape, options):
    """``deep``'s layers and a ``transformation_classifier`` in a ``GeometricAutoencoder``.

    Examples:
        >>> build((28, 28, 1), GeometricOptions(hidden=(32,), latent_dim=4)).decoder.output_shape
        (None, 28, 28, 1)
    """
    from tfae.models.dense import dense_autoencoder
    from tfae.models.geometric import GeometricAutoencoder, transformation_classifier

    return dense_autoencoder(
        image_shape, options.hidden, options.latent_dim, options.activation,
        options.latent_activation, name="geometric", model_class=GeometricAutoencoder,
        transformer=transformation_classifier(image_shape))


# No XLA: the classifier's convolutions train slower under it on CPU (docs/performance.md).
register(Family(
    "geometric", "deep's autoencoder and a classifier of its images' turns: one-class anomaly "
    "detection", GeometricOptions, build, fit_defaults={"noise": "occlusion:50%", "epochs": 20},
    search_space=search_space))
