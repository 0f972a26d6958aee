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

import json
import os
import pathlib

from tfae.errors import TfaeError


def write_text(path, text):
    """Writes ``text`` to ``path`` through a temporary file beside it and a rename.

    Examples:
        >>> write_text("docs/performance.md", "# Performance\\n")  # doctest: +SKIP
    """
    path = pathlib.Path(path)
    # A name of this process's own: processes writing one file at once (a parallel search's
    # chief and workers) must not rename each other's temporary files away.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


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
