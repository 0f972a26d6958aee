"""Short runs as whole processes: ``tfae fit`` and ``tfae tune`` against plain hand-written scripts.

Every run is a fresh process, timed from before it starts to its exit, as a user's shell times it.
Each process records, from the moment it was started, when TensorFlow finished importing, when
``Model.fit`` was called (data loaded, model built), when its first step began and ended (the
step's compilation), when each epoch ended and when training ended; the rest until exit is
saving and exporting. TensorFlow is imported by the timing wrapper itself, the same way for both,
so that its import is its own line of the profile.

- ``fit``: ``tfae fit`` against a plain ``keras.Model.fit`` script (tfds' MNIST as numpy arrays,
  the same 54,000 / 6,000 split, the same layers, Keras' defaults, ``model.save`` at the end) at
  the study's shape (784-500-200-100-10, clean, BCE, batch 256) and the ``deep`` default
  (784-1000-1000-500-256; tfae trains it on occluded inputs as its default says, the plain script
  on clean ones), at each of ``--epochs``, taken in turns.
- ``tune``: ``tfae tune --model deep --tuner random --max-trials 10 --epochs 2 --limit 10000``
  against a keras-tuner ``RandomSearch`` script with the same search space, data and budget.

Usage:
    python bench/startup.py [--epochs 1,3,20] [--rounds 1] [--skip-tune]
                            [--write docs/performance.md]
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

from fit_throughput import machine, publish

SECTION = "## Short runs: whole processes against plain scripts"

# Runs a tfae command or a script in this process after importing TensorFlow, printing when each
# stage was reached, in seconds since the parent started the process (TFAE_BENCH_T0).
_TIMED = textwrap.dedent("""
    import atexit, json, os, sys, time
    T0 = float(os.environ["TFAE_BENCH_T0"])
    marks = {}
    def mark(name):
        marks.setdefault(name, time.time() - T0)
    atexit.register(lambda: print("MARKS " + json.dumps({**marks, "exit": time.time() - T0}),
                                  flush=True))
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import keras
    mark("tensorflow imported")

    class Marks(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            mark("fit called")
        def on_train_batch_begin(self, batch, logs=None):
            mark("first step began")
        def on_train_batch_end(self, batch, logs=None):
            mark("first step ended")
        def on_epoch_end(self, epoch, logs=None):
            marks.setdefault("epochs", []).append(time.time() - T0)
        def on_train_end(self, logs=None):
            marks.setdefault("trainings", []).append(time.time() - T0)

    fit = keras.Model.fit
    def timed_fit(self, *args, callbacks=None, **kwargs):
        return fit(self, *args, callbacks=[Marks(), *(callbacks or [])], **kwargs)
    keras.Model.fit = timed_fit
    kind, *args = sys.argv[1:]
    import runpy
    sys.argv = [kind, *args]
    if kind == "tfae":
        runpy.run_module("tfae", run_name="__main__")
    else:
        runpy.run_path(kind, run_name="__main__")
""")

# What both plain scripts share: MNIST from tfds as float arrays, and the dense autoencoder.
_PLAIN_COMMON = textwrap.dedent("""
    import sys
    import keras
    import tensorflow_datasets as tfds


    def mnist(data_dir):
        images = tfds.as_numpy(tfds.load("mnist", split="train", batch_size=-1, data_dir=data_dir))
        return images["image"].astype("float32") / 255.0


    def autoencoder(hidden, latent, loss):
        inputs = keras.Input((28, 28, 1))
        x = keras.layers.Flatten()(inputs)
        for units in hidden:
            x = keras.layers.Dense(units, activation="relu")(x)
        x = keras.layers.Dense(latent)(x)
        for units in reversed(hidden):
            x = keras.layers.Dense(units, activation="relu")(x)
        x = keras.layers.Dense(784, activation="sigmoid")(x)
        model = keras.Model(inputs, keras.layers.Reshape((28, 28, 1))(x))
        model.compile(optimizer="adam", loss=loss)
        return model
""")

PLAIN_FIT = _PLAIN_COMMON + textwrap.dedent("""

    data_dir, epochs, loss, hidden, latent = sys.argv[1:6]
    images = mnist(data_dir)
    train, validation = images[:54000], images[54000:]
    model = autoencoder(list(map(int, hidden.split(","))), int(latent), loss)
    model.fit(train, train, validation_data=(validation, validation), batch_size=256,
              epochs=int(epochs))
    model.save("model.keras")
""")

PLAIN_TUNE = _PLAIN_COMMON + textwrap.dedent("""
    import keras_tuner

    images = mnist(sys.argv[1])
    train, validation = images[:10000], images[54000:]


    def build(hp):
        depth = hp.Int("depth", 1, 3)
        hidden = []
        for index in range(3):
            with hp.conditional_scope("depth", list(range(index + 1, 4))):
                units = hp.Choice(f"units_{index}", (128, 256, 512, 1024))
            if index < depth:
                hidden.append(units)
        return autoencoder(hidden, hp.Choice("latent_dim", (10, 32, 64, 128, 256)), "mse")


    tuner = keras_tuner.RandomSearch(build, objective="val_loss", max_trials=10, seed=0,
                                     directory="search", project_name="deep")
    tuner.search(train, train, validation_data=(validation, validation), batch_size=256, epochs=2)
    tuner.get_best_models(1)[0].save("best.keras")
""")

SHAPES = {
    "study shape": {"hidden": "500,200,100", "latent": "10", "loss": "bce",
                    "tfae": ["--model", "deep", "--hidden", "500,200,100", "--latent-dim", "10",
                             "--noise", "none", "--loss", "bce"]},
    "`deep` default": {"hidden": "1000,1000,500", "latent": "256", "loss": "mse",
                       "tfae": ["--model", "deep"]},
}
KERAS_LOSSES = {"bce": "binary_crossentropy", "mse": "mse"}


def timed(kind, args, folder):
    """Runs ``_TIMED`` for ``kind`` (``tfae`` or a script's path) in ``folder``: its wall time
    and the stages it recorded."""
    folder.mkdir(parents=True)
    environment = {**os.environ, "TFAE_BENCH_T0": repr(time.time())}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _TIMED, kind, *args], cwd=folder, env=environment,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{kind} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    marks = json.loads(done.stdout.rpartition("MARKS ")[2])
    return wall, marks


def profile(marks):
    """The stages of one run, in seconds: where the time outside steady epochs goes."""
    epochs = marks.get("epochs", [])
    steady = statistics.median(b - a for a, b in zip(epochs, epochs[1:])) if len(epochs) > 1 \
        else None
    return {
        "import TensorFlow": marks["tensorflow imported"],
        "load data, build model": marks["fit called"] - marks["tensorflow imported"],
        "first step (compiling it)": marks["first step ended"] - marks["first step began"],
        "first epoch, past its first step": epochs[0] - marks["first step ended"],
        "later epochs": epochs[-1] - epochs[0],
        "after training (save, export)": marks["exit"] - marks["trainings"][-1],
        "steady epoch": steady,
        "to the first step": marks["first step began"],
    }


def fit_rows(data_dir, epoch_counts, rounds, work):
    rows = []
    for round_ in range(rounds):
        for shape, spec in SHAPES.items():
            for epochs in epoch_counts:
                name = f"{shape.strip('`').replace(' ', '-')}-{epochs}-{round_}"
                plain = timed(str(work / "plain_fit.py"), [
                    data_dir, str(epochs), KERAS_LOSSES[spec["loss"]], spec["hidden"],
                    spec["latent"]], work / f"plain-{name}")
                through_tfae = timed("tfae", [
                    "fit", *spec["tfae"], "--epochs", str(epochs), "--out", "run",
                    "--export-dir", "models", "--data-dir", data_dir, "--quiet"],
                    work / f"tfae-{name}")
                rows.append((shape, epochs, plain, through_tfae))
                print(shape, epochs, f"plain {plain[0]:.1f} s, tfae {through_tfae[0]:.1f} s",
                      flush=True)
    return rows


def fit_table(rows):
    lines = ["| shape | epochs | plain Keras, s | `tfae fit`, s | plain / tfae |",
             "|---|---|---|---|---|"]
    for shape, epochs, plain, through_tfae in rows:
        lines.append(f"| {shape} | {epochs} | {plain[0]:.1f} | {through_tfae[0]:.1f} | "
                     f"**{plain[0] / through_tfae[0]:.2f}** |")
    return "\n".join(lines)


def profile_table(rows):
    """The stages of the longest-epoch runs' pair of each shape, side by side."""
    longest = max(epochs for _, epochs, _, _ in rows)
    chosen = [(shape, plain, through_tfae) for shape, epochs, plain, through_tfae in rows
              if epochs == longest]
    header = " | ".join(f"{shape}: plain | {shape}: tfae" for shape, _, _ in chosen)
    lines = [f"| stage ({longest} epochs), s | {header} |", "|---" * (1 + 2 * len(chosen)) + "|"]
    profiles = [profile(run[1]) for _, plain, through_tfae in chosen
                for run in (plain, through_tfae)]
    for stage in profiles[0]:
        cells = " | ".join("" if p[stage] is None else f"{p[stage]:.2f}" for p in profiles)
        lines.append(f"| {stage} | {cells} |")
    return "\n".join(lines)


def tune_rows(data_dir, work):
    plain = timed(str(work / "plain_tune.py"), [data_dir], work / "plain-tune")
    through_tfae = timed("tfae", [
        "tune", "--model", "deep", "--tuner", "random", "--max-trials", "10", "--epochs", "2",
        "--limit", "10000", "--out", "search", "--export-dir", "models", "--data-dir", data_dir,
        "--quiet"], work / "tfae-tune")
    return plain, through_tfae


def tune_table(plain, through_tfae):
    plain_rate, tfae_rate = 10 / plain[0] * 60, 10 / through_tfae[0] * 60
    first = [run[1]["first step began"] for run in (plain, through_tfae)]
    return "\n".join([
        "| search | wall, s | trials / min | to the first step, s |",
        "|---|---|---|---|",
        f"| keras-tuner script | {plain[0]:.1f} | {plain_rate:.2f} | {first[0]:.2f} |",
        f"| `tfae tune` | {through_tfae[0]:.1f} | {tfae_rate:.2f} | {first[1]:.2f} |",
        f"| ratio tfae / script | | **{tfae_rate / plain_rate:.2f}** | |",
    ])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", default="1,3,20")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--skip-tune", action="store_true")
    parser.add_argument("--write", type=pathlib.Path,
                        help="replace this section of a Markdown file")
    args = parser.parse_args()

    from tfae.data.catalog import prepared_builder

    data_dir = str(pathlib.Path(prepared_builder("mnist").data_dir).parents[1])
    epoch_counts = [int(count) for count in args.epochs.split(",")]
    with tempfile.TemporaryDirectory(prefix="tfae-startup-") as folder:
        work = pathlib.Path(folder)
        (work / "plain_fit.py").write_text(PLAIN_FIT)
        (work / "plain_tune.py").write_text(PLAIN_TUNE)
        rows = fit_rows(data_dir, epoch_counts, args.rounds, work)
        tune = None if args.skip_tune else tune_rows(data_dir, work)
    command = " ".join(["python bench/startup.py", *sys.argv[1:]])
    report = "\n\n".join(filter(None, [
        SECTION,
        f"`{command}` on {time.strftime('%Y-%m-%d')}, whole processes taken in turns (see the "
        f"script's docstring). Machine: {machine()}.",
        fit_table(rows),
        "Where the seconds go:",
        profile_table(rows),
        tune and tune_table(*tune),
    ])) + "\n"
    publish(report, args.write)


if __name__ == "__main__":
    main()
