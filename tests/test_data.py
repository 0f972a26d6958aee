import hashlib
import os
import pathlib
import shutil

import numpy as np
import pytest

from tfae import data
from tfae.data import catalog
from tfae.corruptions import parse_corruption
from tfae.errors import TfaeError


def _hashes(dataset):
    return {hashlib.md5(image.tobytes()).hexdigest() for image, _ in dataset.as_numpy_iterator()}


def test_bundled_mnist_passes_its_md5_check():
    catalog.verify_bundled_mnist()


def test_corrupt_bundled_file_is_a_clear_error(tmp_path):
    for name in catalog.MNIST_MD5:
        shutil.copy(catalog.BUNDLED_MNIST / name, tmp_path / name)
    with open(tmp_path / "t10k-labels-idx1-ubyte.gz", "r+b") as file:
        file.seek(100)
        file.write(b"\x00\x01")
    with pytest.raises(TfaeError, match="t10k-labels-idx1-ubyte.gz is corrupt"):
        catalog.verify_bundled_mnist(tmp_path)


@pytest.mark.slow  # all 70,000 MNIST images: the full tier
def test_full_mnist_splits_are_disjoint_and_complete():
    splits = data.load("mnist")
    train, validation = _hashes(splits.train), _hashes(splits.validation)
    assert splits.train.cardinality() == 54000 and splits.validation.cardinality() == 6000
    assert splits.test.cardinality() == 10000
    # MNIST repeats a handful of images; no more than that may be shared.
    assert len(train & validation) < 10
    assert len(train) > 53900 and len(validation) > 5990


def test_full_loads_keep_the_decoded_splits_and_later_loads_read_the_same_images():
    first = data.load("mnist")  # writes the decoded splits, if no test wrote them before
    kept = pathlib.Path(catalog.prepared_builder("mnist").data_dir) / catalog.DECODED_FOLDER
    assert {"test.npz", "train.npz"} <= {path.name for path in kept.iterdir()}
    limited = data.load("mnist", limit=200)  # read from them
    decoded = catalog.prepared_builder("mnist").as_dataset(split="train[54000:54200]",
                                                          shuffle_files=False)
    expected = [(record["image"], record["label"]) for record in decoded.as_numpy_iterator()]
    for split in (limited.validation, first.validation.take(200)):
        got = list(split.as_numpy_iterator())
        assert all(np.array_equal(image, want) and label == want_label
                   for (image, label), (want, want_label) in zip(got, expected, strict=True))


def test_a_kept_split_is_decoded_again_when_unreadable_or_stale_and_skipped_when_unwritable(
        tmp_path):
    calls = []

    def decode():
        calls.append(1)
        return np.arange(2 * 4, dtype=np.uint8).reshape(2, 2, 2, 1), np.array([1, 2])

    catalog.stored_split(tmp_path, "train", 2, decode)
    catalog.stored_split(tmp_path, "train", 2, decode)
    assert len(calls) == 1
    (tmp_path / "train.npz").write_bytes((tmp_path / "train.npz").read_bytes()[:100])  # killed
    images, labels = catalog.stored_split(tmp_path, "train", 2, decode)
    assert len(calls) == 2 and labels.tolist() == [1, 2]
    left, fresh = tmp_path / ".train-killed.npz", tmp_path / ".train-writing.npz"
    for temporary in (left, fresh):
        temporary.write_bytes(b"half")
    os.utime(left, (0, 0))  # a run killed long ago while writing it; the other is being written
    catalog.stored_split(tmp_path, "train", 3, decode)  # holds 2 images where 3 are wanted
    assert len(calls) == 3
    assert sorted(path.name for path in tmp_path.iterdir()) == [".train-writing.npz", "train.npz"]
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    images, _ = catalog.stored_split(blocker / "kept", "train", 2, decode)
    assert images.shape == (2, 2, 2, 1) and len(calls) == 4


def test_splits_are_deterministic(mnist):
    again = data.load("mnist", limit=512)
    assert _hashes(again.validation) == _hashes(mnist.validation)
    first = next(mnist.train.as_numpy_iterator())[0]
    np.testing.assert_array_equal(first, next(again.train.as_numpy_iterator())[0])


def test_limit_caps_every_split(mnist):
    assert [int(split.cardinality()) for split in (mnist.train, mnist.validation, mnist.test)] == \
        [512, 512, 512]
    assert mnist.image_shape == (28, 28, 1) and mnist.num_classes == 10


def test_a_tfds_data_set_past_the_memory_budget_streams_from_tfds_files():
    streamed = data.load("mnist", limit=300, memory_budget=1e-9)
    assert all(isinstance(getattr(streamed, split), catalog.TfdsSplit)
               for split in ("train", "validation", "test"))

    def images(split, **options):
        return np.concatenate([inputs.numpy() for inputs, _ in data.pipeline(split, 64,
                                                                             **options)])

    held = data.load("mnist", limit=300)
    assert streamed.source == held.source and streamed.image_shape == held.image_shape
    for split in ("train", "validation", "test"):  # the same images, in the same order
        np.testing.assert_array_equal(images(getattr(streamed, split)),
                                      images(getattr(held, split)))
    shuffled = data.pipeline(streamed.train, 64, shuffle=True, seed=1)
    first, second = (np.concatenate([inputs.numpy() for inputs, _ in shuffled]) for _ in "12")
    in_order = images(held.train)
    assert not np.array_equal(first, in_order) and not np.array_equal(first, second)
    assert sorted(map(bytes, first.reshape(300, -1))) == sorted(map(bytes,  # once an epoch
                                                                    in_order.reshape(300, -1)))
    np.testing.assert_array_equal(first, images(streamed.train, shuffle=True, seed=1))


def test_pipeline_gives_float_images_in_unit_range(mnist):
    inputs, targets, labels = next(iter(data.pipeline(mnist.test, 100, with_labels=True)))
    assert inputs.shape == (100, 28, 28, 1) and inputs.dtype.name == "float32"
    assert float(inputs.numpy().min()) == 0.0 and float(inputs.numpy().max()) == 1.0
    np.testing.assert_array_equal(inputs.numpy(), targets.numpy())
    assert labels.shape == (100,) and set(labels.numpy()) <= set(range(10))


def test_pipeline_leaves_tf_data_autotuning_off(mnist):
    # The autotuner stalls the first batch of some epochs by seconds (docs/performance.md).
    for batches in (data.pipeline(mnist.test, 64),
                    data.pipeline(mnist.test, 64, corruption=parse_corruption("masking:0.5"))):
        assert batches.options().autotune.enabled is False


def test_shuffle_is_seeded_and_fresh_each_epoch(mnist):
    def first_batches(seed):
        batches = data.pipeline(mnist.train, 64, shuffle=True, seed=seed)
        return [next(iter(batches))[0].numpy() for _ in range(2)]

    epoch_one, epoch_two = first_batches(seed=1)
    again_one, _ = first_batches(seed=1)
    other_one, _ = first_batches(seed=2)
    np.testing.assert_array_equal(epoch_one, again_one)
    assert not np.array_equal(epoch_one, epoch_two)
    assert not np.array_equal(epoch_one, other_one)


def test_pipeline_corrupts_inputs_and_keeps_targets_clean(mnist):
    batches = data.pipeline(mnist.test, 64, corruption=parse_corruption("gaussian:0.5"))
    noisy, clean = next(iter(batches))
    reference, _ = next(iter(data.pipeline(mnist.test, 64)))
    np.testing.assert_array_equal(clean.numpy(), reference.numpy())
    assert np.abs(noisy.numpy() - clean.numpy()).mean() > 0.2


def test_training_corruption_is_fresh_each_epoch_and_validation_is_fixed(mnist):
    corruption = parse_corruption("masking:0.5")
    training = data.pipeline(mnist.test, 64, corruption=corruption, seed=7)
    validation = data.pipeline(mnist.test, 64, corruption=corruption, seed=7,
                               fresh_corruption=False)
    training_epochs = [next(iter(training))[0].numpy() for _ in range(2)]
    validation_epochs = [next(iter(validation))[0].numpy() for _ in range(2)]
    assert not np.array_equal(*training_epochs)
    np.testing.assert_array_equal(*validation_epochs)


def test_unknown_data_set_is_a_clear_error():
    with pytest.raises(TfaeError, match="unknown data set 'no_such_images'"):
        data.load("no_such_images")


def test_non_positive_limit_is_refused():
    with pytest.raises(TfaeError, match="limit must be positive, got 0"):
        data.load("mnist", limit=0)


def test_fixed_corruption_ignores_the_global_seed(mnist):
    import keras

    corrupted = []
    for global_seed in (1, 2):
        keras.utils.set_random_seed(global_seed)
        batches = data.pipeline(mnist.test, 64, corruption=parse_corruption("occlusion:14"),
                                seed=5, fresh_corruption=False)
        corrupted.append(next(iter(batches))[0].numpy())
    np.testing.assert_array_equal(*corrupted)


@pytest.mark.slow
def test_preparing_a_data_set_says_so_on_stderr_and_quiet_says_nothing(tmp_path):
    from conftest import run_tfae

    # Enough steps to learn (6 epochs of 38), so that a quiet run has nothing to warn of.
    fit = ["fit", "--model", "deep", "--hidden", "8", "--latent-dim", "2", "--epochs", "6",
           "--limit", "300", "--batch-size", "8", "--no-export"]
    shown = run_tfae(*fit, "--data-dir", tmp_path / "tfds-shown", "--out", "shown", cwd=tmp_path)
    quiet = run_tfae(*fit, "--data-dir", tmp_path / "tfds-quiet", "--out", "quiet", "--quiet",
                     cwd=tmp_path)
    assert shown.stderr.count("preparing tfds data set 'mnist'") == 1
    assert "tfae: preparing tfds data set 'mnist'" in shown.stderr
    assert "preparing" not in shown.stdout and "Downloading" not in shown.stdout  # stdout: results
    assert len(quiet.stdout.splitlines()) == 1 and quiet.stdout.startswith("run: quiet")
    assert quiet.stderr == ""
