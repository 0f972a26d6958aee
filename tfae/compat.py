"""The private names of other libraries tfae relies on, each checked once where it is used.

Where no public hook does the job, tfae overrides or calls a private name of Keras, keras-tuner,
tensorflow-datasets, TensorFlow or uvicorn: Keras' first-batch build under a strategy, its backup
writer, keras-tuner's trial writer, tfds' registration switch, TensorFlow's GPU map, uvicorn's
HTTP protocol. A release that renames one would otherwise break tfae silently (an override never
called) or deep inside a run; ``require`` checks each when its module is imported and says in
one line which library and version broke it, and which tfae was tested with (``TESTED``).
``setup.cfg`` bounds these libraries below their next major release.

Examples:
    >>> import keras
    >>> require(keras.callbacks.BackupAndRestore, ("_save_model",), "keras")
    >>> require(keras.callbacks.BackupAndRestore, ("_no_such_name",), "keras")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfae.errors.TfaeError: tfae relies on keras's private BackupAndRestore._no_such_name, which keras ... does not have (tfae was tested with keras 3.15.1); install that version
"""

import importlib
import importlib.metadata

from tfae.errors import TfaeError

# The versions tfae's use of each library's private names was tested with.
TESTED = {"keras": "3.15.1", "keras-tuner": "1.4.8", "tensorflow-datasets": "4.9.10",
          "tensorflow": "2.21.0", "uvicorn": "0.55.0"}


def _installed(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def _broken(package, what):
    return TfaeError(f"tfae relies on {package}'s private {what}, which {package} "
                     f"{_installed(package)} does not have (tfae was tested with {package} "
                     f"{TESTED[package]}); install that version")


def require(owner, names, package):
    """Refuses, in one line, a ``package`` whose ``owner`` (a class or module) lacks one of the
    private ``names`` tfae overrides or calls.

    Raises:
        TfaeError: naming the name, the installed version and the version tfae was tested with.

    Examples:
        >>> import keras_tuner
        >>> require(keras_tuner.Tuner, ("_get_tuner_fname", "_is_worker"), "keras-tuner")
    """
    for name in names:
        if not hasattr(owner, name):
            raise _broken(package, f"{getattr(owner, '__name__', owner)}.{name}")


def private_name(module, name, package):
    """``module.name``, a private name of ``package``, imported when first needed.

    Raises:
        TfaeError: as ``require``, for a module or name that moved.

    Examples:
        >>> private_name("tensorflow.python.data.experimental.ops.prefetching_ops",
        ...              "map_on_gpu", "tensorflow").__name__
        'map_on_gpu'
    """
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise _broken(package, f"{module}.{name}") from None
