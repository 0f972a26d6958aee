"""``contractive``: reconstruction plus lambda times the encoder's squared Jacobian norm.

The penalty is Rifai et al.'s (ICML 2011), computed in ``ContractiveAutoencoder.train_step``
(``tfae.models.contractive``). By default Rifai's own shape: one sigmoid layer of 1,024 units,
whose ``exact`` penalty has a closed form costing about as much as a plain step. The study's deep
contractive autoencoder is ``--hidden 500,200,100 --latent-dim 10 --latent-activation linear``;
there ``exact`` is the full Jacobian and ``--penalty projection`` the affordable estimate (costs
measured in docs/performance.md, the choice of lambda in docs/defaults.md). The compact results
page (``tfae report --latent-dim 32``) gives it that deep encoder too, in its ``page.json``: one
sigmoid layer that narrow, under the penalty weighed for 1,024 units, flattens its code
(docs/defaults.md).

Examples:
    >>> from tfae.families import build_model
    >>> model = build_model("contractive", (28, 28, 1), latent_dim=16, penalty="projection")
    >>> type(model).__name__, model.penalty
    ('ContractiveAutoencoder', 'projection')
"""

import dataclasses

from tfae.families import XLA_EXECUTION, Family, register
from tfae.families.deep import DeepOptions, search_space as deep_search_space
from tfae.options import (ACTIVATIONS, hidden_option, latent_dim_option, option, penalty_option,
                          penalty_weight_option, projections_option)


@dataclasses.dataclass
class ContractiveOptions(DeepOptions):
    """The options of ``contractive``: ``deep``'s, other defaults, and the penalty's.

    Examples:
        >>> ContractiveOptions().penalty_weight, ContractiveOptions().hidden
        (0.0001, ())
    """

    hidden: tuple = hidden_option(())
    latent_dim: int = latent_dim_option(1024)
    latent_activation: str = option("sigmoid", "Activation of the latent layer.",
                                    choices=ACTIVATIONS)
    penalty_weight: float = penalty_weight_option(1e-4)
    penalty: str = penalty_option("exact")
    projections: int = projections_option()


def build(image_shape, options):
    """``deep``'s layers in a ``ContractiveAutoencoder``.

    Examples:
        >>> build((28, 28, 1), ContractiveOptions(latent_dim=8)).penalty
        'exact'
    """
    from tfae.models.contractive import ContractiveAutoencoder
    from tfae.models.dense import dense_autoencoder

    return dense_autoencoder(
        image_shape, options.hidden, options.latent_dim, options.activation,
        options.latent_activation, name="contractive", model_class=ContractiveAutoencoder,
        penalty_weight=options.penalty_weight, penalty=options.penalty,
        projections=options.projections)


def search_space(hp):
    """``deep``'s space and lambda, on a log scale.

    Examples:
        >>> import keras_tuner
        >>> search_space(keras_tuner.HyperParameters())[0]["penalty_weight"]
        1e-06
    """
    options, fit_fields = deep_search_space(hp)
    weight = hp.Float("lambda", 1e-6, 1e-2, sampling="log")
    return {**options, "penalty_weight": weight}, fit_fields


register(Family(
    "contractive", "the Jacobian penalty: codes that move little when inputs move",
    ContractiveOptions, build, fit_defaults={"epochs": 20}, execution=XLA_EXECUTION,
    search_space=search_space))
