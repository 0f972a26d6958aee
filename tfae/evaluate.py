"""Evaluation: what an autoencoder's codes and reconstructions are good for, as the study judged.

``evaluate`` measures a run folder or an exported SavedModel on a data set's test split:

- reconstruction: MSE, PSNR and binary cross-entropy;
- a linear probe (logistic regression on standardised codes, fitted on the training split's codes)
  and a 5-nearest-neighbour probe, each scored on the test split's codes;
- denoising: PSNR of noisy inputs and of their reconstructions, for gaussian 0.25 and 0.5 and
  salt-and-pepper 0.2, the same seeded corruption for every model;
- occlusion: MSE inside square patches of half and a quarter of the image's shorter side (14x14
  and 7x7 on MNIST) at seeded positions, and the linear probe's accuracy on the codes of the
  occluded images;
- colourisation, on colour images: PSNR of the grayscale inputs and of the model's output from
  them, both against the originals (the measure of a run trained with ``--noise grayscale``);
- contractiveness: the mean Frobenius norm of the encoder's Jacobian over test images;
- baselines on the same splits (``tfae.probes.baselines``): the probes on the raw pixels, and on
  PCA with the model's code size, with PCA's reconstruction PSNR;
- manifold convergence as numbers: from 500 noisy test images (gaussian 0.5), iterate
  x_{t+1} = AE(x_t) 20 times; the share of final images that a classifier of clean training
  images (the pixel probe) still gives the start's label, and how many distinct attractors they
  reach; the same share after every step (``label_kept_by_step``, the noisy starts at 0), so a
  loss shows as never denoised or as drifting;
- the parameter count and training time of the run.

The probes need labels of two classes or more; without them they are left out and ``notes`` says
why. Measured on the data its run was trained on (unless told otherwise), a run whose data has
changed since is measured all the same, with a warning and a note.

Examples:
    >>> from tfae.evaluate import evaluate
    >>> metrics = evaluate("runs/deep", limit=2000)  # doctest: +SKIP
    >>> metrics["probe"]["linear"]  # doctest: +SKIP
    0.912
"""

import dataclasses
import functools
import pathlib
import sys

import keras
import numpy as np
import tensorflow as tf

from tfae.config import DataConfig
from tfae.corruptions import parse_corruption
from tfae.data import as_splits, load_config, pipeline
from tfae.errors import TfaeError
from tfae.export import versions
from tfae.models.contractive import contractive_penalty, jacobian_squared_norm
from tfae.probes import baselines, fit_probes, psnr, score
from tfae.runs import RunFolder

DENOISING_SPECS = ("gaussian:0.25", "gaussian:0.5", "salt-pepper:0.2")
JACOBIAN_IMAGES = 1000  # the Jacobian is latent x pixels per image: a sample is enough
CONVERGENCE_STARTS = 500
MANIFOLD_STEPS = 20
ATTRACTOR_TOLERANCE = 0.02  # final images closer than this (RMS, pixels in [0, 1]) are one
SEED = 1234  # one corruption for every model, so their numbers compare


@dataclasses.dataclass
class Endpoints:
    """What evaluation needs from a model, whether a Keras run or a SavedModel export.

    Attributes:
        encode: images -> codes.
        reconstruct: images -> reconstructions.
        image_shape: the input image shape.
        parameters: the number of weights.
        training_seconds: from the run, or ``None`` for an export.
        data_settings: the run's ``DataConfig`` fields, or ``None`` for an export.
        data_source: where the run's data came from (``Splits.source``), if known.
        jacobian_squared_norm: images -> ||J_f(x)||_F^2 without the full Jacobian where the
            model allows it, or ``None`` for an export.

    Examples:
        >>> endpoints = open_endpoints("runs/deep")  # doctest: +SKIP
        >>> endpoints.encode(images).shape, endpoints.parameters  # doctest: +SKIP
        (TensorShape([8, 10]), 1028394)
    """

    encode: callable
    reconstruct: callable
    image_shape: tuple
    parameters: int
    training_seconds: float | None
    data_settings: dict | None = None
    data_source: dict | None = None
    jacobian_squared_norm: callable = None


def open_endpoints(path):
    """Opens a run folder (``model.keras``) or a SavedModel (a version folder or its parent).

    Examples:
        >>> endpoints = open_endpoints("saved_models/deep")  # doctest: +SKIP
        >>> endpoints.encode(images).shape  # doctest: +SKIP
        TensorShape([8, 10])
    """
    path = pathlib.Path(path)
    if RunFolder.holds_run(path):
        folder = RunFolder(path)
        model = folder.load_model()
        info = folder.info()
        config = folder.config() if folder.config_path.exists() else {}
        settings = {name: config[name] for name in DataConfig().data_fields() if name in config}
        return Endpoints(
            encode=lambda images: model.encoder(images, training=False),
            reconstruct=lambda images: model(images, training=False),
            image_shape=model.image_shape, parameters=model.count_params(),
            training_seconds=info.get("training_seconds"), data_settings=settings,
            data_source=info.get("data"),
            jacobian_squared_norm=functools.partial(contractive_penalty, model.encoder,
                                                    method="exact"))
    found = [] if (path / "saved_model.pb").is_file() else versions(path)
    if found:  # a folder of versions: the highest, as TF Serving serves
        path = path / str(found[-1])
    if not (path / "saved_model.pb").is_file():
        raise TfaeError(f"{path} is neither a run folder (model.keras) nor a SavedModel export")
    served = tf.saved_model.load(str(path))
    missing = {"encode", "serving_default"} - set(served.signatures)
    if missing:
        raise TfaeError(f"export {path} lacks the signature(s) {', '.join(sorted(missing))}")
    # The lambdas hold `served` itself: its signatures alone do not keep its variables alive.
    image_shape = tuple(served.signatures["encode"].structured_input_signature[1]["images"].shape[1:])
    return Endpoints(
        encode=lambda images: served.signatures["encode"](images=images)["codes"],
        reconstruct=lambda images: served.signatures["serving_default"](
            images=images)["reconstructions"],
        image_shape=image_shape,
        parameters=int(sum(np.prod(variable.shape) for variable in served.variables)),
        training_seconds=None)


def measured_data(path, endpoints, dataset=None, limit=None, **settings):
    """The ``Splits`` to measure the model at ``path`` on, and notes on them.

    By default the run's own data, with its settings (a note and a warning if it has changed
    since the run was trained); ``dataset`` (a name, folder, ``.npz`` file or ``Splits``) with
    ``settings`` (``DataConfig`` fields) measures it on other data, shaped as the run's was.

    Raises:
        TfaeError: for a run trained on arrays given in Python, with no ``dataset``; for data
            whose images are not the shape the model takes.

    Examples:
        >>> splits, notes = measured_data("runs/photos", open_endpoints("runs/photos"))  # doctest: +SKIP
        >>> notes  # doctest: +SKIP
        ['photos has changed since runs/photos was trained (fingerprint 3f2a..., now 9c1e...)']
    """
    run = endpoints.data_settings or {}
    shaping = {name: run[name] for name in ("image_size", "channels", "test_fraction")
               if name in run}
    given = {name: value for name, value in settings.items() if value is not None}
    notes = []
    if dataset is not None and not isinstance(dataset, str):
        splits = as_splits(dataset, **{**shaping, **given, "limit": limit})
    elif dataset is not None or not run:
        splits = load_config(DataConfig(**{**shaping, **given, "dataset": dataset or "mnist",
                                           "limit": limit}))
    else:
        source = endpoints.data_source or {}
        if source.get("kind") == "arrays":
            raise TfaeError(f"{path} was trained on arrays given in Python; give the data to "
                            "measure it on ({dataset})", options=["dataset"])
        if source.get("kind") in ("folder", "npz"):  # its absolute path: any working folder
            run = {**run, "dataset": source["dataset"]}
        splits = load_config(DataConfig(**{**run, **given, "limit": limit}))
        trained_on = source.get("fingerprint")
        if trained_on and trained_on != splits.source.get("fingerprint"):
            notes.append(f"{splits.source.get('dataset', splits.name)} has changed since {path} "
                         f"was trained (fingerprint {trained_on}, now "
                         f"{splits.source['fingerprint']})")
            print(f"warning: {notes[-1]}", file=sys.stderr)
    if tuple(splits.image_shape) != tuple(endpoints.image_shape):
        raise TfaeError(f"{path} takes images of shape {endpoints.image_shape}, but data set "
                        f"{splits.name!r} has {splits.image_shape}")
    return splits, notes


def occlusion_sizes(image_shape):
    """The sides of the square occlusion patches measured: half and a quarter of the shorter side.

    Examples:
        >>> occlusion_sizes((28, 28, 1)), occlusion_sizes((75, 100, 3))
        ((14, 7), (37, 18))
    """
    side = min(image_shape[:2])
    return tuple(size for size in (side // 2, side // 4) if size > 0)


def jacobian_norm(encode, images, squared_norm=None):
    """Mean over ``images`` of ||J_f(x)||_F, the encoder's Jacobian norm, for any callable encoder.

    ``squared_norm(images)``, when given, computes ||J_f(x)||_F^2 instead of the full Jacobian:
    a Keras encoder passes ``contractive_penalty``'s ``exact`` method, the closed form for one
    dense layer, where the full Jacobian of a wide code is gigabytes per batch.

    Examples:
        >>> round(jacobian_norm(lambda x: 2 * tf.reshape(x, (-1, 3)), np.ones((2, 3))), 4)
        3.4641
    """
    squared_norm = squared_norm or functools.partial(jacobian_squared_norm, encode)

    @tf.function  # batch_jacobian's vectorisation retraces on every eager call
    def batch_norms(batch):
        return tf.sqrt(squared_norm(batch))

    batches = tf.data.Dataset.from_tensor_slices(np.asarray(images, np.float32)).batch(100)
    return float(np.mean(np.concatenate([batch_norms(batch).numpy() for batch in batches])))


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
        >>> frames, distances = manifold_convergence(lambda x: x / 2, np.ones((1, 2)), 1,
        ...                                          np.zeros((3, 2)))
        >>> [round(float(distance), 3) for distance in distances[:, 0]]
        [1.414, 0.707]
    """
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


def convergence(reconstruct, starts, labels, classifier, steps=MANIFOLD_STEPS):
    """Manifold convergence as numbers: iterate x_{t+1} = AE(x_t) from ``starts`` ``steps`` times.

    Returns:
        ``starts``, ``steps``; ``label_kept``, the share of final images that ``classifier`` (a
        classifier of flat images) gives the label of their start; ``label_kept_by_step``, that
        share for the starts and after each step (``steps + 1`` numbers, the last
        ``label_kept``); ``attractors``, the number of distinct final images (within
        ``ATTRACTOR_TOLERANCE`` RMS of each other counts as one).

    Examples:
        >>> from tfae.probes import linear_probe
        >>> classifier = linear_probe(np.eye(2).repeat(3, axis=0), np.arange(2).repeat(3))
        >>> result = convergence(lambda x: 1 - x, np.eye(2), np.arange(2), classifier, steps=3)
        >>> result["attractors"], result["label_kept_by_step"]
        (2, [1.0, 0.0, 1.0, 0.0])
    """
    images, kept = np.asarray(starts, np.float32), []
    for step in range(steps + 1):  # step 0 scores the starts themselves
        if step:
            images = np.asarray(reconstruct(tf.constant(images)))
        flat = images.reshape(len(images), -1)
        kept.append(score(classifier, flat, labels))
    centres = []
    for image in flat:
        if not centres or np.sqrt(np.mean((np.array(centres) - image) ** 2, axis=1)).min() \
                > ATTRACTOR_TOLERANCE:
            centres.append(image)
    return {"starts": len(flat), "steps": steps, "label_kept": kept[-1],
            "label_kept_by_step": kept, "attractors": len(centres)}


def _collect(endpoints, batches):
    """Runs a labelled pipeline through the endpoints: clean images, noisy inputs, codes, labels."""
    inputs, targets, codes, reconstructions, labels = [], [], [], [], []
    for noisy, clean, label in batches:
        inputs.append(noisy.numpy())
        targets.append(clean.numpy())
        codes.append(np.asarray(endpoints.encode(noisy)))
        reconstructions.append(np.asarray(endpoints.reconstruct(noisy)))
        labels.append(label.numpy())
    return tuple(np.concatenate(parts) for parts in (inputs, targets, codes, reconstructions, labels))


def evaluate(path, dataset=None, data_dir=None, limit=None, batch_size=500, verbose=1,
             **settings):
    """Measures a run folder or export and writes ``metrics.json`` beside it.

    Args:
        path: a run folder, a SavedModel version folder, or a folder of versions.
        dataset: the data to measure on (a name, folder, ``.npz`` file, or what
            ``tfae.fit``'s ``data`` takes); default the run's, or ``mnist`` for an export.
        data_dir: a folder of prepared tfds data.
        limit: use only the first ``limit`` images of each split.
        batch_size: images per batch through the model.
        verbose: show a progress bar over the measurements.
        **settings: other ``DataConfig`` fields (``manual_dir``, ``image_size``, ...).

    Returns:
        The metrics as a nested dict (see the module docstring).

    Examples:
        >>> evaluate("runs/deep", limit=2000)["reconstruction"]["psnr"]  # doctest: +SKIP
        18.2
    """
    endpoints = open_endpoints(path)
    splits, notes = measured_data(path, endpoints, dataset, limit, data_dir=data_dir, **settings)
    sizes = occlusion_sizes(splits.image_shape)
    colour = splits.image_shape[-1] == 3
    stages = ["train codes", "test codes", "probes", "baselines", *DENOISING_SPECS,
              *(f"occlusion {size}" for size in sizes), *(["colorization"] if colour else []),
              "manifold", "jacobian"]
    progress = keras.utils.Progbar(len(stages), verbose=verbose, stateful_metrics=["stage"])

    def advance(stage):
        progress.add(1, values=[("stage", stages.index(stage) + 1)])

    def batches(split, corruption=None):
        return pipeline(split, batch_size, seed=SEED, with_labels=True, corruption=corruption,
                        fresh_corruption=False)

    train_images, _, train_codes, _, train_labels = _collect(endpoints, batches(splits.train))
    advance("train codes")
    _, test_images, test_codes, reconstructions, test_labels = _collect(
        endpoints, batches(splits.test))
    advance("test codes")
    probes, reason = fit_probes(train_codes, train_labels, test_labels)
    if reason:
        notes.append(reason)
    advance("probes")
    clipped = np.clip(reconstructions, 1e-7, 1 - 1e-7)
    metrics = {
        "dataset": splits.name, "data": splits.source, "limit": limit,
        "test_images": len(test_images),
        "parameters": endpoints.parameters, "training_seconds": endpoints.training_seconds,
        "reconstruction": {
            "mse": float(np.mean((reconstructions - test_images) ** 2)),
            "psnr": psnr(test_images, reconstructions),
            "bce": float(-np.mean(test_images * np.log(clipped)
                                  + (1 - test_images) * np.log(1 - clipped))),
        },
        "probe": probes and {name: score(probe, test_codes, test_labels)
                             for name, probe in probes.items()},
        "denoising": {}, "occlusion": {}, "notes": notes,
    }
    splits_key = (splits.source.get("fingerprint"), train_images.shape, test_images.shape)
    metrics["baselines"], pixel_probes = baselines(
        train_images, train_labels, test_images, test_labels, train_codes.shape[1],
        key=splits_key if splits.source.get("fingerprint") else None)
    del train_images  # the largest array here: the training split's pixels
    advance("baselines")
    for spec in DENOISING_SPECS:
        noisy, clean, _, denoised, _ = _collect(endpoints, batches(splits.test,
                                                                   parse_corruption(spec)))
        metrics["denoising"][spec] = {"noisy_psnr": psnr(clean, noisy),
                                      "reconstruction_psnr": psnr(clean, denoised)}
        advance(spec)
    for size in sizes:
        _, clean, codes, restored, labels = _collect(
            endpoints, batches(splits.test, parse_corruption(f"occlusion:{size}")))
        patch = _patch_mask(splits.test, size, batch_size)
        metrics["occlusion"][f"{size}x{size}"] = {
            "patch_mse": float(np.sum(((restored - clean) * patch) ** 2) / np.sum(patch)),
            "linear_probe": probes and score(probes["linear"], codes, labels),
        }
        advance(f"occlusion {size}")
    if colour:
        grey, clean, _, colourised, _ = _collect(endpoints, batches(splits.test,
                                                                    parse_corruption("grayscale")))
        metrics["colorization"] = {"grayscale_psnr": psnr(clean, grey),
                                   "colorized_psnr": psnr(clean, colourised)}
        advance("colorization")
    if pixel_probes:
        starts, _, _, _, labels = _collect(endpoints, batches(
            splits.test.take(CONVERGENCE_STARTS), parse_corruption("gaussian:0.5")))
        metrics["manifold"] = convergence(endpoints.reconstruct, starts, labels,
                                          pixel_probes["linear"])
    advance("manifold")
    metrics["jacobian_norm"] = jacobian_norm(endpoints.encode, test_images[:JACOBIAN_IMAGES],
                                             endpoints.jacobian_squared_norm)
    advance("jacobian")
    RunFolder(path).write_metrics(metrics)  # an export's folder keeps its metrics as a run's does
    return metrics


def _patch_mask(split, size, batch_size):
    """1 inside each test image's occlusion patch, 0 elsewhere, for the seeded positions."""
    # Float ones, which the pipeline leaves as they are (uint8 ones would become 1/255).
    blank = split.map(lambda image, label: (tf.ones(tf.shape(image), tf.float32), label))
    masks = [1.0 - inputs.numpy() for inputs, _ in pipeline(
        blank, batch_size, seed=SEED, corruption=parse_corruption(f"occlusion:{size}"),
        fresh_corruption=False)]
    return np.concatenate(masks)


def summary_rows(metrics):
    """The metrics as (name, value) rows for a short printed table.

    Examples:
        >>> summary_rows({"probe": {"linear": 0.9, "knn": 0.95}})[0]
        ('linear probe', '90.00%')
    """
    rows = []
    probe = metrics.get("probe")
    if probe:
        rows += [("linear probe", f"{probe['linear']:.2%}"), ("kNN (k=5)", f"{probe['knn']:.2%}")]
    if "reconstruction" in metrics:
        reconstruction = metrics["reconstruction"]
        rows += [("MSE", f"{reconstruction['mse']:.5f}"), ("PSNR", f"{reconstruction['psnr']:.2f} dB"),
                 ("BCE", f"{reconstruction['bce']:.4f}")]
    for spec, values in metrics.get("denoising", {}).items():
        rows.append((f"denoising {spec}", f"{values['noisy_psnr']:.2f} -> "
                                          f"{values['reconstruction_psnr']:.2f} dB"))
    for size, values in metrics.get("occlusion", {}).items():
        probe_text = "" if values["linear_probe"] is None else f", probe {values['linear_probe']:.2%}"
        rows.append((f"occlusion {size}", f"patch MSE {values['patch_mse']:.4f}{probe_text}"))
    for name, values in metrics.get("baselines", {}).items():
        label = "raw pixels" if name == "pixels" else f"PCA-{values['components']}"
        probes = ("" if values["linear"] is None else
                  f"linear {values['linear']:.2%}, kNN {values['knn']:.2%}")
        psnr_text = f"PSNR {values['psnr']:.2f} dB" if "psnr" in values else ""
        text = ", ".join(part for part in (probes, psnr_text) if part)
        if text:
            rows.append((label, text))
    if "manifold" in metrics:
        values = metrics["manifold"]
        # Older metrics have only the end; the start and first step tell drift from no denoising.
        by_step = values.get("label_kept_by_step", [])
        first_steps = (f" (start {by_step[0]:.2%}, 1 step {by_step[1]:.2%})"
                       if len(by_step) > 1 else "")
        rows.append(("manifold convergence", f"label kept {values['label_kept']:.2%}{first_steps}, "
                                             f"{values['attractors']} attractor(s)"))
    if "colorization" in metrics:
        values = metrics["colorization"]
        rows.append(("colorization", f"{values['grayscale_psnr']:.2f} -> "
                                     f"{values['colorized_psnr']:.2f} dB"))
    if "jacobian_norm" in metrics:
        rows.append(("mean ||J||_F", f"{metrics['jacobian_norm']:.4f}"))
    if "parameters" in metrics:
        rows.append(("parameters", f"{metrics['parameters']:,}"))
    if metrics.get("training_seconds") is not None:
        rows.append(("training time", f"{metrics['training_seconds']:.1f} s"))
    rows += [("note", note) for note in metrics.get("notes", [])]
    return rows
