"""``jacobian_norm``: how contractive the encoder is, the mean Frobenius norm of its Jacobian
over (at most ``IMAGES``) test images.

Examples:
    >>> import numpy as np, tensorflow as tf
    >>> round(jacobian_norm(lambda x: 2 * tf.reshape(x, (-1, 3)), np.ones((2, 3))), 4)
    3.4641
"""

import functools

from tfae.measurements import Measurement, register_measurement

# The first test images, the same for every model. The Jacobian is code size x pixels per image,
# a backward pass per code number where it has no closed form (26 s of a conv evaluation for
# 1,000 images); the norm varies little from image to image (2-8% of its mean on MNIST), so the
# mean of 250 is within 0.5% of the mean of the whole split (one standard error).
IMAGES = 250
BATCH = 4  # batch_jacobian holds code size x batch copies of every activation: 25 images of conv's
# 256-number code held 3 GB, 4 hold 1.1 GB in the same time (its pfor is as fast either way)


def jacobian_norm(encode, images, squared_norm=None, tick=None):
    """Mean over ``images`` of ||J_f(x)||_F, the encoder's Jacobian norm, for any callable encoder.

    ``squared_norm(images)``, when given, computes ||J_f(x)||_F^2 instead of the full Jacobian:
    a Keras encoder passes ``contractive_penalty``'s ``exact`` method, the closed form for one
    dense layer, where the full Jacobian of a wide code is gigabytes per batch. ``tick()`` is
    called after each batch of ``BATCH`` images.

    Examples:
        >>> import numpy as np, tensorflow as tf
        >>> round(jacobian_norm(lambda x: tf.reshape(x, (-1, 4)), np.ones((3, 2, 2))), 4)
        2.0
    """
    import numpy as np
    import tensorflow as tf

    from tfae.models.contractive import jacobian_squared_norm

    squared_norm = squared_norm or functools.partial(jacobian_squared_norm, encode)

    @tf.function  # batch_jacobian's vectorisation retraces on every eager call
    def batch_norms(batch):
        return tf.sqrt(squared_norm(batch))

    norms = []
    for batch in tf.data.Dataset.from_tensor_slices(np.asarray(images, np.float32)).batch(BATCH):
        norms.append(batch_norms(batch).numpy())
        if tick:
            tick()
    return float(np.mean(np.concatenate(norms)))


def _measure(measuring):
    images = measuring.test.targets[:IMAGES]
    with measuring.progress.stage("encoder's Jacobian norm", total=-(-len(images) // BATCH),
                                  unit="batch") as tick:
        return jacobian_norm(measuring.opened.encode, images,
                             measuring.opened.jacobian_squared_norm, tick)


register_measurement(Measurement(
    "jacobian_norm", "the encoder's mean Jacobian norm", _measure,
    rows=lambda value: [("mean ||J||_F", f"{value:.4f}")],
    columns=lambda value: [("mean ‖J‖_F", f"{value:.3f}")]))
