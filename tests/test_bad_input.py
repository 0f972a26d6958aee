"""Bad input to every command, table-driven: one line, a non-zero exit, and nothing made or changed.

Every case runs in one shared folder holding a finished run, image folders and files; after each,
the folder must be exactly as it was (no run folder, export or data folder created, no file
touched).
"""

import json
import os
import pathlib
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from tfae_cli.main import tfae
from conftest import write_images

RUN = ["--model", "shallow", "--latent-dim", "8", "--limit", "200", "--epochs", "1"]

CASES = [
    # fit: the run's settings
    ("fit", ["--model", "huge"], "'huge' is not one of 'shallow'"),
    ("fit", ["--epochs", "0"], "0 is not in the range x>=1"),
    ("fit", ["--epochs", "abc"], "'abc' is not a valid integer"),
    ("fit", ["--batch-size", "0"], "0 is not in the range x>=1"),
    ("fit", ["--learning-rate", "0"], "0 is not in the range x>0"),
    ("fit", ["--learning-rate", "nan", "--limit", "10"], "--learning-rate must be a finite number"),
    ("fit", ["--loss", "huber"], "'huber' is not one of 'mse', 'bce'"),
    ("fit", ["--limit", "0"], "0 is not in the range x>=1"),
    ("fit", ["--seed", "abc"], "'abc' is not a valid integer"),
    ("fit", ["--early-stopping", "0"], "0 is not in the range x>=1"),
    ("fit", ["--steps-per-execution", "0"], "0 is not in the range x>=1"),
    ("fit", ["--model", "vae", "--beta", "0"], "'--beta': 0.0 is not in the range x>0"),
    ("fit", ["--model", "vae", "--lambda", "0.1"], "--lambda does not apply to model 'vae'"),
    ("fit", ["--precision", "float64"], "'float64' is not one of 'float32', 'mixed_float16'"),
    ("fit", ["--model", "randomized", "--precision", "mixed_float16"],
     "model 'randomized' is trained by its own solver, in float32"),
    ("fit", ["--strategy", "nope"], "'nope' is not one of 'default'"),
    ("fit", ["--export-dir", "exports", "--no-export"], "contradict each other"),
    ("fit", ["--config", "missing.json"], "cannot read missing.json"),
    ("fit", ["--config", "broken.json"], "cannot read broken.json"),
    ("fit", ["--config", "typed.json"], "config typed.json: epochs must be a whole number, "
                                        "got 'abc'"),
    ("fit", ["--config", "options.json"], "config options.json: bogus does not apply to model "
                                          "'deep' (it takes hidden, latent_dim"),
    ("fit", [*RUN, "--dataset", "mnist:99.0.0", "--out", "versioned"],
     "--dataset mnist:99.0.0: Dataset mnist cannot be loaded at version 99.0.0, only: 3.0.1"),
    ("fit", [*RUN, "--model", "deep", "--hidden", "2000000000", "--out", "huge"],
     "model 'deep' does not fit in memory with these options: its weights need 12,680.0 GB, more "
     "than this machine's"),
    ("fit", [*RUN, "--model", "deep", "--out", "run"], "holds a run of model 'shallow', not 'deep'"),
    ("fit", [*RUN, "--out", "notes.txt"], "is a file"),
    # fit: noise
    ("fit", ["--noise", "blur:3"], "is not KIND:AMOUNT"),
    ("fit", ["--noise", "gaussian:-1"], "the standard deviation must be > 0"),
    ("fit", ["--noise", "gaussian:inf"], "must be a finite number"),
    ("fit", ["--noise", "masking:2"], "the fraction must be in (0, 1]"),
    ("fit", ["--noise", "occlusion:0"], "the patch size must be a whole number >= 1"),
    ("fit", ["--noise", "occlusion:200%"], "the patch size must be in (0, 100]%"),
    ("fit", ["--noise", "occlusion:40", "--limit", "10"], "the patch does not fit in 28x28"),
    ("fit", ["--noise", "grayscale", "--limit", "10"], "needs colour images (3 channels), got 1"),
    ("fit", ["--noise", "grayscale:2"], "grayscale takes no amount"),
    # fit: the families' options
    ("fit", ["--hidden", "0"], "every size must be positive"),
    ("fit", ["--hidden", "abc"], "not a comma-separated list of whole numbers"),
    ("fit", ["--latent-dim", "-1"], "-1 is not in the range x>=1"),
    ("fit", ["--activation", "nope"], "'nope' is not one of 'relu'"),
    ("fit", ["--latent-activation", "nope"], "'nope' is not one of 'relu'"),
    ("fit", ["--model", "deep", "--filters", "8"], "--filters does not apply to model 'deep'"),
    ("fit", ["--model", "conv", "--filters", "8,16"], "one block"),
    ("fit", ["--model", "contractive", "--lambda", "-1"], "-1.0 is not in the range x>=0"),
    ("fit", ["--model", "contractive", "--penalty", "nope"], "'nope' is not one of 'exact'"),
    ("fit", ["--model", "contractive", "--projections", "0"], "0 is not in the range x>=1"),
    ("fit", ["--model", "randomized", "--solver", "adam"], "'adam' is not one of 'ridge', 'sgd'"),
    ("fit", ["--model", "randomized", "--ridge-c", "0"], "0 is not in the range x>0"),
    ("fit", ["--model", "randomized", "--decoder", "nope"], "'nope' is not one of 'refit'"),
    ("fit", ["--model", "randomized", "--hidden", "none"], "needs at least one layer in --hidden"),
    # fit: the data
    ("fit", ["--dataset", ""], "--dataset is empty"),
    ("fit", ["--dataset", "./nowhere"], "./nowhere: no such folder or .npz file"),
    ("fit", ["--dataset", "no_such_images"], "unknown data set 'no_such_images'"),
    ("fit", ["--dataset", "empty"], "folder empty is empty"),
    ("fit", ["--dataset", "notes"], "folder notes holds no images"),
    ("fit", ["--dataset", "corrupt"], "corrupt/001.png: not a readable image"),
    ("fit", ["--dataset", "mixed"], "images differ in size"),
    ("fit", ["--dataset", "mixed", "--image-size", "0,5"], "every size must be positive"),
    ("fit", ["--dataset", "mixed", "--image-size", "abc"], "not a comma-separated list"),
    ("fit", ["--dataset", "mixed", "--image-size", "1,2,3"], "--image-size must be two sizes"),
    ("fit", ["--dataset", "mixed", "--channels", "2"], "'2' is not one of '1', '3'"),
    ("fit", ["--dataset", "grey", "--test-fraction", "0"], "0 is not in the range x>0"),
    ("fit", ["--dataset", "grey", "--test-fraction", "1"], "--test-fraction must be below 1"),
    ("fit", ["--dataset", "grey", "--manual-dir", "."], "--manual-dir applies to tensorflow"),
    ("fit", ["--dataset", "nox.npz"], "nox.npz has no array 'x' of images"),
    ("fit", ["--dataset", "rank.npz"], "rank.npz: x must have shape (N, H, W)"),
    ("fit", ["--dataset", "labels.npz"], "labels.npz: y has 2 labels for 4 images in x"),
    ("fit", ["--dataset", "notes.txt.npz"], "is not an .npz file"),
    ("fit", ["--dataset", "fashion_mnist", "--manual-dir", "nowhere", "--data-dir", "tfds"],
     "--manual-dir nowhere is not a folder"),
    ("fit", ["--dataset", "fashion_mnist", "--manual-dir", "empty", "--data-dir", "tfds"],
     "--manual-dir empty lacks t10k-images-idx3-ubyte.gz"),
    # tune
    ("tune", ["--model", "randomized"], "'randomized' is not one of 'shallow'"),
    ("tune", ["--tuner", "nope"], "'nope' is not one of 'hyperband'"),
    ("tune", ["--max-trials", "3"], "--max-trials does not apply to hyperband"),
    ("tune", ["--epochs", "1"], "hyperband needs --epochs 2 or more"),
    ("tune", ["--objective", "nope"], "'nope' is not one of 'val_loss', 'probe'"),
    ("tune", ["--tuner", "random", "--max-trials", "0"], "0 is not in the range x>=1"),
    ("tune", ["--dataset", "grey", "--tuner", "random", "--objective", "probe"],
     "--objective probe needs labels of two classes or more, and grey has none"),
    ("tune", ["--export-dir", "exports", "--no-export"], "contradict each other"),
    # evaluate
    ("evaluate", ["nowhere"], "'nowhere' does not exist"),
    ("evaluate", ["no-record"], "no-record/run.json is not a run's record: a JSON object"),
    ("evaluate", ["not-keras"], "not-keras/model.keras is corrupt or not a Keras model (a .keras "
                                "file is a zip archive; this one is not)"),
    ("evaluate", ["empty"], "empty is neither a run folder (model.keras) nor a SavedModel"),
    ("evaluate", ["run", "--dataset", "./nowhere"], "no such folder or .npz file"),
    ("evaluate", ["run", "--channels", "2"], "'2' is not one of '1', '3'"),
    ("evaluate", ["run", "--limit", "-1"], "-1 is not in the range x>=0"),
    ("evaluate", ["run", "--dataset", "colour"], "takes images of shape (28, 28, 1)"),
    # plot
    ("plot", ["run", "--kind", "nope"], "'nope' is not one of 'tsne'"),
    ("plot", ["run"], "Missing option '--kind'"),
    ("plot", ["run", "--kind", "colorization", "--limit", "10"],
     "--kind colorization needs colour images"),
    ("plot", ["empty", "--kind", "history"], "has no history.json"),
    # export, serve, report
    ("export", ["nowhere"], "holds no finished run"),
    ("export", ["nowhere", "--format", "litert"], "holds no finished run"),
    ("export", ["run", "--format", "tflite"], "'tflite' is not one of 'saved_model', 'litert'"),
    ("export", ["run", "--format", "onnx", "--quantize", "int8"],
     "--quantize int8: only a LiteRT file (--format litert) is quantized"),
    ("export", ["run", "--quantize", "float16"], "only a LiteRT file (--format litert)"),
    ("export", ["run", "--format", "litert", "--quantize", "int4"], "'int4' is not one of"),
    ("export", ["run", "--format", "litert", "--out", "run.onnx"],
     "--out must end in .tflite for --format litert, got run.onnx"),
    ("export", ["run", "--format", "onnx", "--out", "notes.txt"],
     "--out must end in .onnx for --format onnx, got notes.txt"),
    ("export", ["run", "--format", "litert", "--out", "missing/run.tflite"],
     "--out: folder missing does not exist"),
    ("export", ["run", "--format", "litert", "--out", "taken.tflite"],
     "--out taken.tflite exists: tfae never replaces a file"),
    ("export", ["run", "--format", "onnx", "--out", "sidecar.onnx"],
     "--out sidecar.onnx.json exists: tfae never replaces a file"),
    ("export", ["run", "--format", "litert", "--score", "elbo"],
     "--score elbo: its draws are random ops, which LiteRT cannot hold"),
    ("export", ["run", "--format", "onnx", "--export-dir", "exports"],
     "--export-dir is a SavedModel's folder; --format onnx writes one file, to --out"),
    ("export", ["run", "--out", "run.tflite"],
     "--out names a device file; a SavedModel goes to --export-dir"),
    ("score", ["run", "--score", "elbo"],
     "--score elbo needs a variational autoencoder (--model vae)"),
    ("score", ["run", "--score", "transformations"],
     "--score transformations needs a model with a classifier of turns (--model geometric or "
     "geometric-conv)"),
    ("score", ["garbage.tflite"], "garbage.tflite has no settings beside it"),
    ("encode", ["garbage.onnx", "--out", "codes.npz"], "garbage.onnx has no settings beside it"),
    ("score", ["broken.tflite"], "broken.tflite is not a LiteRT model"),
    ("score", ["broken.onnx"], "broken.onnx is not an ONNX model onnxruntime can run"),
    ("serve", [".", "--port", "99999"], "99999 is not in the range 0<=x<=65535"),
    ("serve", [".", "--workers", "0"], "0 is not in the range x>=1"),
    ("serve", ["empty"], "holds no SavedModel versions"),
    ("serve", [".", "--grpc-port", "-1"], "-1 is not in the range 0<=x<=65535"),
    ("serve", [".", "--label", "stable"], "'stable' is not LABEL=VERSION"),
    ("serve", [".", "--label", "stable=one"], "'stable=one' is not LABEL=VERSION"),
    ("serve", [".", "--max-request-mb", "0"], "0 is not in the range 1<=x<=2047"),
    ("serve", [".", "--max-request-mb", "4096"], "4096 is not in the range 1<=x<=2047"),
    ("serve", [".", "--max-json-mb", "0"], "0 is not in the range x>=1"),
    ("serve", [".", "--name", "a/b"], "can hold neither '/' nor ':'"),
    ("serve", [".", "--name", "a:b"], "can hold neither '/' nor ':'"),
    ("report", ["--models", "huge"], "unknown report row 'huge'"),
    ("report", ["--epochs", "0"], "0 is not in the range x>=1"),
    ("report", ["--latent-dim", "8", "--study-shapes"], "give one"),
    ("report", ["--models", "shallow", "--dataset", "./nowhere"], "no such folder or .npz file"),
]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A folder holding a finished run, data of every kind, good and bad, and a few files."""
    work = tmp_path_factory.mktemp("bad-input")
    previous = os.getcwd()
    os.chdir(work)
    try:
        result = CliRunner().invoke(tfae, ["fit", *RUN, "--out", "run", "--no-export", "--quiet"])
        assert result.exit_code == 0, result.output
    finally:
        os.chdir(previous)
    (work / "empty").mkdir()
    (work / "notes").mkdir()
    (work / "notes/readme.txt").write_text("no images here")
    (work / "notes.txt").write_text("a file")
    (work / "notes.txt.npz").write_text("not an archive")
    write_images(work / "corrupt", 3)
    (work / "corrupt/001.png").write_bytes(b"\x89PNG cut short")
    write_images(work / "mixed", 2)
    write_images(work / "mixed/more", 2, shape=(5, 6, 1))
    write_images(work / "grey", 12)
    write_images(work / "colour", 12, shape=(28, 28, 3))
    np.savez(work / "nox.npz", images=np.zeros((4, 4, 4)))
    np.savez(work / "rank.npz", x=np.zeros((4, 4)))
    np.savez(work / "labels.npz", x=np.zeros((4, 4, 4)), y=np.zeros(2, int))
    (work / "broken.json").write_text("{")
    (work / "typed.json").write_text(json.dumps({"epochs": "abc"}))
    (work / "options.json").write_text(json.dumps({"model": "deep",
                                                   "model_options": {"bogus": 3}}))
    shutil.copytree(work / "run", work / "no-record")
    (work / "no-record/run.json").write_text("[]")
    (work / "taken.tflite").write_bytes(b"the user's own file")
    (work / "sidecar.onnx.json").write_text("{}")
    for name in ("garbage.tflite", "garbage.onnx", "broken.tflite", "broken.onnx"):
        (work / name).write_bytes(b"not a model")
    for name, format in (("broken.tflite", "litert"), ("broken.onnx", "onnx")):
        (work / f"{name}.json").write_text(json.dumps({
            "format": format, "image_shape": [28, 28, 1], "latent_dim": 8, "signatures": {},
            "anomaly": {"score": "reconstruction", "contamination": 0.05, "threshold": 1.0}}))
    shutil.copytree(work / "run", work / "not-keras")
    (work / "not-keras/model.keras").write_text("garbage")
    return work


def _state(folder):
    """Every path under ``folder`` with its size and modification time."""
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in sorted(pathlib.Path(folder).rglob("*"))}


def test_the_table_covers_every_command():
    assert len(CASES) >= 60
    assert {command for command, _, _ in CASES} == {
        "fit", "tune", "evaluate", "plot", "export", "serve", "report", "score", "encode"}


@pytest.mark.parametrize("command, args, words", CASES,
                         ids=[f"{command} {' '.join(args)}" for command, args, _ in CASES])
def test_bad_input_is_one_line_and_changes_nothing(work, monkeypatch, command, args, words):
    monkeypatch.chdir(work)
    before = _state(work)
    result = CliRunner().invoke(tfae, [command, *args])
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and words in errors[0], result.output
    assert _state(work) == before
