import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfae.corruptions import (Corruption, gaussian_noise, masking_noise, occlude, parse_corruption,
                              salt_and_pepper)
from tfae.errors import TfaeError

SEED = tf.constant([3, 4])
GREY = tf.fill((8, 28, 28, 1), 0.5)


@pytest.mark.parametrize("spec", ["gaussian:0.5", "salt-pepper:0.2", "masking:0.25", "occlusion:14",
                                  "gaussian:0.5+occlusion:14"])
def test_corruption_keeps_shape_and_range(spec):
    noisy = parse_corruption(spec)(GREY, SEED)
    assert noisy.shape == GREY.shape and noisy.dtype == tf.float32
    assert float(tf.reduce_min(noisy)) >= 0.0 and float(tf.reduce_max(noisy)) <= 1.0
    assert not np.array_equal(noisy.numpy(), GREY.numpy())


@pytest.mark.parametrize("spec", ["gaussian:0.5", "salt-pepper:0.2", "masking:0.25", "occlusion:7",
                                  "masking:0.25+occlusion:7"])
def test_corruption_is_seeded(spec):
    corrupt = parse_corruption(spec)
    first, again = corrupt(GREY, SEED), corrupt(GREY, SEED)
    other = corrupt(GREY, tf.constant([5, 6]))
    np.testing.assert_array_equal(first.numpy(), again.numpy())
    assert not np.array_equal(first.numpy(), other.numpy())


def test_gaussian_noise_has_the_requested_spread():
    noisy = gaussian_noise(GREY, 0.1, SEED).numpy() - 0.5  # 0.5 +- 5 std stays unclipped
    assert abs(noisy.std() - 0.1) < 0.005 and abs(noisy.mean()) < 0.005


def test_masking_noise_zeroes_the_requested_fraction():
    masked = masking_noise(tf.ones((64, 28, 28, 1)), 0.25, SEED).numpy()
    assert set(np.unique(masked)) == {0.0, 1.0}
    assert abs((masked == 0).mean() - 0.25) < 0.01


def test_salt_and_pepper_sets_half_each_to_black_and_white():
    noisy = salt_and_pepper(tf.fill((64, 28, 28, 1), 0.5), 0.2, SEED).numpy()
    assert abs((noisy != 0.5).mean() - 0.2) < 0.01
    assert abs((noisy == 0).mean() - (noisy == 1).mean()) < 0.01


def test_occlusion_blacks_out_one_square_per_image():
    occluded = occlude(tf.ones((32, 28, 28, 1)), 7, SEED).numpy()
    zero_rows, zero_columns = [], []
    for image in occluded[..., 0]:
        rows, columns = np.nonzero(image == 0)
        assert len(rows) == 49
        assert rows.max() - rows.min() == 6 and columns.max() - columns.min() == 6
        zero_rows.append(rows.min())
        zero_columns.append(columns.min())
    assert len(set(zero_rows)) > 1 and len(set(zero_columns)) > 1  # positions vary


def test_occlusion_at_a_given_position():
    occluded = occlude(tf.ones((2, 28, 28, 1)), 14, position=(0, 14)).numpy()[..., 0]
    assert (occluded[:, :14, 14:] == 0).all()
    assert occluded.sum() == 2 * (784 - 196)


@pytest.mark.parametrize("shape, size", [((28, 28), 14), ((12, 10), 5), ((75, 100), 38)])
def test_a_relative_occlusion_is_sized_by_the_shorter_side(shape, size):
    corruption = parse_corruption("occlusion:50%")
    corruption.check_fits((*shape, 1))
    occluded = corruption(tf.ones((1, *shape, 1)), tf.constant([0, 1])).numpy()
    assert occluded.size - occluded.sum() == size * size


def test_parse_corruption_round_trips_its_spec():
    for spec in ["gaussian:0.5", "salt-pepper:0.2", "masking:0.25", "occlusion:14",
                 "occlusion:7@3,4", "gaussian:0.5+occlusion:7@3,4", "occlusion:50%",
                 "occlusion:12.5%@1,1"]:
        assert parse_corruption(spec).spec == spec
    assert parse_corruption("occlusion:7@3,4") == Corruption("occlusion", 7, (3, 4))


@pytest.mark.parametrize("spec, words", [
    ("blur:1", "KIND:AMOUNT"), ("gaussian", "KIND:AMOUNT"), ("gaussian:abc", "not a number"),
    ("gaussian:-1", "must be > 0"), ("masking:1.5", "(0, 1]"), ("occlusion:2.5", "whole number"),
    ("masking:0.2@1,1", "only occlusion"), ("occlusion:7@1", "ROW,COL"),
    ("gaussian:5%", "only occlusion takes a percentage"), ("occlusion:150%", "(0, 100]%"),
])
def test_parse_corruption_names_the_problem(spec, words):
    with pytest.raises(TfaeError, match=None) as error:
        parse_corruption(spec)
    assert words in str(error.value) and spec in str(error.value)


def test_a_chain_applies_each_corruption_with_its_own_draws():
    noisy = parse_corruption("masking:0.5+masking:0.5+occlusion:14@0,0")(GREY, SEED).numpy()
    assert (noisy[:, :14, :14] == 0).all()
    outside = noisy[:, 14:, :]
    # Independent draws leave 1/4 of the pixels; the same draw twice would leave 1/2.
    assert abs((outside > 0).mean() - 0.25) < 0.03


def test_occlusion_that_does_not_fit_is_refused():
    with pytest.raises(TfaeError, match="does not fit"):
        parse_corruption("occlusion:29").check_fits((28, 28, 1))
    parse_corruption("occlusion:14@14,14").check_fits((28, 28, 1))
    with pytest.raises(TfaeError, match="does not fit"):
        parse_corruption("gaussian:0.5+occlusion:29").check_fits((28, 28, 1))


def test_none_turns_a_familys_default_noise_off():
    from tfae.config import FitConfig, resolve

    assert resolve(FitConfig(model="shallow")).config.noise == "occlusion:50%"
    assert resolve(FitConfig(model="shallow", noise="none")).corruption is None
    assert resolve(FitConfig(model="randomized", noise="none")).config.noise == "none"
    assert parse_corruption("none") is None


def test_grayscale_gives_three_equal_channels_of_luminance_in_range():
    colour = tf.random.stateless_uniform((2, 5, 4, 3), seed=[0, 1])
    grey = parse_corruption("grayscale")(colour, SEED).numpy()
    assert grey.shape == (2, 5, 4, 3) and 0 <= grey.min() and grey.max() <= 1
    np.testing.assert_array_equal(grey[..., 0], grey[..., 1])
    np.testing.assert_array_equal(grey[..., 0], grey[..., 2])
    luminance = colour.numpy() @ np.array([0.2989, 0.587, 0.114], np.float32)  # ITU-R 601
    np.testing.assert_allclose(grey[..., 0], luminance, atol=1e-6)
    chained = parse_corruption("grayscale+gaussian:0.1")(colour, SEED).numpy()
    assert chained.shape == grey.shape and not np.allclose(chained, grey)


@pytest.mark.parametrize("spec, words", [("grayscale:3", "grayscale takes no amount"),
                                         ("greyscale", "or grayscale")])
def test_grayscale_specs_that_are_wrong_name_the_problem(spec, words):
    with pytest.raises(TfaeError, match=words):
        parse_corruption(spec)


def test_grayscale_refuses_images_that_are_not_colour():
    parse_corruption("grayscale").check_fits((8, 8, 3))
    with pytest.raises(TfaeError, match=r"needs colour images \(3 channels\), got 1"):
        parse_corruption("gaussian:0.1+grayscale").check_fits((8, 8, 1))


def test_a_corruption_kind_of_ones_own_is_one_registration():
    from tfae.config import FitConfig, resolve
    from tfae.corruptions import (CorruptionKind, corruption_kinds, noise_help,
                                  register_corruption, unregister_corruption)
    from tfae.data.pipeline import pipeline

    def brighten(images, corruption, seed):
        return tf.clip_by_value(images + corruption.amount, 0.0, 1.0)

    register_corruption(CorruptionKind("brighten", brighten, "brighten:B",
                                       check=lambda amount: None if amount > 0 else "B > 0"))
    try:
        assert "brighten:B" in noise_help()
        with pytest.raises(TfaeError, match="B > 0"):
            parse_corruption("brighten:-1")
        spec = resolve(FitConfig(model="deep", noise="brighten:0.25+occlusion:4"))
        assert [part.kind for part in spec.corruption.parts] == ["brighten", "occlusion"]
        images = tf.data.Dataset.from_tensor_slices((np.zeros((4, 8, 8, 1), np.uint8),
                                                     np.zeros(4, np.int64)))
        inputs, targets = next(iter(pipeline(images, 4, corruption=parse_corruption(
            "brighten:0.25"))))
        assert np.allclose(inputs, 0.25) and np.allclose(targets, 0.0)
    finally:
        unregister_corruption("brighten")
    assert "brighten" not in corruption_kinds()


@pytest.mark.parametrize("fresh", [False, True])
def test_corruption_placed_on_a_device_gives_the_host_pipelines_batches(mnist, fresh):
    """The GPU path, run with the CPU as its device: batches copied to the device and corrupted
    there are the host pipeline's, bit for bit, and sit on that device."""
    from tfae.data.pipeline import corruption_device, pipeline

    corruption = parse_corruption("gaussian:0.5+occlusion:10")
    host, placed = (list(pipeline(mnist.train, 128, shuffle=True, seed=3, corruption=corruption,
                                  fresh_corruption=fresh, device=device))
                    for device in (None, "/device:CPU:0"))
    assert len(host) == len(placed) == 4
    for (host_inputs, host_targets), (inputs, targets) in zip(host, placed):
        np.testing.assert_array_equal(inputs, host_inputs)
        np.testing.assert_array_equal(targets, host_targets)
        assert inputs.device.endswith("CPU:0")
    assert corruption_device() is None  # no GPU on this machine: the host corrupts
    assert placed[0][0].shape == host[0][0].shape and int(pipeline(
        mnist.train, 128, corruption=corruption, device="/device:CPU:0").cardinality()) == 4


def test_tf_data_maps_only_on_the_host_but_its_experimental_map_on_a_gpu():
    """Why ``map_on_device`` takes ``map_on_gpu`` for a GPU: TensorFlow's kernel registry (its
    GPU kernels are in the pip build, GPU or not) has ``map`` on the CPU only."""
    from tensorflow.python.framework.kernels import get_registered_kernels_for_op

    def devices(op):
        return {kernel.device_type for kernel in get_registered_kernels_for_op(op).kernel}

    assert devices("MapDataset") == devices("ParallelMapDatasetV2") == {"CPU"}
    assert devices("ExperimentalMapDataset") == {"GPU"}
    assert "GPU" in devices("StatelessRandomNormalV2") and "GPU" in devices("PrefetchDataset")


@pytest.mark.parametrize("spec", ["gaussian:0.5", "salt-pepper:0.2", "masking:0.3",
                                  "occlusion:50%", "grayscale", "gaussian:0.5+occlusion:10"])
def test_a_gpu_pipeline_maps_its_corruption_in_a_gpu_map_after_the_copy(spec):
    """The GPU path as built (a graph: this machine has no GPU to run it): copied to the GPU,
    then the corruption's function in the map whose kernel is the GPU's, labels dropped inside it
    (a host map after the copy would bring the batch back), nothing mapped on the host after, and
    every op of the function one with a GPU kernel, so none falls back to the CPU."""
    from tensorflow.python.framework.kernels import get_registered_kernels_for_op

    from tfae.data.pipeline import CORRUPTION_SCOPE, _corrupted_batch, map_on_device

    corruption = parse_corruption(spec)
    graph = tf.Graph()
    with graph.as_default():
        images = tf.zeros((8, 12, 12, 3), tf.uint8)
        batches = tf.data.Dataset.from_tensor_slices((images, tf.zeros(8, tf.int64))).batch(4)
        batches = tf.data.Dataset.zip(batches, tf.data.Dataset.random(seed=0).batch(2))
        map_on_device(batches, lambda batch, seed: _corrupted_batch(batch, seed, corruption)[:2],
                      "/device:GPU:0")
    ops = {op.type: op for op in graph.get_operations()}
    assert "GeneratorDataset" in ops  # copy_to_device's
    gpu_map = ops["ExperimentalMapDataset"]
    assert gpu_map.device.endswith("device:GPU:0")
    # No dataset op with a CPU kernel only after the copy: the elements would follow it back.
    assert not {"MapDataset", "ParallelMapDatasetV2", "AssertCardinalityDataset"} & set(ops)
    function = graph._get_function(gpu_map.get_attr("f").name).cached_definition
    assert len(function.signature.output_arg) == 2  # inputs and targets: no labels
    assert any(node.name.startswith(f"{CORRUPTION_SCOPE}/") for node in function.node_def)
    host_only = {node.op for node in function.node_def} - {
        op for op in {node.op for node in function.node_def}
        if "GPU" in {kernel.device_type for kernel in get_registered_kernels_for_op(op).kernel}}
    assert not host_only


def test_mirrored_on_one_device_gives_the_replicas_pipeline_its_own_batches(mnist):
    """The fast tier's run through ``mirrored``'s per-replica pipelines (two devices need an
    interpreter of their own: the test below): one replica gets the host pipeline's batches,
    with the seed of replica 0, corrupted on its device."""
    from tfae.data.pipeline import pipeline, worker_pipeline

    corruption = parse_corruption("gaussian:0.5+occlusion:10")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        batches = list(worker_pipeline(mnist.train.take(100), 32, shuffle=True, seed=3,
                                       corruption=corruption))
    expected = list(pipeline(mnist.train.take(100), 32, shuffle=True, seed=3,
                             corruption=corruption))
    assert len(batches) == len(expected) == 4
    for got, wanted in zip(batches, expected):
        for got_part, wanted_part in zip(got, wanted):
            np.testing.assert_array_equal(got_part.numpy(), wanted_part.numpy())
            assert got_part.device.endswith("CPU:0")


MIRRORED_ON_TWO_CPUS = """
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tfae.corruptions import parse_corruption
from tfae.data import load
from tfae.data.pipeline import pipeline, worker_pipeline
splits = load("mnist", limit=int(sys.argv[1]))
corruption = parse_corruption("gaussian:0.5+occlusion:10")
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    batches = list(worker_pipeline(splits.train, 64, shuffle=True, seed=3, corruption=corruption))
train = splits.train.take(int(splits.train.cardinality()) // 2 * 2)
equal, devices = [], []
for replica in range(2):
    expected = list(pipeline(train.shard(2, replica), 32, shuffle=True, seed=3 + 1_000_003 * replica,
                             corruption=corruption))
    got = [[strategy.experimental_local_results(part)[replica] for part in batch] for batch in batches]
    equal.append(len(got) == len(expected) and all(
        np.array_equal(a, b) for pair, pair2 in zip(got, expected) for a, b in zip(pair, pair2)))
    devices.append(sorted({part.device.rsplit("device:", 1)[1] for batch in got for part in batch}))
import tfae
run = tfae.fit(tfae.FitConfig(model="deep", model_options={"hidden": [64], "latent_dim": 8}, epochs=2,
                              limit=int(sys.argv[1]), batch_size=32),
               sys.argv[2], export=False, verbose=0, strategy=strategy)
print(json.dumps({"batches": len(batches), "equal": equal, "devices": devices,
                  "losses": run.history["loss"], "validation": run.history["val_loss"]}))
"""


@pytest.mark.slow  # an interpreter of two logical devices: the full tier
def test_mirrored_corrupts_each_replicas_share_on_its_own_device(tmp_path):
    """``mirrored`` on two logical CPUs, as it would on two GPUs: each replica's batches are
    its own pipeline's over its half of the images (one left out of 301), corrupted with its
    own seed on its device; ``tfae.fit`` trains through them."""
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED_ON_TWO_CPUS)
    result = subprocess.run([sys.executable, str(script), "301", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ran out of data" not in result.stderr  # Keras knows each epoch's length
    measured = json.loads(result.stdout.splitlines()[-1])
    losses, validation = measured.pop("losses"), measured.pop("validation")
    assert measured == {"batches": 5, "equal": [True, True], "devices": [["CPU:0"], ["CPU:1"]]}
    # A deep (occluded inputs) fit trains through these pipelines, two replicas a step.
    assert len(losses) == len(validation) == 2 and losses[1] < losses[0]
