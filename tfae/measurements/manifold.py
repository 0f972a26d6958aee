"""``manifold``: manifold convergence as numbers, iterating the autoencoder x_{t+1} = AE(x_t).

From ``STARTS`` noisy test images (gaussian 0.5), ``STEPS`` iterations: the share of final images
that a classifier of clean training images (the pixels' linear probe of the baselines) still
gives the start's label, and how many distinct attractors they reach; the same share after every
step (``label_kept_by_step``, the noisy starts at 0), so a loss shows as never denoised or as
drifting. Left out without labels.

Examples:
    >>> from tfae.measurements import get_measurement
    >>> get_measurement("manifold").rows({"label_kept": 0.8, "label_kept_by_step": [0.5, 0.7],
    ...                                   "attractors": 12})
    [('manifold convergence', 'label kept 80.00% (start 50.00%, 1 step 70.00%), 12 attractor(s)')]
"""

from tfae.measurements import Measurement, percent, register_measurement

STARTS = 500
STEPS = 20
NOISE = "gaussian:0.5"
ATTRACTOR_TOLERANCE = 0.02  # final images closer than this (RMS, pixels in [0, 1]) are one


def manifold_convergence(reconstruct, start, steps, reference):
    """Iterates the autoencoder, x_{t+1} = AE(x_t), and tracks how far x_t is from the data.

    Args:
        reconstruct: images -> reconstructions.
        start: the images x_0 (noisy or random).
        steps: iterations.
        reference: images whose nearest one to x_t gives its distance (the training split).

    Returns:
        ``(frames, distances)``: frames of shape ``(steps + 1, *start.shape)``, and the Euclidean
        distance of each x_t to its nearest reference image, shape ``(steps + 1, len(start))``.

    Examples:
        >>> import numpy as np
        >>> frames, distances = manifold_convergence(lambda x: x / 2, np.ones((1, 2)), 1,
        ...                                          np.zeros((3, 2)))
        >>> [round(float(distance), 3) for distance in distances[:, 0]]
        [1.414, 0.707]
    """
    import numpy as np
    import tensorflow as tf

    flat_reference = tf.reshape(tf.constant(reference, tf.float32), (len(reference), -1))
    reference_norms = tf.reduce_sum(tf.square(flat_reference), axis=1)
    frames = [np.asarray(start, np.float32)]
    for _ in range(steps):
        frames.append(np.asarray(reconstruct(tf.constant(frames[-1]))))
    distances = []
    for frame in frames:
        flat = tf.reshape(tf.constant(frame), (len(frame), -1))
        squared = (tf.reduce_sum(tf.square(flat), axis=1)[:, None] + reference_norms[None, :]
                   - 2 * tf.matmul(flat, flat_reference, transpose_b=True))
        distances.append(np.sqrt(np.maximum(tf.reduce_min(squared, axis=1).numpy(), 0)))
    return np.stack(frames), np.stack(distances)


def convergence(reconstruct, starts, labels, classifier, steps=STEPS, tick=None):
    """Manifold convergence as numbers: iterate x_{t+1} = AE(x_t) from ``starts`` ``steps`` times,
    calling ``tick()`` after each step.

    Returns:
        ``starts``, ``steps``; ``label_kept``, the share of final images that ``classifier`` (a
        classifier of flat images) gives the label of their start; ``label_kept_by_step``, that
        share for the starts and after each step (``steps + 1`` numbers, the last
        ``label_kept``); ``attractors``, the number of distinct final images (within
        ``ATTRACTOR_TOLERANCE`` RMS of each other counts as one).

    Examples:
        >>> import numpy as np
        >>> from tfae.probes import linear_probe
        >>> classifier = linear_probe(np.eye(2).repeat(3, axis=0), np.arange(2).repeat(3))
        >>> result = convergence(lambda x: 1 - x, np.eye(2), np.arange(2), classifier, steps=3)
        >>> result["attractors"], result["label_kept_by_step"]
        (2, [1.0, 0.0, 1.0, 0.0])
    """
    import numpy as np
    import tensorflow as tf

    from tfae.probes import score

    images, kept = np.asarray(starts, np.float32), []
    for step in range(steps + 1):  # step 0 scores the starts themselves
        if step:
            images = np.asarray(reconstruct(tf.constant(images)))
            if tick:
                tick()
        flat = images.reshape(len(images), -1)
        kept.append(score(classifier, flat, labels))
    centres = []
    for image in flat:
        if not centres or np.sqrt(np.mean((np.array(centres) - image) ** 2, axis=1)).min() \
                > ATTRACTOR_TOLERANCE:
            centres.append(image)
    return {"starts": len(flat), "steps": steps, "label_kept": kept[-1],
            "label_kept_by_step": kept, "attractors": len(centres)}


def _measure(measuring):
    _, pixel_classifier = measuring.baselines
    if not pixel_classifier:
        return None
    starts = measuring.collect(measuring.test_images.take(STARTS), NOISE,
                               name=f"manifold convergence: {NOISE} starts")
    with measuring.progress.stage("manifold convergence: iterating", total=STEPS,
                                  unit="step") as tick:
        return convergence(measuring.opened.reconstruct, starts.inputs, starts.labels,
                           pixel_classifier, tick=tick)


def _rows(value):
    # Older metrics have only the end; the start and first step tell drift from no denoising.
    by_step = value.get("label_kept_by_step", [])
    first_steps = f" (start {by_step[0]:.2%}, 1 step {by_step[1]:.2%})" if len(by_step) > 1 else ""
    return [("manifold convergence", f"label kept {value['label_kept']:.2%}{first_steps}, "
                                     f"{value['attractors']} attractor(s)")]


register_measurement(Measurement(
    "manifold", "iterating the autoencoder from noisy images: is the digit kept?", _measure, _rows,
    columns=lambda value: [(f"label kept after {STEPS} steps (attractors)",
                            f"{percent(value['label_kept'])} ({value['attractors']})")]))
