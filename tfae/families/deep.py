"""``deep``: a stack of dense layers and its mirror, 784-1000-1000-500-256 by default.

By default it trains 20 epochs on occluded inputs (``occlusion:50%``, a square of half the
shorter side: 14x14 on MNIST), which makes its codes robust to occlusion. The study's shape, 784-500-200-100-10 on clean inputs, is
``--hidden 500,200,100 --latent-dim 10 --noise none``. How the defaults were chosen:
docs/defaults.md; what they reach: docs/results.md.

Examples:
    >>> from tfae.families import build_model
    >>> model = build_model("deep", (28, 28, 1), hidden=(500, 200, 100), latent_dim=10)
    >>> [layer.units for layer in model.encoder.layers if hasattr(layer, "units")]
    [500, 200, 100, 10]
"""

import dataclasses

from tfae.errors import TfaeError
from tfae.families import XLA_EXECUTION, Family, register
from tfae.options import ACTIVATIONS, activation_option, hidden_option, latent_dim_option, option

DENSE_UNITS = (128, 256, 512, 1024)
MAX_DEPTH = 3
LATENT_CHOICES = (10, 32, 64, 128, 256)


@dataclasses.dataclass
class DeepOptions:
    """The options of ``deep`` (and, with other defaults, of ``contractive``).

    Examples:
        >>> DeepOptions(hidden=(500, 200, 100), latent_dim=10).latent_activation
        'linear'
    """

    hidden: tuple = hidden_option((1000, 1000, 500))
    latent_dim: int = latent_dim_option(256)
    activation: str = activation_option()
    latent_activation: str = option("linear", "Activation of the latent layer.",
                                    choices=ACTIVATIONS)

    def check(self):
        if not self.hidden and self.activation != "relu":
            # The only layer is the latent one: an activation for hidden layers would be ignored.
            raise TfaeError("{activation} %s sets hidden layers and {hidden} is empty; use "
                            "{latent_activation} for the one layer" % self.activation,
                            options=["activation", "hidden", "latent_activation"])


def build(image_shape, options):
    """Dense layers ``hidden`` to the codes, and the same layers reversed back to the pixels.

    Examples:
        >>> build((28, 28, 1), DeepOptions(hidden=(32,), latent_dim=4)).decoder.output_shape
        (None, 28, 28, 1)
    """
    from tfae.models.dense import dense_autoencoder

    return dense_autoencoder(image_shape, options.hidden, options.latent_dim, options.activation,
                             options.latent_activation, name="deep")


def search_space(hp):
    """The depth (1-3), each layer's size, and the latent size.

    Examples:
        >>> import keras_tuner
        >>> search_space(keras_tuner.HyperParameters())
        ({'hidden': (128,), 'latent_dim': 10}, {})
    """
    depth = hp.Int("depth", 1, MAX_DEPTH)
    hidden = []
    for index in range(MAX_DEPTH):
        # A layer's size is a hyperparameter only at the depths that have that layer.
        with hp.conditional_scope("depth", list(range(index + 1, MAX_DEPTH + 1))):
            units = hp.Choice(f"units_{index}", DENSE_UNITS)
        if index < depth:
            hidden.append(units)
    return {"hidden": tuple(hidden), "latent_dim": hp.Choice("latent_dim", LATENT_CHOICES)}, {}


register(Family(
    "deep", "a stack of dense layers, mirrored: 784-1000-1000-500-256, trained on occluded inputs",
    DeepOptions, build, fit_defaults={"noise": "occlusion:50%", "epochs": 20},
    execution=XLA_EXECUTION, search_space=search_space))
