"""``tfae report``: train every family, evaluate it, draw its figures, write a results page.

Runs live in ``OUT/runs/<model>``: a finished run there is reused and an interrupted one resumes,
and metrics and figures newer than a run's model are reused too, so an interrupted report picks up
where it stopped; the page is rewritten after every row, its title naming the rows it has.
Figures go to ``OUT/figures/<model>/``; the page is ``OUT.md``; ``OUT/notes.md``, where it exists,
is copied into the page after the goals (written by hand: what was tried where a goal is missed),
so a regenerated page keeps it. ``OUT`` is
``docs/results`` for MNIST (the page ``docs/results.md``) and ``docs/results/<data set>`` for any
other data set (``docs/results/fashion_mnist.md``). The goals and the comparison with the study
are MNIST's; other data sets get the table, the settings and the figures.

Examples:
    >>> from tfae.report import report
    >>> report(["shallow", "deep"], epochs=1, out="/tmp/results", limit=1000)  # doctest: +SKIP
    PosixPath('/tmp/results.md')
    >>> report(dataset="fashion_mnist",
    ...        manual_dir="/usr/share/datasets/fashion-mnist")  # doctest: +SKIP
    PosixPath('docs/results/fashion_mnist.md')
"""

import pathlib
import time

from tfae.config import DataConfig, FitConfig, resolve
from tfae.evaluate import evaluate
from tfae.errors import TfaeError
from tfae.families import family_names, get_family
from tfae.figures import draw, figure_kinds
from tfae.files import write_text
from tfae.runs import RunFolder
from tfae.train import fit

# The study's published linear-probe accuracies (its slides lost which model each belongs to).
STUDY_ACCURACIES = (0.9111, 0.9273, 0.9177, 0.9360, 0.8846)
# Rows beyond the families, with the settings that make them: the study's future work, the
# randomized autoencoder on noisy and on occluded images.
VARIANTS = {
    "randomized-denoising": ("randomized", {"noise": "gaussian:0.5"}),
    "randomized-occlusion": ("randomized", {"noise": "occlusion:50%"}),
}
COLUMNS = ("model", "parameters", "epochs", "training time", "MSE", "linear probe", "kNN (k=5)",
           "denoising PSNR, gaussian 0.5", "probe, 14x14 occluded", "mean ‖J‖_F",
           "label kept after 20 steps (attractors)")


def report(models=None, epochs=None, out=None, limit=None, latent_dim=None, study_shapes=False,
           verbose=1, **settings):
    """Trains (or reuses), evaluates and draws each of ``models``; writes the results page.

    Args:
        models: row names (``row_names()``: the families and ``VARIANTS``); ``None`` for all.
        epochs: epochs for every family; ``None`` for each family's default.
        out: the folder for runs and figures; the page is written beside it as ``OUT.md``;
            default ``default_out(dataset)``.
        limit: use only the first ``limit`` images of each split (quick checks).
        latent_dim: train every family with codes of this many numbers (its other defaults
            kept but where ``Family.options_for_code_size`` says), on a page of its own.
        study_shapes: train every family at the shape the MNIST study gave it
            (``Family.study``), on a page of its own.
        verbose: progress output.
        **settings: the data (``DataConfig`` fields: ``dataset``, ``manual_dir``, ...);
            default the bundled MNIST.

    Returns:
        The page's path.

    Examples:
        >>> report(["shallow", "deep"], epochs=1, out="quick/results", limit=2000)  # doctest: +SKIP
        PosixPath('quick/results.md')
    """
    if latent_dim and study_shapes:
        raise TfaeError("--latent-dim and --study-shapes each choose the codes' size: give one")
    shape = "study" if study_shapes else latent_dim
    data = DataConfig(**settings, limit=limit).resolved()
    out = pathlib.Path(out or default_out(data.dataset, _shape_name(shape)))
    models = list(models or row_names())
    unknown = [name for name in models if name not in row_names()]
    if unknown:  # before hours of training, not after
        raise TfaeError(f"unknown report row {unknown[0]!r}; choose from {', '.join(row_names())}")
    rows, command = [], _command(models, epochs, out, data, shape)
    for name in models:
        folder = RunFolder(out / "runs" / name)
        family, settings = VARIANTS.get(name, (name, {}))
        spec = resolve(FitConfig(model=family, epochs=epochs,
                                 **{**_shape_fields(family, shape), **settings},
                                 **data.data_fields()))
        config = spec.config
        # A run of older defaults must not pass for the current ones.
        folder.check_claimable(config)
        if folder.finished_epochs() < config.epochs:
            if verbose:
                how = "layer by layer" if spec.family.trainer else f"{config.epochs} epochs"
                print(f"== {name}: training {how} into {folder.path}", flush=True)
            fit(config, folder.path, export=False, verbose=2 if verbose else 0)
        model_time = folder.model_path.stat().st_mtime
        # Metrics of the run's model, of the same images, and of this tfae (with baselines).
        metrics = folder.metrics() if _newer(folder.metrics_path, model_time) else {}
        if metrics.get("limit") != limit or "baselines" not in metrics:
            metrics = evaluate(folder.path, limit=limit, verbose=verbose)
        figures = {}
        colour = "colorization" in metrics
        for kind in figure_kinds():
            if kind.colour and not colour:  # grey images
                continue
            figure = out / "figures" / name / f"{kind.name}.png"
            # The metrics are now at least as new as the model: a figure newer than both stands.
            if not _newer(figure, folder.metrics_path.stat().st_mtime):
                draw(folder.path, kind.name, figure.parent, limit=limit, verbose=verbose)
            figures[kind.name] = figure
        rows.append((name, {**folder.info(), "config": folder.config()}, metrics, figures))
        # Written after every row, so an interrupted report shows what it has finished.
        page = out.parent / f"{out.name}.md"
        write_text(page, _page(rows, command, page.parent, data.dataset, shape,
                               _notes(out / "notes.md")))
    return page


def row_names():
    """The rows ``report`` can make: every family, then ``VARIANTS``.

    Examples:
        >>> row_names()[-2:]
        ['randomized-denoising', 'randomized-occlusion']
    """
    return [*family_names(), *VARIANTS]


def _family(row):
    return get_family(VARIANTS.get(row, (row,))[0])


def default_out(dataset, variant=None):
    """Where ``report`` writes for ``dataset``: ``docs/results`` for MNIST, else
    ``docs/results/<name>``; for a ``variant`` of the shapes (``latent-32``, ``study-shapes``),
    ``docs/results/[<name>-]<variant>``.

    Examples:
        >>> default_out("mnist"), default_out("fashion_mnist"), default_out("scans/")
        ('docs/results', 'docs/results/fashion_mnist', 'docs/results/scans')
        >>> default_out("mnist", "latent-32"), default_out("fashion_mnist", "study-shapes")
        ('docs/results/latent-32', 'docs/results/fashion_mnist-study-shapes')
    """
    name = pathlib.Path(pathlib.Path(dataset.rstrip("/\\")).name).stem
    if variant:
        return f"docs/results/{'' if dataset == 'mnist' else name + '-'}{variant}"
    return "docs/results" if dataset == "mnist" else f"docs/results/{name}"


def _shape_name(shape):
    return {None: None, "study": "study-shapes"}.get(shape, f"latent-{shape}")


def _shape_fields(family, shape):
    """The ``FitConfig`` fields that give ``family`` the report's ``shape``: ``None`` for its
    defaults, a code size, or ``"study"``."""
    if shape is None:
        return {}
    if shape == "study":
        return dict(get_family(family).study or {})
    return {"model_options": get_family(family).options_for_code_size(shape)}


def _newer(path, than):
    """Whether ``path`` exists and was written after the time ``than``: then it can be reused."""
    return path.exists() and path.stat().st_mtime >= than


def _option(value):
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "none"
    return str(value)


def _goals(rows, dataset, shape):
    """(goal, measured, met) for the page: against the baselines on labelled data; MNIST's own
    goals on its default page; the best family's at a chosen code size; the study's best at
    the study's shapes."""
    if any(metrics["probe"] is None for _, _, metrics, _ in rows):
        return []  # unlabelled: nothing to probe
    goals = _baseline_goals(rows, with_pixels=not isinstance(shape, int))
    if shape == "study":
        goals += [(f"`{name}` linear probe >= {max(STUDY_ACCURACIES):.1%}, the study's best",
                   f"{metrics['probe']['linear']:.2%}",
                   metrics["probe"]["linear"] >= max(STUDY_ACCURACIES))
                  for name, _, metrics, _ in rows]
    elif shape:
        linear = {name: metrics["probe"]["linear"] for name, _, metrics, _ in rows}
        knn = {name: metrics["probe"]["knn"] for name, _, metrics, _ in rows}
        best_linear, best_knn = max(linear, key=linear.get), max(knn, key=knn.get)
        goals += [("best linear probe >= 97%", f"{linear[best_linear]:.2%} (`{best_linear}`)",
                   linear[best_linear] >= 0.97),
                  ("best kNN >= 98%", f"{knn[best_knn]:.2%} (`{best_knn}`)",
                   knn[best_knn] >= 0.98)]
    elif dataset == "mnist":
        goals += _mnist_goals(rows)
    return goals


def _baseline_goals(rows, with_pixels):
    """Each row against PCA of its code size on all three (linear probe, kNN, reconstruction
    PSNR) and, ``with_pixels``, its linear probe against the raw pixels'."""
    goals = []
    for name, _, metrics, _ in rows:
        pca, pixels = metrics["baselines"]["pca"], metrics["baselines"]["pixels"]
        measured = {"linear": metrics["probe"]["linear"], "knn": metrics["probe"]["knn"],
                    "psnr": metrics["reconstruction"]["psnr"]}
        beaten = [key for key in measured if measured[key] > pca[key]]
        goals.append((f"`{name}` beats PCA-{pca['components']} on probe, kNN and PSNR",
                      f"{measured['linear']:.2%} / {measured['knn']:.2%} / "
                      f"{measured['psnr']:.1f} dB against {pca['linear']:.2%} / "
                      f"{pca['knn']:.2%} / {pca['psnr']:.1f} dB", len(beaten) == 3))
        if with_pixels:
            goals.append((f"`{name}` linear probe beats the raw pixels'",
                          f"{measured['linear']:.2%} against {pixels['linear']:.2%}",
                          measured["linear"] > pixels["linear"]))
    return goals


def _mnist_goals(rows):
    """(goal, measured, met) for MNIST's default page, for the families in ``rows``."""
    by_name = {name: (info, metrics) for name, info, metrics, _ in rows}
    linear = {name: metrics["probe"]["linear"] for name, (_, metrics) in by_name.items()}
    knn = {name: metrics["probe"]["knn"] for name, (_, metrics) in by_name.items()}
    goals = [(f"linear probe >= 95% (`{name}`)", f"{linear[name]:.2%}", linear[name] >= 0.95)
             for name in by_name]
    goals += [(f"kNN >= 97% (`{name}`)", f"{knn[name]:.2%}", knn[name] >= 0.97) for name in by_name]
    if "randomized" in by_name:
        info, metrics = by_name["randomized"]
        seconds = info.get("training_seconds", 0)
        psnr = metrics["reconstruction"]["psnr"]
        goals += [("`randomized` linear probe >= 97%", f"{linear['randomized']:.2%}",
                   linear["randomized"] >= 0.97),
                  ("`randomized` trained in < 30 s", f"{seconds:.0f} s", seconds < 30),
                  ("`randomized` reconstruction PSNR >= 20 dB", f"{psnr:.1f} dB", psnr >= 20)]
    if "randomized-denoising" in by_name:
        info, metrics = by_name["randomized-denoising"]
        psnr = metrics["denoising"]["gaussian:0.5"]["reconstruction_psnr"]
        seconds = info.get("training_seconds", 0)
        goals += [("`randomized-denoising` PSNR >= 18 dB on gaussian 0.5", f"{psnr:.1f} dB",
                   psnr >= 18),
                  ("`randomized-denoising` trained in < 60 s", f"{seconds:.0f} s", seconds < 60)]
    if "randomized-occlusion" in by_name:
        info, metrics = by_name["randomized-occlusion"]
        probe = metrics["occlusion"]["14x14"]["linear_probe"]
        seconds = info.get("training_seconds", 0)
        goals += [("`randomized-occlusion` probe on 14x14-occluded codes >= 80%",
                   f"{probe:.2%}", probe >= 0.80),
                  ("`randomized-occlusion` trained in < 60 s", f"{seconds:.0f} s", seconds < 60)]
    if "denoising" in by_name:
        psnr = by_name["denoising"][1]["denoising"]["gaussian:0.5"]["reconstruction_psnr"]
        goals.append(("`denoising` PSNR >= 20 dB on gaussian 0.5", f"{psnr:.1f} dB", psnr >= 20))
    occluded = {name: metrics["occlusion"]["14x14"]["linear_probe"]
                for name, (_, metrics) in by_name.items()}
    best = max(occluded, key=occluded.get)
    goals.append(("probe on 14x14-occluded codes >= 85%",
                  f"{occluded[best]:.2%} (best: `{best}`)", occluded[best] >= 0.85))
    goals += [(f"`{name}` keeps the digit for >= 80% of noisy starts after 20 steps",
               f"{metrics['manifold']['label_kept']:.2%}",
               metrics["manifold"]["label_kept"] >= 0.80)
              for name, (_, metrics) in by_name.items() if metrics.get("manifold")]
    return goals


def _command(models, epochs, out, data, shape):
    words = ["tfae report"]
    if set(models) != set(row_names()):
        words.append(f"--models {','.join(models)}")
    if epochs:
        words.append(f"--epochs {epochs}")
    if shape:
        words.append("--study-shapes" if shape == "study" else f"--latent-dim {shape}")
    defaults = DataConfig().data_fields()
    for name, value in data.data_fields().items():
        if value != defaults[name]:
            words.append(f"--{name.replace('_', '-')} {_option(value)}")
    words.append(f"--out {out}")
    return " ".join(words)


def _percent(value):
    return "–" if value is None else f"{value:.2%}"


def _notes(path):
    """The hand-written notes kept beside a page's runs (what was tried where a goal is missed),
    which every regeneration of the page carries; ``""`` without them."""
    return path.read_text().strip() if path.exists() else ""


def _page(rows, command, page_dir, dataset, shape=None, written=""):
    occlusion = next(iter(rows[0][2]["occlusion"]))  # the larger patch: 14x14 on MNIST
    columns = [column.replace("14x14", occlusion) for column in COLUMNS]
    title = "# Results" + (f" on {dataset}" if dataset != "mnist" else "")
    if shape:
        title += " at the study's shapes" if shape == "study" else f" with {shape}-number codes"
    if {name for name, _, _, _ in rows} != set(row_names()):
        title += ": " + ", ".join(f"`{name}`" for name, _, _, _ in rows)
    settings = {None: "each family's defaults",
                "study": "each family at the study's shape (see Settings)"}.get(
        shape, f"each family's defaults but a {shape}-number code (see Settings)")
    lines = [title, "",
             f"Produced by `{command}` on {time.strftime('%Y-%m-%d')}; every number is on the "
             f"test split, with {settings}. The rows in italics are the baselines, measured on "
             "the same splits: a linear autoencoder (PCA) with each code size in the table, and "
             "the raw pixels.", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for name, info, metrics, _ in rows:
        probe = metrics["probe"] or {}
        lines.append("| " + " | ".join([
            f"`{name}`", f"{metrics['parameters']:,}",
            "layer-wise" if _family(name).trainer else str(info.get("epochs_finished", "")),
            f"{info.get('training_seconds', 0):.0f} s",
            f"{metrics['reconstruction']['mse']:.4f}", _percent(probe.get("linear")),
            _percent(probe.get("knn")),
            f"{metrics['denoising']['gaussian:0.5']['reconstruction_psnr']:.1f} dB",
            _percent(metrics["occlusion"][occlusion]["linear_probe"]),
            f"{metrics['jacobian_norm']:.3f}", _convergence(metrics)]) + " |")
    lines += _baseline_rows(rows, len(columns))
    notes = sorted({note for _, _, metrics, _ in rows for note in metrics.get("notes", [])})
    if notes:
        lines += [""] + [f"Note: {note}." for note in notes]
    goals = _goals(rows, dataset, shape)
    if goals:
        lines += ["", "## Goals", "", "| goal | measured | |", "|---|---|---|"]
        lines += [f"| {goal} | {measured} | {'met' if met else '**missed**'} |"
                  for goal, measured, met in goals]
        if any(metrics["baselines"]["pca"]["psnr"] >= 100 for _, _, metrics, _ in rows):
            lines += ["", "PCA with as many components as the image has pixels reconstructs it "
                      "exactly (100 dB is where PSNR is capped): a code that wide is no "
                      "compression, and no autoencoder can beat it on PSNR. The compact pages "
                      "(`tfae report --latent-dim 32`) compare at one smaller size."]
    if dataset == "mnist" and shape in (None, "study"):
        lines += _study_sections(rows)
    if written:
        lines += ["", written]
    lines += ["", "## Settings", "",
              "The settings of each row, as its run's `config.json` records them (`tfae report "
              "--study-shapes` trains every family at the study's own shape: `shallow` with "
              "`--latent-dim 128 --noise none`, `deep` with `--hidden 500,200,100 --latent-dim 10 "
              "--noise none`, `contractive` with those and `--latent-activation linear`, the "
              "convolutional ones with `--latent-dim 10`, `randomized` with `--hidden 700,700`).",
              "",
              "| model | options | epochs | noise |", "|---|---|---|---|"]
    for name, info, _, _ in rows:
        config = info["config"]
        options = ", ".join(f"{key}={_option(value)}"
                            for key, value in config["model_options"].items())
        epochs = "layer-wise" if _family(name).trainer else config["epochs"]
        lines.append(f"| `{name}` | {options} | {epochs} | {config['noise'] or ''} |")
    lines.append("")
    for name, _, _, figures in rows:
        lines += [f"## `{name}`", ""]
        lines += [f"![{name} {kind}]({figure.relative_to(page_dir)})"
                  for kind, figure in figures.items()]
        lines.append("")
    return "\n".join(lines)


def _convergence(metrics):
    manifold = metrics.get("manifold")
    return "–" if manifold is None else (f"{manifold['label_kept']:.2%} "
                                         f"({manifold['attractors']})")


def _baseline_rows(rows, width):
    """Rows for the raw pixels and for PCA at each code size in ``rows``, measured on the same
    splits: what each family's numbers are read against."""
    found = {}
    for _, _, metrics, _ in rows:
        for name, values in metrics.get("baselines", {}).items():
            label = "raw pixels" if name == "pixels" else f"PCA-{values['components']}"
            found.setdefault(label, values)
    lines = []
    for label, values in sorted(found.items(), key=lambda item: (item[0] != "raw pixels",
                                                                  item[1].get("components", 0))):
        cells = [f"*{label}*", "–", "–", "–",
                 f"{values['mse']:.4f}" if "mse" in values else "–",
                 _percent(values["linear"]), _percent(values["knn"])]
        lines.append("| " + " | ".join(cells + ["–"] * (width - len(cells))) + " |")
    return lines


def _study_sections(rows):
    """The comparison with the study: MNIST's."""
    best = max(metrics["probe"]["linear"] for _, _, metrics, _ in rows)
    worst = min(metrics["probe"]["linear"] for _, _, metrics, _ in rows)
    lines = ["", "## Against the study", "",
              "The study reported linear-probe accuracies of "
              + ", ".join(f"{accuracy:.2%}" for accuracy in STUDY_ACCURACIES)
              + f" ({min(STUDY_ACCURACIES):.1%} to {max(STUDY_ACCURACIES):.1%}). Here the families "
              f"range from {worst:.2%} to {best:.2%}: "
              + ("every family beats the study's best." if worst > max(STUDY_ACCURACIES) else
                 "not every family beats the study's best; the table says which.")]
    return lines
