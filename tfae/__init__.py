"""tfae: autoencoders on images with Keras 3 and TensorFlow.

Everything the ``tfae`` command does is a call here.

Examples:
    >>> import tfae
    >>> run = tfae.fit(tfae.FitConfig(model="deep", epochs=1, limit=1000), "runs/deep")  # doctest: +SKIP
    >>> codes = run.model.encoder.predict(images)  # doctest: +SKIP
"""

__version__ = "0.1.0"

from tfae.corruptions import Corruption, parse_corruption  # noqa: E402
from tfae.data import load, pipeline  # noqa: E402
from tfae.errors import TfaeError  # noqa: E402
from tfae.evaluate import evaluate  # noqa: E402
from tfae.export import export_saved_model  # noqa: E402
from tfae.models import Autoencoder, build_model, family_names, load_model  # noqa: E402
from tfae.models.contractive import contractive_penalty  # noqa: E402
from tfae.train import FitConfig, Run, fit  # noqa: E402
from tfae.tune import TuneConfig, tune  # noqa: E402

__all__ = [
    "Autoencoder", "Corruption", "FitConfig", "Run", "TfaeError", "TuneConfig", "build_model",
    "contractive_penalty", "evaluate", "export_saved_model", "family_names", "fit", "load",
    "load_model", "parse_corruption", "pipeline", "tune",
]
