"""Run folders: the JSON files a run writes, written atomically so a crash never leaves half a file.

Examples:
    >>> from tfae.runs import read_json, write_json
    >>> write_json(pathlib.Path("/tmp/example.json"), {"epochs": 3})
    >>> read_json(pathlib.Path("/tmp/example.json"))
    {'epochs': 3}
"""

import json
import os
import pathlib

import keras
import tensorflow as tf

from tfae.errors import TfaeError


def write_text(path, text):
    """Writes ``text`` to ``path`` through a temporary file beside it and a rename.

    Examples:
        >>> write_text("docs/performance.md", "# Performance\\n")  # doctest: +SKIP
    """
    path = pathlib.Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def write_json(path, value):
    """Writes ``value`` as indented JSON to ``path``, atomically (``write_text``).

    Examples:
        >>> write_json("runs/deep/notes.json", {"epochs": 5})  # doctest: +SKIP
    """
    write_text(path, json.dumps(value, indent=2, default=str) + "\n")


def read_json(path):
    """Reads a JSON file of a run, or raises a ``TfaeError`` naming it.

    Examples:
        >>> read_json("runs/deep/config.json")["model"]  # doctest: +SKIP
        'deep'
    """
    try:
        return json.loads(pathlib.Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise TfaeError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from None


def check_settings(folder, settings_path, settings, kind, ignore=()):
    """Refuses ``folder`` when the settings saved at ``settings_path`` differ from ``settings``.

    Names in ``ignore`` may differ: a run given more epochs extends itself.

    Raises:
        TfaeError: naming the settings that differ.

    Examples:
        >>> check_settings(pathlib.Path("runs/deep"), pathlib.Path("runs/deep/config.json"),
        ...                {"model": "deep"}, "run")  # doctest: +SKIP
    """
    saved = read_json(settings_path)
    wanted = json.loads(json.dumps(settings))  # tuples become lists, as saved
    changed = [name for name in wanted if name not in ignore and saved.get(name) != wanted[name]]
    if changed:
        raise TfaeError(f"--out {folder} holds a {kind} with other settings "
                        f"({', '.join(changed)}); choose another --out")


def claim_folder(folder, settings_path, settings, kind, ignore=()):
    """Records ``settings`` at ``settings_path`` in a new or empty ``folder``, or in one that holds
    a ``kind`` of the same settings (``check_settings``), so that it resumes.

    Raises:
        TfaeError: for a folder holding something else, or one that cannot be written.

    Examples:
        >>> claim_folder(pathlib.Path("search"), pathlib.Path("search/tune.json"),
        ...              {"model": "deep"}, "search")  # doctest: +SKIP
    """
    if settings_path.exists():
        check_settings(folder, settings_path, settings, kind, ignore)
    elif folder.exists() and any(folder.iterdir()):
        raise TfaeError(f"--out {folder} is not empty and holds no tfae {kind}; choose another --out")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_json(settings_path, settings)
    except OSError as error:
        raise TfaeError(f"cannot write to --out {folder}: {error.strerror}") from None


def write_run_info(run_dir, fields):
    """Updates ``run_dir/run.json`` with ``fields`` and the versions of tfae, TensorFlow, Keras.

    Examples:
        >>> write_run_info("runs/deep", {"export": "saved_models/deep/1"})  # doctest: +SKIP
    """
    from tfae import __version__  # tfae/__init__ imports this module, so not at the top

    path = pathlib.Path(run_dir) / "run.json"
    info = read_json(path) if path.exists() else {}
    info.update(fields)
    info["versions"] = {"tfae": __version__, "tensorflow": tf.__version__,
                        "keras": keras.__version__}
    write_json(path, info)
