"""Options declared once, as dataclass fields: type, default, checks and help together.

A family's options (``tfae.families``) and the run settings (``tfae.config``) are dataclasses
whose fields are made by ``option``. ``checked`` turns a dict (from Python, JSON or the command
line) into such a dataclass, refusing unknown names, wrong types and out-of-range values with a
``TfaeError`` that names the option; ``specs`` lists the fields, from which the command line
derives its flags, types, choices and help. Nothing here imports TensorFlow.

Examples:
    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class Sizes:
    ...     latent_dim: int = option(16, "Size of the latent code.", minimum=1)
    >>> checked(Sizes, {"latent_dim": 8})
    Sizes(latent_dim=8)
    >>> checked(Sizes, {"latent_dim": 0})
    Traceback (most recent call last):
    ...
    tfae.errors.TfaeError: latent_dim must be positive, got 0
"""

import dataclasses
import math
import types

from tfae.errors import TfaeError

# Keras activations that make sense inside an autoencoder; the CLI offers them as choices.
ACTIVATIONS = ("relu", "sigmoid", "tanh", "elu", "selu", "gelu", "silu", "softplus", "leaky_relu",
               "linear")
# How the contractive penalty is computed (``tfae.models.contractive``).
PENALTIES = ("exact", "projection", "weights", "jacobian")


def latent_dim_option(default):
    """The size of the latent code, an option of every family.

    Examples:
        >>> latent_dim_option(64).metadata["minimum"]
        1
    """
    return option(default, "Size of the latent code.", minimum=1)


def hidden_option(default):
    """Hidden dense layer sizes, encoder side (the decoder mirrors them).

    Examples:
        >>> hidden_option((500, 200, 100)).default
        (500, 200, 100)
    """
    return option(default, "Hidden layer sizes, such as 500,200,100 (none for no hidden layer).",
                  minimum=1)


def activation_option(default="relu"):
    """The activation of the hidden layers.

    Examples:
        >>> "tanh" in activation_option().metadata["choices"]
        True
    """
    return option(default, "Activation of the hidden layers.", choices=ACTIVATIONS)


def penalty_weight_option(default):
    """lambda, the weight of the contractive penalty (``--lambda``).

    Examples:
        >>> penalty_weight_option(1e-4).metadata["flag"]
        '--lambda'
    """
    return option(default, "Weight of the contractive penalty.", minimum=0, flag="--lambda")


def penalty_option(default):
    """How the contractive penalty is computed, one of ``PENALTIES``.

    Examples:
        >>> penalty_option("exact").metadata["choices"]
        ('exact', 'projection', 'weights', 'jacobian')
    """
    return option(default, "How the contractive penalty is computed.", choices=PENALTIES)


def projections_option():
    """Random draws for ``penalty="projection"``.

    Examples:
        >>> projections_option().default
        1
    """
    return option(1, "Random projections for --penalty projection.", minimum=1)


def option(default, help, *, minimum=None, above=None, choices=None, flag=None, role=None):
    """A dataclass field declaring one option.

    Args:
        default: the value when the option is not given (a tuple for sizes).
        help: one sentence for ``--help`` and the API reference.
        minimum: the smallest allowed number (for sizes, the smallest allowed size).
        above: a number the value must exceed.
        choices: the allowed strings (or whole numbers).
        flag: the command-line flag when it is not the name with dashes (``--lambda``).
        role: what the setting decides, for the code that reads settings by what they do
            rather than by a list of names (``tfae.config.DataConfig.named``).

    Examples:
        >>> field = option(0.01, "C of the ridge solution.", above=0)
        >>> field.default, field.metadata["above"]
        (0.01, 0)
    """
    return dataclasses.field(default=default, metadata={
        "help": help, "minimum": minimum, "above": above, "choices": choices, "flag": flag,
        "role": role})


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """One declared option: what ``option`` recorded, with the field's name and type.

    Attributes:
        name: the Python name.
        type: ``int``, ``float``, ``str`` or ``tuple`` (a list of whole-number sizes).
        optional: whether ``None`` is allowed (then ``None`` means "the default elsewhere").
        default, help, minimum, above, choices: as given to ``option``.
        flag: the command-line flag.
        role: as given to ``option``.

    Examples:
        >>> from tfae.config import FitConfig
        >>> spec = {spec.name: spec for spec in specs(FitConfig)}["batch_size"]
        >>> spec.flag, spec.type, spec.minimum
        ('--batch-size', <class 'int'>, 1)
    """

    name: str
    type: type
    optional: bool
    default: object
    help: str
    minimum: float | None
    above: float | None
    choices: tuple | None
    flag: str
    role: str | None = None


def specs(cls):
    """The options of dataclass ``cls`` (fields made by ``option``), in declaration order.

    Examples:
        >>> from tfae.config import FitConfig
        >>> [spec.name for spec in specs(FitConfig)][:3]
        ['dataset', 'data_dir', 'manual_dir']
    """
    found = []
    for field in dataclasses.fields(cls):
        if "help" not in field.metadata:
            continue
        kind, optional = field.type, False
        if isinstance(kind, types.UnionType):
            kinds = [arg for arg in kind.__args__ if arg is not type(None)]
            kind, optional = kinds[0], len(kinds) < len(kind.__args__)
        meta = field.metadata
        found.append(OptionSpec(
            field.name, kind, optional, field.default, meta["help"], meta["minimum"],
            meta["above"], meta["choices"], meta["flag"] or "--" + field.name.replace("_", "-"),
            meta.get("role")))
    return found


def check_positive_whole(value, name):
    """Refuses an argument ``name`` (a batch size, say) given in Python that is not a whole
    number of at least 1 (``checked`` does this for declared options).

    Examples:
        >>> check_positive_whole(0, "batch_size")
        Traceback (most recent call last):
        ...
        tfae.errors.TfaeError: batch_size must be a positive whole number, got 0
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TfaeError("{%s} must be a positive whole number, got %r" % (name, value),
                        options=[name])


def checked(cls, values, unknown=None):
    """Makes dataclass ``cls`` from ``values``, checking each option against its declaration.

    Then calls ``check()`` on the result, if ``cls`` has one, for rules across options.

    Args:
        cls: a dataclass whose options are made by ``option``.
        values: a dict of option values; missing ones take their defaults.
        unknown: ``unknown(names)`` returns the ``TfaeError`` for names ``cls`` does not have;
            default "unknown option(s)".

    Raises:
        TfaeError: naming the option, the value received and what was expected.

    Examples:
        >>> from tfae.config import FitConfig
        >>> checked(FitConfig, {"epochs": "2"})
        Traceback (most recent call last):
        ...
        tfae.errors.TfaeError: epochs must be a whole number, got '2'
    """
    if not isinstance(values, dict):
        raise TfaeError(f"options must be a mapping of names to values, got {values!r}")
    names = {field.name for field in dataclasses.fields(cls)}
    extra = sorted(set(values) - names)
    if extra:
        raise unknown(extra) if unknown else TfaeError(
            "unknown option(s) " + ", ".join("{%s}" % name for name in extra), options=extra)
    declared = {spec.name: spec for spec in specs(cls)}
    result = cls(**{name: _coerced(declared[name], value) if name in declared else value
                    for name, value in values.items()})
    if hasattr(result, "check"):
        result.check()
    return result


def _coerced(spec, value):
    """``value`` as ``spec.type``, checked; raises a ``TfaeError`` naming the option."""
    def refuse(what):
        return TfaeError("{%s} %s, got %s" % (spec.name, what, repr(value)), options=[spec.name])

    if value is None and spec.optional:
        return None
    if spec.type is tuple:
        if not isinstance(value, (list, tuple)) or not all(_is_whole(size) for size in value):
            raise refuse("must be a list of whole numbers")
        if spec.minimum is not None and any(size < spec.minimum for size in value):
            raise TfaeError("{%s} sizes must be %s, got %s" % (
                spec.name, _bound(spec.minimum, None, int), repr(tuple(value))),
                options=[spec.name])
        return tuple(value)
    if spec.type is int:
        if not _is_whole(value):
            raise refuse("must be a whole number")
        if spec.choices and value not in spec.choices:
            raise refuse(f"must be one of {', '.join(map(str, spec.choices))}")
    elif spec.type is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise refuse("must be a number")
        if not math.isfinite(value):
            raise refuse("must be a finite number")
        value = float(value)
    elif spec.type is str:
        if not isinstance(value, str):
            raise refuse("must be a string")
        if spec.choices and value not in spec.choices:
            raise refuse(f"must be one of {', '.join(spec.choices)}")
        return value
    if ((spec.minimum is not None and value < spec.minimum)
            or (spec.above is not None and not value > spec.above)):
        raise refuse(f"must be {_bound(spec.minimum, spec.above, spec.type)}")
    return value


def _is_whole(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _bound(minimum, above, kind):
    if (minimum == 1 and kind is int) or above == 0:
        return "positive"
    return f">= {minimum}" if minimum is not None else f"> {above}"
