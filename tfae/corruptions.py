"""Corruptions of image batches as TensorFlow ops: noise for denoising, occlusion for robustness,
grayscale for colourisation.

Every corruption takes a batch of float images in [0, 1] shaped ``(batch, height, width,
channels)`` and a stateless seed (an int tensor of shape ``[2]``), and returns a batch of the same
shape clipped to [0, 1]. Being stateless ops, they run inside a ``tf.data`` pipeline (see
``tfae.data.pipeline``), give the same output for the same seed and a fresh one for a new seed.

Each kind is declared once, as a ``CorruptionKind`` in a registry: its name, what its amount is
and the values it takes, its op and its help, from which ``parse_corruption`` and ``--noise``'s
help are made. ``register_corruption`` adds a kind of one's own. The ops import TensorFlow when
they run, so that the command line reads the declarations without it.

Examples:
    >>> import tensorflow as tf
    >>> from tfae.corruptions import parse_corruption
    >>> corrupt = parse_corruption("masking:0.25")
    >>> noisy = corrupt(tf.ones((2, 28, 28, 1)), seed=tf.constant([1, 2]))
    >>> noisy.shape
    TensorShape([2, 28, 28, 1])
"""

import dataclasses
import math

from tfae.errors import TfaeError
from tfae.registry import Registry


def gaussian_noise(images, std, seed):
    """Adds zero-mean gaussian noise of standard deviation ``std``.

    Examples:
        >>> import tensorflow as tf
        >>> noisy = gaussian_noise(tf.zeros((1, 4, 4, 1)), 0.5, seed=tf.constant([0, 1]))
    """
    import tensorflow as tf

    noise = tf.random.stateless_normal(tf.shape(images), seed, stddev=std, dtype=images.dtype)
    return tf.clip_by_value(images + noise, 0.0, 1.0)


def salt_and_pepper(images, fraction, seed):
    """Sets a ``fraction`` of the pixels to 0 or 1, half of each on average.

    Examples:
        >>> import tensorflow as tf
        >>> noisy = salt_and_pepper(tf.fill((1, 4, 4, 1), 0.5), 0.2, seed=tf.constant([0, 1]))
    """
    import tensorflow as tf

    draws = tf.random.stateless_uniform(tf.shape(images), seed, dtype=images.dtype)
    pepper = draws < fraction / 2
    salt = (draws >= fraction / 2) & (draws < fraction)
    images = tf.where(pepper, tf.zeros_like(images), images)
    return tf.where(salt, tf.ones_like(images), images)


def masking_noise(images, fraction, seed):
    """Sets a ``fraction`` of the pixels to 0 (the masking noise of Vincent et al., 2008).

    Examples:
        >>> import tensorflow as tf
        >>> noisy = masking_noise(tf.ones((1, 4, 4, 1)), 0.25, seed=tf.constant([0, 1]))
    """
    import tensorflow as tf

    draws = tf.random.stateless_uniform(tf.shape(images), seed, dtype=images.dtype)
    return tf.where(draws < fraction, tf.zeros_like(images), images)


def grayscale(images):
    """Colour images to their luminance (``tf.image.rgb_to_grayscale``), repeated over the three
    channels, so that a model trained to undo it colourises.

    Examples:
        >>> import tensorflow as tf
        >>> grey = grayscale(tf.constant([[[[1.0, 0.0, 0.0]]]]))
        >>> [round(float(value), 3) for value in grey[0, 0, 0]]
        [0.299, 0.299, 0.299]
    """
    import tensorflow as tf

    grey = tf.image.rgb_to_grayscale(images)
    # Not tf.image.grayscale_to_rgb: its shape Assert has no GPU kernel, and would bring each
    # batch's check back to the host in a pipeline that corrupts on the GPU.
    return tf.concat([grey, grey, grey], axis=-1)


def occlude(images, size, seed=None, position=None):
    """Blacks out a ``size`` x ``size`` square in each image.

    The square's top-left corner is ``position`` (row, column) when given, otherwise drawn per
    image, uniformly among the places where the square fits, from ``seed``.

    Examples:
        >>> import tensorflow as tf
        >>> occluded = occlude(tf.ones((2, 28, 28, 1)), 14, position=(7, 7))
        >>> float(tf.reduce_sum(occluded[0]))
        588.0
    """
    import tensorflow as tf

    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    if position is None:
        corners = tf.random.stateless_uniform(
            (batch, 2), seed, minval=0, maxval=tf.int32.max, dtype=tf.int32)
        top = corners[:, 0] % (height - size + 1)
        left = corners[:, 1] % (width - size + 1)
    else:
        top = tf.fill((batch,), position[0])
        left = tf.fill((batch,), position[1])
    rows = tf.range(height)[None, :]
    columns = tf.range(width)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + size)
    in_columns = (columns >= left[:, None]) & (columns < left[:, None] + size)
    patch = in_rows[:, :, None] & in_columns[:, None, :]
    return tf.where(patch[..., None], tf.zeros_like(images), images)


def _fraction(amount):
    if not 0 < amount <= 1:
        return "the fraction must be in (0, 1]"
    return None


def _deviation(amount):
    return None if amount > 0 else "the standard deviation must be > 0"


def _patch_side(amount):
    return None if amount == int(amount) and amount >= 1 else \
        "the patch size must be a whole number >= 1"


@dataclasses.dataclass(frozen=True)
class CorruptionKind:
    """A kind of corruption, as ``--noise`` names it: what ``KIND:AMOUNT`` means and does.

    Attributes:
        name: the ``KIND`` of a spec.
        op: ``op(images, corruption, seed) -> images`` (``corruption`` the parsed
            ``Corruption``: its amount, position, patch size).
        help: how ``--noise``'s help shows it, such as ``gaussian:STD``.
        check: ``check(amount) -> None`` or the sentence saying what is wrong with it;
            ``None``: the kind takes no amount (``grayscale``).
        whole: the amount is a whole number (a patch's side).
        placed: the kind takes a percentage of the shorter side (``50%``) and a position
            (``@ROW,COL``), as occlusion does.
        colour: the kind needs colour images.

    Examples:
        >>> register_corruption(CorruptionKind("invert", lambda images, corruption, seed:
        ...                                    1 - images, "invert"))
        >>> parse_corruption("invert").kind
        'invert'
        >>> unregister_corruption("invert")
        >>> corruption_kinds()["masking"].help
        'masking:F'
    """

    name: str
    op: callable
    help: str
    check: callable = None
    whole: bool = False
    placed: bool = False
    colour: bool = False


# The registry (``tfae.registry.Registry``): ``register_corruption(CorruptionKind(...))`` adds a
# kind (one of the same name is replaced), ``unregister_corruption(name)`` removes one; see
# ``CorruptionKind`` for an example.
CORRUPTIONS = Registry("noise kind")
register_corruption, unregister_corruption = CORRUPTIONS.register, CORRUPTIONS.unregister


def corruption_kinds():
    """The registered kinds by name, in the order they registered.

    Examples:
        >>> list(corruption_kinds())
        ['gaussian', 'salt-pepper', 'masking', 'occlusion', 'grayscale']
    """
    return {kind.name: kind for kind in CORRUPTIONS.all()}


def noise_help():
    """``--noise``'s help, from the registered kinds.

    Examples:
        >>> noise_help().split(", ")[0]
        'Corrupt inputs: gaussian:STD'
    """
    return ("Corrupt inputs: " + ", ".join(kind.help for kind in CORRUPTIONS.all())
            + ", several joined by + (gaussian:0.5+occlusion:14), or none (default: the "
            "family's).")


@dataclasses.dataclass(frozen=True)
class Corruption:
    """A corruption with its amount, made by ``parse_corruption`` from a spec such as ``gaussian:0.5``.

    Attributes:
        kind: a registered kind's name (``corruption_kinds()``).
        amount: the noise's standard deviation, the fraction of pixels, or the patch's side
            (none for a kind without an amount, such as grayscale).
        position: for occlusion, a fixed (row, column) for the patch; ``None`` draws one per image.
        relative: for occlusion, ``amount`` is a percentage of the image's shorter side
            (``occlusion:50%`` is 14x14 on MNIST and fits images of any size).

    Examples:
        >>> Corruption("occlusion", 14).spec
        'occlusion:14'
        >>> Corruption("occlusion", 50, relative=True).patch_size((30, 45, 3))
        15
    """

    kind: str
    amount: float = None
    position: tuple | None = None
    relative: bool = False

    def __call__(self, images, seed):
        return CORRUPTIONS.get(self.kind).op(images, self, seed)

    def patch_size(self, image_shape):
        """The occlusion patch's side in pixels for images of ``image_shape``."""
        if not self.relative:
            return int(self.amount)
        return max(1, int(min(image_shape[:2]) * self.amount / 100 + 0.5))

    def check_fits(self, image_shape):
        """Refuses a patch that does not fit in images of ``image_shape``, and a colour kind
        (grayscale) on images that are not colour."""
        kind = CORRUPTIONS.get(self.kind)
        if kind.colour and image_shape[-1] != 3:
            raise TfaeError(f"noise spec {self.spec!r} needs colour images (3 channels), got "
                            f"{image_shape[-1]}; --channels 3 converts them")
        if not kind.placed:
            return
        height, width = image_shape[:2]
        top, left = self.position or (0, 0)
        size = self.patch_size(image_shape)
        if top + size > height or left + size > width:
            raise TfaeError(f"noise spec {self.spec!r}: the patch does not fit in "
                            f"{height}x{width} images")

    @property
    def spec(self):
        """The spec string that ``parse_corruption`` turns back into this corruption."""
        if self.amount is None:
            return self.kind
        whole = CORRUPTIONS.get(self.kind).whole
        amount = f"{self.amount:g}" if whole or self.relative else self.amount
        where = "" if self.position is None else "@{},{}".format(*self.position)
        return f"{self.kind}:{amount}{'%' if self.relative else ''}{where}"


@dataclasses.dataclass(frozen=True)
class CorruptionChain:
    """Corruptions applied one after the other, each with its own seed: ``gaussian:0.5+occlusion:14``.

    Examples:
        >>> import tensorflow as tf
        >>> chain = parse_corruption("gaussian:0.5+occlusion:14")
        >>> [part.kind for part in chain.parts]
        ['gaussian', 'occlusion']
        >>> chain(tf.ones((2, 28, 28, 1)), seed=tf.constant([1, 2])).shape
        TensorShape([2, 28, 28, 1])
    """

    parts: tuple

    def __call__(self, images, seed):
        import tensorflow as tf

        for index, part in enumerate(self.parts):
            images = part(images, tf.random.experimental.stateless_fold_in(seed, index))
        return images

    def check_fits(self, image_shape):
        """Refuses a chain with an occlusion patch that does not fit in ``image_shape``."""
        for part in self.parts:
            part.check_fits(image_shape)

    @property
    def spec(self):
        """The spec string that ``parse_corruption`` turns back into this chain."""
        return "+".join(part.spec for part in self.parts)


NO_CORRUPTION = "none"  # the spec that turns off a family's default noise


def parse_corruption(spec):
    """Parses ``KIND:AMOUNT`` (``occlusion:SIZE[@ROW,COL]`` for a fixed patch, ``occlusion:50%``
    for half the shorter side; ``grayscale`` has no amount) into a Corruption.

    Specs joined by ``+`` parse to a ``CorruptionChain`` that applies them in turn. ``none``
    parses to ``None``: clean inputs, even for a family that trains with noise.

    Raises:
        TfaeError: naming the spec and what was expected.

    Examples:
        >>> parse_corruption("salt-pepper:0.2")
        Corruption(kind='salt-pepper', amount=0.2, position=None, relative=False)
        >>> parse_corruption("occlusion:7@0,21").position
        (0, 21)
        >>> parse_corruption("none") is None
        True
    """
    if spec == NO_CORRUPTION:
        return None
    if "+" in spec:
        return CorruptionChain(tuple(_parse_one(part) for part in spec.split("+")))
    return _parse_one(spec)


def _parse_one(spec):
    name, sep, rest = spec.partition(":")
    kind = CORRUPTIONS.get(name) if name in CORRUPTIONS else None
    if kind is not None and kind.check is None:
        if sep:
            raise TfaeError(f"noise spec {spec!r}: {name} takes no amount")
        return Corruption(name)
    if kind is None or not sep:
        with_amounts = [kind.name for kind in CORRUPTIONS.all() if kind.check is not None]
        without = [kind.name for kind in CORRUPTIONS.all() if kind.check is None]
        raise TfaeError(f"noise spec {spec!r} is not KIND:AMOUNT with KIND one of "
                        f"{', '.join(with_amounts)}" + (f", or {', '.join(without)}"
                                                         if without else ""))
    amount_text, at, where = rest.partition("@")
    relative = amount_text.endswith("%")
    if relative and not kind.placed:
        raise TfaeError(f"noise spec {spec!r}: only occlusion takes a percentage")
    amount_text = amount_text.removesuffix("%")
    if at and not kind.placed:
        raise TfaeError(f"noise spec {spec!r}: only occlusion takes a position (@ROW,COL)")
    try:
        amount = float(amount_text)
        position = tuple(int(part) for part in where.split(",")) if at else None
    except ValueError:
        raise TfaeError(f"noise spec {spec!r}: {rest!r} is not a number") from None
    if not math.isfinite(amount):
        raise TfaeError(f"noise spec {spec!r}: the amount must be a finite number")
    if position is not None and (len(position) != 2 or min(position) < 0):
        raise TfaeError(f"noise spec {spec!r}: the position must be ROW,COL, both >= 0")
    if relative:
        if not 0 < amount <= 100:
            raise TfaeError(f"noise spec {spec!r}: the patch size must be in (0, 100]%")
        return Corruption(name, amount, position, relative=True)
    problem = kind.check(amount)
    if problem:
        raise TfaeError(f"noise spec {spec!r}: {problem}")
    return Corruption(name, int(amount) if kind.whole else amount, position)


for _kind in (
        CorruptionKind("gaussian", lambda images, corruption, seed: gaussian_noise(
            images, corruption.amount, seed), "gaussian:STD", _deviation),
        CorruptionKind("salt-pepper", lambda images, corruption, seed: salt_and_pepper(
            images, corruption.amount, seed), "salt-pepper:F", _fraction),
        CorruptionKind("masking", lambda images, corruption, seed: masking_noise(
            images, corruption.amount, seed), "masking:F", _fraction),
        CorruptionKind("occlusion", lambda images, corruption, seed: occlude(
            images, corruption.patch_size(images.shape[1:]), seed, corruption.position),
            "occlusion:SIZE[@ROW,COL] (or occlusion:P% of the shorter side)", _patch_side,
            whole=True, placed=True),
        CorruptionKind("grayscale", lambda images, corruption, seed: grayscale(images),
                       "grayscale (colour images to grey: trains a colouriser)", colour=True),
):
    register_corruption(_kind)
