"""``pipeline``: a split of ``Splits`` as batches for training and evaluation, all ``tf.data`` ops.

It holds the split in memory as tensors (or streams one too large to hold,
``tfae.data.splits.Streamed``), batches, shuffles (seeded), converts to float32 in [0, 1],
corrupts (``tfae.corruptions``) and prefetches.

Examples:
    >>> from tfae.data import load, pipeline
    >>> splits = load("mnist", limit=256)
    >>> batches = pipeline(splits.train, batch_size=64, shuffle=True, seed=0)
    >>> inputs, targets = next(iter(batches))
    >>> inputs.shape
    TensorShape([64, 28, 28, 1])
"""

import logging
import pathlib

import tensorflow as tf
# tf.data's one map with a GPU kernel; not in the public API (see ``map_on_device``).

from tfae.compat import private_name
from tfae.data.shards import Shards
from tfae.data.splits import Streamed
from tfae.distribute import is_multi_worker
from tfae.errors import TfaeError

LOG = logging.getLogger("tfae")
CORRUPTION_SCOPE = "tfae_corruption"  # names the conversion and corruption ops of a batch


def pipeline(dataset, batch_size, *, shuffle=False, seed=0, corruption=None,
             fresh_corruption=True, with_labels=False, device=None):
    """Makes training or evaluation batches from a split of ``load``.

    Yields ``(inputs, targets)`` with float32 images in [0, 1]: the inputs corrupted by
    ``corruption`` when given, the targets always clean. With ``with_labels`` it yields
    ``(inputs, targets, labels)`` instead, for evaluation.

    Args:
        dataset: an unbatched split of ``(image, label)``, uint8 images or float ones in [0, 1],
            or a ``tfae.data.splits.Streamed`` one, read as it is used.
        batch_size: images per batch.
        shuffle: reshuffle each epoch, seeded by ``seed``.
        seed: seeds the shuffle and the corruption.
        corruption: a ``tfae.corruptions.Corruption`` (or any ``fn(images, seed)``).
        fresh_corruption: draw new corruption every epoch (training); ``False`` repeats the same
            corruption every epoch, so that validation losses are comparable.
        device: where the batches are converted and corrupted (``corruption_device``): they are
            copied there first and mapped by ``map_on_device``, so on a GPU the noise is made
            on the GPU; ``None``: on the host, where a ``tf.data`` map runs. The same seeded
            batches either way.

    Examples:
        >>> from tfae.corruptions import parse_corruption
        >>> from tfae.data import load
        >>> splits = load("mnist", limit=64)
        >>> batches = pipeline(splits.test, 32, corruption=parse_corruption("gaussian:0.5"))
        >>> noisy, clean = next(iter(batches))
    """
    if batch_size < 1:
        raise TfaeError(f"--batch-size must be positive, got {batch_size}")
    options = tf.data.Options()
    if isinstance(dataset, Streamed):  # a prepared folder or a large tfds data set
        dataset = dataset.batches(batch_size, shuffle=shuffle, seed=seed)
    else:
        dataset = _held_batches(dataset, batch_size, shuffle, seed)
    if corruption is None:
        device = None  # nothing to corrupt: the conversion stays where tf.data runs it
        dataset = _map(dataset, _clean_batch, num_parallel_calls=tf.data.AUTOTUNE)
        if not with_labels:
            dataset = _map(dataset, lambda inputs, targets, labels: (inputs, targets))
    else:
        if fresh_corruption:
            seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        else:
            # (seed, batch index): unlike Dataset.random, this ignores the global seed, which
            # training sets, so an evaluation corrupts the same way in any process.
            seeds = _map(tf.data.Dataset.counter(),
                         lambda index: tf.stack([tf.constant(seed, tf.int64), index]))
        dataset = tf.data.Dataset.zip(dataset, seeds)

        def corrupt(batch, batch_seed):
            inputs, images, labels = _corrupted_batch(batch, batch_seed, corruption)
            return (inputs, images, labels) if with_labels else (inputs, images)

        if device is None:
            dataset = _map(dataset, corrupt, num_parallel_calls=tf.data.AUTOTUNE)
        else:
            dataset = map_on_device(dataset, corrupt, device)
    # Under a multi-worker strategy each worker takes its part of every batch, the same seeded
    # batches on every worker; a prepared folder's shards are divided by ``worker_pipeline``
    # instead, which Keras does not shard again.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    # tf.data's autotuner left both cores idle for seconds at the start of some epochs (TF 2.21,
    # measured in docs/performance.md); gathers and elementwise noise need no tuning.
    options.autotune.enabled = False
    with tf.device(device):  # None: where tf.data places it, the host
        return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def map_on_device(dataset, function, device):
    """``dataset.map(function)`` with ``function`` run on ``device``: the elements are copied
    there first (``tf.data.experimental.copy_to_device``).

    tf.data's ``map`` has kernels for the CPU only (``MapDataset``, ``ParallelMapDatasetV2``),
    so under ``tf.device`` of a GPU it still runs its function on the host. After a copy to a
    GPU, TensorFlow's ``map_on_gpu`` (``ExperimentalMapDataset``, whose only kernel is the GPU's)
    runs it there, as ``copy_to_device``'s module documents; tests/test_corruptions.py checks
    both registrations. To a CPU device, tf.data's own ``map``: the same elements.

    Every dataset op after the copy to a GPU must have a GPU kernel, or TensorFlow places it on
    the host and the elements follow it back. The copy forgets how many elements there are,
    which Keras reads for its progress bar and epoch length, and the op that asserts it again
    has a CPU kernel only, so only a copy to a CPU has it: on a GPU, Keras learns an epoch's
    length at the end of the first (and says once that the data ran out).

    Examples:
        >>> doubled = map_on_device(tf.data.Dataset.range(3), lambda x: 2 * x, "/device:CPU:0")
        >>> [int(x) for x in doubled]
        [0, 2, 4]
    """
    count = tf.get_static_value(dataset.cardinality())  # None where a graph only knows later
    dataset = dataset.apply(tf.data.experimental.copy_to_device(device))
    on_gpu = tf.DeviceSpec.from_string(device).device_type == "GPU"
    if not on_gpu and count is not None and count >= 0:
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(count))
    if not on_gpu:
        with tf.device(device):
            return _map(dataset, function)
    map_on_gpu = private_name("tensorflow.python.data.experimental.ops.prefetching_ops",
                              "map_on_gpu", "tensorflow")  # no public GPU map: looked up here
    with tf.device(device):
        return dataset.apply(map_on_gpu(tf.autograph.experimental.do_not_convert(function)))


def corruption_device(strategy=None):
    """Where a run's batches are corrupted (``pipeline``'s ``device``): the GPU when one is
    visible and the run trains on that one device (the default strategy); ``None``, the host,
    otherwise: with no GPU, and under ``mirrored`` or ``multi-worker``, whose batches
    ``worker_pipeline`` places (``mirrored`` corrupts each replica's share on its own device).

    Examples:
        >>> corruption_device() is None  # no GPU here
        True
    """
    strategy = strategy or tf.distribute.get_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    if not gpus or isinstance(strategy, tf.distribute.MirroredStrategy) or is_multi_worker(strategy):
        return None
    return gpus[0].name


def worker_pipeline(dataset, batch_size, **options):
    """``pipeline(dataset, batch_size, **options)`` for ``Model.fit`` under the strategy in
    scope: under a multi-worker strategy a prepared split (``Shards``) is read by each worker
    from its own shards (``Shards.part``), every worker as many images, in a
    ``tf.distribute`` dataset; anything else is ``pipeline``'s, which Keras distributes.

    ``batch_size`` is the global batch. Each worker shuffles and corrupts its images with a seed
    of its own.

    Examples:
        >>> from tfae.data import load
        >>> batches = worker_pipeline(load("mnist", limit=64).train, 32, shuffle=True)
        >>> next(iter(batches))[0].shape
        TensorShape([32, 28, 28, 1])
    """
    strategy = tf.distribute.get_strategy()
    if (isinstance(strategy, tf.distribute.MirroredStrategy) and options.get("corruption")
            and not isinstance(dataset, Streamed)):
        return _replica_pipelines(strategy, dataset, batch_size, **options)
    if not (isinstance(dataset, Shards) and is_multi_worker(strategy)):
        return pipeline(dataset, batch_size, **options)

    def per_worker(context):
        workers, index = context.num_input_pipelines, context.input_pipeline_id
        part = dataset.part(workers, index)
        names = [pathlib.Path(file).name for file in part.files]
        shown = names if len(names) <= 3 else [names[0], "...", names[-1]]
        LOG.info(f"worker {index + 1} of {workers} reads {part.count:,} images of "
                 f"{len(names)} shard(s): {', '.join(shown)}")
        seed = options.get("seed", 0) + 1_000_003 * index
        return pipeline(part, context.get_per_replica_batch_size(batch_size),
                        **{**options, "seed": seed})

    return strategy.distribute_datasets_from_function(per_worker)


def _replica_pipelines(strategy, dataset, batch_size, **options):
    """A ``mirrored`` run's batches, corrupted on each replica's own device: a ``tf.data`` map
    runs on the host, and a strategy that splits host-made batches copies them after, so
    instead every replica gets a pipeline of its own (``InputReplicationMode.PER_REPLICA``)
    over its share of the images, copied to its device and corrupted there (``pipeline``'s
    ``device``), with a seed of its own.

    The shares are equal (the last ``len % replicas`` images are left out), so every replica
    has as many batches: one running out first would stop the others mid-epoch.
    """
    devices = strategy.extended.worker_devices
    replicas = len(devices)
    size = int(dataset.cardinality()) // replicas * replicas
    if size == 0:
        raise TfaeError(f"{int(dataset.cardinality())} image(s) cannot be shared between "
                        f"{replicas} replicas")
    held = dataset.take(size)

    def per_replica(context):
        index = context.input_pipeline_id
        seed = options.get("seed", 0) + 1_000_003 * index
        return pipeline(held.shard(replicas, index), context.get_per_replica_batch_size(batch_size),
                        **{**options, "seed": seed, "device": devices[index]})

    # The pipelines are made on the host; each copies its batches to its replica's device, so
    # the strategy must not fetch them there again.
    return strategy.distribute_datasets_from_function(per_replica, tf.distribute.InputOptions(
        experimental_replication_mode=tf.distribute.InputReplicationMode.PER_REPLICA,
        experimental_place_dataset_on_device=False, experimental_fetch_to_device=False))


def _held_batches(dataset, batch_size, shuffle, seed):
    """Batches of ``(images, labels)`` gathered from the split held as two tensors, the indices
    shuffled: per-image shuffling and conversion cost a few percent of a dense epoch on two
    cores; this costs none."""
    size = int(dataset.cardinality())
    images, labels = dataset.batch(size).get_single_element()
    indices = tf.data.Dataset.range(size)
    if shuffle:
        indices = indices.shuffle(size, seed=seed, reshuffle_each_iteration=True)
    return _map(indices.batch(batch_size),
                lambda batch: (tf.gather(images, batch), tf.gather(labels, batch)),
                num_parallel_calls=tf.data.AUTOTUNE)


def first_images(split, count=None, corruption=None, seed=0):
    """The first ``count`` images of a split (all for ``None``) as numpy arrays: ``(inputs,
    clean images, labels)``, the inputs corrupted by ``corruption`` the same way every call.

    Examples:
        >>> from tfae.data import load
        >>> inputs, images, labels = first_images(load("mnist", limit=20).test, 8)
        >>> inputs.shape, labels.shape
        ((8, 28, 28, 1), (8,))
    """
    total = int(split.cardinality())
    size = total if count is None else min(count, total)
    inputs, images, labels = next(iter(pipeline(
        split.take(size), size, seed=seed, corruption=corruption, fresh_corruption=False,
        with_labels=True)))
    return inputs.numpy(), images.numpy(), labels.numpy()


def unit_floats(images):
    """float32 images in [0, 1]: uint8 ones scaled, float ones as they are.

    Examples:
        >>> unit_floats(tf.constant([[0, 255]], tf.uint8)).numpy().tolist()
        [[0.0, 1.0]]
    """
    scale = 255.0 if images.dtype == tf.uint8 else 1.0
    return tf.cast(images, tf.float32) / scale


def _map(dataset, function, **options):
    """``dataset.map(function, **options)`` without AutoGraph's rewriting of ``function``: these
    maps and corruptions are TensorFlow ops with no Python branch on a tensor, and rewriting them
    took about a third of the time a pipeline takes to build, which evaluations pay for each
    measurement (tracing aside, the same graph)."""
    return dataset.map(tf.autograph.experimental.do_not_convert(function), **options)


def _clean_batch(images, labels):
    images = unit_floats(images)
    return images, images, labels


def _corrupted_batch(batch, batch_seed, corruption):
    images, labels = batch
    # The scope names these ops in TensorFlow's placement log, which bench/device_check.py reads.
    with tf.name_scope(CORRUPTION_SCOPE):
        images = unit_floats(images)
        return corruption(images, tf.cast(batch_seed, tf.int32)), images, labels
