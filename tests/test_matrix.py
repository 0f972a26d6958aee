"""Every operation on every surface gives the same numbers.

Operations: encode, reconstruct, score and (a variational autoencoder's) sample. Surfaces: the
command line, the Python functions (arrays), an export's signatures taking float32 pixels, uint8
pixels and encoded image files, and ``tfae serve`` over REST (image files as ``{"b64": ...}``)
and gRPC (uint8 pixels). Each cell is checked against the Python function of the run folder, on
the same MNIST test images; ``MATRIX`` is the table ``docs/operations.md`` shows (``test_docs``
keeps the two the same). ``sample`` takes a count and a seed, not images: its cells send the
codes ``tfae.models.variational.prior_codes(count, latent_dim, seed)`` draws.
"""

import base64
import json
import urllib.request

import grpc
import numpy as np
import pyarrow.csv
import pytest
import tensorflow as tf
from click.testing import CliRunner
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

import tfae
from tfae.models.variational import prior_codes
from tfae.serving import Server, ServerSettings
from tfae_cli.main import tfae as tfae_command

OPERATIONS = ("encode", "reconstruct", "score", "sample")
# surface -> (what it is, how each operation is called there; None where it takes no images)
MATRIX = {
    "command line": ("`tfae OPERATION RUN_OR_EXPORT`", {
        "encode": "`tfae encode PATH --out codes.npz`",
        "reconstruct": "`tfae reconstruct PATH --out out/`",
        "score": "`tfae score PATH --out scores.csv`",
        "sample": "`tfae sample PATH -n COUNT --seed SEED --out samples/`"}),
    "Python (numpy arrays)": ("`tfae.OPERATION(path)`, no `out`", {
        "encode": "`tfae.encode(path).outputs`",
        "reconstruct": "`tfae.reconstruct(path).outputs`",
        "score": "`tfae.score(path).scores`",
        "sample": "`tfae.sample(path, count=, seed=).outputs`"}),
    "export, float32 pixels in [0, 1]": ("input `images`", {
        "encode": "`encode`", "reconstruct": "`serving_default`", "score": "`score`",
        "sample": "`sample` (input `noise`: the codes drawn)"}),
    "export, uint8 pixels of any size": ("input `pixels`", {
        "encode": "`encode_pixels`", "reconstruct": "`reconstruct_pixels`",
        "score": "`score_pixels`", "sample": None}),
    "export, image files (PNG, JPEG, BMP, GIF)": ("input `image_bytes`", {
        "encode": "`encode_bytes`", "reconstruct": "`reconstruct_bytes`",
        "score": "`score_bytes`", "sample": None}),
    "REST (`tfae serve`, TF Serving's API)": ("`POST /v1/models/NAME:predict`", {
        "encode": "`encode_bytes` with `{\"b64\": ...}`",
        "reconstruct": "`reconstruct_bytes` with `{\"b64\": ...}`",
        "score": "`score_bytes` with `{\"b64\": ...}`", "sample": "`sample`"}),
    "gRPC (`tfae serve`, TF Serving's API)": ("`PredictionService/Predict`", {
        "encode": "`encode_pixels`", "reconstruct": "`reconstruct_pixels`",
        "score": "`score_pixels`", "sample": "`sample`"}),
    "LiteRT file (`tfae export --format litert`), by `tfae OPERATION FILE`": (
        "signatures taking float32 `images`", {
            "encode": "`encode`", "reconstruct": "`serving_default`", "score": "`score`",
            "sample": "`sample` (input `noise`; a float file)"}),
    "ONNX file (`tfae export --format onnx`), by `tfae OPERATION FILE`": (
        "input `images`, outputs by name", {
            "encode": "`codes`", "reconstruct": "`reconstructions`", "score": "`scores`",
            "sample": "(not carried)"}),
}
# The surfaces of files for a device, checked by their own test (each is a conversion).
DEVICE_FORMATS = {"LiteRT file": "litert", "ONNX file": "onnx"}
SIGNATURE_OUTPUT = {"encode": "codes", "reconstruct": "reconstructions", "score": "scores",
                    "sample": "images"}
FAMILIES = {"deep": {"hidden": (32,), "latent_dim": 8}, "conv": {"filters": (4,),
                                                                "latent_dim": 8},
            "vae": {"hidden": (32,), "latent_dim": 4}}
COUNT, SEED = 5, 3


def matrix_table():
    """``MATRIX`` as the Markdown table of ``docs/operations.md``."""
    lines = ["| surface | " + " | ".join(OPERATIONS) + " |",
             "|---|" + "---|" * len(OPERATIONS)]
    for surface, (how, cells) in MATRIX.items():
        shown = [cells[operation] or "(takes no images)" for operation in OPERATIONS]
        lines.append(f"| {surface}: {how} | " + " | ".join(shown) + " |")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def images(mnist):
    pixels = np.stack([image.numpy() for image, _ in mnist.test.take(6)])
    return pixels  # uint8, (6, 28, 28, 1)


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def trained(request, tmp_path_factory):
    family = request.param
    work = tmp_path_factory.mktemp(f"matrix-{family}")
    run = tfae.fit(tfae.FitConfig(model=family, epochs=1, limit=300, batch_size=32,
                                  model_options=FAMILIES[family]), work / "run", export=True,
                   export_dir=work / "export", verbose=0)
    return family, work, run


def _library(run_dir, operation, data):
    """The Python function's numbers on the run folder: the reference of every cell."""
    if operation == "sample":
        return tfae.sample(run_dir, count=COUNT, seed=SEED, verbose=False).outputs
    if operation == "score":
        return tfae.score(run_dir, dataset=data, verbose=False).scores
    return getattr(tfae, operation)(run_dir, dataset=data, verbose=False).outputs


def _command_line(path, operation, data, work):
    out = work / f"cli-{operation}.{'csv' if operation == 'score' else 'npz'}"
    arguments = {"sample": ["-n", COUNT, "--seed", SEED]}.get(operation, ["--dataset", data])
    result = CliRunner().invoke(tfae_command, [operation, str(path), *map(str, arguments),
                                               "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    if operation == "score":
        return pyarrow.csv.read_csv(out).column("score").to_numpy()
    with np.load(out) as saved:
        return saved[{"encode": "codes", "reconstruct": "reconstructions",
                      "sample": "samples"}[operation]]


def _png_files(images):
    return [tf.io.encode_png(image).numpy() for image in images]


def test_every_operation_gives_the_same_numbers_on_every_surface(trained, images, tmp_path):
    family, work, run = trained
    data = tmp_path / "images.npz"
    np.savez(data, x=images)
    served = tf.saved_model.load(str(run.export_path))
    noise = prior_codes(COUNT, run.model.latent_dim, SEED)
    operations = [operation for operation in OPERATIONS
                  if operation != "sample" or family == "vae"]
    signature = {"encode": "encode", "reconstruct": "serving_default", "score": "score",
                 "sample": "sample"}
    settings = ServerSettings(str(run.export_path.parent), "model", port=0, grpc_port=0)
    checked = []
    with Server(settings) as server, grpc.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for operation in operations:
            expected = _library(run.run_dir, operation, data)
            output = SIGNATURE_OUTPUT[operation]
            cells = {"command line": _command_line(run.run_dir, operation, data, tmp_path),
                     "command line, export": _command_line(run.export_path, operation, data,
                                                           tmp_path),
                     "Python, export": _library(run.export_path, operation, data)}
            if operation == "sample":
                cells["export"] = served.signatures["sample"](noise=tf.constant(noise))[output]
                rest_input, grpc_name, grpc_input = noise.tolist(), "noise", noise
                named = "sample"
            else:
                floats = tf.constant(images.astype(np.float32) / 255.0)
                cells["export, float32"] = served.signatures[signature[operation]](
                    images=floats)[output]
                cells["export, uint8"] = served.signatures[f"{operation}_pixels"](
                    pixels=tf.constant(images))[output]
                cells["export, bytes"] = served.signatures[f"{operation}_bytes"](
                    image_bytes=tf.constant(_png_files(images)))[output]
                rest_input = [{"b64": base64.b64encode(file).decode()}
                              for file in _png_files(images)]
                grpc_name, grpc_input, named = "pixels", images, f"{operation}_pixels"
            rest_signature = "sample" if operation == "sample" else f"{operation}_bytes"
            body = json.dumps({"signature_name": rest_signature,
                               "instances": rest_input}).encode()
            with urllib.request.urlopen(urllib.request.Request(
                    server.rest_url + ":predict", body), timeout=60) as answer:
                predictions = json.loads(answer.read())["predictions"]
            cells["REST"] = (predictions if operation != "score"
                             else [row["scores"] for row in predictions])
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "model"
            request.model_spec.signature_name = named
            request.inputs[grpc_name].CopyFrom(tf.make_tensor_proto(grpc_input))
            cells["gRPC"] = tf.make_ndarray(stub.Predict(request, timeout=60).outputs[output])
            for surface, value in cells.items():
                np.testing.assert_allclose(np.asarray(value, np.float32), expected, rtol=1e-5,
                                           atol=1e-5, err_msg=f"{family} {operation} {surface}")
                checked.append((operation, surface))
    assert len(checked) == sum(6 if operation == "sample" else 8 for operation in operations)


@pytest.mark.slow  # reason: each family converted to both formats
def test_every_operation_on_a_device_file_gives_the_runs_numbers(trained, images, tmp_path):
    from tfae.device_runtimes import FILE_SUFFIXES

    family, work, run = trained
    data = tmp_path / "images.npz"
    np.savez(data, x=images)
    checked = []
    for surface, format in DEVICE_FORMATS.items():
        (how, cells), = [value for name, value in MATRIX.items() if name.startswith(surface)]
        path = tfae.export(run.run_dir, format=format, out=tmp_path / f"model{FILE_SUFFIXES[format]}")
        for operation in OPERATIONS:
            if cells[operation].startswith("(") or (operation == "sample" and family != "vae"):
                continue
            np.testing.assert_allclose(
                _command_line(path, operation, data, tmp_path), _library(run.run_dir, operation,
                                                                         data),
                rtol=1e-4, atol=1e-5, err_msg=f"{family} {operation} {surface}")
            checked.append((surface, operation))
    assert len(checked) == (7 if family == "vae" else 6)


def test_a_jpeg_posted_as_b64_to_score_gets_tfae_scores_number(trained, tmp_path):
    # A client sends the photo it has, of another size and in colour: the export decodes and
    # resizes it as tfae score reads the file, so the client never resizes.
    family, work, run = trained
    if family != "deep":
        pytest.skip("one family shows it; the matrix covers the others")
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(5)
    photo = tf.io.encode_jpeg(rng.integers(0, 256, (40, 33, 3), dtype=np.uint8)).numpy()
    (folder / "photo.jpg").write_bytes(photo)
    expected = tfae.score(run.run_dir, dataset=folder, verbose=False).scores
    settings = ServerSettings(str(run.export_path.parent), "model", port=0, grpc_port=0)
    with Server(settings) as server:
        body = json.dumps({"signature_name": "score_bytes",
                           "instances": [{"b64": base64.b64encode(photo).decode()}]}).encode()
        with urllib.request.urlopen(urllib.request.Request(server.rest_url + ":predict", body),
                                    timeout=60) as answer:
            served = json.loads(answer.read())["predictions"][0]
    np.testing.assert_allclose(served["scores"], expected[0], rtol=1e-5)
    assert served["flagged"] == bool(expected[0] > run_threshold(run))


def run_threshold(run):
    return tfae.open_model(run.run_dir).detector().threshold_
