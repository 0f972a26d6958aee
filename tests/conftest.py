"""Shared test set-up: one tfds data folder for the whole suite and its subprocesses.

tfds builds MNIST from the bundled files once per data folder (about 15 s), so every test, and
every ``tfae`` subprocess a test starts, shares one folder that outlives the session.
"""

import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

TFDS_DATA_DIR = pathlib.Path(
    os.environ.get("TFAE_TEST_TFDS_DIR", pathlib.Path(tempfile.gettempdir()) / "tfae-tests-tfds"))
os.environ["TFDS_DATA_DIR"] = str(TFDS_DATA_DIR)  # before tfds is imported, which reads it once


@pytest.fixture(scope="session")
def mnist():
    """The first 512 images of each MNIST split."""
    from tfae import data

    return data.load("mnist", limit=512)


def run_tfae(*args, cwd, check=True, timeout=600):
    """Runs the installed ``tfae`` command in ``cwd``; returns the CompletedProcess."""
    result = subprocess.run([sys.executable, "-m", "cli.main", *map(str, args)], cwd=cwd,
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"tfae {' '.join(map(str, args))} failed:\n{result.stderr[-3000:]}")
    return result
