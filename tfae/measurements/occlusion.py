"""``occlusion``: how the model copes with a square patch of the image blacked out.

For patches of half and a quarter of the shorter side (14x14 and 7x7 on MNIST) at seeded
positions: the reconstruction's MSE inside the patch, and the linear probe's accuracy on the
codes of the occluded images. Keyed by ``patch_key``; reports show the largest patch.

Examples:
    >>> sizes((28, 28, 1)), sizes((75, 100, 3)), patch_key(14)
    ((14, 7), (37, 18), '14x14')
"""

from tfae.measurements import SEED, Measurement, percent, register_measurement


def sizes(image_shape):
    """The sides of the square occlusion patches measured: half and a quarter of the shorter side.

    Examples:
        >>> sizes((3, 3, 1))
        (1,)
    """
    side = min(image_shape[:2])
    return tuple(size for size in (side // 2, side // 4) if size > 0)


def patch_key(size):
    """How a patch of side ``size`` is named in ``metrics.json`` and on pages.

    Examples:
        >>> patch_key(7)
        '7x7'
    """
    return f"{size}x{size}"


def largest(value):
    """The largest patch's name in an ``occlusion`` value (the first measured).

    Examples:
        >>> largest({"14x14": {}, "7x7": {}})
        '14x14'
    """
    return next(iter(value))


def _measure(measuring):
    from tfae.probes import score

    value, probe = {}, measuring.linear_probe
    for size in sizes(measuring.splits.image_shape):
        patch_mse, codes, labels = _occluded(measuring, size)
        value[patch_key(size)] = {"patch_mse": patch_mse,
                                  "linear_probe": probe and score(probe, codes, labels)}
    return value


def _occluded(measuring, size):
    """``(patch MSE, codes, labels)`` of the test images with a seeded patch of side ``size``
    blacked out, a batch at a time: only the codes are kept (at 96x96x3, keeping the images,
    reconstructions and masks of 2,000 test images took 1.2 GB)."""
    import numpy as np
    import tensorflow as tf

    from tfae.corruptions import parse_corruption
    from tfae.data import pipeline

    test = measuring.test_images
    # Float ones, which the pipeline leaves as they are (uint8 ones would become 1/255): the
    # same seeded patches as the images', where the ones turn to zeros.
    blank = test.map(lambda image, label: (tf.ones(tf.shape(image), tf.float32), label))
    masks = pipeline(blank, measuring.batch_size, seed=SEED, fresh_corruption=False,
                     corruption=parse_corruption(f"occlusion:{size}"))
    squared, inside, codes, labels = 0.0, 0.0, [], []
    batches = measuring.batches(test, f"occlusion:{size}")
    with measuring.progress.stage(f"occlusion {patch_key(size)}: reconstructing",
                                  total=-(-int(test.cardinality()) // measuring.batch_size),
                                  unit="batch") as tick:
        for (noisy, clean, batch_labels), (ones, _) in zip(batches, masks):
            batch_codes, reconstructions = measuring.through_model(noisy)
            patch = 1.0 - ones
            squared += float(tf.reduce_sum(tf.square((reconstructions - clean) * patch)))
            inside += float(tf.reduce_sum(patch))
            codes.append(np.asarray(batch_codes))
            labels.append(batch_labels.numpy())
            tick()
    return squared / inside, np.concatenate(codes), np.concatenate(labels)


def _rows(value):
    return [(f"occlusion {key}", f"patch MSE {values['patch_mse']:.4f}"
             + ("" if values["linear_probe"] is None else
                f", probe {values['linear_probe']:.2%}"))
            for key, values in value.items()]


register_measurement(Measurement(
    "occlusion", "reconstruction inside occluded patches, and the probe on occluded codes",
    _measure, _rows, columns=lambda value: [(f"probe, {largest(value)} occluded",
                                           percent(value[largest(value)]["linear_probe"]))]))
