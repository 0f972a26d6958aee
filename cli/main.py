"""The ``tfae`` command line: parse options, call the ``tfae`` library, print.

The options of ``fit`` and ``tune`` are derived from the library's declarations: the run settings
of ``tfae.config`` and each family's options in ``tfae.families``, with their types, choices,
ranges and help. Errors from the library name Python options; here they are shown as flags. Every
option can also come from an environment variable ``TFAE_<COMMAND>_<OPTION>``, such as
``TFAE_FIT_EPOCHS=3``.

Example:
    $ tfae fit --model deep --epochs 5
    $ tfae export runs/deep-20261126-101500 --export-dir saved_models/deep
"""

import functools
import logging
import pathlib
import re
import sys
import time

import click

from tfae.anomaly import (AUTO, DEFAULT_CONTAMINATION, DEFAULT_SCORE, GEOMETRIC_DEFAULT_SCORE,
                          NEIGHBOURS, SCORES, contamination_text)
from tfae.config import (APPLIED_SETTINGS, MAX_IMAGE_PIXELS, SPLITS, TRIAL_EPOCHS, DataConfig,
                         FitConfig, TuneConfig)
from tfae.device_files import FORMATS, QUANTIZATIONS
from tfae.distribute import STRATEGIES
from tfae.errors import TfaeError, op_error_message
from tfae.figures import figure_kinds, figure_names
from tfae.families import describe_space, families, family_names, tunable_family_names
from tfae.measurements import BASELINES
from tfae.options import specs
from tfae.progress import Progress
from tfae.startup import start_tensorflow


def _flag(name):
    """The flag of option ``name`` in the running command, for the library's error messages."""
    context = click.get_current_context(silent=True)
    params = context.command.get_params(context) if context else []
    for param in params:
        if param.name == name and param.opts:
            return param.opts[0]
    return "--" + name.replace("_", "-")


def _clear_errors(command):
    """Turns input and file-system errors into one line and exit status 1, not a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except TfaeError as error:
            raise click.ClickException(error.render(_flag)) from None
        except OSError as error:  # a full disk or a read-only folder met after the checks
            where = f"{error.filename}: " if error.filename else ""
            raise click.ClickException(f"{where}{error.strerror or error}") from None
        except Exception as error:  # TensorFlow's, named here without importing it
            if type(error).__name__ != "DataLossError":
                raise
            # Keras puts "Graph execution error:" first and the op's own words below it.
            found = re.search(r"corrupted record at \d+", str(error))
            raise click.ClickException(
                f"a data file is corrupt ({found.group() if found else op_error_message(error)})"
                "; if it is a prepared folder's shard, prepare its folder again") from None

    return wrapper


def _output_options(command):
    """``--quiet`` and ``--verbose``, the same in every command."""
    command = click.option("--quiet", is_flag=True, callback=_log_level,
                           help="No progress output: only the result.")(command)
    return click.option("--verbose", is_flag=True,
                        help="Also TensorFlow's own start-up and log lines.")(command)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is logged (a test runner swaps it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _):
        pass


def _log_level(ctx, param, quiet):
    """Shows the library's ``tfae`` log lines (say, a data set being prepared) on stderr, but
    its warnings only under ``--quiet``."""
    log = logging.getLogger("tfae")
    if not log.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("tfae: %(message)s"))
        log.addHandler(handler)
        log.propagate = False  # a root handler (absl's, tfds') would print each line again
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    return quiet


def _keras_verbosity(quiet):
    """Keras' progress output: none under ``--quiet``, its progress bar on a terminal, and a
    plain line per epoch elsewhere (the bar's colour codes and redraws garble a log file)."""
    return 0 if quiet else 1 if sys.stdout.isatty() else 2


def _sizes(ctx, param, value):
    """Parses ``500,200,100`` into ``(500, 200, 100)``, and ``none`` into ``()``."""
    if value is None:
        return None
    if value.strip().lower() in ("", "none"):
        return ()
    try:
        sizes = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of whole numbers")
    if any(size < 1 for size in sizes):
        raise click.BadParameter(f"{value!r}: every size must be positive")
    return sizes


def _shown(value):
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _click_option(spec, help=None, choices=None):
    """A click option for a declared option (``tfae.options.OptionSpec``), unset by default so
    that the library's defaults apply; counts are ranges and strings with choices are choices."""
    kind = {"type": str}
    if spec.type is tuple:
        kind = {"callback": _sizes, "metavar": "H,W" if spec.name == "image_size" else "N,N,..."}
    elif spec.type is int and spec.choices:
        kind = {"type": click.Choice([str(choice) for choice in spec.choices]),
                "callback": lambda ctx, param, value: None if value is None else int(value)}
    elif spec.type is int:
        kind = {"type": int if spec.minimum is None else click.IntRange(min=spec.minimum)}
    elif spec.type is float:
        kind = {"type": click.FloatRange(min=spec.minimum if spec.above is None else spec.above,
                                         min_open=spec.above is not None)}
    elif choices or spec.choices:
        kind = {"type": click.Choice(choices or spec.choices)}
    return click.Option([spec.flag, spec.name], help=help or spec.help, **kind)


def _settings_options(config_class, models=None, help=None, defaults=None):
    """Options for the fields of ``config_class``, their defaults in the help (or those of
    ``defaults``), with the help texts of ``help`` where given; ``--model`` chooses among
    ``models``."""
    options = []
    for spec in specs(config_class):
        text = (help or {}).get(spec.name, spec.help)
        default = (defaults or {}).get(spec.name, spec.default)
        if default is not None:
            text += f" [default: {_shown(default)}]"
        options.append(_click_option(spec, text, choices=models if spec.name == "model" else None))
    return options


def _family_options():
    """One option for each option of any family; its help says which families take it and their
    defaults."""
    registered = families()
    declared = {}
    for family in registered:
        for spec in specs(family.options):
            declared.setdefault(spec.name, (spec, []))[1].append((family.name, spec.default))
    options = []
    for spec, takers in declared.values():
        by_default = {}
        for name, default in takers:
            by_default.setdefault(_shown(default), []).append(name)
        if len(by_default) == 1 and len(takers) == len(registered):
            defaults = f"default: {next(iter(by_default))}"
        else:
            defaults = "; ".join(f"{', '.join(names)}: {default}"
                                 for default, names in by_default.items())
        options.append(_click_option(spec, f"{spec.help} [{defaults}]"))
    return options


class _DerivedCommand(click.Command):
    """A command with options derived from the library when it runs or shows its help, so that a
    family registered after this module was imported has its options too."""

    def __init__(self, *args, derive, **kwargs):
        super().__init__(*args, **kwargs)
        self._derive = derive

    def get_params(self, ctx):
        try:
            derived = self._derive()
        except TfaeError as error:  # a family module of TFAE_FAMILY_MODULES failed to import
            raise click.ClickException(str(error)) from None
        return [*derived, *super().get_params(ctx)]


@click.group(context_settings={"auto_envvar_prefix": "TFAE"})
@click.version_option(package_name="tfae")
def tfae():
    """Autoencoders on images: train, evaluate, plot, tune, export and serve them.

    Every option can also be set by an environment variable TFAE_<COMMAND>_<OPTION>, such as
    TFAE_FIT_EPOCHS=3.
    """


def _fit_options():
    return [*_settings_options(FitConfig, family_names()), *_family_options()]


@tfae.command(cls=_DerivedCommand, derive=_fit_options)
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Start from a config.json (of a run or of `tfae tune`); options given here win.")
@click.option("--strategy", default="default", show_default=True, type=click.Choice(STRATEGIES),
              help="tf.distribute strategy: mirrored uses every local GPU, multi-worker the "
              "machines in TF_CONFIG.")
@click.option("--jit-compile/--no-jit-compile", default=None,
              help="Compile the training step with XLA (default: the family's choice, on for the "
              "dense families' runs of 500 steps or more; otherwise Keras', on only with a GPU).")
@click.option("--steps-per-execution", type=click.IntRange(min=1),
              help="Batches per call into the compiled training step (default: the family's, "
              "16 for the dense families, else 1).")
@click.option("--out", "run_dir", type=click.Path(file_okay=False),
              help="Run folder (default: runs/<model>-<timestamp>). Rerun to resume it.")
@click.option("--export-dir", type=click.Path(file_okay=False),
              help="SavedModel folder, TF Serving layout (default: saved_models/<model>).")
@click.option("--no-export", is_flag=True, help="Do not write a SavedModel.")
@_output_options
@_clear_errors
def fit(config_file, run_dir, export_dir, no_export, quiet, verbose, strategy, jit_compile,
        steps_per_execution, **options):
    """Train an autoencoder and export it as a SavedModel."""
    if export_dir and no_export:
        raise click.UsageError("--export-dir and --no-export contradict each other")
    start_tensorflow(verbose)
    from tfae.train import fit as fit_run

    config = (FitConfig.from_json(config_file) if config_file else FitConfig()).merged(options)
    if run_dir is None:
        run_dir = pathlib.Path("runs") / f"{config.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    run = fit_run(config, run_dir, export=not no_export, export_dir=export_dir,
                  verbose=_keras_verbosity(quiet), strategy=strategy,
                  jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    final = {name: values[-1] for name, values in run.history.items() if name != "seconds"}
    if "image_mse" in final:  # a layer-wise history: its per-layer numbers are in history.json
        final = {"layers": len(run.history["layer"]), "image_mse": final["image_mse"]}
    click.echo(f"run: {run.run_dir}  " + "  ".join(f"{k}={v:.5g}" for k, v in final.items()))
    if run.export_path:
        click.echo(f"exported: {run.export_path}")


class _Contamination(click.ParamType):
    """``auto`` or a number: what ``--contamination`` takes."""

    name = "auto|SHARE"

    def convert(self, value, param, context):
        if value == AUTO or isinstance(value, float):
            return value
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} is neither auto nor a number", param, context)


def _score_options(command):
    """``--score`` and ``--contamination``: which anomaly score, and which threshold flags."""
    command = click.option(
        "--contamination", type=_Contamination(),
        help="Share of the run's own validation images the threshold flags, in (0, 0.5), or "
        "auto: Tukey's upper fence of their scores (the third quartile plus 1.5 interquartile "
        "ranges), which guesses no share "
        f"[default: {DEFAULT_CONTAMINATION:g}; an export's own].")(command)
    return click.option(
        "--score", "score_kind", type=click.Choice(SCORES),
        help="The reconstruction's mean squared error, the mean distance of the code to the "
        f"{NEIGHBOURS} nearest training codes, a vae's negative ELBO, how badly a geometric "
        "model tells its images' turns, or combined: the sum of the first two (and the turns), "
        "each standardised on the validation images "
        f"[default: {DEFAULT_SCORE}, a geometric model's {GEOMETRIC_DEFAULT_SCORE}; an "
        "export's own].")(command)


@tfae.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--format", "file_format", type=click.Choice(FORMATS), default="saved_model",
              show_default=True,
              help="A SavedModel version for TF Serving, or one file for a device: LiteRT "
              "(.tflite, run by ai-edge-litert) or ONNX (.onnx, run by onnxruntime).")
@click.option("--export-dir", type=click.Path(file_okay=False),
              help="SavedModel folder, TF Serving layout (default: saved_models/<model>).")
@click.option("--out", type=click.Path(dir_okay=False),
              help="The LiteRT or ONNX file to write, never one that exists (default: "
              "saved_models/<model>[-<quantize>].tflite or .onnx); its settings go beside it "
              "in <file>.json.")
@click.option("--quantize", type=click.Choice(QUANTIZATIONS),
              help="LiteRT only: float16 weights, or int8 weights and activations calibrated on "
              "the run's training images, taking uint8 pixels.")
@_score_options
@_output_options
@_clear_errors
def export(run_dir, file_format, export_dir, out, quantize, score_kind, contamination, quiet,
           verbose):
    """Export a finished run's model as a new SavedModel version, or as a LiteRT or ONNX file.

    Its score signature gives the anomaly score --score, flagging above the threshold of
    --contamination (fit's own export: the defaults).
    """
    start_tensorflow(verbose)
    from tfae.exports import export as export_run

    exported = export_run(run_dir, export_dir, score=score_kind,
                          contamination=DEFAULT_CONTAMINATION if contamination is None
                          else contamination,
                          progress=Progress(enabled=not quiet), format=file_format,
                          quantize=quantize, out=out)
    click.echo(f"exported: {exported}")


MEASURED_DATA_HELP = {
    "dataset": "Data to measure on: a tfds name, image folder or .npz file (default: the run's "
               "own, or mnist for an export; an export's image size and channels apply).",
    "limit": "Use the first N images of each split only (default: the run's own limit; 0: every "
             "image).",
}


def _data_options(help=MEASURED_DATA_HELP):
    """The data options (``DataConfig``'s fields) of the commands that read data, with the help
    texts of ``help`` where given; measuring commands take ``--limit 0`` for every image, and
    measure every class (no ``--classes``: a run trained on some is told from the others)."""
    options = [_click_option(spec, help.get(spec.name)) for spec in specs(DataConfig)
               if not (help is MEASURED_DATA_HELP and spec.name == "classes")]
    if help is MEASURED_DATA_HELP:
        for option in options:
            if option.name == "limit":
                option.type = click.IntRange(min=0)
    return options


@tfae.command(cls=_DerivedCommand, derive=_data_options)
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False),
              help="Write the metrics to this JSON file instead.")
@click.option("--probe-limit", type=click.IntRange(min=0),
              help="Fit the probes and baselines on a seeded sample of N training images (0: "
              "all; default: all, or 20,000 of a folder streamed from shards, whose codes are "
              "also scored on N test images).")
@click.option("--baselines", type=click.Choice(BASELINES), default="auto", show_default=True,
              help="Measure the baselines (raw pixels, PCA): auto when the training images' "
              "pixels take at most 1 GiB as float32 (said when skipped), always, or never.")
@_output_options
@_clear_errors
def evaluate(path, as_json, out_file, probe_limit, baselines, quiet, verbose, **data_settings):
    """Measure a run folder or SavedModel export: reconstruction, probes, noise, occlusion.

    Writes PATH/metrics.json for the run's own images with its own settings (--limit included),
    PATH/metrics-<data>.json for any other (another --dataset or --limit), or --out.
    """
    import json

    if out_file and not (out_file.endswith(".json")
                         and pathlib.Path(out_file).absolute().parent.is_dir()):
        raise click.BadParameter(f"must be a .json file in an existing folder, got {out_file!r}",
                                 param_hint="--out")
    progress = Progress(enabled=not (as_json or quiet))
    with progress.stage("starting TensorFlow"):
        start_tensorflow(verbose)
    from tfae.evaluation import evaluate as evaluate_path, summary_rows

    metrics = evaluate_path(path, verbose=progress.enabled, out=out_file,
                            probe_limit=probe_limit, baselines=baselines, **data_settings)
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
    else:
        rows = summary_rows(metrics)
        width = max(len(name) for name, _ in rows)
        click.echo(f"{path} on {metrics['dataset']} ({metrics['test_images']:,} test images; "
                   f"probes fitted on {metrics['probe_images']:,} training images)")
        for name, value in rows:
            click.echo(f"  {name:<{width}}  {value}")
    if metrics["written_to"] is None:  # shown above, but not saved
        raise TfaeError(f"metrics not saved: {metrics['not_written']}")
    if not as_json:
        click.echo(f"wrote {metrics['written_to']}")


def _plot_options():
    kinds = "; ".join(f"{kind.name}: {kind.summary}" for kind in figure_kinds())
    return [click.Option(["--kind", "kinds"], required=True, multiple=True,
                         type=click.Choice(figure_names()),
                         help=f"Which figure to draw ({kinds}); repeat it for several, drawn "
                              "with the model and its data opened once."), *_data_options()]


@tfae.command(cls=_DerivedCommand, derive=_plot_options)
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Folder for the PNG (default: PATH/figures).")
@_output_options
@_clear_errors
def plot(path, kinds, out_dir, quiet, verbose, **data_settings):
    """Draw figures of a run folder or SavedModel export as PNGs."""
    with Progress(enabled=not quiet).stage("starting TensorFlow"):
        start_tensorflow(verbose)
    from tfae.figures import draw_kinds

    for png in draw_kinds(path, kinds, out_dir, verbose=not quiet, **data_settings).values():
        click.echo(f"wrote {png}")


APPLIED_DATA_HELP = {
    "dataset": "Images to apply the model to: a tfds name, image folder or .npz file (default: "
               "the run's own, or mnist for an export). They are resized to the size it takes.",
    "resize": "How images of another aspect ratio fit the model's size (default: the run's "
              "own, stretch for an export).",
}


def _applied_data_options():
    """The options of ``encode`` and ``reconstruct``: which images, and how they fit the model
    (the image size and channels are the model's own)."""
    options = [_click_option(spec, APPLIED_DATA_HELP.get(spec.name)) for spec in specs(DataConfig)
               if spec.name in APPLIED_SETTINGS]
    for option in options:
        if option.name == "resize":
            option.default = None  # the run's own
    return options + [
        click.Option(["--split"], type=click.Choice(SPLITS), default="all", show_default=True,
                     help="Every image, or those of one split: the same seeded split fit and "
                     "evaluate made (a folder's test/ folder, or the images held out by "
                     "--test-fraction; validation the end of the training images; a run's "
                     "--classes kept). Each row says its split."),
        click.Option(["--limit"], type=click.IntRange(min=1), help="Only the first N images."),
        click.Option(["--batch-size"], type=click.IntRange(min=1), default=256,
                     show_default=True, help="Images per batch through the model.")]


def _applied(command, what):
    """Runs ``tfae.apply``'s ``command`` for the CLI, and prints what it wrote."""
    def run(path, out, quiet, verbose, **settings):
        with Progress(enabled=not quiet).stage("starting TensorFlow"):
            start_tensorflow(verbose)
        from tfae import apply

        applied = getattr(apply, command)(path, out, verbose=not quiet, **settings)
        if applied.skipped:
            shown = ", ".join(applied.skipped[:3]) + (", ..." if len(applied.skipped) > 3 else "")
            click.echo(f"warning: skipped {len(applied.skipped):,} files that do not decode: "
                       f"{shown}", err=True)
        shape = (f"{applied.shape[0]} numbers each" if len(applied.shape) == 1
                 else "x".join(map(str, applied.shape)) + ", HxWxC")
        click.echo(f"wrote {applied.images:,} {what} of {applied.dataset} images ({shape}) to "
                   f"{applied.written_to}")

    return run


@tfae.command(cls=_DerivedCommand, derive=_applied_data_options)
@click.argument("path", type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Where the codes go: an .npz, .csv or .parquet file (replaced if it exists, "
              "once the new one is whole).")
@_output_options
@_clear_errors
def encode(path, out, quiet, verbose, **settings):
    """The codes of a data set's images under a run folder, SavedModel export, or LiteRT or ONNX
    file (tfae export --format).

    Each code is written with its image's id (the file's path in its folder, or split/index) and
    label, a batch at a time.
    """
    _applied("encode", "codes")(path, out, quiet, verbose, **settings)


@tfae.command(cls=_DerivedCommand, derive=_applied_data_options)
@click.argument("path", type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(),
              help="A new (or empty) folder for PNG files named as the images (cat/1.jpg -> "
              "cat/1.png), or an .npz file.")
@_output_options
@_clear_errors
def reconstruct(path, out, quiet, verbose, **settings):
    """The reconstructions of a data set's images by a run folder, SavedModel export, or LiteRT
    or ONNX file (tfae export --format)."""
    _applied("reconstruct", "reconstructions")(path, out, quiet, verbose, **settings)


@tfae.command(cls=_DerivedCommand, derive=_applied_data_options)
@click.argument("path", type=click.Path(exists=True))
@click.option("--out", type=click.Path(dir_okay=False),
              help="A .csv or .parquet file of one row per image: id, label and class, score, "
              "flagged, reconstruction_error, code_distance (replaced once the new one is "
              "whole). Without it, the summary only.")
@click.option("--maps", type=click.Path(),
              help="A new (or empty) folder for a PNG of each flagged image with its error map "
              "over it in red, named as the image (scratched/7.jpg -> scratched/7.png).")
@_score_options
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@_output_options
@_clear_errors
def score(path, out, maps, score_kind, contamination, as_json, quiet, verbose, **settings):
    """Anomaly scores: how unlike a run's training images each image of a data set is.

    A run (trained on normal images, such as with --classes) is calibrated on first use on its
    own training and validation images; an image scoring above the threshold is flagged. An
    export (a SavedModel, or a LiteRT or ONNX file of tfae export --format) scores with its score
    signature, as it was exported. By default the run's own data, every class.
    """
    import json

    with Progress(enabled=not (quiet or as_json)).stage("starting TensorFlow"):
        start_tensorflow(verbose)
    from tfae import apply

    scored = apply.score(path, out, score=score_kind, contamination=contamination,
                         verbose=not (quiet or as_json), maps=maps, **settings)
    if as_json:
        click.echo(json.dumps(scored.summary(), indent=2))
        return
    if scored.skipped:
        click.echo(f"warning: skipped {len(scored.skipped):,} files that do not decode", err=True)
    click.echo(f"flagged {scored.flagged:,} of {scored.images:,} {scored.dataset} images: "
               f"{scored.score} score above {scored.threshold:.6g}, which "
               f"{contamination_text(scored.contamination)} of the run's validation images pass"
               + (f"; rows in {scored.written_to}" if scored.written_to else "")
               + (f"; their error maps in {scored.maps}" if scored.maps else ""))
    for image_id, value in scored.most_anomalous:
        click.echo(f"  {value:.6g}  {image_id}")


@tfae.command()
@click.argument("path", type=click.Path(exists=True))
@click.option("-n", "--count", default=64, show_default=True, type=click.IntRange(min=1),
              help="How many images.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
              help="Seed of the codes drawn: the same seed gives the same images.")
@click.option("--out", required=True, type=click.Path(),
              help="A new (or empty) folder for PNG files (sample-0000.png, ...), or an .npz "
              "file.")
@_output_options
@_clear_errors
def sample(path, count, seed, out, quiet, verbose):
    """New images: codes drawn from the prior of a variational autoencoder (--model vae), run
    folder or export, decoded."""
    with Progress(enabled=not quiet).stage("starting TensorFlow"):
        start_tensorflow(verbose)
    from tfae import apply

    sampled = apply.sample(path, out, count=count, seed=seed, verbose=not quiet)
    click.echo(f"wrote {sampled.images:,} samples ({'x'.join(map(str, sampled.shape))}, HxWxC) "
               f"to {sampled.written_to}")


PREPARED_SETTINGS = ("image_size", "channels", "resize", "test_fraction", "prepared_dir")


def _prepare_options():
    return [_click_option(spec) for spec in specs(DataConfig) if spec.name in PREPARED_SETTINGS]


@tfae.command(cls=_DerivedCommand, derive=_prepare_options)
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False),
              help="The prepared folder, which --dataset then takes (default: one for this "
              "folder and these settings in --prepared-dir, where fit finds it by itself).")
@_output_options
@_clear_errors
def prepare(folder, out, quiet, verbose, **settings):
    """Decode an image folder once into shards on disk, to stream a data set larger than memory.

    fit, evaluate, plot, tune and report do this by themselves for a folder whose decoded images
    pass --memory-budget. Interrupted, it keeps the shards it finished; run it again to write
    the rest. Run on a folder prepared already, it reads every shard and writes again any whose
    bytes are not those written (their SHA-256 digest).
    """
    with Progress(enabled=not quiet).stage("starting TensorFlow"):
        start_tensorflow(verbose)
    from tfae.data import shards

    config = DataConfig(dataset=folder, **{name: value for name, value in settings.items()
                                           if value is not None}).resolved()
    prepared = shards.prepare(folder, out, verify=True, **{name: getattr(config, name)
                                                           for name in PREPARED_SETTINGS})
    splits = shards.load(prepared)
    counts = ", ".join(f"{split} {getattr(splits, split).count:,}"
                       for split in shards.SPLIT_NAMES)
    files = [pathlib.Path(file) for split in shards.SPLIT_NAMES
             for file in getattr(splits, split).files]
    size = sum(file.stat().st_size for file in files) / 1e9
    click.echo(f"prepared {splits.source['images']:,} images of {folder} ({counts}; "
               f"{'x'.join(map(str, splits.image_shape))}, HxWxC) in {prepared}: {len(files)} "
               f"shards, {size:.2f} GB")


def _report_options():
    return _data_options({"dataset": f"{specs(DataConfig)[0].help} [default: mnist]"})


@tfae.command(cls=_DerivedCommand, derive=_report_options)
@click.option("--models", default="all", show_default=True,
              help="Comma-separated rows: families, and the rows of the page's own OUT/page.json "
              "(MNIST's: randomized-denoising, randomized-occlusion), or all.")
@click.option("--epochs", type=click.IntRange(min=1),
              help="Epochs for every family (default: each family's).")
@click.option("--latent-dim", type=click.IntRange(min=1),
              help="Train every family with codes of this many numbers (its other defaults "
              "kept but where OUT/page.json's rows say), on a page of its own.")
@click.option("--study-shapes", is_flag=True,
              help="Train every family at the shape the MNIST study gave it (10-number codes, "
              "128 for shallow, 700-700 for randomized: the rows of OUT/page.json), on a page "
              "of its own.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Folder for runs and figures; the page is written beside it as OUT.md "
              "(default: docs/results for mnist, else docs/results/<data set>; with "
              "--latent-dim N or --study-shapes, docs/results/[<data set>-]latent-N or "
              "study-shapes).")
@click.option("--baselines", type=click.Choice(BASELINES), default="auto", show_default=True,
              help="Measure the baselines (raw pixels, PCA): auto when the training images' "
              "pixels take at most 1 GiB as float32 (said when skipped), always, or never.")
@_output_options
@_clear_errors
def report(models, epochs, latent_dim, study_shapes, out_dir, baselines, quiet, verbose, limit,
           **data_settings):
    """Train, evaluate and draw every family; write the results page.

    Finished runs in OUT/runs are reused and interrupted ones resume.
    """
    start_tensorflow(verbose)
    from tfae.report import report as write_report

    chosen = None if models == "all" else [name.strip() for name in models.split(",")]
    given = {name: value for name, value in data_settings.items() if value is not None}
    page = write_report(chosen, epochs, out_dir, limit, latent_dim, study_shapes,
                        verbose=_keras_verbosity(quiet), baselines=baselines, **given)
    click.echo(f"wrote {page}")


def _tune_options():
    return [*_settings_options(FitConfig, tunable_family_names(),
                               help={"epochs": "Epochs per trial (hyperband: the largest budget).",
                                     "model": "Family of autoencoder to search."},
                               defaults={"epochs": TRIAL_EPOCHS}),
            *_settings_options(TuneConfig)]


class _TuneCommand(_DerivedCommand):
    """``tfae tune``, whose help ends with each family's search space (``describe_space``)."""

    def format_epilog(self, ctx, formatter):
        with formatter.section("Search spaces"):
            formatter.write_dl([(name, describe_space(name)) for name in tunable_family_names()])


@tfae.command(cls=_TuneCommand, derive=_tune_options)
@click.option("--out", "tune_dir", type=click.Path(file_okay=False),
              help="Search folder (default: tuning/<model>). Rerun to resume it.")
@click.option("--export-dir", type=click.Path(file_okay=False),
              help="SavedModel folder for the best model (default: saved_models/<model>).")
@click.option("--no-export", is_flag=True, help="Do not export the best model.")
@click.option("--distributed", is_flag=True,
              help="Join keras-tuner's parallel search as KERASTUNER_TUNER_ID (chief or a "
              "worker) at KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT.")
@_output_options
@_clear_errors
def tune(tune_dir, export_dir, no_export, distributed, quiet, verbose, **settings):
    """Search a family's architecture with keras-tuner; export the best model.

    Writes OUT/config.json, which `tfae fit --config` retrains from scratch.
    """
    if export_dir and no_export:
        raise click.UsageError("--export-dir and --no-export contradict each other")
    start_tensorflow(verbose)
    from tfae.tuning import best_table, tune as run_search

    config = TuneConfig.from_dict({key: value for key, value in settings.items()
                                   if value is not None})
    result = run_search(config, tune_dir or pathlib.Path("tuning") / config.fit.model,
                        export=not no_export, export_dir=export_dir, verbose=_keras_verbosity(quiet),
                        distributed=distributed)
    if result is None:
        click.echo("worker: the search is finished; the chief has the results")
        return
    header = ("rank", "trial", config.objective, "epochs", "hyperparameters")
    rows = [header, *best_table(result.best)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header) - 1)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    click.echo(f"config: {result.config_path}")
    if result.export_path:
        click.echo(f"exported: {result.export_path}")


def _labels(ctx, param, values):
    """Parses ``--label stable=1`` options into ``{"stable": 1}``."""
    labels = {}
    for value in values:
        label, _, version = value.partition("=")
        if not label or not version.isdigit():
            raise click.BadParameter(f"{value!r} is not LABEL=VERSION (such as stable=1)")
        labels[label] = int(version)
    return labels


@tfae.command()
@click.argument("export_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--name", help="Model name in requests (default: the folder's name).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8501, show_default=True, type=click.IntRange(0, 65535),
              help="REST port (TF Serving's); 0 picks a free one.")
@click.option("--grpc-port", default=8500, show_default=True, type=click.IntRange(0, 65535),
              help="gRPC port (TF Serving's); 0 picks a free one.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Processes answering on both ports, each with the model; up to one per core "
              "serves concurrent clients faster.")
@click.option("--label", "labels", multiple=True, callback=_labels, metavar="LABEL=VERSION",
              help="A version label, as in TF Serving's model config (repeatable).")
@click.option("--max-request-mb", default=64, show_default=True, type=click.IntRange(1, 2047),
              help="Largest gRPC message taken, in MiB (gRPC's own limit is 2 GiB).")
@click.option("--max-json-mb", default=16, show_default=True, type=click.IntRange(min=1),
              help="Largest REST body taken, in MiB: reading JSON holds the worker (about "
              "0.1 s a MB), so other clients wait while a large one is read.")
@click.option("--max-answer-mb", default=16, show_default=True, type=click.IntRange(min=1),
              help="Largest answer, in MiB of its numbers (rows times a row's outputs): a request "
              "asking for more is refused before the model runs.")
@click.option("--max-image-pixels", default=MAX_IMAGE_PIXELS, show_default=True,
              type=click.IntRange(min=1),
              help="Most pixels an image file sent to a *_bytes signature may declare: larger "
              "ones are refused from their header, before decoding.")
@click.option("--page/--no-page", default=None,
              help="Answer a browser at / with a page to look at the model: drop images, see "
              "their reconstructions, error maps and scores [default: on for a loopback --host, "
              "off for any other, where anyone who reaches the port would see it].")
@click.option("--access-log", is_flag=True,
              help="A line on stderr for every request: client, protocol, request, status, time.")
@_output_options
@_clear_errors
def serve(export_dir, name, host, port, grpc_port, workers, labels, max_request_mb, max_json_mb,
          max_answer_mb, max_image_pixels, page, access_log, quiet, verbose):
    """Serve an export folder over TensorFlow Serving's REST and gRPC APIs until Ctrl-C."""
    start_tensorflow(verbose)
    from tfae.serving import ServerSettings, serve as serve_forever

    serve_forever(ServerSettings(
        export_dir, name or pathlib.Path(export_dir).resolve().name, host, port, grpc_port,
        workers, labels, max_request_mb * 1024 * 1024, max_json_mb * 1024 * 1024, access_log,
        max_answer_mb * 1024 * 1024, max_image_pixels, page),
        announce=click.echo, verbose=verbose)


def main():
    """Runs the ``tfae`` command (the console script and ``python -m tfae``)."""
    tfae(prog_name="tfae")


if __name__ == "__main__":
    main()
