"""``bench/device_check.py``: its verdict on where the corruption ran, and its ``--smoke`` run."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
import device_check  # noqa: E402  (a script beside the others, not a package)

GPU = "/job:localhost/replica:0/task:0/device:GPU:0"
CPU = "/job:localhost/replica:0/task:0/device:CPU:0"


def test_placements_are_read_per_family_once_each():
    log = "\n".join([
        "noise before any family", f"tfae_corruption/Cast: (Cast): {CPU}",
        "@@ deep", f"tfae_corruption/Cast: (Cast): {GPU}",
        f"I0000 123 placer.cc:162] tfae_corruption/Cast: (Cast): {GPU}",
        f"tfae_corruption/Shape: (Shape): {CPU}", f"other/Cast: (Cast): {CPU}",
        "@@ conv", f"tfae_corruption/add: (AddV2): {GPU}"])
    assert device_check.parse_placements(log) == {
        "deep": {"GPU:0": ["tfae_corruption/Cast"], "CPU:0": ["tfae_corruption/Shape"]},
        "conv": {"GPU:0": ["tfae_corruption/add"]}}


def test_a_corruption_op_on_the_cpu_beside_a_gpu_fails_the_check():
    placements = {"deep": {"GPU:0": ["a"], "CPU:0": ["b", "c"]}, "conv": {"GPU:0": ["a"]},
                  "vae": {}}
    assert device_check.misplaced(placements, gpu_visible=True) == {
        "deep": "2 corruption op(s) on CPU:0", "vae": "no corruption op in the placement log"}
    assert device_check.misplaced(placements, gpu_visible=False) == {
        "vae": "no corruption op in the placement log"}


@pytest.mark.slow
def test_the_smoke_run_reads_the_placement_log_and_writes_its_table(tmp_path):
    page = tmp_path / "performance.md"
    page.write_text("# Performance\n\n## Other\n\nkept\n")
    # Whatever log level the user sets for their own runs: 3 silences TensorFlow's placement
    # lines, which the check reads in a child process of its own level.
    result = subprocess.run(
        [sys.executable, "device_check.py", "--smoke", "--families", "deep,randomized",
         "--out", str(tmp_path / "out"), "--write", str(page)],
        cwd=BENCH, capture_output=True, text=True, timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads((tmp_path / "out" / "device_check.json").read_text())
    assert measured["gpu_visible"] is False and measured["misplaced"] == {}
    # This machine has no GPU: every corruption op of both fits ran on the CPU, and there were
    # some (occlusion's masks and the conversion to floats), found by name in the log.
    for family in ("deep", "randomized"):
        assert list(measured["placements"][family]) == ["CPU:0"]
        assert any("Cast" in name for name in measured["placements"][family]["CPU:0"])
    deep, randomized = measured["families"]
    assert deep["float32"]["images_per_s"] > 0 and deep["mixed"]["images_per_s"] > 0
    assert 0 < deep["float32"]["peak_share"] < 1.5 and deep["plain_keras"]["images_per_s"] > 0
    assert "mixed" not in randomized and "plain_keras" not in randomized  # float32, layer-wise
    text = page.read_text()
    assert "## Other\n\nkept" in text and "## Device check" in text
    assert "| `deep` | " in text and "on CPU:0 |" in text and "as it must" in text
    assert (tmp_path / "out" / "device_check.md").read_text() in text
