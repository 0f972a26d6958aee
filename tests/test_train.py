"""How ``tfae.fit`` compiles each family (XLA for the dense ones, Keras' choice for the rest), and
what it does with a run that diverges."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tfae.errors import TfaeError
from tfae.config import FitConfig
from tfae.data import load
from tfae.families import build_model
from tfae.train import XLA_MIN_STEPS, execution_for, execution_options, fit, training_steps

ON_GPU = bool(tf.config.list_physical_devices("GPU"))


@pytest.mark.parametrize("family, options, given, jit_compile, steps", [
    # 2 steps: XLA's compilation would cost more than it saves.
    ("deep", {"hidden": (32,), "latent_dim": 4}, None, False, 16),
    ("contractive", {"latent_dim": 8}, True, True, 16),  # asked for: kept, however short
    # Keras' "auto": XLA only with a GPU, where it does not slow convolutions down.
    ("conv", {"filters": (4,), "latent_dim": 4}, None, ON_GPU, 1),
])
def test_fit_compiles_each_family_its_own_way(family, options, given, jit_compile, steps,
                                              tmp_path):
    config = FitConfig(model=family, model_options=options, epochs=1, limit=300)
    run = fit(config, tmp_path / "run", export=False, verbose=0, jit_compile=given)
    assert run.model.jit_compile is jit_compile
    assert run.model.steps_per_execution == steps
    assert len(run.history["loss"]) == 1


def test_the_dense_families_take_xla_from_the_run_length_that_repays_it():
    model = build_model("deep", (28, 28, 1), hidden=(32,), latent_dim=4)
    family_default = execution_options("deep")
    assert not execution_for(model, family_default, XLA_MIN_STEPS - 1)["jit_compile"]
    assert execution_for(model, family_default, XLA_MIN_STEPS)["jit_compile"] is True
    assert execution_for(model, family_default, None)["jit_compile"] is True  # size unknown
    assert training_steps(load("mnist", limit=1000), 256, 2) == 8


def test_given_execution_options_win_over_the_familys():
    assert execution_options("deep", jit_compile=False) == {"jit_compile": False,
                                                           "steps_per_execution": 16}
    assert execution_options("conv", jit_compile=True, steps_per_execution=2) == {
        "jit_compile": True, "steps_per_execution": 2}


def test_steps_per_execution_below_one_is_refused():
    with pytest.raises(TfaeError, match="steps_per_execution must be >= 1, not 0"):
        execution_options("shallow", steps_per_execution=0)


def test_several_replicas_train_under_keras_defaults_and_refuse_what_fails_there():
    assert execution_options("deep", replicated=True) == {"jit_compile": False,
                                                          "steps_per_execution": 1}
    assert execution_options("deep", False, 1, replicated=True)["jit_compile"] is False
    for given in ({"jit_compile": True}, {"steps_per_execution": 2}):
        with pytest.raises(TfaeError, match="fail with several replicas .strategy multi-worker"):
            execution_options("deep", replicated=True, **given)


def test_fit_calls_the_users_callbacks_with_the_runs_metrics(tmp_path):
    import keras

    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(sorted(logs))

    config = FitConfig(model="deep", model_options={"hidden": (16,), "latent_dim": 4}, epochs=2,
                       limit=300)
    fit(config, tmp_path / "run", export=False, verbose=0, callbacks=[Record()])
    assert len(seen) == 2 and {"loss", "val_loss", "seconds"} <= set(seen[0])


def test_a_diverging_run_stops_with_a_clear_error_and_keeps_its_last_good_epoch(tmp_path):
    from tfae.runs import RunFolder

    good = FitConfig(model="deep", model_options={"hidden": (32,), "latent_dim": 4}, limit=500,
                     epochs=1)
    fit(good, tmp_path / "run", export=False, verbose=0)
    diverging = dataclasses.replace(good, epochs=3)
    # The next epochs diverge: a learning rate of 1e30 overflows the weights in a few batches.
    folder = RunFolder(tmp_path / "run")
    model = folder.load_model()
    model.optimizer.learning_rate.assign(1e30)
    folder.save(model, folder.history())
    with pytest.raises(TfaeError, match=r"loss became NaN in epoch 2; --out .* keeps its last "
                                        r"good epoch \(1\).*lower learning_rate"):
        fit(diverging, tmp_path / "run", export=False, verbose=0)
    assert folder.finished_epochs() == 1 and folder.history()["loss"][0] > 0
    # Under XLA these two steps overflow to NaN; without it the sigmoid saturates first.
    with pytest.raises(TfaeError, match="NaN in epoch 1; .* keeps no finished epoch"):
        fit(dataclasses.replace(good, learning_rate=1e30), tmp_path / "new", export=False,
            verbose=0, jit_compile=True)
    assert not (tmp_path / "new/model.keras").exists()


def test_fit_says_what_it_trains_on_and_warns_of_a_run_of_too_few_steps(tmp_path, capsys):
    config = FitConfig(model="deep", model_options={"hidden": (16,), "latent_dim": 4}, epochs=1,
                       limit=480)
    fit(config, tmp_path / "run", export=False, verbose=2)
    captured = capsys.readouterr()
    assert ("data: mnist, 480 training, 480 validation and 480 test images, 28x28 (HxW), "
            "1 channel(s), 10 classes; 2 steps an epoch at batch 256") in captured.out
    assert ("warning: the run is only 2 steps (1 epoch of 2 at batch 256), too few to learn: "
            "--batch-size 8 and --epochs 4 give 240") in captured.err
    # The whole run counts: 7 epochs of 30 steps are enough, though an epoch is short.
    fit(config.merged({"batch_size": 16, "epochs": 7}), tmp_path / "small-batches",
        export=False, verbose=0)
    captured = capsys.readouterr()
    assert "warning" not in captured.err and "data:" not in captured.out  # quiet, and enough steps


def test_a_run_killed_while_its_model_is_written_keeps_every_epoch(tmp_path, monkeypatch):
    import csv

    from tfae.runs import RunFolder

    config = FitConfig(model="deep", model_options={"hidden": (16,), "latent_dim": 4}, epochs=2,
                       limit=300, batch_size=16)

    def killed(self, model, history):  # the process dies while writing model.keras
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(RunFolder, "save", killed)
        with pytest.raises(KeyboardInterrupt):
            fit(config, tmp_path / "run", export=False, verbose=0)
    assert (tmp_path / "run/checkpoint").is_dir() and not (tmp_path / "run/model.keras").exists()
    fit(config, tmp_path / "run", export=False, verbose=0)
    with open(tmp_path / "run/history.csv") as file:
        epochs = [row["epoch"] for row in csv.DictReader(file)]
    assert epochs == ["0", "1"]  # resumed after its last epoch, not trained again from 0
    assert (tmp_path / "run/model.keras").is_file() and not (tmp_path / "run/checkpoint").exists()


@pytest.mark.parametrize("failure", ["no room", "write fails"])
def test_a_full_disk_during_a_backup_is_one_line_and_leaves_the_last_whole_backup(
        tmp_path, monkeypatch, failure):
    import collections
    import csv

    from tfae import train

    config = FitConfig(model="deep", model_options={"hidden": (16,), "latent_dim": 4}, epochs=1,
                       limit=300, batch_size=16)
    # A run stopped after its first epoch, before its model is written, leaves a backup.
    with monkeypatch.context() as patched:
        patched.setattr(train.RunFolder, "save",
                        lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            fit(config, tmp_path / "run", export=False, verbose=0)
    backup = tmp_path / "run/checkpoint"
    kept = {path.name: path.read_bytes() for path in backup.iterdir()}
    assert kept
    with monkeypatch.context() as patched:
        if failure == "no room":
            usage = collections.namedtuple("Usage", "total used free")(10**9, 10**9 - 1000, 1000)
            patched.setattr(train.shutil, "disk_usage", lambda _: usage)
            words = r"no room for the training backup in .*checkpoint: it needs about \d+ MB, 0 MB"
        else:
            def disk_full(self, filepath, overwrite=True):
                with open(filepath, "wb") as file:
                    file.write(b"half")
                raise OSError(28, "No space left on device")

            patched.setattr(train.keras.Model, "save_weights", disk_full)
            words = r"cannot write the training backup in .*checkpoint: No space left on device"
        with pytest.raises(TfaeError, match=words) as error:
            fit(config.merged({"epochs": 2}), tmp_path / "run", export=False, verbose=0)
    assert "\n" not in str(error.value)
    assert {path.name: path.read_bytes() for path in backup.iterdir()} == kept  # nothing half
    fit(config.merged({"epochs": 2}), tmp_path / "run", export=False, verbose=0)  # room again
    with open(tmp_path / "run/history.csv") as file:
        epochs = [row["epoch"] for row in csv.DictReader(file)]
    assert epochs[0] == "0" and epochs[-1] == "1" and (tmp_path / "run/model.keras").is_file()


def test_fit_warns_of_a_code_wider_than_its_images(tmp_path, capsys):
    images = np.random.default_rng(0).random((200, 8, 8, 1)).astype(np.float32)
    fit(FitConfig(model="deep", epochs=1, batch_size=8,
                  model_options={"hidden": (16,), "latent_dim": 100}), tmp_path / "run",
        verbose=0, data=images)
    assert ("warning: the code, 100 numbers, is as wide as the 64-number image or wider"
            in capsys.readouterr().err)
