"""The figures of ``tfae plot``, one registered kind each: what a kind shows, gathered from a run or
export, drawn by ``tfae.plots``.

Kinds: ``tsne``, ``reconstructions``, ``denoising``, ``occlusion``, ``colorization`` (colour
images), ``manifold``, ``anomalies``, ``sample`` (a variational autoencoder's), ``history``. ``register_figure`` adds a kind of one's own: a
``FigureKind`` whose ``draw(figure)`` gets a ``Figure`` (the opened model, the data, where
to write) and returns the PNG's path. This module imports TensorFlow only to draw, so that
``tfae plot --help`` lists the kinds at once.

Examples:
    >>> from tfae.figures import draw, figure_names
    >>> figure_names()[:2]
    ['tsne', 'reconstructions']
    >>> draw("runs/deep", "tsne", out_dir="runs/deep/figures")  # doctest: +SKIP
    PosixPath('runs/deep/figures/tsne.png')
"""

import dataclasses
import pathlib

import numpy as np

from tfae.errors import TfaeError
from tfae.progress import Progress
from tfae.registry import Registry

TSNE_IMAGES = 5000
SHOWN_IMAGES = 10
ANOMALY_IMAGES = 2000  # test images ranked by the model's anomaly score
MANIFOLD_STARTS = 6  # noisy test images, and 2 random ones, in the manifold figure
SAMPLES = 64
TRAVERSAL_STEPS = 15


@dataclasses.dataclass(frozen=True)
class FigureKind:
    """A kind of figure ``tfae plot --kind NAME`` draws.

    Attributes:
        name: the ``--kind`` name and the PNG's stem.
        draw: ``draw(figure) -> path``, given a ``Figure``.
        summary: one line on what it shows.
        needs_model: it draws the model's outputs (``history`` draws the run's history only).
        needs_data: it draws the model's outputs on images (``sample`` draws from noise).
        needs_prior: it draws from the model's prior (``tfae.families.Family.has_prior``).
        colour: it needs colour images (``report`` leaves it out for grey ones).

    Examples:
        >>> register_figure(FigureKind("blank", lambda figure: figure.path, "nothing"))
        >>> "blank" in figure_names()
        True
        >>> unregister_figure("blank")
        >>> [kind.name for kind in figure_kinds() if kind.colour]
        ['colorization']
    """

    name: str
    draw: callable
    summary: str
    needs_model: bool = True
    needs_data: bool = True
    needs_prior: bool = False
    colour: bool = False


@dataclasses.dataclass
class Figure:
    """What a kind draws from: the name shown in titles, where the PNG goes, and (for kinds that
    need the model) the opened model (``tfae.opened.OpenedModel``) and data (``tfae.data.Splits``).

    Attributes:
        name: the run's or export's folder name.
        path: the PNG's path.
        folder: the run's ``tfae.runs.RunFolder``.
        opened, splits: the model and the data; ``None`` for a kind without ``needs_model``.
        progress: a ``tfae.progress.Progress`` for a kind's slow parts.

    Examples:
        >>> def first_codes(figure):  # a kind's drawing function
        ...     images, _, labels = figure.first(figure.splits.test, 100)
        ...     return plots.plot_tsne(figure.opened.encode(images)[:, :2], labels,
        ...                            figure.path, figure.name)
    """

    name: str
    path: pathlib.Path
    folder: object
    opened: object = None
    splits: object = None
    progress: Progress = dataclasses.field(default_factory=lambda: Progress(enabled=False))

    def first(self, split, count, corruption=None):
        """``(inputs, images, labels)`` of the first ``count`` images of ``split`` (all for
        ``None``), the inputs corrupted by the spec ``corruption`` with evaluation's seed."""
        from tfae.corruptions import parse_corruption
        from tfae.data.pipeline import first_images
        from tfae.measurements import SEED

        return first_images(split, count, corruption and parse_corruption(corruption), seed=SEED)

    def shown(self, corruption=None):
        """``first`` of ``SHOWN_IMAGES`` test images spread across the split: a folder's test
        split is in file order, whose first images are often alike (one class, one region)."""
        split = self.splits.test
        return self.first(split.shard(max(1, int(split.cardinality()) // SHOWN_IMAGES), 0),
                          SHOWN_IMAGES, corruption)

    def shown_patches(self, corruption):
        """Where ``corruption`` blanks the images ``shown(corruption)`` shows: ``True`` inside
        its patches, found by corrupting white images the same way (an occlusion's positions
        depend on the seed, not on the images)."""
        import tensorflow as tf

        def white(image, label):
            return tf.ones_like(image) * (255 if image.dtype == tf.uint8 else 1), label

        split = self.splits.test
        blanked, _, _ = self.first(split.shard(max(1, int(split.cardinality()) // SHOWN_IMAGES),
                                               0).map(white), SHOWN_IMAGES, corruption)
        return (blanked == 0).any(axis=-1, keepdims=True)

    def reconstruct(self, images):
        return np.asarray(self.opened.reconstruct(images))


# The registry (``tfae.registry.Registry``): ``register_figure(FigureKind(...))`` adds a kind
# (one of the same name is replaced), ``unregister_figure(name)`` removes one.
FIGURES = Registry("figure kind")
register_figure, unregister_figure = FIGURES.register, FIGURES.unregister


def figure_kinds():
    """The registered kinds, in the order they registered.

    Examples:
        >>> [kind.name for kind in figure_kinds() if not kind.needs_model]
        ['history']
    """
    return FIGURES.all()


def figure_names():
    """The registered kinds' names: ``tfae plot --kind``'s choices.

    Examples:
        >>> figure_names()[-1]
        'history'
    """
    return FIGURES.names()


def draw(path, kind, out_dir=None, dataset=None, data_dir=None, limit=None, verbose=1,
         **settings):
    """Draws figure ``kind`` of the run or export at ``path`` into ``out_dir/<kind>.png``.

    Args:
        path: a run folder or a SavedModel export.
        kind: a registered kind's name (``figure_names()``).
        out_dir: where the PNG goes; default ``path/figures``.
        dataset, data_dir, limit, settings: as for ``tfae.evaluation.evaluate``.
        verbose: show each stage (loading, and a kind's slow parts such as t-SNE), named, with
            its time (on stderr).

    Returns:
        The PNG's path.

    Examples:
        >>> draw("runs/deep", "tsne", limit=5000)  # doctest: +SKIP
        PosixPath('runs/deep/figures/tsne.png')
    """
    return draw_kinds(path, [kind], out_dir, dataset, data_dir, limit, verbose,
                      **settings)[kind]


def draw_kinds(path, kinds, out_dir=None, dataset=None, data_dir=None, limit=None, verbose=1,
               **settings):
    """Draws each figure of ``kinds`` (once, however often it is named) as ``draw`` does, opening
    the model and its data once for them all; returns ``{kind: PNG path}``.

    Examples:
        >>> draw_kinds("runs/deep", ["tsne", "history"])  # doctest: +SKIP
        {'tsne': PosixPath('runs/deep/figures/tsne.png'), 'history': ...}
    """
    from tfae.runs import RunFolder

    for kind in kinds:
        if kind not in FIGURES:
            raise TfaeError(f"--kind must be one of {', '.join(FIGURES.names())}, got {kind!r}")
    chosen = [FIGURES.get(kind) for kind in dict.fromkeys(kinds)]
    folder = RunFolder(path)
    out = pathlib.Path(out_dir) if out_dir else folder.figures_dir
    progress = Progress(enabled=bool(verbose))
    opened, splits = None, None
    if any(kind.needs_model and kind.needs_data for kind in chosen):
        from tfae.evaluation import open_model_and_data

        opened, measured = open_model_and_data(
            path, progress, dataset, limit, data_dir=data_dir, **settings)
        splits = measured.splits
    elif any(kind.needs_model for kind in chosen):
        from tfae.opened import open_model

        with progress.stage(f"opening {path}"):
            opened = open_model(path)
    drawn = {}
    for kind in chosen:
        if kind.colour and splits.image_shape[-1] != 3:
            raise TfaeError(f"--kind {kind.name} needs colour images; {splits.name} has "
                            f"{splits.image_shape[-1]} channel(s)")
        figure = Figure(folder.path.resolve().name, out / f"{kind.name}.png", folder,
                        opened if kind.needs_model else None,
                        splits if kind.needs_data else None, progress)
        with progress.stage(f"drawing {kind.name}: {kind.summary}"):
            drawn[kind.name] = kind.draw(figure)
    return drawn


def _tsne(figure):
    from tfae import plots

    images, _, labels = figure.first(figure.splits.test, TSNE_IMAGES)
    with figure.progress.stage(f"encoding {len(images):,} test images"):
        codes = np.asarray(figure.opened.encode(images))
    with figure.progress.stage(f"t-SNE of {len(codes):,} codes",
                               total=sum(plots.TSNE_ITERATIONS), unit="iteration") as tick:
        embedding = plots.tsne_embedding(codes, tick=lambda: tick(plots.TSNE_TICK))
    return plots.plot_tsne(embedding, labels, figure.path,
                           f"{figure.name}: t-SNE of {len(codes):,} test codes",
                           class_names=figure.splits.class_names)


def _reconstructions(figure):
    from tfae import plots

    images, _, _ = figure.shown()
    return plots.plot_rows([("original", images), ("reconstructed", figure.reconstruct(images))],
                           figure.path, f"{figure.name}: reconstructions")


def _colorization(figure):
    from tfae import plots

    grey, images, _ = figure.shown("grayscale")
    return plots.plot_rows([("grayscale input", grey), ("colourised", figure.reconstruct(grey)),
                            ("original", images)], figure.path, f"{figure.name}: colorization")


def _corrupted_rows(spec_of, kind):
    """A figure of originals, their corruption by ``spec_of(image_shape)`` and its
    reconstruction."""
    def draw_rows(figure):
        from tfae import plots

        spec = spec_of(figure.splits.image_shape)
        corrupted, images, _ = figure.shown(spec)
        return plots.plot_rows([("original", images), (spec, corrupted),
                                ("reconstructed", figure.reconstruct(corrupted))],
                               figure.path, f"{figure.name}: {kind} ({spec})")

    return draw_rows


# The colour an occluding patch is drawn in: black, as the model sees it, it would not show on
# MNIST's black background.
PATCH_COLOUR = (1.0, 0.45, 0.0)


def _occlusion(figure):
    from tfae import plots

    spec = _occlusion_spec(figure.splits.image_shape)
    occluded, images, _ = figure.shown(spec)
    colour = np.repeat(occluded, 3 // occluded.shape[-1], axis=-1)
    drawn = np.where(figure.shown_patches(spec), np.array(PATCH_COLOUR, np.float32), colour)
    return plots.plot_rows([("original", images), (f"{spec} (patch in orange)", drawn),
                            ("reconstructed", figure.reconstruct(occluded))],
                           figure.path, f"{figure.name}: occlusion ({spec})")


def _occlusion_spec(image_shape):
    from tfae.measurements.occlusion import sizes

    if not sizes(image_shape):
        raise TfaeError(f"images of {image_shape[0]}x{image_shape[1]} (HxW) are too small to "
                        "occlude (the patch is half their shorter side)")
    return f"occlusion:{sizes(image_shape)[0]}"


def _manifold(figure):
    from tfae import plots
    from tfae.measurements import SEED
    from tfae.measurements.manifold import NOISE, STEPS, manifold_convergence

    noisy, _, _ = figure.first(figure.splits.test, MANIFOLD_STARTS, NOISE)
    start = np.concatenate([noisy, np.random.default_rng(SEED).random((2, *noisy.shape[1:]),
                                                                      dtype=np.float32)])
    reference, _, _ = figure.first(figure.splits.train, None)
    frames, distances = manifold_convergence(figure.opened.reconstruct, start, STEPS,
                                             reference)
    return plots.plot_manifold(
        frames, distances, figure.path, f"{figure.name}: manifold convergence from "
        f"{MANIFOLD_STARTS} noisy (gaussian 0.5) and 2 random images")


def _anomalies(figure):
    from tfae import plots
    from tfae.anomaly import error_overlay

    detector = figure.opened.detector(progress=figure.progress)
    images, _, _ = figure.first(figure.splits.test, ANOMALY_IMAGES)
    with figure.progress.stage(f"scoring {len(images):,} test images"):
        outputs = detector.outputs(images)
        scores = np.asarray(outputs["scores"])
        overlays = error_overlay(images, outputs["error_maps"])
        order = np.argsort(-scores, kind="stable")
    most, least = order[:SHOWN_IMAGES], order[::-1][:SHOWN_IMAGES]
    flagged = int((scores > detector.threshold_).sum())
    return plots.plot_rows(
        [("most\nanomalous", images[most]), ("its error\nover it", overlays[most]),
         ("least\nanomalous", images[least]), ("its error\nover it", overlays[least])],
        figure.path, f"{figure.name}: {flagged:,} of {len(images):,} test images flagged "
        f"({detector.score} score above {detector.threshold_:.4g}); the most and least anomalous")


def _sample(figure):
    from tfae import plots
    from tfae.models.variational import prior_codes, traversal_codes

    opened = figure.opened
    if opened.sample is None:
        raise TfaeError(f"--kind sample needs a model with a prior to sample from (--model vae); "
                        f"{figure.name} has none")
    samples = np.asarray(opened.sample(prior_codes(SAMPLES, opened.latent_dim)))
    traversal, values = None, None
    if opened.latent_dim == 2:
        codes, values = traversal_codes(TRAVERSAL_STEPS)
        traversal = np.asarray(opened.sample(codes))
    return plots.plot_samples(samples, figure.path, f"{figure.name}: new images", traversal,
                              values)


def _history(figure):
    from tfae import plots

    return plots.plot_history(figure.folder.history(), figure.path,
                              f"{figure.name}: training history")


for _kind in (
        FigureKind("tsne", _tsne, "t-SNE of the test codes, coloured by class"),
        FigureKind("reconstructions", _reconstructions, "test images and their reconstructions"),
        FigureKind("denoising", _corrupted_rows(lambda shape: "gaussian:0.5", "denoising"),
                   "noisy test images and what the model makes of them"),
        FigureKind("occlusion", _occlusion,
                   "occluded test images and what the model makes of them"),
        FigureKind("colorization", _colorization, "grey test images coloured by the model",
                   colour=True),
        FigureKind("manifold", _manifold, "iterating the autoencoder from noisy and random "
                   "images"),
        FigureKind("anomalies", _anomalies, "the test images scored most and least anomalous, "
                   "each with its error map over it, and how many are flagged"),
        FigureKind("sample", _sample, "images decoded from codes drawn from the prior, and the "
                   "2-number code's plane (vae)", needs_data=False, needs_prior=True),
        FigureKind("history", _history, "the training history", needs_model=False),
):
    register_figure(_kind)
