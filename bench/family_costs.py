"""What the study's families cost against a plain ``deep`` epoch, on full MNIST, in one process.

- Contractive penalty: ``exact``, ``projection`` (1 draw), ``weights`` (the study's term) and the
  full ``jacobian`` on the study's deep shape (784-500-200-100-10, where ``exact`` *is* the full
  Jacobian), and on a one-layer sigmoid encoder (784-128), where ``exact`` has a closed form.
- Denoising: a ``deep`` epoch on inputs corrupted in the pipeline against a clean one.
- Randomized: ``ridge`` training 784-700-700 on all 60,000 training images, and ``sgd`` trained
  epoch by epoch on the first layer until it reaches the ridge solution's error (or a time cap).

Each Keras variant trains ``--epochs`` epochs and is scored by its fastest epoch after the first
(the speed each reaches when nothing stalls it; see fit_throughput.py).

Usage:
    python bench/family_costs.py [--epochs 6] [--sgd-cap 300] [--write docs/performance.md]
"""

import argparse
import pathlib
import time

import keras
import tensorflow as tf

from fit_throughput import EpochTimer, cpu_model, publish
from tfae import data
from tfae.corruptions import parse_corruption
from tfae.families import build_model
from tfae.models.randomized import (_Statistics, ridge_solution, shallow_autoencoder,
                                    train_layerwise)

SECTION = "## Family costs: contractive penalty, denoising pipeline, randomized solvers"


def fastest_epoch(model, batches, epochs):
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    timer = EpochTimer()
    model.fit(batches, epochs=epochs, callbacks=[timer], verbose=0)
    return min(timer.seconds[1:])


def contractive_rows(splits, epochs):
    clean = data.pipeline(splits.train, 256, shuffle=True)
    rows = []
    study_shape = {"hidden": (500, 200, 100), "latent_dim": 10}
    for shape, plain_name, options in [
        ("784-500-200-100-10 (relu)", "deep", study_shape),
        ("784-128 (sigmoid)", "shallow", {"hidden": (), "latent_dim": 128,
                                           "latent_activation": "sigmoid"}),
    ]:
        plain_options = study_shape if plain_name == "deep" else {"latent_dim": 128,
                                                                   "activation": "sigmoid"}
        baseline = fastest_epoch(build_model(plain_name, (28, 28, 1), **plain_options), clean, epochs)
        rows.append((shape, "none (plain epoch)", baseline, 1.0))
        for method in ("exact", "projection", "jacobian", "weights"):
            model = build_model("contractive", (28, 28, 1), penalty=method, **options)
            seconds = fastest_epoch(model, clean, epochs)
            rows.append((shape, method, seconds, seconds / baseline))
    return rows


def denoising_rows(splits, epochs, rounds=2):
    """Clean and corrupted epochs, interleaved for ``rounds`` rounds: the differences are small."""
    specs = ("clean", "gaussian:0.5", "salt-pepper:0.2", "masking:0.25", "occlusion:14")
    fastest = dict.fromkeys(specs, float("inf"))
    for _ in range(rounds):
        for spec in specs:
            corruption = None if spec == "clean" else parse_corruption(spec)
            batches = data.pipeline(splits.train, 256, shuffle=True, corruption=corruption)
            seconds = fastest_epoch(build_model("deep", (28, 28, 1)), batches, epochs)
            fastest[spec] = min(fastest[spec], seconds)
    return [(spec, fastest[spec], fastest[spec] / fastest["clean"]) for spec in specs]


def randomized_rows(splits, sgd_cap):
    everything = data.pipeline(splits.train.concatenate(splits.validation), 1000)
    start = time.perf_counter()
    # The study's layer-wise pass alone, as sgd below trains one layer of it.
    history = train_layerwise(build_model("randomized", (28, 28, 1), hidden=(700, 700)),
                              everything, verbose=0, decoder="study")
    ridge_seconds = time.perf_counter() - start

    # sgd on the first layer, the same shallow autoencoder as ridge's first layer (same seed).
    flat = everything.map(lambda inputs, targets: tf.reshape(targets, (-1, 784)))
    shallow = shallow_autoencoder(784, 700, "relu", seed=0)
    statistics = _Statistics.collect(flat.map(lambda x: (x, x)),
                                     shallow.get_layer("random_encoder"))
    start = time.perf_counter()
    target = statistics.mean_squared_error(ridge_solution(statistics.gram, statistics.cross, 1.0))
    ridge_layer_seconds = time.perf_counter() - start + history["seconds"][0]
    shallow.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    start, epochs, error = time.perf_counter(), 0, float("inf")
    while error > 1.05 * target and time.perf_counter() - start < sgd_cap:
        shallow.fit(flat.map(lambda x: (x, x)), epochs=1, verbose=0)
        epochs += 1
        error = statistics.mean_squared_error(shallow.get_layer("decoder").kernel.numpy())
    sgd_seconds = time.perf_counter() - start
    return {"ridge_seconds": ridge_seconds, "ridge_mse": history["mse"],
            "layer_target": target, "ridge_layer_seconds": ridge_layer_seconds,
            "sgd_seconds": sgd_seconds, "sgd_epochs": epochs, "sgd_mse": error,
            "sgd_reached": error <= 1.05 * target}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--sgd-cap", type=float, default=300, help="seconds sgd may take")
    parser.add_argument("--write", type=pathlib.Path)
    args = parser.parse_args()

    splits = data.load("mnist")
    contractive = contractive_rows(splits, args.epochs)
    denoising = denoising_rows(splits, args.epochs)
    randomized = randomized_rows(splits, args.sgd_cap)

    lines = [SECTION, "",
             f"`python bench/family_costs.py --epochs {args.epochs} --sgd-cap {args.sgd_cap:g}` on "
             f"{time.strftime('%Y-%m-%d')}; {cpu_model()}, 2 cores, TensorFlow {tf.__version__}, "
             f"Keras {keras.__version__}. 54,000 training images an epoch, batch 256, fastest "
             "epoch after the first.", "",
             "### Contractive penalty (goal: `exact` <= 1.5x a plain epoch)", "",
             "| encoder | penalty | s/epoch | x plain |", "|---|---|---|---|"]
    lines += [f"| {shape} | {method} | {seconds:.2f} | {ratio:.2f} |"
              for shape, method, seconds, ratio in contractive]
    lines += ["", "### Corruption in the pipeline (goal: <= 1.05x a clean epoch)", "",
              "Clean and corrupted runs interleaved over two rounds, the fastest epoch of each.", "",
              "| inputs | s/epoch | x clean |", "|---|---|---|"]
    lines += [f"| {spec} | {seconds:.2f} | {ratio:.3f} |" for spec, seconds, ratio in denoising]
    r = randomized
    reached = (f"reached {r['sgd_mse']:.5f} (<= 1.05x ridge's {r['layer_target']:.5f}) in "
               f"{r['sgd_epochs']} epochs" if r["sgd_reached"] else
               f"stopped at the {args.sgd_cap:g} s cap after {r['sgd_epochs']} epochs at "
               f"{r['sgd_mse']:.5f}, ridge's is {r['layer_target']:.5f}")
    lines += ["", "### Randomized (goals: ridge on 60k images < 30 s; >= 20x faster than sgd)", "",
              "| measure | value |", "|---|---|",
              f"| ridge, 784-700-700, 60,000 images, both layers | {r['ridge_seconds']:.1f} s "
              f"(layer mse {', '.join(f'{m:.5f}' for m in r['ridge_mse'])}) |",
              f"| ridge, first layer | {r['ridge_layer_seconds']:.1f} s |",
              f"| sgd (Adam 1e-3, batch 1000), first layer | {r['sgd_seconds']:.1f} s: {reached} |",
              f"| sgd / ridge, first layer | {'' if r['sgd_reached'] else '>= '}"
              f"{r['sgd_seconds'] / r['ridge_layer_seconds']:.0f}x |", ""]
    publish("\n".join(lines), args.write)


if __name__ == "__main__":
    main()
