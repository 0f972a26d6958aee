"""``randomized``: the study's layer-wise algorithm, random fixed encoders and solved decoders.

For each hidden layer a shallow autoencoder with a random orthogonal encoder is made and only its
decoder is trained; the decoder's weights W_d go into the deep decoder and W_d transposed into the
deep encoder (``tfae.models.randomized``). ``solver="ridge"`` solves each decoder in closed form,
``sgd`` trains it with Keras for ``epochs``. Then, by default (``--decoder refit``), each decoder
is solved once more for the codes of the final encoder, so that the model reconstructs what it
encodes; ``--decoder study`` is the study's algorithm exactly. With ``--noise`` the codes come from
corrupted images and the decoders are solved to give the clean ones. One layer of 2,000 by
default; the study's shape is ``--hidden 700,700``.

Examples:
    >>> from tfae.families import build_model
    >>> build_model("randomized", (28, 28, 1), hidden=(64, 32)).latent_dim
    32
"""

import dataclasses

from tfae.errors import TfaeError
from tfae.families import Family, register
from tfae.options import activation_option, hidden_option, option

SOLVERS = ("ridge", "sgd")
DECODERS = ("refit", "study")


@dataclasses.dataclass
class RandomizedOptions:
    """The options of ``randomized``: the layers and how each is solved.

    Examples:
        >>> RandomizedOptions(hidden=(700, 700))
        RandomizedOptions(hidden=(700, 700), activation='relu', solver='ridge', ridge_c=0.01, decoder='refit')
    """

    hidden: tuple = hidden_option((2000,))
    activation: str = activation_option()
    solver: str = option("ridge", "How each layer's decoder is trained: ridge (closed form) "
                         "or sgd (Keras, --epochs per layer).", choices=SOLVERS)
    ridge_c: float = option(0.01, "C of the ridge solution; larger is less regularised.",
                            above=0)
    decoder: str = option("refit", "refit: solve the decoders again for the final encoder's "
                          "codes, so the model reconstructs; study: the study's algorithm as is.",
                          choices=DECODERS)

    def check(self):
        if not self.hidden:
            raise TfaeError("model 'randomized' needs at least one layer in {hidden}",
                            options=["hidden"])


def build(image_shape, options):
    """Bias-free dense layers ``hidden`` and a linear decoder, filled in by ``train``.

    Examples:
        >>> build((28, 28, 1), RandomizedOptions(hidden=(64,))).latent_dim
        64
    """
    from tfae.models.randomized import build_randomized

    return build_randomized(image_shape, options.hidden, options.activation)


def train(model, batches, spec, verbose=1):
    """Trains ``model`` layer by layer with the run's options, seed and, for ``sgd``, epochs
    (``spec`` is the run's ``tfae.config.RunSpec``).

    Examples:
        >>> history = train(model, batches, resolve(FitConfig(model="randomized")))  # doctest: +SKIP
    """
    from tfae.models.randomized import train_layerwise

    options, config = spec.options, spec.config
    return train_layerwise(model, batches, options.solver, options.ridge_c, config.epochs,
                           config.learning_rate, config.seed, verbose, options.decoder)


register(Family("randomized", "layer-wise: random fixed encoders, decoders solved in closed form",
                RandomizedOptions, build, trainer=train,
                # The code is the last layer's output; one layer of that size keeps it one solve.
                code_options=lambda size: {"hidden": (size,)},
                trains_in_epochs=lambda options: options.solver == "sgd"))
