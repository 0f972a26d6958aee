"""Starting TensorFlow quietly, for the command line and the server's worker processes.

XLA's persistent compilation cache is deliberately not turned on: TensorFlow 2.21 writes its
entries in place, so a process reading one while another writes it fails its compilation, and a
run killed mid-write leaves an entry that fails every later run of that shape
(docs/performance.md).

Examples:
    >>> from tfae.startup import start_tensorflow
    >>> start_tensorflow(verbose=False)
"""

import contextlib
import os
import sys
import tempfile

from tfae.errors import TfaeError


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
    if verbose or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2") != "2":
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    with native_stderr_hidden():
        import tensorflow as tf

        tf.config.list_physical_devices()  # probes for GPUs now, while the lines are hidden
    from absl import logging

    logging.set_verbosity(logging.ERROR)


@contextlib.contextmanager
def native_stderr_hidden(hidden=True):
    """Hides what C and C++ code writes to stderr inside the block (Python's ``sys.stderr`` too),
    caught at the file descriptor; if the block fails unforeseen, it is shown after all (a
    ``TfaeError``'s one line says what failed: libjpeg's lines about the file it names are not).

    Examples:
        >>> with native_stderr_hidden():
        ...     tf.io.decode_image(jpeg_with_extra_bytes)  # doctest: +SKIP
    """
    if not hidden:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except TfaeError:
            raise
        except BaseException:
            sys.stderr.flush()
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.buffer.write(captured.read())
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
