"""The families of autoencoders, one module each, and their registry.

A family module declares everything about its family in one ``register(Family(...))`` call: its
options (a dataclass of ``tfae.options.option`` fields), its builder, the fit defaults and
execution policy it prefers, its ``tfae tune`` search space and, where it trains otherwise than
by ``Model.fit``, its trainer. The command line's flags and choices, ``tfae tune``'s spaces, the
report, the benchmarks and the tests all read the registry, so a new family is one new module.

Family modules import Keras inside their builders and trainers, so the registry loads without
TensorFlow and ``tfae --help`` stays fast. The built-in families are this package's modules;
others come from installed packages that declare a ``tfae.families`` entry point, and from the
modules named in ``TFAE_FAMILY_MODULES`` (comma-separated, importable from ``sys.path``).

Examples:
    >>> import dataclasses
    >>> from tfae.families import Family, build_model, family_names, register, unregister
    >>> @dataclasses.dataclass
    ... class NoOptions:
    ...     pass
    >>> register(Family("tiny", "for a doctest", NoOptions, build=None))
    >>> family_names()[-1]
    'tiny'
    >>> unregister("tiny")
    >>> family_names()
    ['shallow', 'deep', 'contractive', 'denoising', 'conv', 'deep-conv', 'randomized', 'vae', 'geometric', 'geometric-conv']
    >>> build_model("shallow", (28, 28, 1), latent_dim=16).latent_dim
    16
"""

import contextlib
import dataclasses
import importlib
import importlib.metadata
import math
import os
import random
import re

from tfae.errors import TfaeError
from tfae.options import checked, specs
from tfae.registry import Registry

# The built-in families, in the study's order (the order of reports and listings); each is the
# module of its name, dashes written as underscores.
BUILT_IN = ("shallow", "deep", "contractive", "denoising", "conv", "deep-conv", "randomized",
            "vae", "geometric", "geometric-conv")
ENTRY_POINT_GROUP = "tfae.families"
MODULES_VARIABLE = "TFAE_FAMILY_MODULES"

# XLA fuses the elementwise work and Adam's update of dense models, which made them train faster
# on CPU and convolutions slower (measured in docs/performance.md), so only dense families take it,
# and only where it repays its compilation (``tfae.train.execution_for``).
XLA_WHERE_IT_PAYS = "where it pays"
XLA_EXECUTION = {"jit_compile": XLA_WHERE_IT_PAYS, "steps_per_execution": 16}


@dataclasses.dataclass(frozen=True)
class Family:
    """A family of autoencoders: what ``tfae fit --model NAME`` builds and how it trains.

    Attributes:
        name: the ``--model`` name.
        summary: one line on what the family is for.
        options: a dataclass of the family's options (builder's and trainer's), made of
            ``tfae.options.option`` fields; an optional ``check()`` method checks them together.
        build: ``build(image_shape, options) -> tfae.models.base.Autoencoder``.
        fit_defaults: ``FitConfig`` fields the family sets otherwise than ``FitConfig`` does,
            such as a denoising ``noise`` or ``epochs``.
        execution: ``Model.compile``'s ``jit_compile`` and ``steps_per_execution`` where they beat
            Keras' own choice; how a run trains, not what, so not part of its config.
        search_space: ``search_space(hp) -> (model options, FitConfig fields)`` for ``tfae
            tune``, declaring keras-tuner hyperparameters on ``hp``; ``None``: not tunable.
        trainer: ``trainer(model, batches, spec, verbose) -> history`` (``spec``: the run's
            ``tfae.config.RunSpec``) for a family trained otherwise than by ``Model.fit``;
            ``None`` for ``Model.fit``.
        takes_noise: whether ``noise`` applies.
        code_options: ``code_options(size) -> model options`` giving codes of ``size`` numbers,
            for a family whose code size is not ``latent_dim``; ``None``:
            ``{"latent_dim": size}``.
        trains_in_epochs: ``trains_in_epochs(options) -> bool``, whether ``epochs`` means
            anything to a run with these options (not to a closed-form solver); ``None``: always.
        has_prior: its models have a prior to sample new images from (``tfae sample``).

    Examples:
        >>> family = get_family("deep")
        >>> family.defaults["hidden"], family.fit_defaults["noise"]
        ((1000, 1000, 500), 'occlusion:50%')
    """

    name: str
    summary: str
    options: type
    build: callable
    fit_defaults: dict = dataclasses.field(default_factory=dict)
    execution: dict = dataclasses.field(default_factory=dict)
    search_space: callable = None
    trainer: callable = None
    takes_noise: bool = True
    code_options: callable = None
    trains_in_epochs: callable = None
    has_prior: bool = False

    @property
    def defaults(self):
        """The family's options and their default values.

        Examples:
            >>> get_family("shallow").defaults
            {'latent_dim': 2048, 'activation': 'relu'}
        """
        return {spec.name: spec.default for spec in specs(self.options)}

    def checked_options(self, values):
        """The family's options dataclass made from ``values``, each checked (see ``checked``).

        Raises:
            TfaeError: for an option the family does not take, or a bad value.

        Examples:
            >>> get_family("shallow").checked_options({"latent_dim": 32})
            ShallowOptions(latent_dim=32, activation='relu')
        """
        return checked(self.options, values, unknown=self._refuse)

    def new_model(self, image_shape, options, precision="float32"):
        """``build(image_shape, options)`` under Keras' dtype policy ``precision``
        (``tfae.config.PRECISIONS``). A model whose weights alone exceed this machine's memory
        is refused in one line naming its largest weight, before any is allocated (TensorFlow's
        CPU allocator would wait 10 s for memory before failing).

        Examples:
            >>> family = get_family("deep")
            >>> family.new_model((28, 28, 1), family.checked_options({"hidden": (64,)})).count_params()
            134288
            >>> family.new_model((28, 28, 1), family.checked_options({"hidden": (2 * 10**9,)}))  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            tfae.errors.TfaeError: model 'deep' does not fit in memory with these options: its weights need 16,648.0 GB, more than this machine's ... GB (the largest, of shape [784, 2000000000], 6,272.0 GB)
        """
        import tensorflow as tf

        from tfae.models.base import dtype_policy

        try:
            self._refuse_weights_past_memory(image_shape, options, precision)
            with dtype_policy(precision):
                return self.build(tuple(image_shape), options)
        except tf.errors.ResourceExhaustedError as error:
            shape = re.search(r"shape\[([\d,]+)\]", error.message)
            if not shape:
                raise TfaeError(f"model {self.name!r} does not fit in memory with these "
                                "options") from None
            raise self._too_large([int(size) for size in shape[1].split(",")], 4) from None

    def _refuse_weights_past_memory(self, image_shape, options, precision):
        """Builds the model once without allocating its weights (Keras defers their values in a
        ``StatelessScope``) and refuses it when their sizes add up past physical memory."""
        import keras
        import numpy as np
        # Keras keeps the variables a scope deferred in this list and allocates them at the next
        # scope's end; these are only measured, so they are dropped from it.
        from keras.src.backend.common import global_state

        from tfae.models.base import dtype_policy

        # Layers draw their initializers' seeds from Python's generator as they are made: put
        # back as it was, the model built next gets the weights it would have without this.
        drawn = random.getstate()
        try:
            with dtype_policy(precision), keras.StatelessScope(initialize_variables=False):
                weights = self.build(tuple(image_shape), options).weights
        finally:
            global_state.set_global_attribute("uninitialized_variables", [])
            random.setstate(drawn)
        sizes = {tuple(weight.shape): np.dtype(weight.dtype).itemsize * math.prod(weight.shape)
                 for weight in weights}
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        if sum(sizes.values()) > memory:
            largest = max(sizes, key=sizes.get)
            raise TfaeError(f"model {self.name!r} does not fit in memory with these options: its "
                            f"weights need {sum(sizes.values()) / 1e9:,.1f} GB, more than this "
                            f"machine's {memory / 1e9:,.1f} GB (the largest, of shape "
                            f"{list(largest)}, {sizes[largest] / 1e9:,.1f} GB)")

    def _too_large(self, shape, itemsize):
        return TfaeError(f"model {self.name!r} does not fit in memory with these options: a "
                         f"weight of shape {shape} needs {itemsize * math.prod(shape) / 1e9:,.1f} GB")

    def options_for_code_size(self, size):
        """The model options that give codes of ``size`` numbers, the family's others kept.

        Examples:
            >>> get_family("deep").options_for_code_size(32)
            {'latent_dim': 32}
            >>> get_family("randomized").options_for_code_size(32)
            {'hidden': (32,)}
        """
        if self.code_options is not None:
            return self.code_options(size)
        if "latent_dim" not in self.defaults:
            raise TfaeError(f"model {self.name!r} has no code size option")
        return {"latent_dim": size}

    def _refuse(self, names):
        takes = list(self.defaults)
        return TfaeError(
            ", ".join("{%s}" % name for name in names) + f" does not apply to model {self.name!r} "
            "(it takes " + ", ".join("{%s}" % name for name in takes) + ")",
            options=[*names, *takes])


def _load_plug_ins():
    """Imports the families of entry points and ``TFAE_FAMILY_MODULES``."""
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        entry_point.load()
    for module in filter(None, os.environ.get(MODULES_VARIABLE, "").split(",")):
        try:
            importlib.import_module(module.strip())
        except ImportError as error:
            raise TfaeError(f"{MODULES_VARIABLE}: cannot import {module.strip()!r}: {error}") from None


# The registry (``tfae.registry.Registry``): ``register(Family(...))`` adds a family (one of the
# same name is replaced), ``unregister(name)`` removes one, ``get_family(name)`` finds one.
FAMILIES = Registry("model", BUILT_IN, __name__, _load_plug_ins)
register, unregister, get_family = FAMILIES.register, FAMILIES.unregister, FAMILIES.get


def family_names():
    """The registered ``--model`` names, built-in ones first, in the study's order.

    Examples:
        >>> family_names()[:2]
        ['shallow', 'deep']
    """
    return FAMILIES.names()


def families():
    """The registered families: the built-in ones in ``BUILT_IN``'s order, then the others in the
    order they registered.

    Examples:
        >>> [family.name for family in families() if family.trainer is not None]
        ['randomized']
    """
    return FAMILIES.all()


def tunable_family_names():
    """The families ``tfae tune`` can search: those with a search space.

    Examples:
        >>> "randomized" in tunable_family_names()
        False
    """
    return [family.name for family in families() if family.search_space is not None]


def describe_space(model):
    """The search space of family ``model`` as one line, as ``tfae tune --help`` prints it,
    recorded by ``SpaceSketch`` without keras-tuner, which would start TensorFlow for a help.

    Examples:
        >>> describe_space("conv")
        'filters_0 in {16, 32, 64}; latent_dim in {32, 64, 128, 256}'
        >>> describe_space("deep").split("; ")[2]
        'units_1 in {128, 256, 512, 1024} (depth 2, 3)'
    """
    sketch = SpaceSketch()
    get_family(model).search_space(sketch)
    return "; ".join(sketch.parts)


class SpaceSketch:
    """What a family's ``search_space(hp)`` declares, written down: the part of keras-tuner's
    ``HyperParameters`` the spaces call (``Int``, ``Float``, ``Choice``, ``conditional_scope``),
    each answering its default as keras-tuner does (a choice's first value, a range's minimum).
    ``tests/test_tune.py`` checks it names what keras-tuner's own space holds.

    Examples:
        >>> sketch = SpaceSketch()
        >>> sketch.Float("beta", 0.25, 4.0, sampling="log"), sketch.parts
        (0.25, ['beta in [0.25, 4, log]'])
    """

    def __init__(self):
        self.parts, self._conditions = [], []

    def Choice(self, name, values, **_):  # noqa: N802 - keras-tuner's names
        self._add(f"{name} in {{{', '.join(map(str, values))}}}")
        return values[0]

    def Int(self, name, min_value, max_value, **_):  # noqa: N802
        self._add(f"{name} in [{min_value:g}, {max_value:g}]")
        return min_value

    def Float(self, name, min_value, max_value, sampling=None, **_):  # noqa: N802
        scale = f", {sampling}" if sampling not in (None, "linear") else ""
        self._add(f"{name} in [{min_value:g}, {max_value:g}{scale}]")
        return min_value

    @contextlib.contextmanager
    def conditional_scope(self, parent, values):
        self._conditions.append(f" ({parent} {', '.join(map(str, values))})")
        try:
            yield
        finally:
            self._conditions.pop()

    def _add(self, part):
        self.parts.append(part + "".join(self._conditions))


def option_names():
    """The names of every registered family's options: what a setting may name besides the
    ``FitConfig`` fields.

    Examples:
        >>> {"latent_dim", "filters", "penalty_weight"} <= option_names()
        True
    """
    return {spec.name for family in families() for spec in specs(family.options)}


def build_model(name, image_shape, **options):
    """Builds family ``name`` for images of ``image_shape``; missing options take its defaults.

    Examples:
        >>> build_model("deep", (28, 28, 1), hidden=(32,), latent_dim=4).encoder.output_shape
        (None, 4)
    """
    family = get_family(name)
    return family.new_model(image_shape, family.checked_options(options))


__all__ = ["BUILT_IN", "Family", "XLA_EXECUTION", "XLA_WHERE_IT_PAYS", "build_model", "families",
           "family_names", "get_family", "option_names", "register", "tunable_family_names", "unregister"]
