"""Training throughput of ``tfae.fit`` against a plain hand-written ``keras.Model.fit``.

Both train the study's ``deep`` autoencoder (784-500-200-100-10, mirrored) on the same 54,000
MNIST training images with the same 6,000 validation images, batch size and optimizer, in this
process. The plain script feeds numpy arrays through Keras' own ``tf.data`` adapter, whose
autotuner stalls the first batch of some epochs for seconds (tfae's pipeline turns it off; see
docs/performance.md), and this VM is shared, so the two alternate for ``--rounds`` rounds (plain,
tfae, plain, tfae, ...) and each is scored by its fastest epoch after each round's warm-up epoch,
as ``timeit`` does: the speed each reaches when nothing stalls it. Medians are shown beside it.

Usage:
    python bench/fit_throughput.py [--epochs 4] [--rounds 2] [--batch-size 256]
                                   [--write docs/performance.md]
"""

import argparse
import os
import pathlib
import platform
import statistics
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

import tfae
from tfae import data
from tfae.files import write_text
from tfae.train import execution_for, execution_options

SECTION = "## fit throughput: tfae vs plain Keras"


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def plain_keras_seconds(splits, epochs, batch_size):
    """The same layers written by hand, fitted on numpy arrays: the baseline."""
    def as_array(split):
        images = np.stack([image for image, _ in split.as_numpy_iterator()])
        return images.astype("float32") / 255.0

    train, validation = as_array(splits.train), as_array(splits.validation)
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Flatten()(inputs)
    for units in (500, 200, 100):
        x = keras.layers.Dense(units, activation="relu")(x)
    x = keras.layers.Dense(10)(x)
    for units in (100, 200, 500):
        x = keras.layers.Dense(units, activation="relu")(x)
    x = keras.layers.Dense(784, activation="sigmoid")(x)
    model = keras.Model(inputs, keras.layers.Reshape((28, 28, 1))(x))
    # Compiled as tfae compiles `deep`, so that the ratio is the framework's overhead alone.
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse",
                  **execution_for(model, execution_options("deep")))
    timer = EpochTimer()
    model.fit(train, train, validation_data=(validation, validation), batch_size=batch_size,
              epochs=epochs, callbacks=[timer], verbose=0)
    return len(train), timer.seconds


def tfae_seconds(epochs, batch_size):
    with tempfile.TemporaryDirectory() as folder:
        study_shape = {"hidden": (500, 200, 100), "latent_dim": 10}  # the plain script's layers
        config = tfae.FitConfig(model="deep", model_options=study_shape, epochs=epochs,
                                batch_size=batch_size)
        run = tfae.fit(config, pathlib.Path(folder) / "run", export=False, verbose=0)
    return run.history["seconds"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--write", type=pathlib.Path, help="replace this section of a Markdown file")
    args = parser.parse_args()

    splits = data.load("mnist")
    plain, through_tfae = [], []
    for _ in range(args.rounds):
        images, seconds = plain_keras_seconds(splits, args.epochs, args.batch_size)
        plain += seconds[1:]
        through_tfae += tfae_seconds(args.epochs, args.batch_size)[1:]
    plain_rate, tfae_rate = images / min(plain), images / min(through_tfae)
    plain_median = images / statistics.median(plain)
    tfae_median = images / statistics.median(through_tfae)
    table = "\n".join([
        "| run | images/s, fastest epoch | images/s, median epoch | epochs timed |",
        "|---|---|---|---|",
        f"| plain `keras.Model.fit` | {plain_rate:,.0f} | {plain_median:,.0f} | {len(plain)} |",
        f"| `tfae.fit` | {tfae_rate:,.0f} | {tfae_median:,.0f} | {len(through_tfae)} |",
        f"| ratio tfae / plain | **{tfae_rate / plain_rate:.3f}** | "
        f"{tfae_median / plain_median:.3f} | |",
    ])
    report = (f"{SECTION}\n\n`python bench/fit_throughput.py --epochs {args.epochs} --rounds "
              f"{args.rounds} --batch-size {args.batch_size}` on {time.strftime('%Y-%m-%d')}: `deep` (784-500-200-100-10), "
              f"{images:,} images an epoch, batch {args.batch_size}, with validation.\n"
              f"Machine: {machine()}.\n\n{table}\n")
    publish(report, args.write)


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, or the platform's machine type."""
    cpuinfo = pathlib.Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


def machine():
    """This machine, as the benchmark sections name it: CPU, cores, TensorFlow and Keras."""
    return (f"{cpu_model()}, {os.cpu_count()} cores, TensorFlow {tf.__version__}, "
            f"Keras {keras.__version__}")


def publish(report, path=None):
    """Prints a benchmark's section and, given ``path``, writes it there (``write_section``)."""
    print(report)
    if path:
        write_section(path, report)


def write_section(path, report):
    """Replaces the section of ``path`` headed by ``report``'s first line, or appends it."""
    heading = report.splitlines()[0]
    text = path.read_text() if path.exists() else "# Performance\n"
    start = text.find(heading)
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + report
    else:
        end = text.find("\n## ", start + len(heading))
        rest = "\n" + text[end + 1:] if end != -1 else ""
        text = text[:start] + report.rstrip("\n") + "\n" + rest
    write_text(path, text)  # a run stopped mid-write leaves the old page whole


if __name__ == "__main__":
    main()
