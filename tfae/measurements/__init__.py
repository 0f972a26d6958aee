"""The measurements of ``tfae evaluate``, one module each, and their registry.

A measurement module declares everything about its measurement in one
``register_measurement(Measurement(...))`` call: the key it writes in ``metrics.json``, how it
measures (from a ``Measuring``: the opened model, the data, and what measurements share,
such as the codes and the fitted probes, each computed once), the lines it adds to the printed
summary and the columns it adds to a report's table. ``tfae.evaluation.evaluate`` is a loop over
the registry, so a new measurement is one new module. The built-in ones are this package's
modules; others register from any module imported before evaluating (a family module of
``TFAE_FAMILY_MODULES`` may register one).

Examples:
    >>> from tfae.measurements import Measurement, measurement_names, register_measurement
    >>> register_measurement(Measurement("mean_code", "the codes' mean",
    ...                                  lambda measuring: 0.0, lambda value: []))
    >>> measurement_names()[-5:]
    ['jacobian_norm', 'manifold', 'anomaly', 'likelihood', 'mean_code']
    >>> unregister_measurement("mean_code")
"""

import dataclasses
import functools
import math
import sys

from tfae.errors import TfaeError
from tfae.registry import Registry

# The built-in measurements, in the order of the summary and the report's columns; each is the
# module of its name, which is its key in metrics.json.
BUILT_IN = ("reconstruction", "probe", "baselines", "denoising", "occlusion", "colorization",
            "jacobian_norm", "manifold", "anomaly", "likelihood")
SEED = 1234  # one corruption for every model, so their numbers compare
# The probes and baselines of a streamed split (a prepared folder, too large to hold) are fitted on
# a seeded sample of this many training images.
STREAMED_PROBE_IMAGES = 20_000
# When the baselines are measured (``--baselines``). ``auto`` measures them when the training
# images' pixels, as float32, take at most BASELINE_PIXEL_BYTES: the pixels' probes hold them and
# a standardised copy, and the kNN probe compares every test image with each of them, so both
# grow as images x pixels. 1 GiB is full MNIST five times over, 800 photo crops at 64x64x3 thirty
# times over, and about 9,700 images at 96x96x3.
# Images a batch through the model holds at most, in pixels: a conv model's activations at
# 96x96x3 took 590 MB a layer in a batch of 500.
BATCH_PIXELS = 500 * 32 * 32 * 3
BASELINES = ("auto", "always", "never")
BASELINE_PIXEL_BYTES = 1 << 30


@dataclasses.dataclass(frozen=True)
class Measurement:
    """A measurement of ``tfae evaluate``.

    Attributes:
        name: its key in ``metrics.json``.
        summary: one line on what it measures.
        measure: ``measure(measuring) -> value``, JSON-ready; ``None`` leaves the key out.
        rows: ``rows(value) -> [(label, text)]``, its lines in the printed summary.
        columns: ``columns(value) -> [(header, cell)]``, its columns in a report's table (the
            header may depend on the data, such as the occlusion patch's size); ``None``: none.
        colour: measured on colour images only.

    Examples:
        >>> get_measurement("jacobian_norm").rows(0.5)
        [('mean ||J||_F', '0.5000')]
    """

    name: str
    summary: str
    measure: callable
    rows: callable
    columns: callable = None
    colour: bool = False


@dataclasses.dataclass
class Collected:
    """A split run through the model: its (corrupted) inputs, clean targets, codes,
    reconstructions of the inputs (``None`` where not asked for), and labels, as numpy arrays
    (measurements only read them); and ``errors``, the
    reconstructions' errors summed over every image (``Errors``).

    Examples:
        >>> noisy = measuring.collect(measuring.splits.test, "gaussian:0.5")  # doctest: +SKIP
        >>> psnr(noisy.targets, noisy.reconstructions)  # doctest: +SKIP
        18.4
    """

    inputs: object
    targets: object
    codes: object
    reconstructions: object
    labels: object
    errors: object = None


@dataclasses.dataclass
class Errors:
    """Sums over the images of a split, batch by batch, so that a split too large to hold is
    measured whole: squared errors and binary cross-entropies of the reconstructions over every
    pixel, and every image's PSNR of its reconstruction and of its (corrupted) input.

    Examples:
        >>> errors = Errors(images=2, pixels=8, squared_error=0.08, cross_entropy=1.6,
        ...                 psnr=40.0, input_psnr=30.0)
        >>> errors.mean("squared_error"), errors.mean("psnr")
        (0.01, 20.0)
    """

    images: int = 0
    pixels: int = 0
    squared_error: float = 0.0
    cross_entropy: float = 0.0
    psnr: float = 0.0
    input_psnr: float = 0.0

    def mean(self, name):
        """``name``'s mean: over pixels for the errors, over images for the PSNRs."""
        per_pixel = name in ("squared_error", "cross_entropy")
        return getattr(self, name) / (self.pixels if per_pixel else self.images)

    def add(self, inputs, targets, reconstructions):
        """Adds a batch's sums (tensors of images in [0, 1])."""
        from tfae.probes import batch_errors

        for name, value in batch_errors(inputs, targets, reconstructions).items():
            setattr(self, name, getattr(self, name) + float(value))
        self.images += int(targets.shape[0])
        self.pixels += math.prod(targets.shape)


class Measuring:
    """What the measurements of one evaluation share, each part computed on first use.

    Args:
        opened: the model (``tfae.opened.OpenedModel``).
        splits: the data (``tfae.data.Splits``).
        batch_size: images per batch through the model, at most; fewer where they would hold
            more than ``BATCH_PIXELS`` pixels (500 images up to 32x32x3, 55 at 96x96x3).
        progress: a ``tfae.progress.Progress`` that shows each part as a stage (default: none).
        probe_limit: fit the probes and baselines on a seeded sample of this many training
            images; ``None``: every image of a split held in memory, ``STREAMED_PROBE_IMAGES``
            of a streamed one (``tfae.data.splits.Streamed``); 0: every image.
        baselines: ``"auto"`` (measure the baselines when the training images' pixels take at
            most ``BASELINE_PIXEL_BYTES`` as float32), ``"always"`` or ``"never"``
            (``BASELINES``).

    Attributes:
        notes: sentences for ``metrics.json``'s ``notes`` (why a measurement was left out).

    Examples:
        >>> splits = load("mnist", limit=500)  # doctest: +SKIP
        >>> measuring = Measuring(open_model("runs/deep"), splits)  # doctest: +SKIP
        >>> measuring.test.codes.shape  # doctest: +SKIP
        (500, 256)
    """

    def __init__(self, opened, splits, batch_size=500, progress=None, probe_limit=None,
                 baselines="auto"):
        from tfae.progress import Progress

        if baselines not in BASELINES:
            raise TfaeError(f"baselines must be one of {', '.join(BASELINES)}, not {baselines!r}")
        self.opened = opened
        self.splits = splits
        # A batch of wide images holds every layer's activations for each: fewer of them.
        self.batch_size = min(batch_size,
                              max(1, BATCH_PIXELS // math.prod(splits.image_shape)))
        self.probe_limit = probe_limit
        self.baselines_wanted = baselines
        self.progress = progress or Progress(enabled=False)
        self.notes = []

    @property
    def colour(self):
        return self.splits.image_shape[-1] == 3

    def batches(self, split, corruption=None):
        """Labelled batches of ``split``, the inputs corrupted by the spec ``corruption`` with
        ``SEED``, the same for every model."""
        from tfae.corruptions import parse_corruption
        from tfae.data import pipeline

        return pipeline(split, self.batch_size, seed=SEED, with_labels=True,
                        corruption=corruption and parse_corruption(corruption),
                        fresh_corruption=False)

    def collect(self, split, corruption=None, reconstruct=True, images=True, name=None,
                keep=True):
        """``split`` (corrupted by the spec ``corruption``) run through the model: ``Collected``,
        with the reconstructions only if ``reconstruct`` and the images only if ``images``, as
        numpy arrays; a stage of ``progress`` named ``name`` (default: after the
        corruption). With ``reconstruct`` its ``errors`` are summed over every image; without
        ``keep`` they are all it holds (one batch in memory at a time)."""
        name = name or f"{corruption or 'clean'} test images through the model"
        count = int(split.cardinality())
        parts = {key: _Rows(count) for key in
                 ("inputs", "targets", "codes", "reconstructions", "labels")}
        errors = Errors() if reconstruct else None
        with self.progress.stage(name, total=-(-count // self.batch_size), unit="batch") as tick:
            for noisy, clean, labels in self.batches(split, corruption):
                if reconstruct:
                    codes, reconstructions = self.through_model(noisy)
                    errors.add(noisy, clean, reconstructions)
                else:
                    codes = self.opened.encode(noisy)
                if keep:
                    parts["codes"].add(codes)
                    parts["labels"].add(labels)
                    if reconstruct:
                        parts["reconstructions"].add(reconstructions)
                if keep and images:  # uncorrupted, the inputs are the targets: one array serves
                    parts["inputs"].add(noisy)
                    if corruption is not None:
                        parts["targets"].add(clean)
                tick()
        joined = {key: rows.array() for key, rows in parts.items()}
        if joined["targets"] is None:
            joined["targets"] = joined["inputs"]
        return Collected(**joined, errors=errors)

    def through_model(self, images):
        """``(codes, reconstructions)`` of a batch: from the codes when the model can decode
        them, one pass, not two."""
        codes = self.opened.encode(images)
        return codes, (self.opened.decode(codes) if self.opened.decode
                       else self.opened.reconstruct(images))

    def errors(self, corruption=None, name=None):
        """``Errors`` of the whole test split's reconstructions (corrupted by the spec
        ``corruption``): those of ``test`` when it holds the whole split, else streamed."""
        if corruption is None and self.test_images is self.splits.test:
            return self.test.errors
        return self.collect(self.splits.test, corruption, name=name, keep=False).errors

    def sample(self, split, limit, of, used):
        """``split``, or a seeded sample of ``limit`` of its images held as tensors (read once:
        every measurement sees the same images), said in the notes: ``used`` (what was measured
        on it) a sample of the ``of`` images."""
        import tensorflow as tf

        from tfae.data.splits import Streamed

        count = int(split.cardinality())
        if not limit or limit >= count:
            return split
        with self.progress.stage(f"{of} images: a seeded sample of {limit:,}"):
            shuffled = (split.dataset(shuffle=True, seed=SEED) if isinstance(split, Streamed)
                        else split.shuffle(count, seed=SEED))
            images, labels = shuffled.take(limit).batch(limit).get_single_element()
        self.notes.append(f"{used} a seeded sample of {limit:,} of the {count:,} {of} images")
        return tf.data.Dataset.from_tensor_slices((images, labels))

    @functools.cached_property
    def probe_images(self):
        """The training images the probes and baselines are fitted on: the training split, or
        a seeded sample of ``probe_limit`` of them (``sample``)."""
        from tfae.data.splits import Streamed

        limit = self.probe_limit
        if limit is None and isinstance(self.splits.train, Streamed):
            limit = STREAMED_PROBE_IMAGES
        return self.sample(self.splits.train, limit, "training",
                           "the probes and baselines were fitted on")

    @functools.cached_property
    def test_images(self):
        """The test images the probes, baselines and other measures of codes are scored on:
        the test split, or of a streamed one (``tfae.data.splits.Streamed``) a seeded sample of
        ``probe_limit`` (default ``STREAMED_PROBE_IMAGES``). Reconstruction and denoising
        (``errors``) cover the whole split either way."""
        from tfae.data.splits import Streamed

        if not isinstance(self.splits.test, Streamed):
            return self.splits.test
        return self.sample(self.splits.test, STREAMED_PROBE_IMAGES if self.probe_limit is None
                           else self.probe_limit, "test", "the probes, baselines, occlusion, "
                           "Jacobian and manifold measures were scored on (reconstruction and "
                           "denoising on every test image)")

    @functools.cached_property
    def train(self):
        """The probes' training images' codes and labels (no measurement reconstructs them;
        ``baselines`` reads their pixels)."""
        return self.collect(self.probe_images, reconstruct=False, images=False,
                            name="training images: encoding")

    @functools.cached_property
    def test(self):
        """The test images (``test_images``) through the model."""
        return self.collect(self.test_images, name="test images: encoding and reconstructing")

    @functools.cached_property
    def probe_accuracies(self):
        """The linear and kNN probes' accuracies on the test codes, both fitted on the training
        codes, or ``None`` (and a note). The linear probe is kept as ``linear_probe``; the kNN
        probe and the training codes, the largest arrays of a wide code, are let go (``train``
        encodes them again if asked)."""
        from tfae.probes import fit_probes, score

        probes, reason = fit_probes(self.train.codes, self.train.labels, self.test.labels,
                                    self.progress)
        del self.train
        self._linear_probe = probes and probes["linear"]
        if reason:  # the other measures that need labels go with the probes: say so once
            self.notes.append(reason.replace("probes left out", "probes, the occlusion probe "
                                             "and manifold convergence left out", 1))
            return None
        if not probes["linear"].converged:
            self.notes.append(f"the linear probe stopped after {probes['linear'].iterations} "
                              "L-BFGS iterations, short of its tolerance")
        accuracies = {name: score(probe, self.test.codes, self.test.labels, self.progress)
                      for name, probe in probes.items()}
        return accuracies

    @property
    def linear_probe(self):
        """The linear probe fitted on the training codes (``tfae.probes.LinearProbe``), or
        ``None`` without labels."""
        self.probe_accuracies  # fits it
        return self._linear_probe

    @functools.cached_property
    def baselines(self):
        """``(rows, pixel_classifier)`` of ``tfae.probes.baselines`` on these splits, or
        ``(None, None)`` when they are not measured (``baselines_skipped`` says why)."""
        from tfae.data import pipeline
        from tfae.probes import baselines

        skipped = self.baselines_skipped
        if skipped:
            self.notes.append(f"the baselines (and manifold convergence, which classifies "
                              f"with the pixels' linear probe) were not measured: {skipped}")
            if self.baselines_wanted == "auto":
                print(f"warning: baselines not measured: {skipped}", file=sys.stderr,
                      flush=True)
            return None, None
        split = self.probe_images
        with self.progress.stage("training images: reading pixels"):
            images, _, labels = next(iter(pipeline(split, max(1, int(split.cardinality())),
                                                   with_labels=True)))
        rows = baselines(images, labels.numpy(), self.test.targets, self.test.labels,
                         self.test.codes.shape[1], progress=self.progress)
        return rows


    @property
    def baselines_skipped(self):
        """Why the baselines are not measured (``baselines``), or ``None``: they are."""
        if self.baselines_wanted == "never":
            return "--baselines never"
        pixel_bytes = 4 * int(self.probe_images.cardinality()) * math.prod(
            self.splits.image_shape)
        if self.baselines_wanted == "auto" and pixel_bytes > BASELINE_PIXEL_BYTES:
            return (f"the {int(self.probe_images.cardinality()):,} training images' pixels take "
                    f"{pixel_bytes / 1e9:.1f} GB as float32, over --baselines auto's "
                    f"{BASELINE_PIXEL_BYTES / 2**30:g} GiB (--baselines always measures them, "
                    "--probe-limit N fits them on fewer images)")
        return None


class _Rows:
    """A split's batches written into one numpy array made at the first batch, so that the
    largest arrays of an evaluation (a training split's wide codes) are never held twice: a list
    of batches joined at the end is, in TensorFlow's allocator, which keeps what it held. The
    array is aligned for TensorFlow to share (``tfae.probes.aligned_empty``): the probes' matrix
    products run on it in place."""

    def __init__(self, count):
        self.count, self.filled, self.rows = count, 0, None

    def add(self, batch):
        import numpy as np

        batch = np.asarray(batch)
        if self.rows is None:
            from tfae.probes import aligned_empty

            self.rows = aligned_empty((self.count, *batch.shape[1:]), batch.dtype)
        self.rows[self.filled:self.filled + len(batch)] = batch
        self.filled += len(batch)

    def array(self):
        """The rows added; ``None`` if none were."""
        return None if self.rows is None else self.rows[:self.filled]


# The registry (``tfae.registry.Registry``): ``register_measurement(Measurement(...))`` adds one
# (one of the same name is replaced), ``unregister_measurement(name)`` removes one.
MEASUREMENTS = Registry("measurement", BUILT_IN, __name__)
register_measurement, unregister_measurement = MEASUREMENTS.register, MEASUREMENTS.unregister
get_measurement = MEASUREMENTS.get


def measurements():
    """The registered measurements: the built-in ones first, in ``BUILT_IN``'s order, then the
    others in the order they registered.

    Examples:
        >>> [measurement.name for measurement in measurements() if measurement.colour]
        ['colorization']
    """
    return MEASUREMENTS.all()


def measurement_names():
    """The registered measurements' names, their keys in ``metrics.json``.

    Examples:
        >>> measurement_names()[:2]
        ['reconstruction', 'probe']
    """
    return MEASUREMENTS.names()


def percent(value):
    """A share as a percentage, ``–`` for none.

    Examples:
        >>> percent(0.91234), percent(None)
        ('91.23%', '–')
    """
    return "–" if value is None else f"{value:.2%}"
