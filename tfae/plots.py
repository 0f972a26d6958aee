"""Figures of the study, drawn with matplotlib's object API (no display needed) into PNG files.

Every function takes arrays, draws one figure with a title, labelled axes and a legend where there
is more than one series, saves it to ``path`` and returns ``path``.

Examples:
    >>> import numpy as np
    >>> from tfae.plots import plot_rows
    >>> images = np.random.rand(8, 28, 28, 1)
    >>> plot_rows([("original", images), ("noisy", images)], "/tmp/rows.png", "Example")
    PosixPath('/tmp/rows.png')
"""

import pathlib

import matplotlib
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

CLASS_COLOURS = "tab10"
DPI = 100  # with constrained layouts, a figure of W x H inches is exactly 100 W x 100 H pixels


def _save(figure, path):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    return path


def _show_image(axes, image):
    grey = image.shape[-1] == 1
    # The channel axis only: a 1x1 image squeezed whole would have no axes left to draw.
    axes.imshow(np.clip(image, 0, 1)[..., 0] if grey else np.clip(image, 0, 1),
                cmap="gray" if grey else None, vmin=0, vmax=1)
    axes.set_xticks([])
    axes.set_yticks([])


def plot_rows(rows, path, title):
    """One row of images per ``(label, images)`` pair: originals over reconstructions, say.

    Examples:
        >>> plot_rows([("original", images), ("reconstructed", images)], "r.png", "deep")  # doctest: +SKIP
    """
    columns = min(len(images) for _, images in rows)
    figure = Figure(figsize=(1.2 * columns + 1.2, 1.3 * len(rows) + 0.6), layout="constrained")
    grid = figure.subplots(len(rows), columns, squeeze=False)
    for row, (label, images) in enumerate(rows):
        for column in range(columns):
            _show_image(grid[row, column], images[column])
        grid[row, 0].set_ylabel(label, rotation=0, ha="right", va="center")
    figure.suptitle(title)
    return _save(figure, path)


TSNE_DIMENSIONS = 50  # codes are projected on their first principal components first
TSNE_ITERATIONS = (250, 500)  # early exaggeration, then the rest: openTSNE's and the paper's
TSNE_TICK = 50


def tiled(images, columns, gap=0):
    """``images`` laid out in rows of ``columns``, as one image, ``gap`` pixels of mid-grey
    between them (so that small images, dark at their edges, do not run into stripes; empty
    places black).

    Examples:
        >>> tiled(np.ones((5, 2, 3, 1)), columns=2).shape
        (6, 6, 1)
        >>> tiled(np.ones((4, 2, 3, 1)), columns=2, gap=1)[:, 3, 0].tolist()  # the gap's column
        [0.5, 0.5, 0.5, 0.5, 0.5]
    """
    count, height, width, channels = images.shape
    rows = -(-count // columns)
    canvas = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, channels),
                     0.5 if gap else 0.0, np.float32)
    for index in range(rows * columns):
        row, column = divmod(index, columns)
        top, left = row * (height + gap), column * (width + gap)
        canvas[top:top + height, left:left + width] = images[index] if index < count else 0.0
    return canvas


def sample_gap(height):
    """The gap between tiles of ``height``-pixel samples: an eighth of a tile, at least one.

    Examples:
        >>> sample_gap(8), sample_gap(28)
        (1, 3)
    """
    return max(1, height // 8)


def plot_samples(samples, path, title, traversal=None, values=None):
    """A grid of ``samples``, and beside it, for a 2-number code, the ``traversal``: the images of
    a square grid of codes (``tfae.models.variational.traversal_codes``) at ``values``.

    Examples:
        >>> plot_samples(np.random.rand(64, 28, 28, 1), "/tmp/samples.png", "vae")
        PosixPath('/tmp/samples.png')
    """
    panels = 1 if traversal is None else 2
    figure = Figure(figsize=(5.5 * panels, 6), layout="constrained")
    grid = figure.subplots(1, panels, squeeze=False)[0]
    columns = int(np.ceil(np.sqrt(len(samples))))
    gap = sample_gap(samples.shape[1])
    _show_image(grid[0], tiled(samples, columns, gap))
    grid[0].set_title(f"{len(samples)} samples from the prior")
    if traversal is not None:
        steps = len(values)
        height, width = traversal.shape[1:3]
        _show_image(grid[1], tiled(traversal, steps, gap))
        ticks = [f"{value:.1f}" for value in values]
        shown = range(0, steps, max(1, steps // 5))
        grid[1].set_xticks([(width + gap) * step + width / 2 for step in shown],
                           [ticks[step] for step in shown])
        grid[1].set_yticks([(height + gap) * step + height / 2 for step in shown],
                           [ticks[steps - 1 - step] for step in shown])
        grid[1].set_xlabel("code number 0")
        grid[1].set_ylabel("code number 1")
        grid[1].set_title("the code's plane, decoded")
    figure.suptitle(title)
    return _save(figure, path)


def tsne_embedding(codes, seed=0, tick=None):
    """The 2-D t-SNE embedding of ``codes``, seeded: openTSNE's Barnes-Hut t-SNE (the field's
    maintained implementation, about 1.6x scikit-learn's on 5,000 codes) of their projection on
    ``TSNE_DIMENSIONS`` principal components (the usual first step, which keeps the neighbours
    and drops the noise), PCA-initialised; ``tick()`` every ``TSNE_TICK`` iterations.

    Examples:
        >>> tsne_embedding(np.random.rand(100, 8)).shape
        (100, 2)
    """
    import openTSNE
    from sklearn.decomposition import PCA

    codes = np.asarray(codes, np.float32).reshape(len(codes), -1)
    dimensions = min(TSNE_DIMENSIONS, *codes.shape)
    if dimensions < codes.shape[1]:
        codes = PCA(dimensions, random_state=seed).fit_transform(codes)
    callback = tick and (lambda iteration, error, embedding: tick())
    return np.asarray(openTSNE.TSNE(
        perplexity=min(30.0, (len(codes) - 1) / 3), negative_gradient_method="bh",
        early_exaggeration_iter=TSNE_ITERATIONS[0], n_iter=TSNE_ITERATIONS[1], n_jobs=-1,
        random_state=seed, callbacks=callback, callbacks_every_iters=TSNE_TICK).fit(codes))


def plot_tsne(embedding, labels, path, title, class_names=()):
    """A scatter of a 2-D embedding coloured by label, with a legend of the labels; one colour
    and no legend for unlabelled codes (label -1).

    Examples:
        >>> plot_tsne(tsne_embedding(codes), labels, "tsne.png", "deep: t-SNE")  # doctest: +SKIP
    """
    figure = Figure(figsize=(8, 7), layout="constrained")
    axes = figure.subplots()
    for label in np.unique(labels):
        chosen = labels == label
        if label < 0:
            axes.scatter(embedding[chosen, 0], embedding[chosen, 1], s=3, color="grey",
                         label="unlabelled")
            continue
        name = class_names[label] if label < len(class_names) else str(label)
        axes.scatter(embedding[chosen, 0], embedding[chosen, 1], s=3, label=name,
                     color=_colour(label))
    if np.any(labels >= 0):
        axes.legend(title="class", markerscale=4, loc="center left", bbox_to_anchor=(1, 0.5))
    axes.set_xlabel("t-SNE 1")
    axes.set_ylabel("t-SNE 2")
    axes.set_title(title)
    return _save(figure, path)


def _colour(label):
    return matplotlib.colormaps[CLASS_COLOURS](int(label) % 10)


def plot_manifold(frames, distances, path, title, shown_steps=8):
    """Manifold convergence: frames x_t of iterating the autoencoder, and their distance curves.

    Args:
        frames: shape ``(steps + 1, images, height, width, channels)``, x_0 first.
        distances: shape ``(steps + 1, images)``, distance of each x_t to its nearest
            training image.

    Examples:
        >>> plot_manifold(frames, distances, "manifold.png", "deep")  # doctest: +SKIP
    """
    steps, count = len(frames) - 1, frames.shape[1]
    shown = np.unique(np.linspace(0, steps, min(shown_steps, steps + 1)).astype(int))
    figure = Figure(figsize=(1.2 * len(shown) + 1, 1.2 * count + 4), layout="constrained")
    image_grid, curve_area = figure.subfigures(2, 1, height_ratios=[1.2 * count, 3.5])
    grid = image_grid.subplots(count, len(shown), squeeze=False)
    for column, step in enumerate(shown):
        for row in range(count):
            _show_image(grid[row, column], frames[step, row])
        grid[0, column].set_title(f"t = {step}")
    axes = curve_area.subplots()
    for row in range(count):
        axes.plot(np.arange(steps + 1), distances[:, row], label=f"start {row}",
                  color=_colour(row))
    axes.set_xlabel("iteration t of x_{t+1} = AE(x_t)")
    axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # no step 2.5
    axes.set_ylabel("distance to nearest training image")
    finite = distances[np.isfinite(distances) & (distances > 0)]
    if finite.size and finite.max() > 100 * finite.min():  # an autoencoder that diverges
        axes.set_yscale("log")
    axes.legend(ncol=min(count, 4), fontsize="small")
    figure.suptitle(title)
    return _save(figure, path)


def _plot_layers(history, path, title):
    """A layer-wise run's history (``randomized``): each layer's errors side by side, bars, and
    the whole model's image error in the title."""
    errors = [name for name in ("random_decoder_mse", "mse", "refit_mse") if name in history]
    layers = np.arange(len(history["layer"]))
    figure = Figure(figsize=(2 + 1.5 * len(layers) * len(errors) / 2, 4), layout="constrained")
    axes = figure.subplots()
    width = 0.8 / len(errors)
    for offset, name in enumerate(errors):
        axes.bar(layers + (offset - (len(errors) - 1) / 2) * width, history[name], width,
                 label=name)
    axes.set_xticks(layers, [f"layer {layer}\n{units} units" for layer, units
                             in zip(history["layer"], history["units"])])
    axes.set_ylabel("mean squared error")
    axes.legend()
    whole = f", images {history['image_mse'][0]:.4f}" if history.get("image_mse") else ""
    figure.suptitle(f"{title}: errors per layer{whole}")
    return _save(figure, path)


def plot_history(history, path, title):
    """Training curves: each metric of ``history.json`` against its ``val_`` twin.

    Examples:
        >>> plot_history({"loss": [0.2, 0.1], "val_loss": [0.3, 0.2]}, "h.png", "deep")  # doctest: +SKIP
    """
    if "layer" in history:
        return _plot_layers(history, path, title)
    metrics = [name for name in history
               if not name.startswith("val_") and name != "seconds" and len(history[name]) > 0]
    figure = Figure(figsize=(5 * len(metrics), 4), layout="constrained")
    grid = figure.subplots(1, len(metrics), squeeze=False)[0]
    for axes, name in zip(grid, metrics):
        epochs = np.arange(1, len(history[name]) + 1)
        axes.plot(epochs, history[name], marker="o", label="training")
        if f"val_{name}" in history:
            axes.plot(epochs, history[f"val_{name}"], marker="o", label="validation")
        axes.set_xlabel("epoch")
        axes.set_ylabel(name)
        axes.set_title(name)
        axes.legend()
    figure.suptitle(title)
    return _save(figure, path)
