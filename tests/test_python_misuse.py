"""The Python API misused as a hurried user would: each mistake is a ``TfaeError`` naming the
argument and what it got, raised before any work, never an internal error from deeper down."""

import pytest

import tfae

CASES = [
    ("encode(None)", lambda: tfae.encode(None), "path must be a path (a str or pathlib.Path), "
                                                "got NoneType None"),
    ("encode(5)", lambda: tfae.encode(5), "path must be a path (a str or pathlib.Path), got int 5"),
    ("encode(out=5)", lambda: tfae.encode("runs/x", out=5), "out must be a path"),
    ("score(out=3)", lambda: tfae.score("runs/x", out=3), "out must be a path"),
    ("fit(config=dict)", lambda: tfae.fit({"model": "deep", "epochs": 0}, "runs/x"),
     "epochs must be positive, got 0"),
    ("fit(config=str)", lambda: tfae.fit("deep", "runs/x"),
     "config must be a tfae.FitConfig (or a dict of its settings), got str"),
    ("fit(run_dir=None)", lambda: tfae.fit(tfae.FitConfig(), None), "run_dir must be a path"),
    ("evaluate(batch_size=0)", lambda: tfae.evaluate("runs/x", batch_size=0),
     "batch_size must be a positive whole number, got 0"),
    ("export_saved_model(resize='x')", lambda: tfae.export_saved_model(None, "e", resize="x"),
     "resize must be one of stretch, crop, pad, got 'x'"),
    ("sample(count='2')", lambda: tfae.sample("runs/x", count="2"),
     "count must be a whole number of at least 1, got '2'"),
    ("sample(seed=-1)", lambda: tfae.sample("runs/x", seed=-1),
     "seed must be a whole number of at least 0, got -1"),
    ("reconstruct(batch_size=0)", lambda: tfae.reconstruct("runs/x", "out.npz", batch_size=0),
     "batch_size must be a positive whole number, got 0"),
]


@pytest.mark.parametrize("call, message", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_a_misused_argument_is_a_tfae_error_naming_it(tmp_path, monkeypatch, call, message):
    monkeypatch.chdir(tmp_path)  # nothing of the working folder is touched
    with pytest.raises(tfae.TfaeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()
    assert not any(tmp_path.iterdir())
