"""The benchmark suite still runs: ``bench/suite.py --quick`` on small subsets, no speed asserted."""

import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # end-to-end runs: the full tier only

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench"


def test_quick_suite_writes_its_report(tmp_path):
    page = tmp_path / "performance.md"
    page.write_text("# Performance\n\n## Benchmark suite\n\nthe previous run\n\n## Other\n\nkept\n")
    # Two families' throughput rows: every family's goes through the same code.
    result = subprocess.run([sys.executable, "suite.py", "--quick", "--models", "deep,conv",
                             "--write", str(page)],
                            cwd=BENCH, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert list(tmp_path.iterdir()) == [page]  # written beside, then renamed over
    text = page.read_text()
    assert "the previous run" not in text and "## Other\n\nkept" in text
    for heading in ("Matrix-multiply ceiling", "### Training throughput", "### Contractive penalty",
                    "### Corruption in the pipeline", "### Randomized", "### Inference", "### Goals"):
        assert heading in text
    for family in ("deep", "conv"):
        assert f"| `{family}` |" in text
    assert "| `shallow` |" not in text
    assert "| `deep --no-jit-compile --steps-per-execution 1` |" in text
    assert "| `deep --batch-size 1024` |" in text
    assert text.count("## Benchmark suite") == 1 and result.stdout.count("### Goals") == 1


def test_quick_own_data_bench_writes_its_section(tmp_path):
    page = tmp_path / "performance.md"
    page.write_text("# Performance\n\n## Other\n\nkept\n")
    result = subprocess.run([sys.executable, "own_data.py", "--quick", "--epochs", "2", "--rounds",
                             "1", "--model", "shallow", "--write", str(page)],
                            cwd=BENCH, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    text = page.read_text()
    assert "## Other\n\nkept" in text and "## Your own images" in text
    assert "| preparing the folder (6,000 files" in text and "folder speed / bundled speed" in text


def test_quick_colorization_bench_writes_its_section(tmp_path):
    page = tmp_path / "performance.md"
    result = subprocess.run([sys.executable, "colorization.py", "--quick", "--models",
                             "randomized,conv", "--write", str(page)],
                            cwd=BENCH, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    text = page.read_text()
    assert "## Colorization" in text and "| `randomized` |" in text and "| `conv` |" in text
    assert "Goal: the best family beats the grayscale input by >= 2 dB" in text


def test_large_data_bench_measures_peak_memory_on_small_folders(tmp_path):
    page = tmp_path / "performance.md"
    result = subprocess.run([sys.executable, "large_data.py", "--rss-images", "60,90",
                             "--rss-limit", "8", "--work", str(tmp_path / "work"),
                             "--write", str(page)],
                            cwd=BENCH, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    text = page.read_text()
    assert "## Image sets larger than memory: peak memory of fit" in text
    assert "| 60 JPEGs | " in text and "| 90 JPEGs | " in text
    assert len(list((tmp_path / "work/photos-90").glob("*/*.jpg"))) == 90
