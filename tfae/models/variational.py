"""Variational autoencoders (Kingma and Welling, 2014), and beta-VAEs (Higgins et al., 2017).

The encoder gives each image a Gaussian posterior over codes, a mean and a log-variance
(``posterior``, a functional model with two outputs); training draws a code from it by the
reparameterisation ``mean + exp(log_variance / 2) * noise`` and minimises, per image,

    reconstruction + beta * KL(posterior || N(0, I))

in nats: the reconstruction term is the negative log-likelihood of the image under the decoder's
pixels, summed over pixels (Bernoulli for ``bce``, the binary cross-entropy; a Gaussian of
variance 1/2 for ``mse``, constants dropped), and the KL term is in closed form. With ``beta`` 1
and ``bce`` the loss is the negative evidence lower bound (ELBO), the figure published VAE
results quote. ``encoder`` is the posterior's mean, so everything that reads codes (probes,
plots, anomaly scores, exports) reads the means, and ``call`` reconstructs the mean code.

Examples:
    >>> import numpy as np
    >>> from tfae.families import build_model
    >>> model = build_model("vae", (28, 28, 1), hidden=(32,), latent_dim=2)
    >>> [output.shape for output in model.posterior(np.zeros((3, 28, 28, 1), "float32"))]
    [TensorShape([3, 2]), TensorShape([3, 2])]
    >>> model.sample(5, seed=0).shape
    TensorShape([5, 28, 28, 1])
"""

import statistics

import keras
import numpy as np
import tensorflow as tf

from tfae.errors import TfaeError
from tfae.models.base import OwnLossAutoencoder

# The run's loss (``tfae.config.LOSSES``, as ``compile`` gets it) read as the decoder's likelihood.
LIKELIHOOD_OF_LOSS = {"binary_crossentropy": "bce", "bce": "bce", "mse": "mse"}
LIKELIHOODS = ("bce", "mse")


def with_log_variance(encoder):
    """The posterior model of an encoder whose last layer, ``codes``, gives the means: a second
    dense head, ``log_variance``, on the same features.

    Examples:
        >>> from tfae.models.dense import dense_encoder
        >>> posterior = with_log_variance(dense_encoder((8, 8, 1), (16,), 3, "relu", "linear"))
        >>> [tuple(output.shape) for output in posterior.outputs]
        [(None, 3), (None, 3)]
    """
    codes = encoder.get_layer("codes")
    log_variance = keras.layers.Dense(codes.units, dtype="float32", name="log_variance")(
        codes.input)
    return keras.Model(encoder.input, [encoder.output, log_variance], name="posterior")


def prior_codes(count, latent_dim, seed=0):
    """``count`` codes drawn from the prior, N(0, I), by numpy's seeded generator: the same codes
    for a run and its export, on any machine.

    Examples:
        >>> prior_codes(2, 3, seed=0).shape, prior_codes(2, 3, seed=0).dtype
        ((2, 3), dtype('float32'))
    """
    return np.random.default_rng(seed).standard_normal((count, latent_dim), dtype=np.float32)


def prior_code_batches(count, latent_dim, seed=0, batch_size=256):
    """``prior_codes(count, latent_dim, seed)`` drawn ``batch_size`` rows at a time, the same
    codes: numpy's generator draws them in sequence, so memory holds a batch, not ``count``.

    Examples:
        >>> batches = list(prior_code_batches(5, 3, seed=1, batch_size=2))
        >>> [len(batch) for batch in batches]
        [2, 2, 1]
        >>> bool(np.array_equal(np.concatenate(batches), prior_codes(5, 3, seed=1)))
        True
    """
    generator = np.random.default_rng(seed)
    for start in range(0, count, batch_size):
        yield generator.standard_normal((min(batch_size, count - start), latent_dim),
                                        dtype=np.float32)


def traversal_codes(steps=15):
    """A ``steps`` x ``steps`` grid of 2-number codes, evenly spaced in probability under the
    prior (its 5% to 95% quantiles, as Kingma and Welling's figure), row by row from the top:
    the first number grows to the right, the second upwards. Returns ``(codes, values)``.

    Examples:
        >>> codes, values = traversal_codes(3)
        >>> codes.shape, [round(value, 3) for value in values]
        ((9, 2), [-1.645, 0.0, 1.645])
    """
    prior = statistics.NormalDist()
    values = [prior.inv_cdf(0.05 + 0.9 * step / (steps - 1)) for step in range(steps)]
    codes = [(first, second) for second in reversed(values) for first in values]
    return np.array(codes, np.float32), values


def kl_divergence(mean, log_variance):
    """KL(N(mean, exp(log_variance)) || N(0, I)) of each row, in nats.

    Examples:
        >>> kl_divergence(tf.zeros((2, 3)), tf.zeros((2, 3))).numpy().tolist()
        [0.0, 0.0]
    """
    return 0.5 * tf.reduce_sum(tf.square(mean) + tf.exp(log_variance) - 1.0 - log_variance, axis=1)


def negative_log_likelihood(images, reconstructions, likelihood="bce"):
    """The negative log-likelihood of each image under the decoder's pixels, in nats (``bce``:
    Bernoulli; ``mse``: a Gaussian of variance 1/2, constants dropped).

    Examples:
        >>> round(float(negative_log_likelihood(tf.ones((1, 2)), tf.fill((1, 2), 0.5))[0]), 4)
        1.3863
    """
    flat = lambda tensor: tf.reshape(tensor, (tf.shape(tensor)[0], -1))  # noqa: E731
    reconstructions = flat(tf.convert_to_tensor(reconstructions))
    images = tf.cast(flat(tf.convert_to_tensor(images)), reconstructions.dtype)
    if likelihood == "mse":
        return tf.reduce_sum(tf.square(images - reconstructions), axis=1)
    # Clipped as Keras' binary cross-entropy clips, so a saturated pixel costs a finite amount.
    epsilon = keras.config.epsilon()
    probabilities = tf.clip_by_value(reconstructions, epsilon, 1.0 - epsilon)
    return -tf.reduce_sum(images * tf.math.log(probabilities)
                          + (1.0 - images) * tf.math.log(1.0 - probabilities), axis=1)


@keras.saving.register_keras_serializable(package="tfae")
class VariationalAutoencoder(OwnLossAutoencoder):
    """An ``Autoencoder`` with a Gaussian posterior, trained on the (beta-weighted) ELBO; the
    compiled loss names the decoder's likelihood (``likelihood``), which ``train_step`` computes.

    Tracks ``loss`` (the mean of reconstruction + beta * KL per image), ``reconstruction`` and
    ``kl``, in nats per image, in training and validation.

    Args:
        posterior: a functional model from images to ``[mean, log_variance]``.
        decoder: a functional model from codes to images in [0, 1].
        beta: the KL term's weight (1: the VAE; others: a beta-VAE).
        **kwargs: passed to ``keras.Model``.

    Examples:
        >>> from tfae.families import build_model
        >>> model = build_model("vae", (28, 28, 1), hidden=(16,), latent_dim=4, beta=4.0)
        >>> model.beta, model.encoder.output_shape
        (4.0, (None, 4))
    """

    def __init__(self, posterior, decoder, beta=1.0, **kwargs):
        encoder = keras.Model(posterior.input, posterior.outputs[0], name="encoder")
        # Tracked in build, which Autoencoder.__init__ calls: a built model takes no new layers.
        object.__setattr__(self, "_new_posterior", posterior)
        super().__init__(encoder, decoder, **kwargs)
        self.beta = float(beta)

    def build(self, input_shape):
        # Called by Autoencoder.__init__: state must be made here, before the model is built.
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.noise_seeds = keras.random.SeedGenerator(0, name="noise_seeds")
        self.posterior = self._new_posterior
        super().build(input_shape)

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

    @property
    def compiles_well_with_xla(self):
        """Whether XLA pays (``tfae.train.execution_for``): for dense encoders, as for ``deep``;
        convolutions train slower under it on CPU (docs/performance.md).

        Examples:
            >>> from tfae.families import build_model
            >>> build_model("vae", (8, 8, 1), filters=(4, 8)).compiles_well_with_xla
            False
        """
        return not any(isinstance(layer, keras.layers.Conv2D) for layer in self.encoder.layers)

    @property
    def likelihood(self):
        """``bce`` or ``mse``: the decoder's likelihood, named by the compiled loss (``bce``
        before ``compile``).

        Examples:
            >>> from tfae.families import build_model
            >>> model = build_model("vae", (8, 8, 1), hidden=(8,), latent_dim=2)
            >>> model.compile(optimizer="adam", loss="mse")
            >>> model.likelihood
            'mse'
        """
        loss = getattr(self, "loss", None) or "binary_crossentropy"
        if loss not in LIKELIHOOD_OF_LOSS:
            raise TfaeError("a variational autoencoder's {loss} must be one of %s, got %r"
                            % (", ".join(LIKELIHOODS), loss), options=["loss"])
        return LIKELIHOOD_OF_LOSS[loss]

    def loss_terms(self, inputs, targets, training=False, seed=None):
        """Per image: the reconstruction term and the KL term, in nats, of one draw of codes.

        Args:
            inputs, targets: images (the corrupted ones) and the images to reconstruct.
            training: passed to the layers.
            seed: a ``keras.random.SeedGenerator`` or an integer for the draw; ``None``: the
                model's own generator (the training one).

        Examples:
            >>> from tfae.families import build_model
            >>> model = build_model("vae", (8, 8, 1), hidden=(8,), latent_dim=2)
            >>> images = tf.random.uniform((4, 8, 8, 1), seed=0)
            >>> [term.shape for term in model.loss_terms(images, images, seed=1)]
            [TensorShape([4]), TensorShape([4])]
        """
        mean, log_variance = self.posterior(inputs, training=training)
        noise = keras.random.normal(tf.shape(mean), seed=self.noise_seeds if seed is None else seed)
        codes = mean + tf.exp(0.5 * log_variance) * noise
        reconstructions = self.decoder(codes, training=training)
        return (negative_log_likelihood(targets, reconstructions, self.likelihood),
                kl_divergence(mean, log_variance))

    def mean_losses(self, data, training):
        """The batch's mean loss, reconstruction and KL term (``OwnLossAutoencoder``)."""
        inputs, targets = data
        reconstruction, kl = (tf.reduce_mean(term) for term in
                              self.loss_terms(inputs, targets, training=training))
        return reconstruction + self.beta * kl, reconstruction, kl

    def negative_elbo(self, images, seed=0):
        """The negative ELBO of each image (``beta`` aside: reconstruction + KL), in nats, from
        one draw of its code: an upper bound on its negative log-likelihood.

        Examples:
            >>> from tfae.families import build_model
            >>> model = build_model("vae", (8, 8, 1), hidden=(8,), latent_dim=2)
            >>> model.negative_elbo(tf.random.uniform((3, 8, 8, 1), seed=0)).shape
            TensorShape([3])
        """
        reconstruction, kl = self.loss_terms(images, images, seed=seed)
        return reconstruction + kl

    def negative_log_likelihood(self, images, samples=200, seed=0):
        """Each image's negative log-likelihood, in nats, estimated by importance sampling with
        ``samples`` codes drawn from its posterior (Burda et al., 2016):
        ``-log mean_k p(x | z_k) p(z_k) / q(z_k | x)``, a bound that tightens towards the true
        value as ``samples`` grows; with 1 sample it is ``negative_elbo``.

        Examples:
            >>> from tfae.families import build_model
            >>> model = build_model("vae", (8, 8, 1), hidden=(8,), latent_dim=2)
            >>> images = tf.random.uniform((3, 8, 8, 1), seed=0)
            >>> bool(tf.reduce_all(model.negative_log_likelihood(images, 50)
            ...                    <= model.negative_elbo(images) + 1.0))
            True
        """
        images = tf.convert_to_tensor(images, tf.float32)
        mean, log_variance = self.posterior(images, training=False)
        count, size = tf.shape(mean)[0], tf.shape(mean)[1]
        noise = tf.random.stateless_normal((samples, count, size), seed=(seed, 1))
        codes = mean + tf.exp(0.5 * log_variance) * noise  # samples x images x code
        decoded = self.decoder(tf.reshape(codes, (-1, self.latent_dim)), training=False)
        repeated = tf.repeat(images[tf.newaxis], samples, axis=0)
        log_likelihood = -tf.reshape(negative_log_likelihood(
            tf.reshape(repeated, tf.shape(decoded)), decoded, self.likelihood), (samples, count))
        # log p(z) - log q(z | x): the Gaussians' normalising constants cancel
        log_ratio = 0.5 * tf.reduce_sum(tf.square(noise) + log_variance - tf.square(codes), axis=2)
        weights = log_likelihood + log_ratio
        return -(tf.reduce_logsumexp(weights, axis=0) - tf.math.log(float(samples)))

    def sample(self, count, seed=0):
        """``count`` images decoded from codes drawn from the prior, N(0, I), seeded.

        Examples:
            >>> from tfae.families import build_model
            >>> model = build_model("vae", (8, 8, 1), hidden=(8,), latent_dim=2)
            >>> bool(tf.reduce_all(model.sample(3, seed=7) == model.sample(3, seed=7)))
            True
        """
        return self.decoder(prior_codes(count, self.latent_dim, seed), training=False)

    def get_config(self):
        config = {key: value for key, value in super().get_config().items() if key != "encoder"}
        return {**config, "posterior": keras.saving.serialize_keras_object(self.posterior),
                "beta": self.beta}

