"""Shared test set-up: one tfds data folder for the whole suite and its subprocesses.

tfds builds MNIST from the bundled files once per data folder (about 15 s), so every test, and
every ``tfae`` subprocess a test starts, shares one folder that outlives the session.
"""

import contextlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import textwrap
import traceback

import numpy as np
import pytest

TFDS_DATA_DIR = pathlib.Path(
    os.environ.get("TFAE_TEST_TFDS_DIR", pathlib.Path(tempfile.gettempdir()) / "tfae-tests-tfds"))
os.environ["TFDS_DATA_DIR"] = str(TFDS_DATA_DIR)  # before tfds is imported, which reads it once
# Baselines measured once in the session are read by its later tests and subprocesses, not by
# a user's own tfae nor the next session (tfae.probes.baselines).
os.environ.setdefault("TFAE_CACHE_DIR", tempfile.mkdtemp(prefix="tfae-tests-cache-"))
# Each of pytest-xdist's workers gets its share of the cores for TensorFlow's two thread pools
# and OpenMP's (oneDNN, scikit-learn), in its subprocesses too: by default every process sizes
# its pools to all the cores, and two workers' threads, spinning while they wait, take turns at
# the same cores (2 cores: the fast tier 164 s, 300 s of CPU, with full pools; 156 s, 283 s
# with shares).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    for _variable in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(_variable, str(max(1, (os.cpu_count() or 1) // _WORKERS)))


@pytest.fixture(scope="session")
def mnist():
    """The first 512 images of each MNIST split."""
    from tfae import data

    return data.load("mnist", limit=512)


def run_tfae(*args, cwd, check=True):
    """Runs ``tfae ARGS`` in ``cwd`` in this process, with click's test runner; returns a
    CompletedProcess (returncode, stdout, stderr).

    A subprocess would pay TensorFlow's start (4-5 s) again: tests start one themselves only for
    what a process alone shows (environment read at start-up, a signal, an exit status to the
    shell). An exception escaping a command is a traceback on stderr and exit status 1, as it
    would be in a process of its own.
    """
    from click.testing import CliRunner

    from tfae_cli.main import tfae

    arguments = [str(arg) for arg in args]
    with contextlib.chdir(cwd):
        outcome = CliRunner().invoke(tfae, arguments, prog_name="tfae")
    stderr = outcome.stderr
    if outcome.exception is not None and not isinstance(outcome.exception, SystemExit):
        stderr += "".join(traceback.format_exception(outcome.exception))
    result = subprocess.CompletedProcess(["tfae", *arguments], outcome.exit_code, outcome.stdout,
                                         stderr)
    if check and result.returncode != 0:
        raise AssertionError(f"tfae {' '.join(arguments)} failed:\n{result.stderr[-3000:]}")
    return result


# Runs where tfae cannot be imported: an export must stand on TensorFlow alone.
_SERVE_WITHOUT_TFAE = textwrap.dedent("""
    import sys
    sys.modules["tfae"] = None
    sys.modules["tfae_cli"] = None
    import json
    import numpy as np
    import tensorflow as tf
    version_dir, images = sys.argv[1], np.load(sys.argv[2])
    served = tf.saved_model.load(version_dir)
    codes = served.signatures["encode"](images=tf.constant(images))["codes"]
    outputs = {
        "signatures": sorted(served.signatures),
        "reconstructions": served.signatures["serving_default"](
            images=tf.constant(images))["reconstructions"].numpy().tolist(),
        "codes": codes.numpy().tolist(),
        "decoded": served.signatures["decode"](codes=codes)["images"].numpy().tolist(),
    }
    print(json.dumps(outputs))
""")


def serve_without_tfae(version_dir, images, work_dir):
    """Loads an export in a process that cannot import tfae; returns its three endpoints' outputs."""
    np.save(pathlib.Path(work_dir) / "images.npy", images)
    result = subprocess.run(
        [sys.executable, "-c", _SERVE_WITHOUT_TFAE, str(version_dir),
         str(pathlib.Path(work_dir) / "images.npy")],
        capture_output=True, text=True, check=True, cwd=work_dir)
    return json.loads(result.stdout.strip().splitlines()[-1])


def write_images(folder, count, shape=(8, 8, 1), seed=0, suffix=".png"):
    """Writes ``count`` random images of ``shape`` into ``folder``; returns them."""
    import tensorflow as tf
    from PIL import Image

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images = np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)
    for index, image in enumerate(images):
        path = folder / f"{index:03d}{suffix}"
        if suffix == ".png":
            tf.io.write_file(str(path), tf.io.encode_png(image))
        else:
            Image.fromarray(image.squeeze(-1) if shape[-1] == 1 else image).save(path)
    return images


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    """A tiny untrained ``deep`` export (version 1) for the serving tests, one per test module."""
    from tfae.exports import export_saved_model
    from tfae.families import build_model

    export_dir = tmp_path_factory.mktemp("export") / "deep"
    export_saved_model(build_model("deep", (28, 28, 1), hidden=(16,), latent_dim=4), export_dir)
    return export_dir
