"""The ``tfae`` command line: parse options, call the ``tfae`` library, print.

Example:
    $ tfae fit --model deep --epochs 5
    $ tfae export runs/deep-20261126-101500 --export-dir saved_models/deep
"""

import functools
import pathlib
import time

import click


def _clear_errors(command):
    """Turns input and file-system errors into one line and exit status 1, not a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from tfae.errors import TfaeError

        try:
            return command(*args, **kwargs)
        except TfaeError as error:
            raise click.ClickException(str(error)) from None
        except OSError as error:  # a full disk or a read-only folder met after the checks
            where = f"{error.filename}: " if error.filename else ""
            raise click.ClickException(f"{where}{error.strerror or error}") from None

    return wrapper


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


@click.group()
@click.version_option(package_name="tfae")
def tfae():
    """Autoencoders on images: train, evaluate, plot and export them."""


@tfae.command()
@click.option("--model", help="Family: shallow, deep, contractive, denoising, conv, deep-conv, "
              "randomized (default: deep).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Start from a config.json (of a run or of `tfae tune`); options given here win.")
@click.option("--dataset", help="A tensorflow-datasets image data set (default: mnist, bundled).")
@click.option("--data-dir", help="Folder of prepared tfds data (default: tfds' own).")
@click.option("--epochs", type=int, help="Epochs to train (default: the family's, 10 or 20).")
@click.option("--batch-size", type=int,
              help="Images per batch and replica (default: 256); the global batch is this times "
              "the replicas of --strategy.")
@click.option("--strategy", default="default", show_default=True,
              type=click.Choice(["default", "mirrored", "multi-worker"]),
              help="tf.distribute strategy: mirrored uses every local GPU, multi-worker the "
              "machines in TF_CONFIG.")
@click.option("--jit-compile/--no-jit-compile", default=None,
              help="Compile the training step with XLA (default: on for the dense families, "
              "shallow, deep and contractive; otherwise Keras' choice, on only with a GPU).")
@click.option("--steps-per-execution", type=click.IntRange(min=1),
              help="Batches per call into the compiled training step (default: 16 for the "
              "dense families, else 1).")
@click.option("--latent-dim", type=int, help="Size of the latent code.")
@click.option("--hidden", callback=_sizes, help="Hidden layer sizes, such as 500,200,100.")
@click.option("--activation", help="Activation of the hidden layers (relu, sigmoid, tanh, ...).")
@click.option("--latent-activation", help="Activation of the latent layer (deep models).")
@click.option("--filters", callback=_sizes, help="Filters per convolution block, such as 32,64.")
@click.option("--lambda", "penalty_weight", type=float,
              help="Weight of the contractive penalty (contractive, conv, deep-conv).")
@click.option("--penalty", type=click.Choice(["exact", "projection", "weights", "jacobian"]),
              help="How the contractive penalty is computed.")
@click.option("--projections", type=int, help="Random projections for --penalty projection.")
@click.option("--solver", type=click.Choice(["ridge", "sgd"]),
              help="How randomized layers are trained (default: ridge, closed form).")
@click.option("--ridge-c", type=float, help="C of the randomized ridge solution (default: 0.01).")
@click.option("--learning-rate", type=float, help="Adam's learning rate (default: 0.001).")
@click.option("--loss", type=click.Choice(["mse", "bce"]), help="Reconstruction loss (default: mse).")
@click.option("--noise", help="Corrupt inputs: gaussian:STD, salt-pepper:F, masking:F, "
              "occlusion:SIZE, several joined by + (gaussian:0.5+occlusion:14), or none (default: "
              "the family's; shallow and deep occlusion:14, denoising gaussian:0.5).")
@click.option("--limit", type=int, help="Train on the first N images only (quick runs).")
@click.option("--seed", type=int, help="Seed for weights, shuffling and noise (default: 0).")
@click.option("--early-stopping", type=int, metavar="PATIENCE",
              help="Stop after PATIENCE epochs without a better validation loss.")
@click.option("--out", "run_dir", type=click.Path(file_okay=False),
              help="Run folder (default: runs/<model>-<timestamp>). Rerun to resume it.")
@click.option("--export-dir", type=click.Path(file_okay=False),
              help="SavedModel folder, TF Serving layout (default: saved_models/<model>).")
@click.option("--no-export", is_flag=True, help="Do not write a SavedModel.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_clear_errors
def fit(config_file, run_dir, export_dir, no_export, quiet, strategy, jit_compile,
        steps_per_execution, **options):
    """Train an autoencoder and export it as a SavedModel."""
    from tfae.train import FitConfig, fit as fit_run

    config = FitConfig.from_json(config_file) if config_file else FitConfig()
    model_keys = {"latent_dim", "hidden", "activation", "latent_activation", "filters",
                  "penalty_weight", "penalty", "projections", "solver", "ridge_c"}
    given = {key: value for key, value in options.items() if value is not None}
    model_options = {key: given.pop(key) for key in model_keys & set(given)}
    if "model" in given and given["model"] != config.model:
        config.model_options = {}  # the file's options belong to its own model
    config = FitConfig.from_dict({**config.to_dict(), **given,
                                  "model_options": {**config.model_options, **model_options}})
    if run_dir is None:
        run_dir = pathlib.Path("runs") / f"{config.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    if export_dir and no_export:
        raise click.UsageError("--export-dir and --no-export contradict each other")
    run = fit_run(config, run_dir, export=not no_export, export_dir=export_dir,
                  verbose=2 if quiet else 1, strategy=strategy,
                  jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    final = {name: values[-1] for name, values in run.history.items() if name != "seconds"}
    click.echo(f"run: {run.run_dir}  " + "  ".join(f"{k}={v:.5g}" for k, v in final.items()))
    if run.export_path:
        click.echo(f"exported: {run.export_path}")


@tfae.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--export-dir", type=click.Path(file_okay=False),
              help="SavedModel folder, TF Serving layout (default: saved_models/<model>).")
@_clear_errors
def export(run_dir, export_dir):
    """Export a finished run's model as a new SavedModel version."""
    from tfae.export import export_run

    click.echo(f"exported: {export_run(run_dir, export_dir)}")


@tfae.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--dataset", help="Data set to measure on (default: the run's, or mnist).")
@click.option("--data-dir", help="Folder of prepared tfds data (default: tfds' own).")
@click.option("--limit", type=int, help="Use the first N images of each split only.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@_clear_errors
def evaluate(path, dataset, data_dir, limit, as_json):
    """Measure a run folder or SavedModel export: reconstruction, probes, noise, occlusion.

    Writes PATH/metrics.json.
    """
    import json

    from tfae.evaluate import evaluate as evaluate_path, summary_rows

    metrics = evaluate_path(path, dataset, data_dir, limit, verbose=0 if as_json else 1)
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    rows = summary_rows(metrics)
    width = max(len(name) for name, _ in rows)
    click.echo(f"{path} on {metrics['dataset']} ({metrics['test_images']:,} test images)")
    for name, value in rows:
        click.echo(f"  {name:<{width}}  {value}")


@tfae.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--kind", required=True,
              type=click.Choice(["tsne", "reconstructions", "denoising", "occlusion", "manifold",
                                 "history"]),
              help="Which figure to draw.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Folder for the PNG (default: PATH/figures).")
@click.option("--dataset", help="Data set to draw from (default: the run's, or mnist).")
@click.option("--data-dir", help="Folder of prepared tfds data (default: tfds' own).")
@click.option("--limit", type=int, help="Use the first N images of each split only.")
@_clear_errors
def plot(path, kind, out_dir, dataset, data_dir, limit):
    """Draw a figure of a run folder or SavedModel export as a PNG."""
    from tfae.figures import draw

    click.echo(f"wrote {draw(path, kind, out_dir, dataset, data_dir, limit)}")


@tfae.command()
@click.option("--models", default="all", show_default=True,
              help="Comma-separated families, or all.")
@click.option("--epochs", type=int, help="Epochs for every family (default: each family's).")
@click.option("--out", "out_dir", default="docs/results", show_default=True,
              type=click.Path(file_okay=False),
              help="Folder for runs and figures; the page is written beside it as OUT.md.")
@click.option("--limit", type=int, help="Use the first N images of each split only.")
@_clear_errors
def report(models, epochs, out_dir, limit):
    """Train, evaluate and draw every family; write the results page.

    Finished runs in OUT/runs are reused and interrupted ones resume.
    """
    from tfae.report import report as write_report

    chosen = None if models == "all" else [name.strip() for name in models.split(",")]
    click.echo(f"wrote {write_report(chosen, epochs, out_dir, limit)}")


class _TuneCommand(click.Command):
    """``tfae tune``, whose help ends with each family's search space, read from ``tfae.tune``."""

    def format_epilog(self, ctx, formatter):
        from tfae.tune import SEARCH_SPACES, describe_space

        with formatter.section("Search spaces"):
            formatter.write_dl([(name, describe_space(name)) for name in SEARCH_SPACES])


@tfae.command(cls=_TuneCommand)
@click.option("--model", default="deep", show_default=True,
              help="Family: shallow, deep, contractive, denoising, conv, deep-conv.")
@click.option("--tuner", default="hyperband", show_default=True,
              type=click.Choice(["hyperband", "random", "bayesian"]), help="keras-tuner's search.")
@click.option("--max-trials", type=int,
              help="Trials for random and bayesian (default: 10); hyperband sizes its own.")
@click.option("--epochs", default=10, show_default=True, type=int,
              help="Epochs per trial (hyperband: the largest budget).")
@click.option("--objective", default="val_loss", show_default=True,
              type=click.Choice(["val_loss", "probe"]),
              help="Validation loss, or linear-probe accuracy of the validation codes.")
@click.option("--dataset", default="mnist", show_default=True,
              help="A tensorflow-datasets image data set.")
@click.option("--data-dir", help="Folder of prepared tfds data (default: tfds' own).")
@click.option("--limit", type=int, help="Use the first N images of each split only.")
@click.option("--batch-size", default=256, show_default=True, type=int, help="Images per batch.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for the search.")
@click.option("--out", "tune_dir", type=click.Path(file_okay=False),
              help="Search folder (default: tuning/<model>). Rerun to resume it.")
@click.option("--export-dir", type=click.Path(file_okay=False),
              help="SavedModel folder for the best model (default: saved_models/<model>).")
@click.option("--no-export", is_flag=True, help="Do not export the best model.")
@click.option("--distributed", is_flag=True,
              help="Join keras-tuner's parallel search as KERASTUNER_TUNER_ID (chief or a "
              "worker) at KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@_clear_errors
def tune(tune_dir, export_dir, no_export, distributed, quiet, **settings):
    """Search a family's architecture with keras-tuner; export the best model.

    Writes OUT/config.json, which `tfae fit --config` retrains from scratch.
    """
    from tfae.tune import TuneConfig, best_table, tune as run_search

    if export_dir and no_export:
        raise click.UsageError("--export-dir and --no-export contradict each other")
    config = TuneConfig(**settings)
    result = run_search(config, tune_dir or pathlib.Path("tuning") / config.model,
                        export=not no_export, export_dir=export_dir, verbose=0 if quiet else 1,
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


@tfae.command()
@click.argument("export_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--name", help="Model name in the URLs (default: the folder's name).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8501, show_default=True, type=int, help="Port (TF Serving's REST).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Processes answering on the port, each with the model; up to one per core "
              "serves concurrent clients faster.")
@_clear_errors
def serve(export_dir, name, host, port, workers):
    """Serve an export folder over TensorFlow Serving's REST API until Ctrl-C."""
    from tfae.serve import serve as serve_forever

    serve_forever(export_dir, name or pathlib.Path(export_dir).resolve().name, host, port, workers)


if __name__ == "__main__":
    tfae()
