"""Starting TensorFlow for the command line and the server's worker processes: quietly, and
with XLA's compiled programs kept on disk between runs.

Examples:
    >>> from tfae.startup import start_tensorflow
    >>> start_tensorflow(verbose=False)
"""

import importlib.metadata
import os
import pathlib
import sys
import tempfile


def xla_cache_dir():
    """Where compiled XLA programs are kept between processes: ``$TFAE_CACHE_DIR`` or
    ``~/.cache/tfae``, in a folder per TensorFlow version (a program compiled by one may not load
    in another); ``None`` where that folder cannot be written.

    Examples:
        >>> xla_cache_dir().name.startswith("xla-")
        True
    """
    root = os.environ.get("TFAE_CACHE_DIR") or pathlib.Path(
        os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache") / "tfae"
    folder = pathlib.Path(root) / f"xla-{importlib.metadata.version('tensorflow')}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:  # TensorFlow would fail the compilation, not just skip the cache
        return None
    return folder


def _keep_compiled_programs():
    """Points XLA's persistent cache at ``xla_cache_dir()``, unless the user's own
    ``TF_XLA_FLAGS`` name a cache. A run of a shape compiled before skips the compilation
    (about 1 s of a short ``deep`` run here; docs/performance.md)."""
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if "tf_xla_persistent_cache_directory" in flags:
        return
    folder = xla_cache_dir()
    if folder is not None:
        os.environ["TF_XLA_FLAGS"] = f"{flags} --tf_xla_persistent_cache_directory={folder}".strip()


def start_tensorflow(verbose=False):
    """Imports TensorFlow with its start-up lines hidden, unless ``verbose`` or the user's own
    ``TF_CPP_MIN_LOG_LEVEL`` (other than 2) asks for them.

    TensorFlow 2.21 prints CUDA probing, oneDNN and CPU-feature lines from C++ before its log
    level applies, so they are caught at the file descriptor; should the import fail, they are
    shown after all. tfds' absl warnings (a missing ``dataset_info.json`` while it prepares a data
    set) go the same way.

    Examples:
        >>> start_tensorflow()
        >>> import tensorflow as tf  # already imported, quietly
    """
    if "tensorflow" in sys.modules:
        return
    _keep_compiled_programs()  # read by TensorFlow once, at its first compilation
    if verbose or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2") != "2":
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # probes for GPUs now, while the lines are hidden
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.buffer.write(captured.read())
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
    from absl import logging

    logging.set_verbosity(logging.ERROR)
