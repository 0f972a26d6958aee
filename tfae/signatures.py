"""The signatures of an export, traced from a model: what ``tfae.exports`` writes as a
SavedModel and ``tfae.device_files`` converts to a LiteRT or ONNX file (``tfae.exports`` says
what each takes and gives).

Examples:
    >>> from tfae.signatures import SIGNATURES, signatures_archive
    >>> "encode_bytes" in SIGNATURES
    True
    >>> signatures_archive(model, resize="crop").write_out("staging/deep")  # doctest: +SKIP
"""

import keras
import tensorflow as tf

from tfae.data.pipeline import unit_floats
from tfae.data.splits import conform, decode
from tfae.opened import REFERENCE_CODES_LAYER, SAMPLE_SIGNATURE, SCORE_SIGNATURE

SIGNATURES = ("serving_default", "encode", "reconstruct_bytes", "encode_bytes",
              "reconstruct_pixels", "encode_pixels", "decode", "prepare_bytes")
# Beside SIGNATURES in an export made with an anomaly detector: images, image files, pixels.
SCORE_SIGNATURES = (SCORE_SIGNATURE, "score_bytes", "score_pixels")



def signatures_archive(model, resize="stretch", detector=None):
    """The ``keras.export.ExportArchive`` of every signature (``tfae.exports`` lists them), not yet written: what
    ``export_saved_model`` writes, and what ``tfae.device_files`` converts to a device file.

    Examples:
        >>> signatures_archive(model).write_out("staging/deep")  # doctest: +SKIP
    """
    height, width, channels = model.image_shape
    image_spec = tf.TensorSpec((None, *model.image_shape), tf.float32, name="images")
    bytes_spec = tf.TensorSpec((None,), tf.string, name="image_bytes")
    pixels_spec = tf.TensorSpec((None, None, None, channels), tf.uint8, name="pixels")
    code_spec = tf.TensorSpec((None, model.latent_dim), tf.float32, name="codes")

    # Each step is traced once, and every signature that takes it calls that trace: tracing
    # the model again in each of a dozen signatures made an export take about twice as long.
    def prepare(images):  # uint8 images of any size -> what the model takes
        return unit_floats(conform(images, (height, width), resize=resize))

    prepared = _traced(prepare, pixels_spec)
    decoded = _traced(lambda image_bytes: tf.map_fn(
        lambda content: prepare(decode(content, channels)), image_bytes,
        fn_output_signature=tf.TensorSpec(model.image_shape, tf.float32)), bytes_spec)
    reconstruct = _traced(lambda images: {"reconstructions": model(images, training=False)},
                          image_spec)
    encode = _traced(lambda images: {"codes": model.encoder(images, training=False)}, image_spec)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", reconstruct, input_signature=[image_spec])
    archive.add_endpoint("encode", encode, input_signature=[image_spec])
    archive.add_endpoint("reconstruct_bytes", lambda image_bytes: reconstruct(
        decoded(image_bytes)), input_signature=[bytes_spec])
    archive.add_endpoint("encode_bytes", lambda image_bytes: encode(decoded(image_bytes)),
                         input_signature=[bytes_spec])
    archive.add_endpoint("prepare_bytes", lambda image_bytes: {"images": decoded(image_bytes)},
                         input_signature=[bytes_spec])
    archive.add_endpoint("reconstruct_pixels", lambda pixels: reconstruct(prepared(pixels)),
                         input_signature=[pixels_spec])
    archive.add_endpoint("encode_pixels", lambda pixels: encode(prepared(pixels)),
                         input_signature=[pixels_spec])
    archive.add_endpoint(
        "decode", lambda codes: {"images": model.decoder(codes, training=False)},
        input_signature=[code_spec])
    if hasattr(model, "posterior"):  # a prior to sample from
        archive.add_endpoint(
            SAMPLE_SIGNATURE, lambda noise: {"images": model.decoder(noise, training=False)},
            input_signature=[tf.TensorSpec((None, model.latent_dim), tf.float32, name="noise")])
    if detector is not None:
        reference = _ReferenceCodes(detector.calibration_.reference_codes)
        archive.track(reference)

        def score_images(images):
            outputs = detector.outputs(images, reference.codes, every_part=False)
            return {name: outputs[name] for name in ("scores", "flagged", "error_maps")}

        scored = _traced(score_images, image_spec)
        score, score_bytes, score_pixels = SCORE_SIGNATURES
        archive.add_endpoint(score, scored, input_signature=[image_spec])
        archive.add_endpoint(score_bytes, lambda image_bytes: scored(decoded(image_bytes)),
                             input_signature=[bytes_spec])
        archive.add_endpoint(score_pixels, lambda pixels: scored(prepared(pixels)),
                             input_signature=[pixels_spec])
    return archive


def _traced(function, spec):
    """``function`` as a ``tf.function`` of one argument of ``spec``, traced on its first call."""
    return tf.function(function, input_signature=[spec], autograph=False)


class _ReferenceCodes(keras.layers.Layer):
    """A run's reference codes (``tfae.anomaly.Calibration``) as a weight of the export: saved
    in its variables, not as a constant in its graph."""

    def __init__(self, reference_codes):
        super().__init__(trainable=False, name=REFERENCE_CODES_LAYER)
        self.codes = self.add_weight(shape=reference_codes.shape, initializer="zeros",
                                     trainable=False, name="codes")
        self.codes.assign(reference_codes)
        self.built = True  # no inputs to build from: the weight is made here
