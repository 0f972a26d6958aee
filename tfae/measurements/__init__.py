"""The measurements of ``tfae evaluate``, one module each, and their registry.

A measurement module declares everything about its measurement in one
``register_measurement(Measurement(...))`` call: the key it writes in ``metrics.json``, how it
measures (from a ``Measuring``: the model's endpoints, the data, and what measurements share,
such as the codes and the fitted probes, each computed once), the lines it adds to the printed
summary and the columns it adds to a report's table. ``tfae.evaluate.evaluate`` is a loop over
the registry, so a new measurement is one new module. The built-in ones are this package's
modules; others register from any module imported before evaluating (a family module of
``TFAE_FAMILY_MODULES`` may register one).

Examples:
    >>> from tfae.measurements import Measurement, measurement_names, register_measurement
    >>> register_measurement(Measurement("mean_code", "the codes' mean",
    ...                                  lambda measuring: 0.0, lambda value: []))
    >>> measurement_names()[-5:]
    ['occlusion', 'colorization', 'jacobian_norm', 'manifold', 'mean_code']
    >>> unregister_measurement("mean_code")
"""

import dataclasses
import functools

from tfae.registry import Registry

# The built-in measurements, in the order of the summary and the report's columns; each is the
# module of its name, which is its key in metrics.json.
BUILT_IN = ("reconstruction", "probe", "baselines", "denoising", "occlusion", "colorization",
            "jacobian_norm", "manifold")
SEED = 1234  # one corruption for every model, so their numbers compare


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
    reconstructions of the inputs (``None`` where not asked for), and labels, as numpy arrays.

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


class Measuring:
    """What the measurements of one evaluation share, each part computed on first use.

    Args:
        endpoints: the model (``tfae.evaluate.Endpoints``).
        splits: the data (``tfae.data.Splits``).
        batch_size: images per batch through the model.

    Attributes:
        notes: sentences for ``metrics.json``'s ``notes`` (why a measurement was left out).

    Examples:
        >>> splits = load("mnist", limit=500)  # doctest: +SKIP
        >>> measuring = Measuring(open_endpoints("runs/deep"), splits)  # doctest: +SKIP
        >>> measuring.test.codes.shape  # doctest: +SKIP
        (500, 256)
    """

    def __init__(self, endpoints, splits, batch_size=500):
        self.endpoints = endpoints
        self.splits = splits
        self.batch_size = batch_size
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

    def collect(self, split, corruption=None, reconstruct=True):
        """``split`` (corrupted by the spec ``corruption``) run through the model: ``Collected``,
        with the reconstructions only if ``reconstruct``."""
        import numpy as np

        parts = [[], [], [], [], []]
        for noisy, clean, label in self.batches(split, corruption):
            reconstructions = np.asarray(self.endpoints.reconstruct(noisy)) if reconstruct else None
            for part, value in zip(parts, (noisy.numpy(), clean.numpy(),
                                           np.asarray(self.endpoints.encode(noisy)),
                                           reconstructions, label.numpy())):
                part.append(value)
        return Collected(*(np.concatenate(part) if part[0] is not None else None
                           for part in parts))

    @functools.cached_property
    def train(self):
        """The training split's images, codes and labels (no measurement reconstructs it)."""
        return self.collect(self.splits.train, reconstruct=False)

    @functools.cached_property
    def test(self):
        """The test split through the model."""
        return self.collect(self.splits.test)

    @functools.cached_property
    def probes(self):
        """The linear and kNN probes fitted on the training codes, or ``None`` (and a note)."""
        from tfae.probes import fit_probes

        probes, reason = fit_probes(self.train.codes, self.train.labels, self.test.labels)
        if reason:
            self.notes.append(reason)
        return probes

    @functools.cached_property
    def baselines(self):
        """``(rows, pixel_probes)`` of ``tfae.probes.baselines`` on these splits; the training
        split's pixels, the largest arrays here, are let go once they are measured."""
        from tfae.probes import baselines

        source = self.splits.source
        key = (source.get("fingerprint"), self.train.inputs.shape, self.test.targets.shape)
        result = baselines(self.train.inputs, self.train.labels, self.test.targets,
                           self.test.labels, self.train.codes.shape[1],
                           key=key if source.get("fingerprint") else None)
        self.train.inputs = self.train.targets = None
        return result


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
