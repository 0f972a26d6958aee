"""LiteRT and ONNX files of a run (``tfae export --format``) agree with the run.

Float files give the library's codes and scores to 1e-4 relative; an int8 LiteRT file flags the
images the library flags on at least 99% of MNIST's test split; every family converts to both
formats; and the files run in an interpreter without TensorFlow, as on a board.
"""

import errno
import fcntl
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

import tfae
from tfae import device_files
from tfae.device_runtimes import FILE_SUFFIXES
from tfae.errors import TfaeError
from tfae.families import family_names, get_family
from tfae_cli.main import tfae as tfae_command

# The families the agreement is asserted for, small enough to train in seconds.
AGREEING = {"deep": {"hidden": (64,), "latent_dim": 16}, "conv": {"filters": (8,),
                                                                  "latent_dim": 16},
            "vae": {"hidden": (64,), "latent_dim": 8}}


def _fit(family, options, out, limit=1000, epochs=2):
    return tfae.fit(tfae.FitConfig(model=family, epochs=epochs, limit=limit, batch_size=32,
                                   model_options=options), out, verbose=0)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("device-files")
    _fit("deep", {"hidden": (32,), "latent_dim": 8}, work / "run", limit=300, epochs=1)
    return work


@pytest.fixture(scope="module")
def test_images(mnist):
    return np.stack([image.numpy() for image, _ in mnist.test.take(64)]).astype(np.float32) / 255


def _relative(found, expected):
    """The largest difference over the largest value: what a float file must keep under 1e-4."""
    return float(np.max(np.abs(np.asarray(found) - expected)) / np.max(np.abs(expected)))


def _relative_rms(found, expected):
    """The root mean square difference over that of the values: an int8 file's rounding."""
    return float(np.linalg.norm(np.asarray(found) - expected) / np.linalg.norm(expected))


def test_a_litert_file_encodes_and_scores_as_its_run_and_is_written_whole_or_not_at_all(
        small_run, test_images, monkeypatch):
    run, out = small_run / "run", small_run / "deep.tflite"
    assert tfae.export(run, format="litert", out=out) == out
    settings = json.loads((small_run / "deep.tflite.json").read_text())
    library, device = tfae.open_model(run), tfae.open_model(out)
    assert settings["anomaly"] == {"score": "reconstruction", "contamination": 0.05,
                                   "threshold": library.detector().threshold_}
    assert settings["input"] == {"name": "images", "dtype": "float32", "range": [0.0, 1.0]}
    assert {"encode", "serving_default", "score", "decode"} == set(settings["signatures"])
    assert device.image_shape == (28, 28, 1) and device.latent_dim == 8
    assert _relative(device.encode(test_images), np.asarray(library.encode(test_images))) < 1e-4
    assert _relative(device.decode(np.asarray(library.encode(test_images))),
                     np.asarray(library.reconstruct(test_images))) < 1e-4
    scores = library.detector().decision_function(test_images)
    assert _relative(device.detector().decision_function(test_images), scores) < 1e-4
    # tfae score on the file: the run's flags, with the threshold the file carries
    monkeypatch.chdir(small_run)
    shown = [json.loads(CliRunner().invoke(tfae_command, [
        "score", path, "--split", "test", "--limit", "300", "--json", "--quiet"]).output)
        for path in ("run", "deep.tflite")]
    assert shown[0]["flagged"] == shown[1]["flagged"] and shown[1]["threshold"] == pytest.approx(
        shown[0]["threshold"])
    # a file of that name is never replaced, and a failed write leaves nothing
    written = out.read_bytes()
    with pytest.raises(TfaeError, match="deep.tflite exists: tfae never replaces a file"):
        tfae.export(run, format="litert", out=out)
    assert out.read_bytes() == written

    link = os.link

    def full_disk(source, target):
        if str(target).endswith(".tflite"):
            raise OSError(errno.ENOSPC, "No space left on device")
        link(source, target)

    monkeypatch.setattr(device_files.os, "link", full_disk)
    before = sorted(path.name for path in small_run.iterdir())
    with pytest.raises(TfaeError, match=r"cannot write .*again.tflite: No space left on device "
                                        r"\(nothing was left there\)"):
        tfae.export(run, format="litert", out=small_run / "again.tflite")
    assert sorted(path.name for path in small_run.iterdir()) == before


def test_a_run_being_trained_is_not_exported(small_run):
    lock = small_run / "run/.lock"
    with open(lock, "a+") as held:  # as a fit in another process holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        held.truncate(0)
        held.write("4242\n")
        held.flush()
        for format in ("saved_model", "litert", "onnx"):
            with pytest.raises(TfaeError, match=r"is being trained by another tfae process "
                                                r"\(pid 4242\); export it once that has finished"):
                tfae.export(small_run / "run", format=format)


def test_a_format_whose_runtime_is_missing_says_how_to_install_it(small_run, monkeypatch):
    import importlib

    real_import = importlib.import_module

    def without_runtimes(name, *args, **kwargs):
        if name.split(".")[0] in ("onnxruntime", "ai_edge_litert"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", without_runtimes)
    with pytest.raises(TfaeError, match=r"ONNX files need onnxruntime: pip install 'tfae\[onnx\]'"):
        tfae.export(small_run / "run", format="onnx", out=small_run / "none.onnx")
    with pytest.raises(TfaeError, match=r"LiteRT files need ai-edge-litert: pip install "
                                        r"'tfae\[litert\]'"):
        tfae.export(small_run / "run", format="litert", quantize="int8",
                    out=small_run / "none.tflite")
    assert not list(small_run.glob("none.*"))


@pytest.fixture(scope="module", params=sorted(AGREEING))
def agreeing_run(request, tmp_path_factory):
    family = request.param
    work = tmp_path_factory.mktemp(f"agreeing-{family}")
    _fit(family, AGREEING[family], work / "run")
    files = {(format, quantize): tfae.export(
        work / "run", format=format, quantize=quantize,
        out=work / f"{family}-{quantize or 'float'}{FILE_SUFFIXES[format]}")
        for format, quantize in (("litert", None), ("litert", "int8"), ("onnx", None))}
    return family, work, files


@pytest.mark.slow  # reason: three families trained and exported in three formats each
def test_float_files_agree_to_1e_4_and_int8_flags_agree_on_99_percent_of_mnists_test_split(
        agreeing_run):
    family, work, files = agreeing_run
    images = np.concatenate([batch for batch, _ in tfae.data.pipeline(
        tfae.data.load("mnist").test, 1000)])  # all 10,000
    library = tfae.open_model(work / "run")
    codes = np.asarray(library.encode(images))
    detector = library.detector()
    scores, flags = detector.decision_function(images), detector.predict(images)
    for key in (("litert", None), ("onnx", None)):
        device = tfae.open_model(files[key])
        assert _relative(device.encode(images), codes) < 1e-4, (family, key)
        assert _relative(device.detector().decision_function(images), scores) < 1e-4, key
        assert np.mean(device.detector().predict(images) == flags) > 0.999, key
    int8 = tfae.open_model(files["litert", "int8"])
    agreeing = np.mean(int8.detector().predict(images) == flags)
    assert agreeing >= 0.99, f"{family}: int8 flags agree on {agreeing:.2%} of the test split"
    assert _relative_rms(int8.encode(images), codes) < 0.05, family


@pytest.mark.slow  # reason: a fresh interpreter, which is what is tested
def test_the_files_run_where_tensorflow_is_not_imported(agreeing_run, test_images):
    family, work, files = agreeing_run
    library = tfae.open_model(work / "run")
    expected = work / "expected.npz"
    np.savez(expected, images=test_images, codes=np.asarray(library.encode(test_images)),
             scores=library.detector().decision_function(test_images))
    # What a board runs: the runtimes alone, the settings file for an int8 file's input scale.
    program = textwrap.dedent("""
        import json, sys
        import numpy as np
        import onnxruntime
        from ai_edge_litert.interpreter import Interpreter

        expected = np.load(sys.argv[1])
        images = expected["images"]
        found = {}
        for path in sys.argv[2:]:
            if path.endswith(".onnx"):
                session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
                codes, scores = session.run(["codes", "scores"], {"images": images})
            else:
                settings = json.load(open(path + ".json"))["input"]
                interpreter = Interpreter(model_path=path)
                given = images
                if settings["dtype"] == "uint8":
                    given = np.round(images / settings["scale"] + settings["zero_point"])
                    given = np.clip(given, 0, 255).astype(np.uint8)
                codes = interpreter.get_signature_runner("encode")(images=given)["codes"]
                scores = interpreter.get_signature_runner("score")(images=given)["scores"]
            found[path] = {name: [float(np.max(np.abs(value - expected[name]))
                                        / np.max(np.abs(expected[name]))),
                                  float(np.linalg.norm(value - expected[name])
                                        / np.linalg.norm(expected[name]))]
                           for name, value in (("codes", codes), ("scores", scores))}
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules
        print(json.dumps(found))
    """)
    answer = subprocess.run([sys.executable, "-c", program, str(expected),
                             *map(str, files.values())], capture_output=True, text=True,
                            timeout=120)
    assert answer.returncode == 0, answer.stderr
    errors = json.loads(answer.stdout)
    for (format, quantize), path in files.items():
        for name, (largest, rms) in errors[str(path)].items():
            # a float file: every number to 1e-4; an int8 file: its rounding, on the whole
            assert (rms < 0.05 if quantize else largest < 1e-4), (family, format, quantize, name,
                                                                  largest, rms)


@pytest.mark.slow  # reason: every family trained and converted
@pytest.mark.parametrize("family", family_names())
def test_every_family_converts_to_both_formats(family, tmp_path, test_images):
    _fit(family, get_family(family).options_for_code_size(8), tmp_path / "run", limit=300,
         epochs=1)
    library = tfae.open_model(tmp_path / "run")
    for format in ("litert", "onnx"):
        path = tfae.export(tmp_path / "run", format=format,
                           out=tmp_path / f"model{FILE_SUFFIXES[format]}")
        device = tfae.open_model(path)
        assert _relative(device.encode(test_images),
                         np.asarray(library.encode(test_images))) < 1e-4, (family, format)
        assert _relative(device.reconstruct(test_images),
                         np.asarray(library.reconstruct(test_images))) < 1e-4, (family, format)
        # the score the run's detector gives by default (geometric's adds its turns)
        assert _relative(device.detector().decision_function(test_images),
                         library.detector().decision_function(test_images)) < 1e-4, (family,
                                                                                     format)


@pytest.mark.slow  # reason: kill -9 of a process of its own
def test_an_export_killed_midway_leaves_no_file_and_the_next_cleans_up_after_it(small_run):
    import signal
    import time

    out = small_run / "killed.tflite"
    exporting = subprocess.Popen([sys.executable, "-m", "tfae", "export", str(small_run / "run"),
                                  "--format", "litert", "--out", str(out), "--quiet"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(small_run.glob(".killed.tflite.*")) and time.monotonic() < deadline:
        time.sleep(0.05)  # killed once its SavedModel is being written, before its file
    os.kill(exporting.pid, signal.SIGKILL)
    exporting.wait()
    assert list(small_run.glob(".killed.tflite.*")), "the export never began its work"
    assert not out.exists() and not (small_run / "killed.tflite.json").exists()
    assert tfae.export(small_run / "run", format="litert", out=out) == out
    assert not list(small_run.glob(".killed.tflite.*"))  # the dead process's, removed
    assert json.loads((small_run / "killed.tflite.json").read_text())["format"] == "litert"
