"""The benchmark suite: every family's training speed against plain Keras, PyTorch and the machine.

One command measures, in one process, on full MNIST (or small subsets with ``--quick``):

- the ceiling: TensorFlow's float32 matrix-multiply rate on large square matrices;
- each family's training FLOPs per image, counted from its layer shapes (3x the forward pass);
- training throughput (images/s, median epoch after each run's warm-up epoch, validation
  included) of ``tfae.fit`` with each family's defaults, of the same layers in a plain
  ``keras.Model.fit`` script on numpy arrays, and of the same layers in PyTorch (if installed:
  ``pip install torch==2.13.0``), with the ratios and the fraction of the ceiling. The three
  take turns for ``--rounds`` rounds, so that a slow spell of this shared VM falls on all of
  them rather than on one;
- the contractive penalty's methods, corruption in the pipeline and the randomized solvers
  (from ``family_costs.py``), and ``ridge``'s scaling with images and layer width;
- inference: the exported SavedModel's ``encode`` and ``serving_default`` at batch 1, 64 and
  1024 against ``model.predict``.

It prints one Markdown report and, with ``--write``, puts it in ``docs/performance.md`` in place
of its previous run. Nothing here asserts a speed; CI runs ``--quick`` only to keep it working.

Usage:
    python bench/suite.py [--quick] [--epochs 3] [--rounds 2] [--write docs/performance.md]
"""

import argparse
import importlib.metadata
import math
import os
import pathlib
import statistics
import tempfile
import time

import keras
import tensorflow as tf

import tfae
from family_costs import contractive_rows, denoising_rows, randomized_rows
from fit_throughput import EpochTimer, cpu_model, write_section
from tfae import data
from tfae.exports import export_saved_model
from tfae.families import build_model, families, get_family
from tfae.models.randomized import train_layerwise
from tfae.train import execution_for, execution_options

SECTION = "## Benchmark suite"
# Every family that trains with Model.fit, so a plain Keras script can train the same layers.
KERAS_FAMILIES = tuple(family.name for family in families() if family.trainer is None)
# The families with an execution policy of their own (the dense ones train under XLA, 16 batches
# per call) also run under Keras' own defaults, to show what it buys. Larger batches cut Adam's
# per-step pass over deep's 4.8 M weights (memory-bound).
KERAS_DEFAULTS = {"jit_compile": False, "steps_per_execution": 1}
TUNED = [(name, {}, KERAS_DEFAULTS) for name in KERAS_FAMILIES if get_family(name).execution] + [
    ("deep", {"batch_size": 1024}, {})]


def matmul_ceiling(size, repeats, dtype="float32"):
    """The best GFLOP/s of ``size`` x ``size`` matrix products of ``dtype`` in TensorFlow."""
    a = tf.random.uniform((size, size), dtype=dtype)
    b = tf.random.uniform((size, size), dtype=dtype)
    product = tf.function(lambda: tf.matmul(a, b))
    product().numpy()  # trace and warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        product().numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def forward_flops(model):
    """Multiply-adds x 2 of one image's forward pass through the encoder and the decoder.

    A training step costs about 3x this (forward, then gradients of activations and weights).
    """
    forward = 0
    for part in (model.encoder, model.decoder):
        for layer in part.layers:
            if isinstance(layer, keras.layers.Dense):
                forward += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
            elif isinstance(layer, keras.layers.Conv2DTranspose):
                height, width = layer.input.shape[1:3]
                forward += 2 * math.prod(layer.kernel.shape) * height * width
            elif isinstance(layer, keras.layers.Conv2D):
                height, width = layer.output.shape[1:3]
                forward += 2 * math.prod(layer.kernel.shape) * height * width
    return forward


def as_arrays(split):
    images, _ = split.batch(int(split.cardinality())).get_single_element()
    return images.numpy().astype("float32") / 255.0


def plain_keras_seconds(model, train, validation, epochs, batch_size, **execution):
    """Epoch seconds of the same layers, fresh, in a plain functional model fitted on numpy arrays.

    ``execution`` (``jit_compile``, ``steps_per_execution``) goes to ``compile`` as in tfae.
    """
    inputs = keras.Input(model.image_shape)
    encoder = keras.models.clone_model(model.encoder)
    decoder = keras.models.clone_model(model.decoder)
    plain = keras.Model(inputs, decoder(encoder(inputs)))
    plain.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse", **execution)
    timer = EpochTimer()
    plain.fit(train, train, validation_data=(validation, validation), batch_size=batch_size,
              epochs=epochs, callbacks=[timer], verbose=0)
    return timer.seconds


def tfae_seconds(family, epochs, batch_size, limit, precision="float32", **execution):
    """Epoch seconds of ``tfae.fit`` with the family's defaults, in a throwaway run folder."""
    with tempfile.TemporaryDirectory() as folder:
        config = tfae.FitConfig(model=family, epochs=epochs, batch_size=batch_size, limit=limit,
                                precision=precision)
        run = tfae.fit(config, pathlib.Path(folder) / "run", export=False, verbose=0, **execution)
    return run.history["seconds"]


def _timed(seconds):
    """The epochs after the first (which traces and warms up), or the only one."""
    return seconds[1:] if len(seconds) > 1 else seconds


def torch_model(model):
    """The same layers in PyTorch (channels first), translated from the Keras model.

    A ``Sequential`` of two: the encoder, then the decoder.
    """
    import torch

    activations = {"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh}
    parts = []
    for part in (model.encoder, model.decoder):
        modules = []
        for layer in part.layers:
            if isinstance(layer, keras.layers.Flatten):
                modules.append(torch.nn.Flatten())
            elif isinstance(layer, keras.layers.Dense):
                modules.append(torch.nn.Linear(*layer.kernel.shape))
            elif isinstance(layer, keras.layers.Conv2DTranspose):
                out_channels, in_channels = layer.kernel.shape[2:]
                modules.append(torch.nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2,
                                                        padding=1, output_padding=1))
            elif isinstance(layer, keras.layers.Conv2D):
                in_channels, out_channels = layer.kernel.shape[2:]
                modules.append(torch.nn.Conv2d(in_channels, out_channels, 3, padding=1))
            elif isinstance(layer, keras.layers.MaxPooling2D):
                modules.append(torch.nn.MaxPool2d(2))
            elif isinstance(layer, keras.layers.Reshape):
                height, width, channels = layer.target_shape
                modules.append(torch.nn.Unflatten(1, (channels, height, width)))
            activation = getattr(getattr(layer, "activation", None), "__name__", "linear")
            if activation in activations:
                modules.append(activations[activation]())
        parts.append(torch.nn.Sequential(*modules))
    return torch.nn.Sequential(*parts)


def torch_corruption(spec):
    """A family's default noise (``gaussian``, ``masking``, ``occlusion``) in PyTorch, or none."""
    import torch

    from tfae.corruptions import parse_corruption

    if spec is None:
        return lambda images: images
    kind, value = spec.split(":")
    if kind == "gaussian":
        return lambda images: (images + float(value) * torch.randn_like(images)).clamp(0, 1)
    if kind == "masking":
        return lambda images: images * (torch.rand_like(images) >= float(value))
    if kind == "occlusion":
        def occlude(images):  # a size x size black square per image, channels first
            batch, _, height, width = images.shape
            # occlusion:50% is half the shorter side: the size tfae's corruption gives it
            size = parse_corruption(spec).patch_size((height, width, images.shape[1]))
            top = torch.randint(0, height - size + 1, (batch, 1, 1, 1))
            left = torch.randint(0, width - size + 1, (batch, 1, 1, 1))
            rows = torch.arange(height).reshape(1, 1, -1, 1)
            columns = torch.arange(width).reshape(1, 1, 1, -1)
            patch = (rows >= top) & (rows < top + size) & (columns >= left) & (columns < left + size)
            return images.masked_fill(patch, 0.0)
        return occlude
    raise ValueError(f"no PyTorch version of the {kind} noise")


def torch_contractive_penalty(encoder, codes):
    """The closed-form penalty of a one-layer sigmoid encoder, sum_j (h_j(1-h_j))^2 ||W_j||^2."""
    (linear,) = [module for module in encoder if hasattr(module, "weight")]
    return ((codes * (1 - codes)) ** 2 * (linear.weight ** 2).sum(1)).sum(1).mean()


def torch_seconds(model, train, validation, epochs, batch_size, noise=None):
    """Epoch seconds of the same model trained in PyTorch with Adam and MSE.

    Like tfae, it corrupts the inputs with the family's ``noise`` and adds the contractive
    penalty (closed form, the default one-layer sigmoid encoder) when the model has one.
    """
    import torch

    torch.manual_seed(0)
    net = torch_model(model)
    encoder, decoder = net
    corrupt = torch_corruption(noise)
    penalty_weight = getattr(model, "penalty_weight", 0.0)
    shape = (-1, model.image_shape[2], *model.image_shape[:2])
    train = torch.from_numpy(train.transpose(0, 3, 1, 2).copy()).reshape(shape)
    validation = torch.from_numpy(validation.transpose(0, 3, 1, 2).copy()).reshape(shape)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.MSELoss()
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        net.train()
        for indices in torch.randperm(len(train)).split(batch_size):
            batch = train[indices]
            optimizer.zero_grad()
            codes = encoder(corrupt(batch))
            loss = loss_fn(decoder(codes).reshape(batch.shape), batch)
            if penalty_weight:
                loss = loss + penalty_weight * torch_contractive_penalty(encoder, codes)
            loss.backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            for batch in validation.split(batch_size):
                loss_fn(net(batch).reshape(batch.shape), batch)
        seconds.append(time.perf_counter() - start)
    return seconds


def throughput_rows(epochs, rounds, batch_size, limit, ceiling, models=KERAS_FAMILIES):
    """Each of ``models`` with its defaults, then their rows of ``TUNED`` (every baseline alike).

    tfae, plain Keras and PyTorch take turns for ``rounds`` rounds; each is scored by the median
    of its timed epochs. The fraction of the ceiling counts all the arithmetic of an epoch: the
    training steps and the validation's forward pass.
    """
    splits = data.load("mnist", limit=limit)
    train, validation = as_arrays(splits.train), as_arrays(splits.validation)
    rows = []
    chosen = [(name, {}, {}) for name in models] + [row for row in TUNED if row[0] in models]
    for family, config, execution in chosen:
        batch = config.get("batch_size", batch_size)
        model = build_model(family, (28, 28, 1))
        noise = get_family(family).fit_defaults.get("noise")
        # The plain model is compiled as tfae compiles a run of as many steps.
        plain_execution = execution_for(model, execution_options(family, **execution),
                                        epochs * math.ceil(len(train) / batch))
        runs = {
            "tfae": lambda: tfae_seconds(family, epochs, batch, limit, **execution),
            "keras": lambda: plain_keras_seconds(model, train, validation, epochs, batch,
                                                 **plain_execution),
        }
        if torch_version():
            runs["torch"] = lambda: torch_seconds(model, train, validation, epochs, batch, noise)
        seconds = {name: [] for name in runs}
        for _ in range(rounds):
            for name, run in runs.items():
                seconds[name] += _timed(run())
        rates = {name: len(train) / statistics.median(timed) for name, timed in seconds.items()}
        flops = forward_flops(model)
        epoch_flops = flops * (3 * len(train) + len(validation))
        options = {**config, **execution}
        name = family + "".join(_flag(key, value) for key, value in options.items())
        rows.append({"family": name, "flops": 3 * flops, **rates, "epochs": len(seconds["tfae"]),
                     "defaults": not options,
                     "ceiling": epoch_flops * rates["tfae"] / len(train) / 1e9 / ceiling})
    return rows


def _flag(option, value):
    """``--batch-size 1024``, ``--jit-compile``, ``--no-jit-compile``: ``option`` as tfae fit takes it."""
    name = option.replace("_", "-")
    if isinstance(value, bool):
        return f" --{name}" if value else f" --no-{name}"
    return f" --{name} {value}"


def ridge_scaling_rows(sizes, widths):
    splits = data.load("mnist")
    everything = splits.train.concatenate(splits.validation)
    rows = []
    for images in sizes:
        for width in widths:
            batches = data.pipeline(everything.take(images), 1000)
            model = build_model("randomized", (28, 28, 1), hidden=(width,))
            start = time.perf_counter()
            train_layerwise(model, batches, ridge_c=get_family("randomized").defaults["ridge_c"],
                            verbose=0)
            rows.append((images, width, time.perf_counter() - start))
    return rows


def inference_rows(batch_sizes, repeats):
    model = build_model("deep", (28, 28, 1))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        served = tf.saved_model.load(str(export_saved_model(model, pathlib.Path(folder) / "deep")))
        for batch in batch_sizes:
            images = tf.random.uniform((batch, 28, 28, 1))
            calls = {
                "SavedModel encode": lambda: served.signatures["encode"](images=images),
                "SavedModel serving_default":
                    lambda: served.signatures["serving_default"](images=images),
                "model.predict": lambda: model.predict(images, batch_size=batch, verbose=0),
            }
            for name, call in calls.items():
                call()
                start = time.perf_counter()
                for _ in range(repeats):
                    call()
                rows.append((name, batch, batch * repeats / (time.perf_counter() - start)))
    return rows


def report(args):
    quick = args.quick
    limit = 1000 if quick else None
    epochs = 1 if quick else args.epochs
    ceiling = matmul_ceiling(512 if quick else 4096, 2 if quick else 5)
    throughput = throughput_rows(epochs, 1 if quick else args.rounds, 256, limit, ceiling,
                                 args.models.split(",") if args.models else KERAS_FAMILIES)
    quick_splits = data.load("mnist", limit=limit)
    contractive = contractive_rows(quick_splits, max(epochs, 2))
    denoising = denoising_rows(quick_splits, max(epochs, 2), rounds=1 if quick else 2)
    randomized = randomized_rows(quick_splits, sgd_cap=2 if quick else 300)
    scaling = ridge_scaling_rows((1000, 2000) if quick else (10_000, 30_000, 60_000),
                                 (128,) if quick else (700, 1400, 2000))
    inference = inference_rows((1, 64, 1024), 3 if quick else 50)
    return format_report(args, ceiling, throughput, contractive, denoising, randomized, scaling,
                         inference)


def torch_version():
    """PyTorch's installed version, or None: without it the PyTorch columns read n/a."""
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None


def _verdict(met):
    return "met" if met else "**missed**"


def format_report(args, ceiling, throughput, contractive, denoising, randomized, scaling,
                  inference):
    command = "python bench/suite.py" + (" --quick" if args.quick else
                                         f" --epochs {args.epochs} --rounds {args.rounds}") + (
        f" --models {args.models}" if args.models else "")
    timed = throughput[0]["epochs"]
    lines = [SECTION, "",
             f"`{command}` on {time.strftime('%Y-%m-%d')}. Machine: {cpu_model()}, "
             f"{os.cpu_count()} cores; TensorFlow {tf.__version__}, Keras {keras.__version__}, "
             f"PyTorch {torch_version() or 'not installed'}."
             + (" **Quick mode: small subsets, not a measurement.**" if args.quick else ""), "",
             f"Matrix-multiply ceiling (float32, TensorFlow): **{ceiling:.1f} GFLOP/s**.", "",
             "### Training throughput (images/s, validation included, batch 256 unless given)", "",
             f"Each figure is the median of {timed} epochs: tfae, plain Keras and PyTorch took turns "
             f"for {1 if args.quick else args.rounds} round(s), each run's first epoch (tracing, "
             "warm-up) left out. \"of ceiling\" is an epoch's arithmetic (3x the forward FLOPs of "
             "each training image, 1x of each validation image) over its time, against the "
             "ceiling.", "",
             "| family | MFLOP/image | tfae | plain Keras | PyTorch | tfae / Keras | "
             "tfae / PyTorch | of ceiling |", "|---|---|---|---|---|---|---|---|"]
    for row in throughput:
        versus_torch = f"{row['tfae'] / row['torch']:.2f}" if "torch" in row else "n/a"
        torch_rate = f"{row['torch']:,.0f}" if "torch" in row else "n/a"
        lines.append(f"| `{row['family']}` | {row['flops'] / 1e6:.1f} | {row['tfae']:,.0f} | "
                     f"{row['keras']:,.0f} | {torch_rate} | {row['tfae'] / row['keras']:.2f} | "
                     f"{versus_torch} | {row['ceiling']:.0%} |")
    lines += ["", "PyTorch trains the same model as tfae: the family's default noise (occlusion for "
              "`shallow`, gaussian for `denoising`) and the contractive penalty (closed form). The "
              "plain Keras script trains the same layers on clean inputs and plain MSE, compiled as "
              "tfae compiles them (the dense families under XLA, 16 batches per call; the rows "
              "with `--no-jit-compile --steps-per-execution 1` under Keras' defaults, for both), "
              "so its ratio shows the framework's overhead and what noise and penalty cost tfae. "
              "It feeds numpy arrays through Keras' own `tf.data` adapter, whose autotuner tfae's "
              "pipeline turns off (it stalled the first batch of some epochs by seconds). "
              "The goals are judged on the families' defaults.",
              "", "### Contractive penalty (x a plain epoch of the same layers)", "",
              "| encoder | penalty | s/epoch | x plain |", "|---|---|---|---|"]
    lines += [f"| {shape} | {method} | {seconds:.2f} | {ratio:.2f} |"
              for shape, method, seconds, ratio in contractive]
    lines += ["", "### Corruption in the pipeline (x a clean epoch of the `deep` default)", "",
              "| inputs | s/epoch | x clean |", "|---|---|---|"]
    lines += [f"| {spec} | {seconds:.2f} | {ratio:.3f} |" for spec, seconds, ratio in denoising]
    r = randomized
    lines += ["", "### Randomized", "", "| measure | value |", "|---|---|",
              f"| ridge, 784-700-700, both layers | {r['ridge_seconds']:.1f} s |",
              f"| ridge, first layer | {r['ridge_layer_seconds']:.1f} s |",
              f"| sgd, first layer, to 1.05x ridge's error | {r['sgd_seconds']:.1f} s, "
              f"{r['sgd_epochs']} epochs{'' if r['sgd_reached'] else ' (capped, not reached)'} |",
              f"| sgd / ridge | {'' if r['sgd_reached'] else '>= '}"
              f"{r['sgd_seconds'] / r['ridge_layer_seconds']:.0f}x |", "",
              "| images | width | ridge seconds (one layer, default C) |", "|---|---|---|"]
    lines += [f"| {images:,} | {width} | {seconds:.1f} |" for images, width, seconds in scaling]
    lines += ["", "### Inference (images/s)", "", "| endpoint | batch | images/s |", "|---|---|---|"]
    lines += [f"| {name} | {batch} | {rate:,.0f} |" for name, batch, rate in inference]

    deep = max((row for row in throughput if row["family"].split()[0] == "deep"),
               key=lambda row: row["ceiling"])
    exact = next(ratio for shape, method, _, ratio in contractive
                 if method == "exact" and shape.startswith("784-500"))
    worst_corruption = max(ratio for spec, _, ratio in denoising if spec != "clean")
    sixty_thousand = [seconds for images, _, seconds in scaling if images == 60_000]
    defaults = [row for row in throughput if row["defaults"]]
    lowest = min(row["tfae"] / row["keras"] for row in defaults)
    lines += ["", "### Goals", "", "| goal | measured | |", "|---|---|---|",
              f"| tfae / Keras >= 0.95, every family | {lowest:.2f} (lowest) | "
              f"{_verdict(lowest >= 0.95)} |"]
    if all("torch" in row for row in defaults):
        lowest = min(row["tfae"] / row["torch"] for row in defaults)
        lines.append(f"| tfae / PyTorch >= 1.0, every family | {lowest:.2f} (lowest) | "
                     f"{_verdict(lowest >= 1.0)} |")
    lines += [f"| `deep` >= 85% of the ceiling | {deep['ceiling']:.0%} (`{deep['family']}`) | "
              f"{_verdict(deep['ceiling'] >= 0.85)} |",
              f"| contractive `exact`, deep shape, <= 1.5x | {exact:.2f}x | {_verdict(exact <= 1.5)} |",
              f"| corruption <= 1.05x | {worst_corruption:.3f}x (worst) | "
              f"{_verdict(worst_corruption <= 1.05)} |"]
    if sixty_thousand:
        lines.append(f"| ridge on 60,000 images < 30 s | {max(sixty_thousand):.1f} s (widest) | "
                     f"{_verdict(max(sixty_thousand) < 30)} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small subsets, one epoch: a smoke test")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per training run")
    parser.add_argument("--rounds", type=int, default=2,
                        help="turns tfae, plain Keras and PyTorch each take per family")
    parser.add_argument("--models", help="comma-separated families for the throughput rows "
                        "(default: every family trained by Model.fit)")
    parser.add_argument("--write", type=pathlib.Path, help="put the report in this Markdown file")
    args = parser.parse_args()
    text = report(args)
    print(text)
    if args.write:
        write_section(args.write, text)


if __name__ == "__main__":
    main()
