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

import dataclasses
import pathlib
import subprocess
import time

import tfae

from tfae.config import DataConfig, FitConfig, resolve
from tfae.evaluation import evaluate
from tfae.errors import TfaeError
from tfae.families import family_names, get_family
from tfae.figures import draw_kinds, figure_kinds
from tfae.measurements import measurements, percent
from tfae.measurements.baselines import label as baseline_label
from tfae.files import read_json, write_text
from tfae.runs import RunFolder
from tfae.train import fit

RUN_COLUMNS = ("model", "parameters", "epochs", "training time")  # then the measurements'


@dataclasses.dataclass
class Row:
    """A row of a results page: its name, its run's ``run.json`` with its ``config.json`` as
    ``config``, its metrics and its figures by kind.

    Examples:
        >>> row = Row("deep", {"config": {}}, {"probe": {"linear": 0.9}}, {})
        >>> row.metrics["probe"]["linear"]
        0.9
    """

    name: str
    info: dict
    metrics: dict
    figures: dict


def report(models=None, epochs=None, out=None, limit=None, latent_dim=None, study_shapes=False,
           verbose=1, baselines="auto", **settings):
    """Trains (or reuses), evaluates and draws each of ``models``; writes the results page.

    Args:
        models: row names (``row_names(policy)``: the families and the page's own rows);
            ``None`` for all.
        epochs: epochs for every family; ``None`` for each family's default.
        out: the folder for runs and figures; the page is written beside it as ``OUT.md``;
            default ``default_out(dataset)``.
        limit: use only the first ``limit`` images of each split (quick checks).
        latent_dim: train every family with codes of this many numbers (its other defaults
            kept but where ``Family.options_for_code_size`` says), on a page of its own.
        study_shapes: train every family at the shape the MNIST study gave it (the ``rows``
            of the page's ``page.json``), on a page of its own.
        verbose: progress output.
        baselines: when to measure the baselines, as ``tfae.evaluation.evaluate`` takes it;
            rows measured before are measured again only for ``"always"`` where they lack them.
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
    page = out.parent / f"{out.name}.md"
    if page.exists() and PAGE_MARK not in page.read_text(errors="replace"):
        raise TfaeError(f"{page} exists and is not a page tfae report wrote; choose another --out")
    policy = page_policy(out)  # before hours of training, so a bad file is refused first
    if shape == "study" and not policy["rows"]:
        raise TfaeError(f"--study-shapes reads each family's shape from the rows of "
                        f"{out / POLICY_NAME}, which has none")
    names = row_names(policy)
    models = list(models or names)
    unknown = [name for name in models if name not in names]
    if unknown:  # before hours of training, not after
        raise TfaeError(f"unknown report row {unknown[0]!r}; choose from {', '.join(names)}")
    rows, command = [], _command(models, names, epochs, out, data, shape)
    for name in models:
        folder = RunFolder(out / "runs" / name)
        spec = resolve(FitConfig.from_dict({**data.data_fields(),
                                            **_row_fields(name, policy, latent_dim)})
                       .merged({"epochs": epochs}))
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
        if metrics.get("limit") != limit or "baselines" not in metrics or (
                baselines == "always" and metrics["baselines"] is None):
            metrics = evaluate(folder.path, limit=limit, verbose=verbose, baselines=baselines)
        colour = "colorization" in metrics
        kinds = [kind.name for kind in figure_kinds()
                 if (colour or not kind.colour) and (spec.family.has_prior or not kind.needs_prior)]
        figures = {kind: out / "figures" / name / f"{kind}.png" for kind in kinds}
        # The metrics are now at least as new as the model: a figure newer than both stands.
        stale = [kind for kind, figure in figures.items()
                 if not _newer(figure, folder.metrics_path.stat().st_mtime)]
        if stale:  # drawn together: the model and its data opened once
            draw_kinds(folder.path, stale, out / "figures" / name, limit=limit, verbose=verbose)
        rows.append(Row(name, {**folder.info(), "config": folder.config()}, metrics, figures))
        # Written after every row, so an interrupted report shows what it has finished.
        write_text(page, _page(rows, command, page.parent, data.dataset, shape,
                               _notes(out / "notes.md"), policy, names))
    return page


def row_names(policy):
    """The rows ``report`` can make on a page of ``policy`` (``page_policy``): every family, then
    the page's rows of other names (each a family with other settings).

    Examples:
        >>> row_names(page_policy(pathlib.Path("docs/results")))[-2:]  # doctest: +SKIP
        ['randomized-denoising', 'randomized-occlusion']
    """
    families = family_names()
    return [*families, *(name for name in policy["rows"] if name not in families)]


def _row_fields(name, policy, code_size=None):
    """The ``FitConfig`` fields of row ``name``: its family's defaults, under the page's settings
    for the row, and a ``code_size``-number code when given (``Family.options_for_code_size``).

    Examples:
        >>> _row_fields("contractive", {"rows": {"contractive": {
        ...     "model_options": {"hidden": [500, 200, 100]}}}}, code_size=32)
        {'model': 'contractive', 'model_options': {'latent_dim': 32, 'hidden': [500, 200, 100]}}
    """
    fields = {"model": name, **policy["rows"].get(name, {})}
    if code_size:
        fields["model_options"] = {**get_family(fields["model"]).options_for_code_size(code_size),
                                   **fields.get("model_options", {})}
    return fields


def _trainer(row):
    return get_family(row.info["config"]["model"]).trainer


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


def _newer(path, than):
    """Whether ``path`` exists and was written after the time ``than``: then it can be reused."""
    return path.exists() and path.stat().st_mtime >= than


def _option(value):
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "none"
    return str(value)


POLICY_NAME = "page.json"
# Every page tfae report writes says so; a file at the page's path without it is the user's own.
PAGE_MARK = "Produced by `tfae report"
GOAL_UNITS = {"%": "{:.2%}", "dB": "{:.1f} dB", "s": "{:.0f} s"}


def page_policy(out):
    """What a page holds beyond its measurements, from ``OUT/page.json`` where it exists (written
    by hand beside ``OUT/notes.md``): ``goals``, each ``{"goal", "metric", "at_least" or
    "below", "unit", "rows"}`` (``metric`` a path of keys into a row's metrics, ``rows``
    ``"each"``, ``"best"`` or a list of row names); ``study_accuracies``, the published
    accuracies a section compares with; ``settings``, a sentence on how the rows were set up;
    ``rows``, ``FitConfig`` fields by row name: a family's settings on this page, or a row of
    its own (with its ``model``), such as ``randomized-denoising``.

    Raises:
        TfaeError: for a file that is not such a JSON object.

    Examples:
        >>> page_policy(pathlib.Path("no/such/folder"))
        {'goals': [], 'study_accuracies': [], 'settings': '', 'rows': {}}
    """
    path = pathlib.Path(out) / POLICY_NAME
    policy = {"goals": [], "study_accuracies": [], "settings": "", "rows": {}}
    if not path.exists():
        return policy
    found = read_json(path)
    if not _well_formed(found, policy):
        raise TfaeError(f"{path} must hold goals (each with goal, metric, unit and at_least or "
                        "below), study_accuracies, settings and rows (each FitConfig fields) "
                        "only")
    return {**policy, **found}


def _well_formed(found, policy):
    """Whether ``found`` holds only the keys of ``policy``, goals each with its goal, metric, a
    known unit and one bound, and rows each a dict of settings."""
    if not isinstance(found, dict) or set(found) - set(policy):
        return False
    goals, rows = found.get("goals", []), found.get("rows", {})
    return (isinstance(goals, list) and isinstance(rows, dict)
            and all(isinstance(fields, dict) for fields in rows.values())
            and all(isinstance(goal, dict) and {"goal", "metric", "unit"} <= set(goal)
                    and len({"at_least", "below"} & set(goal)) == 1
                    and goal["unit"] in GOAL_UNITS for goal in goals))


def _goals(rows, policy, shape):
    """(goal, measured, met) for the page: against the baselines on labelled data, then the
    page's own (``page_policy``)."""
    if any(row.metrics["probe"] is None for row in rows):
        return []  # unlabelled: nothing to probe
    goals = _baseline_goals(rows, with_pixels=not isinstance(shape, int))
    for goal in policy["goals"]:
        values = {row.name: _metric(row.metrics, goal["metric"]) for row in rows}
        values = {name: value for name, value in values.items() if value is not None}
        shown = GOAL_UNITS[goal["unit"]].format
        chosen = goal.get("rows", "each")
        if chosen == "best" and values:
            best = (min if "below" in goal else max)(values, key=values.get)
            goals.append((goal["goal"], f"{shown(values[best])} (`{best}`)",
                          _met(goal, values[best])))
        elif chosen != "best":
            names = [name for name in (values if chosen == "each" else chosen) if name in values]
            goals += [(f"`{name}` {goal['goal']}", shown(values[name]), _met(goal, values[name]))
                      for name in names]
    return goals


def _metric(metrics, keys):
    for key in keys:
        if not isinstance(metrics, dict) or key not in metrics:
            return None
        metrics = metrics[key]
    return metrics


def _met(goal, value):
    return value >= goal["at_least"] if "at_least" in goal else value < goal["below"]


def _baseline_goals(rows, with_pixels):
    """Each row against PCA of its code size on all three (linear probe, kNN, reconstruction
    PSNR) and, ``with_pixels``, its linear probe against the raw pixels'."""
    goals = []
    for row in rows:
        if not row.metrics["baselines"]:  # not measured (--baselines)
            continue
        pca, pixels = row.metrics["baselines"].get("pca"), row.metrics["baselines"]["pixels"]
        measured = {"linear": row.metrics["probe"]["linear"], "knn": row.metrics["probe"]["knn"],
                    "psnr": row.metrics["reconstruction"]["psnr"]}
        if pca:  # none for a code as wide as the image
            beaten = [key for key in measured if measured[key] > pca[key]]
            goals.append((f"`{row.name}` beats PCA-{pca['components']} on probe, kNN and PSNR",
                          f"{measured['linear']:.2%} / {measured['knn']:.2%} / "
                          f"{measured['psnr']:.1f} dB against {pca['linear']:.2%} / "
                          f"{pca['knn']:.2%} / {pca['psnr']:.1f} dB", len(beaten) == 3))
        if with_pixels:
            goals.append((f"`{row.name}` linear probe beats the raw pixels'",
                          f"{measured['linear']:.2%} against {pixels['linear']:.2%}",
                          measured["linear"] > pixels["linear"]))
    return goals


def _command(models, names, epochs, out, data, shape):
    words = ["tfae report"]
    if set(models) != set(names):
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


def _notes(path):
    """The hand-written notes kept beside a page's runs (what was tried where a goal is missed),
    which every regeneration of the page carries; ``""`` without them."""
    return path.read_text().strip() if path.exists() else ""


def _table(rows):
    """The header and the cells of each row: the run's columns, then each measurement's."""
    header = list(RUN_COLUMNS)
    cells = [[f"`{row.name}`", f"{row.metrics['parameters']:,}",
              "layer-wise" if _trainer(row) else str(row.info.get("epochs_finished", "")),
              f"{row.info.get('training_seconds', 0):.0f} s"] for row in rows]
    for measurement in measurements():
        measured = [row.metrics[measurement.name] for row in rows
                    if measurement.columns and row.metrics.get(measurement.name) is not None]
        if not measured:
            continue
        headers = [header for header, _ in measurement.columns(measured[0])]
        header += headers
        for row, row_cells in zip(rows, cells):
            value = row.metrics.get(measurement.name)
            row_cells += ([cell for _, cell in measurement.columns(value)] if value is not None
                          else ["–"] * len(headers))
    return header, cells


def source_version():
    """The code a page was made by: tfae's version and, in a git checkout, its commit (marked
    ``+ changes`` when the package's files differ from it), so a page can be traced to its code.

    Examples:
        >>> source_version()  # doctest: +SKIP
        'tfae 0.1.0 at commit 47bf304'
    """
    package = pathlib.Path(tfae.__file__).parent
    version = f"tfae {tfae.__version__}"
    try:
        commit, changed = (
            subprocess.run(["git", *arguments], cwd=package, capture_output=True, text=True,
                           timeout=10)
            for arguments in (["rev-parse", "--short", "HEAD"],
                              ["status", "--porcelain", "--", package, package.parent / "cli"]))
    except (OSError, subprocess.SubprocessError):
        return version  # no git: an installed package has only its version
    if commit.returncode or changed.returncode:
        return version
    return f"{version} at commit {commit.stdout.strip()}" + (" + changes" if changed.stdout else "")


def _page(rows, command, page_dir, dataset, shape, written, policy, names):
    title = "# Results" + (f" on {dataset}" if dataset != "mnist" else "")
    if shape:
        title += " at the study's shapes" if shape == "study" else f" with {shape}-number codes"
    if {row.name for row in rows} != set(names):
        title += ": " + ", ".join(f"`{row.name}`" for row in rows)
    settings = {None: "each family's defaults",
                "study": "each family at the study's shape (see Settings)"}.get(
        shape, f"each family's defaults but a {shape}-number code (see Settings)")
    header, cells = _table(rows)
    lines = [title, "",
             f"{PAGE_MARK}{command.removeprefix('tfae report')}` on {time.strftime('%Y-%m-%d')} "
             f"by {source_version()}; every number is on the "
             f"test split, with {settings}. The rows in italics are the baselines, measured on "
             "the same splits: a linear autoencoder (PCA) with each code size in the table, and "
             "the raw pixels.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row_cells) + " |" for row_cells in cells]
    lines += _baseline_rows(rows, header)
    pca_sizes = {row.metrics["baselines"]["pca"]["components"]: row.metrics["train_images"]
                 for row in rows if "pca" in (row.metrics.get("baselines") or {})}
    capped = sorted(size for size, images in pca_sizes.items() if size == images)
    if capped:
        lines += ["", f"PCA-{capped[0]} has as many components as there are training images "
                  f"({capped[0]}), the most PCA can have: rows with wider codes are compared with "
                  "it."]
    notes = sorted({note for row in rows for note in row.metrics.get("notes", [])})
    if notes:
        lines += [""] + [f"Note: {note}." for note in notes]
    goals = _goals(rows, policy, shape)
    if goals:
        lines += ["", "## Goals", "", "| goal | measured | |", "|---|---|---|"]
        lines += [f"| {goal} | {measured} | {'met' if met else '**missed**'} |"
                  for goal, measured, met in goals]
        if any(row.metrics.get("baselines") and "pca" not in row.metrics["baselines"]
               for row in rows):
            lines += ["", "A code as wide as the image has no PCA row: PCA with as many "
                      "components as the image has pixels keeps them all (PSNR at its 100 dB "
                      "cap), no compression to compare with. The compact pages "
                      "(`tfae report --latent-dim 32`) compare at one smaller size."]
    if policy["study_accuracies"] and all(row.metrics["probe"] for row in rows):
        lines += _study_sections(rows, policy["study_accuracies"])
    if written:
        lines += ["", written]
    lines += ["", "## Settings", "",
              "The settings of each row, as its run's `config.json` records them"
              + (f" ({policy['settings']})" if policy["settings"] else "") + ".", "",
              "| model | options | epochs | noise |", "|---|---|---|---|"]
    for row in rows:
        config = row.info["config"]
        options = ", ".join(f"{key}={_option(value)}"
                            for key, value in config["model_options"].items())
        epochs = "layer-wise" if _trainer(row) else config["epochs"]
        lines.append(f"| `{row.name}` | {options} | {epochs} | {config['noise'] or ''} |")
    lines.append("")
    for row in rows:
        lines += [f"## `{row.name}`", ""]
        lines += [f"![{row.name} {kind}]({figure.relative_to(page_dir)})"
                  for kind, figure in row.figures.items()]
        lines.append("")
    return "\n".join(lines)


def _baseline_rows(rows, header):
    """Rows for the raw pixels and for PCA at each code size in ``rows``, measured on the same
    splits: what each family's numbers are read against, in the columns they share."""
    found = {}
    for row in rows:
        for name, values in (row.metrics.get("baselines") or {}).items():
            found.setdefault(baseline_label(name, values), values)
    lines = []
    for label, values in sorted(found.items(), key=lambda item: (item[0] != "raw pixels",
                                                                  item[1].get("components", 0))):
        shared = {"MSE": f"{values['mse']:.4f}" if "mse" in values else "–",
                  "linear probe": percent(values["linear"]), "kNN (k=5)": percent(values["knn"])}
        cells = [f"*{label}*"] + [shared.get(column, "–") for column in header[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _study_sections(rows, accuracies):
    """The comparison with the study's published accuracies."""
    best = max(row.metrics["probe"]["linear"] for row in rows)
    worst = min(row.metrics["probe"]["linear"] for row in rows)
    return ["", "## Against the study", "",
            "The study reported linear-probe accuracies of "
            + ", ".join(f"{accuracy:.2%}" for accuracy in accuracies)
            + f" ({min(accuracies):.1%} to {max(accuracies):.1%}). Here the families "
            f"range from {worst:.2%} to {best:.2%}: "
            + ("every family beats the study's best." if worst > max(accuracies) else
               "not every family beats the study's best; the table says which.")]
