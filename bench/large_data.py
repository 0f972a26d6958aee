"""Image folders larger than memory: prepared shards against images held in memory.

A folder of ``--images`` JPEGs of 96x96 colour photographs (random crops, flips and colour
jitter of scikit-learn's two sample photographs; written first, not timed) is read three ways,
one epoch each, shuffled, in batches of 256, ``--rounds`` times in turns (median reported):

- **held**: decoded once into memory (tfae's path under the memory budget);
- **streamed**: prepared once into shards of raw pixels (``tfae.data.shards``) and streamed;
- **decoded every epoch**: the JPEG files read, decoded and resized in ``tf.data`` every epoch,
  what shards of the encoded files would cost (the format not taken).

Then ``tfae.fit`` trains ``--model`` for 2 epochs on each of the first two paths; the second
epoch's images/s are compared (goal: streamed >= 0.9x held).

``--rss-images 20000,400000`` measures memory instead, in a section of its own: one
``tfae fit --model conv --epochs 1 --memory-budget 1`` process (``--limit`` with ``--rss-limit``)
on a folder of each size, which prepares and streams it; each process's peak resident memory
(goal: within 10% of each other and under 3 GB).

Usage:
    python bench/large_data.py [--images 20000] [--rounds 2] [--model deep] [--write FILE]
    python bench/large_data.py --rss-images 20000,400000 [--rss-limit N] [--write FILE]
"""

import argparse
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

from fit_throughput import machine, publish
import tfae
from tfae.config import FitConfig
from tfae.data import load, pipeline, shards

SECTION = "## Image sets larger than memory: prepared shards against images held in memory"
MEMORY_SECTION = "## Image sets larger than memory: peak memory of fit"
SIZE = 96
BATCH = 256


def write_photos(folder, count, size=SIZE, seed=0):
    """``count`` JPEGs of ``size``: random crops, flips and colour jitter of the two sample
    photographs, in two class folders. Kept between runs (a folder already full is reused)."""
    from sklearn.datasets import load_sample_images

    if len(list(folder.glob("*/*.jpg"))) == count:
        return
    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    for index in range(count):
        photo = photos[index % 2]
        top, left = (rng.integers(0, photo.shape[axis] - size) for axis in (0, 1))
        crop = photo[top:top + size, left:left + size].astype(np.float32)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = np.clip(crop * rng.uniform(0.7, 1.3, 3) + rng.uniform(-20, 20), 0, 255)
        path = folder / ("china" if index % 2 == 0 else "flower") / f"{index:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tf.io.encode_jpeg(crop.astype(np.uint8)).numpy())


def decoded_every_epoch(folder):
    """The training images as JPEG files decoded and resized by ``tf.data`` each epoch."""
    files = sorted(str(path) for path in folder.glob("*/*.jpg"))

    def read(path):
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        return tf.image.resize(image, (SIZE, SIZE), antialias=True) / 255.0

    return (tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=0)
            .map(read, num_parallel_calls=tf.data.AUTOTUNE).batch(BATCH)
            .prefetch(tf.data.AUTOTUNE))


def epoch_rate(batches):
    """Images per second of one pass over ``batches``."""
    start, count = time.perf_counter(), 0
    for batch in batches:
        count += int(tf.shape(batch[0] if isinstance(batch, tuple) else batch)[0])
    return count / (time.perf_counter() - start)


def trained_rate(folder, cache, model, memory_budget):
    """Images/s of ``tfae.fit``'s second epoch on ``folder`` held or streamed."""
    with tempfile.TemporaryDirectory() as out:
        run = tfae.fit(FitConfig(model=model, dataset=str(folder), image_size=(SIZE, SIZE),
                                 channels=3, epochs=2, memory_budget=memory_budget,
                                 prepared_dir=str(cache)), out, export=False, verbose=0)
        images = int(load(str(folder), image_size=(SIZE, SIZE), channels=3,
                          memory_budget=memory_budget, prepared_dir=str(cache))
                     .train.cardinality())
        return images / run.history["seconds"][-1]


def peak_rss(folder, cache, work, limit):
    """Peak resident memory, in GB, of a ``tfae fit`` process preparing and streaming
    ``folder`` (its shards removed first, so every size is prepared by the process measured)."""
    shutil.rmtree(shards.prepared_folder(folder, cache, image_size=(SIZE, SIZE), channels=3,
                                         resize="stretch", test_fraction=0.1),
                  ignore_errors=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "tfae_cli.main", "fit", "--model", "conv", "--dataset",
         str(folder), "--image-size", f"{SIZE},{SIZE}", "--channels", "3", "--epochs", "1",
         "--memory-budget", "1", "--prepared-dir", str(cache), "--no-export", "--quiet",
         *(["--limit", str(limit)] if limit else []),
         "--out", str(work / f"rss-{folder.name}")], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        raise SystemExit(f"tfae fit on {folder} failed ({status})")
    return usage.ru_maxrss * 1024 / 1e9


def speed(arguments):
    """The reading and training section."""
    work, cache = arguments.work, arguments.work / "prepared"
    folder = work / f"photos-{arguments.images}"
    write_photos(folder, arguments.images)
    settings = {"image_size": (SIZE, SIZE), "channels": 3}
    shutil.rmtree(shards.prepared_folder(folder, cache, **settings, resize="stretch",
                                         test_fraction=0.1), ignore_errors=True)
    start = time.perf_counter()  # from nothing, as the first run on a folder does
    prepared = shards.prepare(folder, prepared_dir=cache, **settings)
    prepare_seconds = time.perf_counter() - start
    held = load(str(folder), image_size=(SIZE, SIZE), channels=3, memory_budget=1e6)
    streamed = shards.load(prepared)
    readers = {"held": lambda: pipeline(held.train, BATCH, shuffle=True),
               "streamed": lambda: pipeline(streamed.train, BATCH, shuffle=True),
               "decoded every epoch": lambda: decoded_every_epoch(folder)}
    rates = {name: [] for name in readers}
    for _ in range(arguments.rounds):
        for name, reader in readers.items():
            rates[name].append(epoch_rate(reader()))
            print(f"reading, {name}: {rates[name][-1]:,.0f} images/s", flush=True)
    trained = {name: [] for name in ("held", "streamed")}
    for _ in range(arguments.rounds):
        for name, budget in (("held", 1e6), ("streamed", 1e-6)):
            trained[name].append(trained_rate(folder, cache, arguments.model, budget))
            print(f"training {arguments.model}, {name}: {trained[name][-1]:,.0f} images/s",
                  flush=True)
    read = {name: statistics.median(values) for name, values in rates.items()}
    train = {name: statistics.median(values) for name, values in trained.items()}
    ratio = train["streamed"] / train["held"]
    return f"""{SECTION}

`python bench/large_data.py --images {arguments.images} --rounds {arguments.rounds} --model
{arguments.model}` on {time.strftime('%Y-%m-%d')}, {machine()}: {arguments.images:,} JPEGs of
{SIZE}x{SIZE} colour crops (flipped, colour-jittered) of the sample photographs; medians of
{arguments.rounds} rounds taken in turns; one shuffled epoch of the training split in batches of
{BATCH}; training is `tfae.fit`'s second epoch.

| | images/s | against held |
|---|---|---|
| preparing the shards (decode, resize, write; once) | {arguments.images / prepare_seconds:,.0f} | |
| reading, held in memory | {read['held']:,.0f} | 1.00x |
| reading, streamed from the shards | {read['streamed']:,.0f} | {read['streamed'] / read['held']:.2f}x |
| reading, JPEGs decoded every epoch (the format not taken) | {read['decoded every epoch']:,.0f} | {read['decoded every epoch'] / read['held']:.2f}x |
| training `{arguments.model}`, held | {train['held']:,.0f} | 1.00x |
| training `{arguments.model}`, streamed | {train['streamed']:,.0f} | {ratio:.2f}x: goal >= 0.9x {'met' if ratio >= 0.9 else '**missed**'} |
"""


def memory(arguments):
    """The peak memory section."""
    work, cache = arguments.work, arguments.work / "prepared"
    sizes = [int(size) for size in arguments.rss_images.split(",")]
    peaks = {}
    for size in sizes:
        write_photos(work / f"photos-{size}", size)
        peaks[size] = peak_rss(work / f"photos-{size}", cache, work, arguments.rss_limit)
        print(f"peak RSS, {size:,} images: {peaks[size]:.2f} GB", flush=True)
    spread = max(peaks.values()) / min(peaks.values()) - 1
    trained = (f"the first {arguments.rss_limit:,} images of each split"
               if arguments.rss_limit else "every image")
    rows = "\n".join(f"| {size:,} JPEGs | {peak:.2f} GB |" for size, peak in peaks.items())
    verdict = "met" if spread <= 0.1 and max(peaks.values()) < 3 else "**missed**"
    return f"""{MEMORY_SECTION}

`python bench/large_data.py --rss-images {arguments.rss_images}{f' --rss-limit {arguments.rss_limit}' if arguments.rss_limit else ''}`
on {time.strftime('%Y-%m-%d')}, {machine()}: peak resident memory of one `tfae fit --model conv
--image-size {SIZE},{SIZE} --channels 3 --epochs 1 --memory-budget 1` process each, which lists
the folder, prepares it into shards (the first time) and trains on {trained}, streamed.

| folder | peak RSS |
|---|---|
{rows}

Largest against smallest: +{spread:.0%}; goal within 10% and under 3 GB: {verdict}.
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default="deep")
    parser.add_argument("--rss-images", default="",
                        help="Measure peak memory on folders of these sizes instead.")
    parser.add_argument("--rss-limit", type=int, default=None,
                        help="Train the peak-memory runs on the first N images of each split.")
    parser.add_argument("--work", type=pathlib.Path,
                        default=pathlib.Path(tempfile.gettempdir()) / "tfae-large-data-bench")
    parser.add_argument("--write", type=pathlib.Path)
    arguments = parser.parse_args()
    publish(memory(arguments) if arguments.rss_images else speed(arguments), arguments.write)


if __name__ == "__main__":
    main()
