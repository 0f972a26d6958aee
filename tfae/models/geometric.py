"""Autoencoders that also learn how their images are turned: GEOM's self-supervision beside
reconstruction, for telling odd images from normal ones.

Golan and El-Yaniv (NeurIPS 2018, "GEOM") train a classifier to tell which of a set of
geometric transformations was applied to a normal image; on an image unlike the normal ones it
tells them apart less well, and how much less is an anomaly score that errs elsewhere than a
reconstruction error does. A ``GeometricAutoencoder`` is an autoencoder and such a classifier,
trained together on the same batches: the autoencoder reconstructs, and the ``transformer`` (a
small convolutional classifier, ``transformation_classifier``) sees each clean image in
``SHOWN_TRANSFORMATIONS`` different ones of ``transformations_of(image_shape)`` (quarter turns,
each also mirrored: 8 for a square image, the 4 that keep a non-square one's shape), drawn at
random for each image and step, and learns which. The two are separate networks, so each has
its own gradients; the logged ``loss`` is their sum.

``transformation_surprise(images)`` is each image's mean over every transformation of
``-log p(the transformation applied | transformed image)``: GEOM's simplified score (the paper's
Dirichlet fit aside). ``tfae.anomaly`` reads it as the ``transformations`` part of a score.

Examples:
    >>> import numpy as np
    >>> from tfae.families import build_model
    >>> model = build_model("geometric", (8, 8, 1), hidden=(16,), latent_dim=4)
    >>> model.transformer.output_shape, len(transformations_of((8, 6, 1)))
    ((None, 8), 4)
    >>> model.transformation_surprise(np.zeros((3, 8, 8, 1), "float32")).shape
    TensorShape([3])
"""

import keras
import tensorflow as tf

from tfae.models.base import OwnLossAutoencoder

# The classifier's convolution blocks: (filters, stride); small, so that a one-class run on
# MNIST trains in about a minute on 2 CPU cores (docs/results/anomaly.md); GEOM's own is a wide
# residual network, many times larger.
CLASSIFIER_BLOCKS = ((16, 2), (32, 2), (64, 1))
QUARTER_TURNS = (0, 1, 2, 3)
# How many transformations of each image a training step shows the classifier: on MNIST's
# digit 8, one seed, 20 epochs, two gave its score an AUROC of 91.8% against 88.0% for one, at
# 1.3 times the time; all eight would cost four times two's.
SHOWN_TRANSFORMATIONS = 2


def transformations_of(image_shape):
    """The ``(mirrored, quarter turns)`` an image of ``image_shape`` is shown in: every quarter
    turn, plain and mirrored, for a square image; for another, the half turns only (a quarter
    turn would change its shape).

    Examples:
        >>> transformations_of((28, 28, 1))[:3], len(transformations_of((28, 28, 1)))
        (((False, 0), (False, 1), (False, 2)), 8)
        >>> transformations_of((20, 30, 3))
        ((False, 0), (False, 2), (True, 0), (True, 2))
    """
    turns = QUARTER_TURNS if image_shape[0] == image_shape[1] else (0, 2)
    return tuple((mirrored, turn) for mirrored in (False, True) for turn in turns)


def transformed(images, transformation):
    """``images`` (a batch) mirrored left to right and turned, for one of ``transformations_of``.

    Examples:
        >>> images = tf.reshape(tf.range(4.0), (1, 2, 2, 1))
        >>> transformed(images, (True, 1))[0, ..., 0].numpy().tolist()
        [[0.0, 2.0], [1.0, 3.0]]
    """
    mirrored, turns = transformation
    images = tf.reverse(images, axis=[2]) if mirrored else images
    # tf.image.rot90's quarter turns (anticlockwise) without its shape assertions, which
    # LiteRT and ONNX files cannot hold.
    if turns == 1:
        return tf.reverse(tf.transpose(images, (0, 2, 1, 3)), axis=[1])
    if turns == 2:
        return tf.reverse(images, axis=[1, 2])
    if turns == 3:
        return tf.transpose(tf.reverse(images, axis=[1]), (0, 2, 1, 3))
    return images


def transformation_classifier(image_shape):
    """Convolution blocks (``CLASSIFIER_BLOCKS``, batch-normalised), global average pooling and
    a logit for each of ``transformations_of(image_shape)``: which one an image is shown in.

    Examples:
        >>> transformation_classifier((28, 28, 1)).output_shape, transformation_classifier(
        ...     (20, 30, 3)).output_shape
        ((None, 8), (None, 4))
    """
    images = keras.Input(image_shape, name="images")
    x = images
    for index, (filters, stride) in enumerate(CLASSIFIER_BLOCKS):
        x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                                name=f"transformer_conv_{index}")(x)
        x = keras.layers.BatchNormalization(name=f"transformer_norm_{index}")(x)
        x = keras.layers.ReLU(name=f"transformer_relu_{index}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="transformer_pool")(x)
    logits = keras.layers.Dense(len(transformations_of(image_shape)), dtype="float32",
                                name="transformation_logits")(x)
    return keras.Model(images, logits, name="transformer")


@keras.saving.register_keras_serializable(package="tfae")
class GeometricAutoencoder(OwnLossAutoencoder):
    """An ``Autoencoder`` and a ``transformer`` that tells how an image was turned, trained
    together (see the module docstring). Tracks ``loss`` (their sum), ``reconstruction`` (the
    compiled loss) and ``transformations`` (the classifier's cross-entropy, in nats).

    Args:
        encoder, decoder: functional models, as ``Autoencoder``'s.
        transformer: a functional model from images to one logit per ``transformations_of``
            the image shape.
        **kwargs: passed to ``keras.Model``.

    Examples:
        >>> from tfae.families import build_model
        >>> model = build_model("geometric", (8, 8, 1), hidden=(16,), latent_dim=4)
        >>> [tracker.name for tracker in model.metrics]
        ['loss', 'reconstruction', 'transformations']
    """

    def __init__(self, encoder, decoder, transformer, **kwargs):
        # Tracked in build, which Autoencoder.__init__ calls: a built model takes no new layers.
        object.__setattr__(self, "_new_transformer", transformer)
        super().__init__(encoder, decoder, **kwargs)

    def build(self, input_shape):
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.transformations_tracker = keras.metrics.Mean(name="transformations")
        self.transformation_seeds = keras.random.SeedGenerator(0, name="transformation_seeds")
        self.transformer = self._new_transformer
        super().build(input_shape)

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.transformations_tracker]

    @property
    def transformations(self):
        """The ``transformations_of`` this model's images."""
        return transformations_of(self.image_shape)

    def mean_losses(self, data, training):
        """The batch's mean loss, reconstruction and cross-entropy (``OwnLossAutoencoder``):
        each clean image (the target) is shown to the classifier in ``SHOWN_TRANSFORMATIONS``
        different transformations drawn at random."""
        inputs, targets = data
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        reconstruction = replicas * self.compute_loss(
            x=inputs, y=targets, y_pred=self(inputs, training=training), training=training)
        count = len(self.transformations)
        # The first columns of a random permutation per image: different transformations.
        drawn = tf.argsort(keras.random.uniform((tf.shape(targets)[0], count),
                                                seed=self.transformation_seeds), axis=1)
        drawn = drawn[:, :min(SHOWN_TRANSFORMATIONS, count)]
        # Every transformation of the batch, then each image's drawn ones picked out of them.
        everyone = tf.stack([transformed(targets, transformation)
                             for transformation in self.transformations], axis=1)
        shown = tf.gather(everyone, drawn, axis=1, batch_dims=1)  # images x shown x ...
        logits = self.transformer(tf.reshape(shown, (-1, *self.image_shape)), training=training)
        cross_entropy = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.reshape(drawn, (-1,)), tf.cast(logits, tf.float32)))
        return reconstruction + cross_entropy, reconstruction, cross_entropy

    def transformation_surprise(self, images):
        """Each image's mean over every transformation of ``-log p(that transformation)`` under
        the classifier, in nats: low for images like the normal ones."""
        images = tf.convert_to_tensor(images, tf.float32)
        surprise = []
        for index, transformation in enumerate(self.transformations):
            logits = tf.cast(self.transformer(transformed(images, transformation),
                                              training=False), tf.float32)
            surprise.append(-tf.nn.log_softmax(logits)[:, index])
        return tf.reduce_mean(surprise, axis=0)

    def get_config(self):
        return {**super().get_config(),
                "transformer": keras.saving.serialize_keras_object(self.transformer)}
