"""The registry: a family is one module, and everything else derives from it."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

from tfae_cli.main import tfae
from tfae.families import BUILT_IN, build_model, families, family_names, get_family, unregister

TOY_FAMILY = textwrap.dedent('''
    """A toy family: one hidden layer of toy_width units."""

    import dataclasses

    from tfae.families import Family, register
    from tfae.options import latent_dim_option, option


    @dataclasses.dataclass
    class ToyOptions:
        latent_dim: int = latent_dim_option(4)
        toy_width: int = option(16, "Width of the toy's hidden layer.", minimum=1)


    def build(image_shape, options):
        import keras

        from tfae.models.base import Autoencoder

        images = keras.Input(image_shape)
        hidden = keras.layers.Dense(options.toy_width, "relu")(keras.layers.Flatten()(images))
        encoder = keras.Model(images, keras.layers.Dense(options.latent_dim)(hidden))
        codes = keras.Input((options.latent_dim,))
        pixels = keras.layers.Dense(int(images.shape[1] * images.shape[2] * images.shape[3]),
                                    "sigmoid")(codes)
        decoder = keras.Model(codes, keras.layers.Reshape(image_shape)(pixels))
        return Autoencoder(encoder, decoder, name="toy")


    def search_space(hp):
        return {"latent_dim": hp.Choice("latent_dim", (2, 4))}, {}


    register(Family("toy", "a toy for the tests", ToyOptions, build, search_space=search_space))
''')


@pytest.fixture
def toy_module(tmp_path, monkeypatch):
    """Writes the toy family's module where Python finds it; unregisters it afterwards."""
    (tmp_path / "toy_family.py").write_text(TOY_FAMILY)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "toy_family"
    sys.modules.pop("toy_family", None)
    unregister("toy")


def _invoke(*args):
    result = CliRunner().invoke(tfae, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
@pytest.mark.e2e
def test_a_new_family_is_one_module(toy_module, tmp_path, monkeypatch):
    # Named in TFAE_FAMILY_MODULES, the module alone gives `tfae fit` the family and its option.
    environment = {**os.environ, "TFAE_FAMILY_MODULES": toy_module,
                   "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    shown = subprocess.run([sys.executable, "-m", "tfae", "fit", "--help"], env=environment,
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert "--toy-width" in shown and "toy]" in shown.replace("\n", "").replace(" ", "")

    __import__(toy_module)  # in this process, as a user's notebook would
    monkeypatch.chdir(tmp_path)
    _invoke("fit", "--model", "toy", "--toy-width", 8, "--epochs", 1, "--limit", 600, "--out",
            "run", "--quiet")
    assert json.loads((tmp_path / "run/config.json").read_text())["model_options"] == {
        "latent_dim": 4, "toy_width": 8}
    assert (tmp_path / "saved_models/toy/1/saved_model.pb").is_file()
    assert "exported: saved_models/toy/2" in _invoke("export", "run")
    assert "linear probe" in _invoke("evaluate", "run", "--limit", 300, "--quiet")
    tuned = _invoke("tune", "--model", "toy", "--tuner", "random", "--max-trials", 1,
                    "--epochs", 1, "--limit", 600, "--out", "search", "--no-export", "--quiet")
    assert "latent_dim=" in tuned
    _invoke("report", "--models", "toy", "--epochs", 1, "--limit", 300, "--out", "results",
            "--quiet")
    assert "| `toy` |" in (tmp_path / "results.md").read_text()


def test_the_registry_and_the_command_line_load_without_tensorflow():
    code = ("import sys, tfae_cli.main, tfae.families, tfae.config; tfae.families.family_names(); "
            "print(sorted({'tensorflow', 'keras', 'keras_tuner'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_every_family_option_is_a_fit_flag_with_its_families_defaults():
    shown = _invoke("fit", "--help")
    for family in families():
        assert family.name in shown
        for option in family.defaults:
            flag = "--lambda" if option == "penalty_weight" else "--" + option.replace("_", "-")
            assert flag in shown, (family.name, flag)
    assert "contractive: 0.0001" in " ".join(shown.split())


def test_an_unknown_family_module_is_one_clear_line(tmp_path):
    environment = {**os.environ, "TFAE_FAMILY_MODULES": "no_such_family_module"}
    result = subprocess.run([sys.executable, "-m", "tfae", "fit", "--help"], env=environment,
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == ("Error: TFAE_FAMILY_MODULES: cannot import "
                                     "'no_such_family_module': No module named "
                                     "'no_such_family_module'")


def test_options_come_from_tfae_environment_variables(monkeypatch):
    monkeypatch.setenv("TFAE_FIT_EPOCHS", "0")
    result = CliRunner().invoke(tfae, ["fit"])
    assert result.exit_code == 2 and "0 is not in the range x>=1" in result.output


def test_quiet_and_verbose_mean_the_same_in_every_command():
    import click

    for name, command in tfae.commands.items():
        context = click.Context(command)
        helps = {param.name: getattr(param, "help", None) for param in command.get_params(context)}
        assert helps.get("quiet") == "No progress output: only the result.", name
        assert helps.get("verbose") == "Also TensorFlow's own start-up and log lines.", name


@pytest.mark.slow  # TensorFlow's start in fresh interpreters: the full tier
def test_tensorflow_start_up_lines_are_hidden_unless_verbose(tmp_path):
    def stderr_lines(*flags):
        environment = {key: value for key, value in os.environ.items()
                       if key != "TF_CPP_MIN_LOG_LEVEL"}
        result = subprocess.run([sys.executable, "-m", "tfae", "export", "nowhere", *flags],
                                env=environment, capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 1
        return result.stderr.strip().splitlines()

    assert stderr_lines() == ["Error: nowhere holds no finished run (no model.keras)"]
    assert len(stderr_lines("--verbose")) > 1  # TensorFlow's own lines, then the error


def test_the_progress_bar_never_passes_its_total():
    from tfae.train import ProgressBar

    bar = ProgressBar()
    bar.set_params({"verbose": 0, "epochs": 1, "steps": 4})
    bar.on_epoch_begin(0)
    bar.on_train_batch_end(15)  # 16 batches per call, where the data held 4
    assert bar.seen == 4


def test_families_are_listed_in_the_studys_order():
    assert family_names()[:7] == ["shallow", "deep", "contractive", "denoising", "conv",
                                  "deep-conv", "randomized"]
    assert get_family("deep-conv").defaults["filters"] == (32, 64)


@pytest.mark.parametrize("command", ["fit", "tune", "plot"])
def test_help_pages_show_no_tensorflow_start_up_lines(command, tmp_path):
    environment = {key: value for key, value in os.environ.items()
                   if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-m", "tfae", command, "--help"], env=environment,
                            capture_output=True, text=True, cwd=tmp_path, check=True)
    assert result.stderr == "" and "--quiet" in result.stdout


@pytest.mark.parametrize("name", BUILT_IN)
def test_code_size_options_give_codes_of_that_size(name):
    options = get_family(name).options_for_code_size(6)
    assert build_model(name, (12, 12, 1), **options).encoder.output_shape[-1] == 6



def test_weights_past_memory_are_refused_before_allocation_and_an_allocators_failure_too():
    import dataclasses

    import keras
    import tensorflow as tf

    from tfae.errors import TfaeError
    from tfae.families import Family, register

    @dataclasses.dataclass
    class Width:
        units: int = 4

    def build(image_shape, options):
        if options.units < 0:  # stands for TensorFlow failing an allocation under its limit
            raise tf.errors.ResourceExhaustedError(
                None, None, "OOM when allocating tensor with shape[10,250000000] and type float")
        inputs = keras.Input(image_shape)
        return keras.Model(inputs, keras.layers.Dense(options.units)(keras.layers.Flatten()(inputs)))

    register(Family("wide", "for a test", Width, build=build))
    try:
        family = get_family("wide")
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        # 3 x 3 inputs to `units` outputs: just past memory in float32, and nothing allocated
        with pytest.raises(TfaeError, match=r"its weights need [\d,.]+ GB, more than this "
                                            r"machine's [\d,.]+ GB \(the largest, of shape "
                                            r"\[9, \d+\]"):
            family.new_model((3, 3), Width(memory // 36 + 1))
        with pytest.raises(TfaeError, match=r"a weight of shape \[10, 250000000\] needs 10.0 GB"):
            family.new_model((3, 3), Width(-1))
        assert family.new_model((3, 3), Width(4)).count_params() == 40
        # the measured build's deferred weights are not allocated by a later scope
        with keras.StatelessScope():
            pass
    finally:
        unregister("wide")


def test_measuring_a_model_before_building_it_leaves_a_seeded_runs_weights_as_they_were():
    import keras

    from tfae.models.base import dtype_policy

    family = get_family("deep")
    options = family.checked_options({"hidden": (16,), "latent_dim": 4})
    keras.utils.set_random_seed(7)
    with dtype_policy("float32"):
        built = family.build((28, 28, 1), options)
    keras.utils.set_random_seed(7)
    made = family.new_model((28, 28, 1), options)  # measured first, then built
    for expected, found in zip(built.weights, made.weights):
        np.testing.assert_array_equal(found.numpy(), expected.numpy())
