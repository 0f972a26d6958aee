"""``tfae encode`` against a plain Keras script: all of MNIST, and a folder of 20,000 JPEGs.

- MNIST: the 70,000 images (both splits) through a ``deep`` model (784-1000-1000-500-256,
  untrained: speed does not depend on the weights) into an ``.npz`` of codes with ids and
  labels, timed in this process from the call to the file's rename (opening the model and reading
  the data included; TensorFlow's start-up not, the issue's "after start-up"), against what a
  Keras user would write: ``tfds.as_numpy`` of both splits and ``encoder.predict`` on the arrays,
  ``np.savez`` at the end. Goal: < 10 s.
- A folder of 20,000 JPEG files of 96x96 colour crops of scikit-learn's two sample photographs
  (written first, not timed) through an untrained ``deep-conv`` export that takes 96x96x3, against
  ``keras.utils.image_dataset_from_directory`` and ``predict``. Goal: >= 1,000 images/s.

Each pair runs ``--rounds`` times in turns; the medians are reported.

Usage:
    python bench/encode_speed.py [--rounds 2] [--images 20000] [--write docs/performance.md]
"""

import argparse
import pathlib
import statistics
import tempfile
import time

import numpy as np
import tensorflow as tf

from fit_throughput import machine, publish
from tfae.apply import encode
from tfae.exports import export_saved_model
from tfae.families import build_model

SECTION = "## Encoding: `tfae encode` against a plain Keras script"


def write_jpegs(folder, count, size=96, seed=0):
    """``count`` JPEG crops of ``size`` from the two sample photographs, in two class folders."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    for index in range(count):
        photo = photos[index % 2]
        top = rng.integers(0, photo.shape[0] - size)
        left = rng.integers(0, photo.shape[1] - size)
        path = folder / ("china" if index % 2 == 0 else "flower") / f"{index:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tf.io.encode_jpeg(photo[top:top + size, left:left + size]).numpy())


def plain_mnist(encoder, out):
    """A Keras user's script: the arrays from tfds, ``predict``, ``np.savez``."""
    import tensorflow_datasets as tfds

    images, labels = [], []
    for split in ("train", "test"):
        x, y = tfds.as_numpy(tfds.load("mnist", split=split, batch_size=-1, as_supervised=True))
        images.append(x)
        labels.append(y)
    x = np.concatenate(images).astype("float32") / 255.0
    codes = encoder.predict(x, batch_size=256, verbose=0)
    np.savez(out, codes=codes, labels=np.concatenate(labels))
    return len(codes)


def plain_folder(served, folder, out, size):
    """A Keras user's script: ``image_dataset_from_directory`` and the export's signature."""
    import keras

    batches = keras.utils.image_dataset_from_directory(
        folder, image_size=(size, size), batch_size=256, shuffle=False, verbose=False)
    encode_signature = served.signatures["encode"]
    codes = [encode_signature(images=images / 255.0)["codes"].numpy() for images, _ in batches]
    np.savez(out, codes=np.concatenate(codes))
    return sum(len(batch) for batch in codes)


def timed(function):
    start = time.perf_counter()
    count = function()
    return time.perf_counter() - start, count


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--write", type=pathlib.Path)
    arguments = parser.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="tfae-encode-bench-"))
    deep = build_model("deep", (28, 28, 1))
    export_saved_model(deep, work / "deep")
    conv = build_model("deep-conv", (arguments.size, arguments.size, 3))
    export_saved_model(conv, work / "conv")
    served = tf.saved_model.load(str(work / "conv" / "1"))
    write_jpegs(work / "photos", arguments.images, arguments.size)
    seconds = {name: [] for name in ("tfae mnist", "plain mnist", "tfae folder", "plain folder")}
    for _ in range(arguments.rounds):
        for name, run in (
                ("tfae mnist", lambda: encode(work / "deep", work / "codes.npz",
                                              verbose=False).images),
                ("plain mnist", lambda: plain_mnist(deep.encoder, work / "plain.npz")),
                ("tfae folder", lambda: encode(work / "conv", work / "photo-codes.npz",
                                               dataset=work / "photos", verbose=False).images),
                ("plain folder", lambda: plain_folder(served, work / "photos",
                                                      work / "plain-photos.npz", arguments.size))):
            elapsed, count = timed(run)
            seconds[name].append(elapsed)
            print(f"{name}: {count:,} images in {elapsed:.2f} s", flush=True)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    mnist_rate = 70000 / median["tfae mnist"]
    folder_rate = arguments.images / median["tfae folder"]
    report = f"""{SECTION}

`python bench/encode_speed.py --rounds {arguments.rounds} --images {arguments.images}` on
{time.strftime('%Y-%m-%d')}, {machine()}: the median of {arguments.rounds} rounds taken in turns;
untrained models (speed does not depend on the weights), timed in the process from the call to
the written file, TensorFlow's start-up excluded.

| job | tfae encode | plain Keras script | tfae / plain | goal |
|---|---|---|---|---|
| MNIST, 70,000 images, `deep` -> `.npz` | {median['tfae mnist']:.2f} s ({mnist_rate:,.0f} images/s) | {median['plain mnist']:.2f} s | {median['plain mnist'] / median['tfae mnist']:.2f}x as fast | < 10 s: {'met' if median['tfae mnist'] < 10 else '**missed**'} |
| {arguments.images:,} JPEGs, {arguments.size}x{arguments.size} colour, `deep-conv` export -> `.npz` | {median['tfae folder']:.2f} s ({folder_rate:,.0f} images/s) | {median['plain folder']:.2f} s | {median['plain folder'] / median['tfae folder']:.2f}x as fast | >= 1,000 images/s: {'met' if folder_rate >= 1000 else '**missed**'} |

The plain scripts are what a Keras user writes: MNIST as numpy arrays from `tfds.load(...,
batch_size=-1)` and `encoder.predict`; the folder through `keras.utils.image_dataset_from_directory`
and the export's `encode` signature. tfae's writes ids and labels beside the codes as well. On
the folder both are bound by the model (`deep-conv` on 96x96 colour images), not the reading:
tfae decodes and resizes in `tf.data` while the model runs.
"""
    publish(report, arguments.write)


if __name__ == "__main__":
    main()
