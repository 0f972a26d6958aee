"""``jacobian_norm``: how contractive the encoder is, the mean Frobenius norm of its Jacobian
over (at most ``IMAGES``, fewer for wide images: ``images_measured``) test images.

Examples:
    >>> import numpy as np, tensorflow as tf
    >>> round(jacobian_norm(lambda x: 2 * tf.reshape(x, (-1, 3)), np.ones((2, 3))), 4)
    3.4641
"""

import functools
import math

from tfae.measurements import Measurement, register_measurement

# The first test images, the same for every model. The Jacobian is code size x pixels per image,
# a backward pass per code number where it has no closed form (26 s of a conv evaluation for
# 1,000 images); the norm varies little from image to image (2-8% of its mean on MNIST), so the
# mean of 250 is within 0.5% of the mean of the whole split (one standard error).
IMAGES = 250
# Each image costs a backward pass per code number over its pixels: wide images are measured on
# fewer, as many as hold about this many pixels in all (250 images up to 32x32x3, 62 at 64x64x3)
# and no fewer than MIN_IMAGES (50 at 96x96x3: the mean of 50 is within about 1% of the split's;
# 250 took 92 s of a 156 s evaluation at 96x96x3).
JACOBIAN_PIXELS = 250 * 32 * 32 * 3
MIN_IMAGES = 50
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


def images_measured(image_shape):
    """How many test images the Jacobian norm is measured on, for images of ``image_shape``.

    Examples:
        >>> images_measured((28, 28, 1)), images_measured((64, 64, 3)), images_measured((96, 96, 3))
        (250, 62, 50)
    """
    pixels = math.prod(image_shape)
    return max(MIN_IMAGES, min(IMAGES, JACOBIAN_PIXELS // pixels))


def _measure(measuring):
    count = images_measured(measuring.splits.image_shape)
    if count < IMAGES:
        measuring.notes.append(f"the encoder's Jacobian norm was measured on the first {count} "
                               f"test images (wide images: each takes a backward pass per code "
                               "number)")
    images = measuring.test.targets[:count]
    with measuring.progress.stage("encoder's Jacobian norm", total=-(-len(images) // BATCH),
                                  unit="batch") as tick:
        return jacobian_norm(measuring.opened.encode, images,
                             measuring.opened.jacobian_squared_norm, tick)


register_measurement(Measurement(
    "jacobian_norm", "the encoder's mean Jacobian norm", _measure,
    rows=lambda value: [("mean ||J||_F", f"{value:.4f}")],
    columns=lambda value: [("mean ‖J‖_F", f"{value:.3f}")]))
