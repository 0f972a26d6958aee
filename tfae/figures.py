"""The figures of ``tfae plot``: gather what each kind shows from a run or export, then draw it.

Kinds: ``tsne``, ``reconstructions``, ``denoising``, ``occlusion``, ``colorization`` (colour
images), ``manifold``, ``history``.

Examples:
    >>> from tfae.figures import draw
    >>> draw("runs/deep", "tsne", out_dir="runs/deep/figures")  # doctest: +SKIP
    PosixPath('runs/deep/figures/tsne.png')
"""

import pathlib

import keras
import numpy as np

from tfae import plots
from tfae.corruptions import parse_corruption
from tfae.data.pipeline import first_images
from tfae.errors import TfaeError
from tfae.evaluate import (MANIFOLD_STEPS, SEED, manifold_convergence, measured_data,
                           occlusion_sizes, open_endpoints)
from tfae.runs import RunFolder

KINDS = ("tsne", "reconstructions", "denoising", "occlusion", "colorization", "manifold",
         "history")
TSNE_IMAGES = 5000
SHOWN_IMAGES = 10


def draw(path, kind, out_dir=None, dataset=None, data_dir=None, limit=None, verbose=1,
         **settings):
    """Draws figure ``kind`` of the run or export at ``path`` into ``out_dir/<kind>.png``.

    Args:
        path: a run folder or a SavedModel export.
        kind: one of ``KINDS``.
        out_dir: where the PNG goes; default ``path/figures``.
        dataset, data_dir, limit, settings: as for ``tfae.evaluate.evaluate``.
        verbose: a progress bar over the steps (t-SNE takes a minute on 5,000 codes).

    Returns:
        The PNG's path.

    Examples:
        >>> draw("runs/deep", "tsne", limit=5000)  # doctest: +SKIP
        PosixPath('runs/deep/figures/tsne.png')
    """
    if kind not in KINDS:
        raise TfaeError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    folder = RunFolder(path)
    out = pathlib.Path(out_dir) if out_dir else folder.figures_dir
    name = folder.path.resolve().name
    if kind == "history":
        return plots.plot_history(folder.history(), out / "history.png",
                                  f"{name}: training history")
    endpoints = open_endpoints(path)
    splits, _ = measured_data(path, endpoints, dataset, limit, data_dir=data_dir, **settings)
    progress = keras.utils.Progbar(3, verbose=verbose)
    if kind == "tsne":
        images, _, labels = _first(splits.test, TSNE_IMAGES)
        codes = np.asarray(endpoints.encode(images))
        progress.add(1)
        embedding = plots.tsne_embedding(codes)
        progress.add(1)
        figure = plots.plot_tsne(embedding, labels, out / "tsne.png",
                                 f"{name}: t-SNE of {len(codes):,} test codes",
                                 class_names=splits.class_names)
    elif kind == "reconstructions":
        images, _, _ = _first(_spread(splits.test), SHOWN_IMAGES)
        progress.add(2)
        figure = plots.plot_rows([("original", images),
                                  ("reconstructed", np.asarray(endpoints.reconstruct(images)))],
                                 out / "reconstructions.png", f"{name}: reconstructions")
    elif kind == "colorization":
        if splits.image_shape[-1] != 3:
            raise TfaeError(f"--kind colorization needs colour images; {splits.name} has "
                            f"{splits.image_shape[-1]} channel(s)")
        grey, images, _ = _first(_spread(splits.test), SHOWN_IMAGES,
                                 parse_corruption("grayscale"))
        progress.add(2)
        figure = plots.plot_rows(
            [("grayscale input", grey), ("colourised", np.asarray(endpoints.reconstruct(grey))),
             ("original", images)], out / "colorization.png", f"{name}: colorization")
    elif kind in ("denoising", "occlusion"):
        spec = ("gaussian:0.5" if kind == "denoising"
                else f"occlusion:{occlusion_sizes(splits.image_shape)[0]}")
        corrupted, images, _ = _first(_spread(splits.test), SHOWN_IMAGES, parse_corruption(spec))
        progress.add(2)
        figure = plots.plot_rows(
            [("original", images), (spec, corrupted),
             ("reconstructed", np.asarray(endpoints.reconstruct(corrupted)))],
            out / f"{kind}.png", f"{name}: {kind} ({spec})")
    else:
        noisy, _, _ = _first(splits.test, 6, parse_corruption("gaussian:0.5"))
        start = np.concatenate([noisy, np.random.default_rng(SEED).random((2, *noisy.shape[1:]),
                                                                          dtype=np.float32)])
        reference, _, _ = _first(splits.train, None)
        progress.add(1)
        frames, distances = manifold_convergence(endpoints.reconstruct, start, MANIFOLD_STEPS,
                                                 reference)
        progress.add(1)
        figure = plots.plot_manifold(
            frames, distances, out / "manifold.png",
            f"{name}: manifold convergence from 6 noisy (gaussian 0.5) and 2 random images")
    progress.add(1)
    return figure


def _spread(split, count=SHOWN_IMAGES):
    """Every n-th image of a split, ``count`` of them across it: a folder's test split is in file
    order, whose first images are often alike (one class, one region of a photograph)."""
    return split.shard(max(1, int(split.cardinality()) // count), 0)


def _first(split, count, corruption=None):
    """The first ``count`` images of a split (all for ``None``), corrupted with ``SEED``."""
    return first_images(split, count, corruption, seed=SEED)
