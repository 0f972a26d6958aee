"""tfae: autoencoders on images with Keras 3 and TensorFlow.

Everything the ``tfae`` command does is a call here. The names below are imported on first use,
so that ``import tfae.families`` (and ``tfae --help``) does not wait for TensorFlow.

Importing tfae registers its Keras classes with Keras, as Keras' own packages do, so that
``keras.models.load_model`` opens a tfae model after ``import tfae``. It does so when Keras itself
is imported (at once if it already is), through the post-import hook of ``wrapt``, which
TensorFlow already depends on: ``import tfae`` alone still does not wait for TensorFlow.

Examples:
    >>> import tfae
    >>> run = tfae.fit(tfae.FitConfig(model="deep", epochs=1, limit=1000), "runs/deep")  # doctest: +SKIP
    >>> codes = run.model.encoder.predict(images)  # doctest: +SKIP
    >>> import keras
    >>> model = keras.models.load_model("runs/deep/model.keras", safe_mode=True)  # doctest: +SKIP
"""

import importlib as _importlib
import sys as _sys

import wrapt as _wrapt

__version__ = "0.1.0"

# public name -> the module it lives in
_EXPORTS = {
    "AnomalyDetector": "tfae.anomaly",
    "Autoencoder": "tfae.models.base",
    "Corruption": "tfae.corruptions",
    "DataConfig": "tfae.config",
    "Family": "tfae.families",
    "FitConfig": "tfae.config",
    "Run": "tfae.train",
    "RunFolder": "tfae.runs",
    "RunSpec": "tfae.config",
    "Records": "tfae.data",
    "Splits": "tfae.data",
    "TfaeError": "tfae.errors",
    "TuneConfig": "tfae.config",
    "as_splits": "tfae.data",
    "build_model": "tfae.families",
    "contractive_penalty": "tfae.models.contractive",
    "encode": "tfae.apply",
    "evaluate": "tfae.evaluation",
    "export": "tfae.exports",
    "export_saved_model": "tfae.exports",
    "family_names": "tfae.families",
    "fit": "tfae.train",
    "get_family": "tfae.families",
    "load": "tfae.data",
    "load_records": "tfae.data",
    "load_model": "tfae.runs",
    "open_model": "tfae.opened",
    "parse_corruption": "tfae.corruptions",
    "pipeline": "tfae.data",
    "reconstruct": "tfae.apply",
    "register": "tfae.families",
    "resolve": "tfae.config",
    "sample": "tfae.apply",
    "score": "tfae.apply",
    "tune": "tfae.tuning",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tfae' has no attribute {name!r}")
    value = getattr(_importlib.import_module(_EXPORTS[name]), name)
    if "keras" in _sys.modules:
        _import_keras_class_modules()
    globals()[name] = value
    return value


def __dir__():
    """The public names and the submodules imported so far, not the helpers this file uses."""
    return sorted({*_EXPORTS, "__version__",
                   *(name for name, value in globals().items()
                     if not name.startswith("_") and type(value).__name__ == "module"
                     and value.__name__.startswith("tfae."))})


def _keras_class_modules():
    """The modules defining the Keras classes a saved tfae model names (``tfae>Autoencoder``):
    every module of ``tfae.models``, found rather than listed (a list left out ``geometric``'s,
    and a run of it opened in a new process failed as "Could not locate class
    'GeometricAutoencoder'"). Keras imports the modules of its own packages only when it loads
    a model; these are looked up when Keras is imported, not with tfae.

    Examples:
        >>> "tfae.models.geometric" in _keras_class_modules()
        True
    """
    import pkgutil

    return [f"{__name__}.models.{info.name}"
            for info in pkgutil.iter_modules([f"{__path__[0]}/models"])]


def _register_keras_classes(keras_module):
    # When a class module is what imported Keras (``tfae.Autoencoder``, or ``from
    # tfae.models.base import Autoencoder``, first thing), it is half made: importing the others
    # now would need its classes before they exist. ``__getattr__`` imports them once it is done.
    if not any(_initializing(module) for module in _keras_class_modules()):
        _import_keras_class_modules()


def _import_keras_class_modules():
    """Imports the modules of tfae's Keras classes, which registers them with Keras.

    Examples:
        >>> _import_keras_class_modules()
        >>> import keras
        >>> keras.saving.get_registered_object("tfae>Autoencoder").__name__
        'Autoencoder'
    """
    for module in _keras_class_modules():
        _importlib.import_module(module)


def _initializing(name):
    module = _sys.modules.get(name)
    return module is not None and getattr(module.__spec__, "_initializing", False)


_wrapt.register_post_import_hook(_register_keras_classes, "keras")
