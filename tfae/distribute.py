"""``tf.distribute`` for ``fit``: which strategy, which worker writes, and sums across workers.

``--strategy mirrored`` trains on every local GPU (``MirroredStrategy``); ``multi-worker`` on
every machine named in the standard ``TF_CONFIG`` environment variable
(``MultiWorkerMirroredStrategy``), so any launcher that sets ``TF_CONFIG`` (Kubernetes, Slurm,
a shell loop) runs tfae unchanged. The chief (``chief`` 0, or ``worker`` 0 when there is no chief)
writes the run folder and the export; other workers write to temporary folders they delete.

Examples:
    >>> strategy = make_strategy("default")
    >>> is_chief(strategy), worker_shard(strategy)
    (True, (1, 0))
"""

import json
import os

from tfae.errors import TfaeError

STRATEGIES = ("default", "mirrored", "multi-worker")  # the names of --strategy

# TensorFlow and numpy are imported in the functions that use them, so that the command line
# reads STRATEGIES without waiting for TensorFlow.


def make_strategy(name):
    """The ``tf.distribute`` strategy called ``name``; create it before any other TensorFlow work.

    A ``tf.distribute.Strategy`` is returned as it is: Python callers can choose the devices
    (``tf.distribute.MirroredStrategy(["/gpu:0", "/gpu:2"])``).

    Examples:
        >>> make_strategy("default").num_replicas_in_sync
        1
    """
    import tensorflow as tf

    if isinstance(name, tf.distribute.Strategy):
        return name
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise TfaeError("{strategy} must be one of %s, got %r" % (", ".join(STRATEGIES), name),
                    options=["strategy"])


def _check_tf_config():
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise TfaeError("--strategy multi-worker needs the TF_CONFIG environment variable "
                        '(such as {"cluster": {"worker": ["host1:port", "host2:port"]}, '
                        '"task": {"type": "worker", "index": 0}})')
    try:
        config = json.loads(raw)
        task, cluster = config["task"], config["cluster"]
        cluster[task["type"]][task["index"]]
    except (ValueError, KeyError, IndexError, TypeError):
        raise TfaeError(f"TF_CONFIG does not name this task in its cluster: {raw}") from None


def is_chief(strategy):
    """Whether this process writes the run's files: always, unless it is a non-chief worker.

    Examples:
        >>> import tensorflow as tf
        >>> is_chief(tf.distribute.get_strategy())
        True
    """
    return bool(strategy.extended.should_checkpoint)


def is_multi_worker(strategy):
    """Whether ``strategy`` spans processes (``MultiWorkerMirroredStrategy``).

    Examples:
        >>> import tensorflow as tf
        >>> is_multi_worker(tf.distribute.get_strategy())
        False
    """
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def replicated(strategy):
    """Whether ``strategy`` trains several replicas: ``multi-worker``, or ``mirrored`` on more
    than one device.

    Examples:
        >>> import tensorflow as tf
        >>> replicated(tf.distribute.get_strategy())
        False
    """
    return is_multi_worker(strategy) or strategy.num_replicas_in_sync > 1


def worker_shard(strategy):
    """``(workers, index)``: how many workers share the data and which share is this one's.

    Examples:
        >>> import tensorflow as tf
        >>> worker_shard(tf.distribute.get_strategy())
        (1, 0)
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not spec:
        return 1, 0
    tasks = [(kind, index) for kind in ("chief", "worker") for index in range(len(spec.get(kind, [])))]
    return len(tasks), tasks.index((resolver.task_type, resolver.task_id))


def sum_across_workers(arrays, strategy=None):
    """Sums float64 numpy arrays over all workers with the strategy's all-reduce.

    Each worker passes the sums over its own share of the data; every worker gets the totals.

    Examples:
        >>> import numpy as np
        >>> sum_across_workers([np.ones(2)])[0].tolist()
        [1.0, 1.0]
    """
    import numpy as np
    import tensorflow as tf

    strategy = strategy or tf.distribute.get_strategy()
    workers, _ = worker_shard(strategy)
    if workers == 1:
        return arrays
    replicas_per_worker = strategy.num_replicas_in_sync // workers

    def local_value(array):
        # One replica of each worker contributes, so a worker with several devices counts once.
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        first = tf.equal(replica % replicas_per_worker, 0)
        return tf.where(first, tf.constant(array, tf.float64), tf.zeros(array.shape, tf.float64))

    # One reduce per array: the multi-worker strategy cannot reduce a list in one call.
    return [np.asarray(strategy.reduce(tf.distribute.ReduceOp.SUM,
                                       strategy.run(local_value, args=(array,)), axis=None))
            for array in arrays]


def reducible_logs(logs):
    """Makes a train or test step's metrics reducible by Keras across several workers.

    Keras 3.15 averages step outputs over workers along their first axis, which scalars lack;
    the metrics are already summed across replicas at every update, so giving them that axis
    changes no value. With one worker the logs are returned as they are.

    Examples:
        >>> import tensorflow as tf
        >>> reducible_logs({"loss": tf.constant(0.5)})["loss"].shape
        TensorShape([])
    """
    import tensorflow as tf

    workers, _ = worker_shard(tf.distribute.get_strategy())
    if workers == 1:
        return logs
    return {name: tf.reshape(value, (1,)) for name, value in logs.items()}
