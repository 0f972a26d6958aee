"""Atomic file I/O: every JSON or text file tfae writes goes to a temporary file beside it and is
renamed into place, so a crash or a kill never leaves half a file. Nothing here imports
TensorFlow.

Examples:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "notes.json"
    >>> write_json(path, {"epochs": 5})
    >>> read_json(path)
    {'epochs': 5}
"""

import contextlib
import json
import os
import pathlib

from tfae.errors import TfaeError


def write_text(path, text):
    """Writes ``text`` to ``path`` through a temporary file beside it and a rename.

    Raises:
        TfaeError: naming ``path`` and why it cannot be written; the old file is left as it was.

    Examples:
        >>> write_text("docs/performance.md", "# Performance\\n")  # doctest: +SKIP
    """
    path = pathlib.Path(path)
    # A name of this process's own: processes writing one file at once (a parallel search's
    # chief and workers) must not rename each other's temporary files away.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text)
        os.replace(temporary, path)
    except OSError as error:  # a full disk or a read-only folder: nothing half-written is left
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise TfaeError(f"cannot write {path}: {error.strerror or error}") from None


def write_npz(path, **arrays):
    """Writes ``arrays`` as an ``.npz`` archive to ``path``, atomically (``write_text``'s way: a
    temporary file beside it, named after this process, and a rename).

    Raises:
        TfaeError: naming ``path`` and why it cannot be written; the old file is left as it was.

    Examples:
        >>> write_npz("runs/deep/anomaly.npz", codes=np.zeros((2, 3)))  # doctest: +SKIP
    """
    import numpy as np

    path = pathlib.Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    try:
        np.savez(temporary, **arrays)
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise TfaeError(f"cannot write {path}: {error.strerror or error}") from None


def cache_folder(part):
    """The folder where tfae keeps ``part`` of what it can always measure again:
    ``$TFAE_CACHE_DIR/part``, by default ``~/.cache/tfae/part``.

    Examples:
        >>> cache_folder("baselines").name
        'baselines'
    """
    return pathlib.Path(os.environ.get("TFAE_CACHE_DIR") or "~/.cache/tfae").expanduser() / part


def file_identity(path):
    """Which file ``path`` is now, ``None`` if none: its inode, size and modification time, which
    change when it is replaced or rewritten.

    Examples:
        >>> file_identity("/nonexistent/file") is None
        True
    """
    try:
        stat = pathlib.Path(path).stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def write_json(path, value):
    """Writes ``value`` as indented JSON to ``path``, atomically (``write_text``).

    Examples:
        >>> write_json("runs/deep/notes.json", {"epochs": 5})  # doctest: +SKIP
    """
    write_text(path, json.dumps(value, indent=2, default=str) + "\n")


def read_json(path):
    """Reads a JSON file, or raises a ``TfaeError`` naming it.

    Examples:
        >>> read_json("runs/deep/config.json")["model"]  # doctest: +SKIP
        'deep'
    """
    try:
        return json.loads(pathlib.Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TfaeError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from None


def process_exists(pid):
    """Whether process ``pid`` is running (another user's counts): a temporary file named after
    a process that does not is a leftover of a killed writer.

    Examples:
        >>> process_exists(os.getpid())
        True
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
