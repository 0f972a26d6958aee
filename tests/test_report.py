import pathlib
import re
import shutil
import subprocess

import pytest

from click.testing import CliRunner

from tfae import __version__
from tfae.errors import TfaeError
from tfae.report import page_policy, source_version
from tfae_cli.main import tfae

RESULTS = pathlib.Path(__file__).parents[1] / "docs/results"  # the pages' own page.json files


def with_policy(page, out):
    """Copies the repository's ``page.json`` of ``page`` into the report folder ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(RESULTS / page / "page.json", out / "page.json")

pytestmark = pytest.mark.slow  # end-to-end runs: the full tier only


def test_report_on_two_families_writes_a_well_formed_table(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with_policy(".", tmp_path / "docs/results")
    arguments = ["report", "--models", "shallow,randomized", "--epochs", "1", "--limit", "400",
                 "--out", "docs/results"]
    result = CliRunner().invoke(tfae, arguments)
    assert result.exit_code == 0, result.output
    page = (tmp_path / "docs/results.md").read_text()
    results, goals, settings = tables(page)
    header, rule, *rows = results
    assert header.count("|") == rule.count("|") == 12
    families, baselines = rows[:2], rows[2:]
    assert [re.match(r"\| `([\w-]+)`", row).group(1) for row in families] == ["shallow",
                                                                             "randomized"]
    # A PCA row per code size, capped by the pixels and images: 2,048 and 2,000 both become 400.
    assert [row.split("|")[1].strip() for row in baselines] == ["*raw pixels*", "*PCA-400*"]
    assert "PCA-400 has as many components as there are training images (400)" in page
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert len(cells) == 11 and all(cells)
        assert re.fullmatch(r"\d+\.\d\d%", cells[5]) and re.fullmatch(r"\d+\.\d\d%", cells[6])
    for row in families:
        assert re.fullmatch(r"\d+\.\d\d% \(\d+\)", row.strip("|").split("|")[-1].strip())
    assert any(row.startswith("| `randomized` trained in < 30 s |") for row in goals)
    assert any(row.startswith("| `shallow` beats PCA-400 on probe, kNN and PSNR |") for row in goals)
    assert any(row.startswith("| `randomized` linear probe beats the raw pixels' |") for row in goals)
    assert all(row.endswith(("| met |", "| **missed** |")) for row in goals[2:])
    assert [row.split("|")[1].strip() for row in settings[2:]] == ["`shallow`", "`randomized`"]
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page):
        assert (tmp_path / "docs" / image).is_file()
    assert "tfae report --models shallow,randomized --epochs 1 --limit 400 --out docs/results" \
        in page
    assert re.search(r"by tfae \d+\.\d+\.\d+( at commit [0-9a-f]{4,}( \+ changes)?)?;", page)

    # A second report reuses the finished runs, their metrics and figures instead of redoing them.
    kept = [tmp_path / "docs/results/runs/shallow/model.keras",
            tmp_path / "docs/results/runs/shallow/metrics.json",
            tmp_path / "docs/results/figures/randomized/tsne.png"]
    before = [path.stat().st_mtime_ns for path in kept]
    again = CliRunner().invoke(tfae, arguments)
    assert again.exit_code == 0, again.output
    assert "training" not in again.output
    assert [path.stat().st_mtime_ns for path in kept] == before
    assert len(tables((tmp_path / "docs/results.md").read_text())[0]) == 6  # 2 families, 2 baselines

    # A run trained with other settings (say, older defaults) is refused, not passed off as new.
    config_path = tmp_path / "docs/results/runs/shallow/config.json"
    config_path.write_text(config_path.read_text().replace('"noise": "', '"noise": "gaussian:0.1+'))
    stale = CliRunner().invoke(tfae, arguments)
    assert stale.exit_code == 1 and "other settings (noise)" in stale.output
    assert [path.stat().st_mtime_ns for path in kept] == before


def tables(page):
    """The Markdown tables of ``page``, each as its list of lines."""
    found, current = [], []
    for line in page.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append(current)
            current = []
    return found


def test_a_compact_report_trains_every_row_at_one_code_size_on_a_page_of_its_own(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    notes = tmp_path / "docs/results/latent-8/notes.md"
    with_policy("latent-32", notes.parent)
    notes.write_text("## Why the goals are missed\n\nTried nothing yet.\n")
    result = CliRunner().invoke(tfae, ["report", "--models", "shallow,randomized", "--epochs", "1",
                                       "--limit", "300", "--latent-dim", "8"])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "docs/results/latent-8.md").read_text()
    assert page.startswith("# Results with 8-number codes: `shallow`, `randomized`")
    assert "--latent-dim 8 --limit 300 --out docs/results/latent-8`" in page
    results, goals, settings = tables(page)
    assert [row.split("|")[1].strip() for row in results[2:]] == [
        "`shallow`", "`randomized`", "*raw pixels*", "*PCA-8*"]
    assert [row.split("|")[1].strip() for row in goals[2:]] == [
        "`shallow` beats PCA-8 on probe, kNN and PSNR",
        "`randomized` beats PCA-8 on probe, kNN and PSNR", "best linear probe >= 97%",
        "best kNN >= 98%"]
    assert "latent_dim=8" in settings[2] and "hidden=8" in settings[3]
    assert page.index("## Goals") < page.index("## Why the goals are missed\n\nTried nothing yet.") \
        < page.index("## Settings")
    assert not (tmp_path / "docs/results.md").exists()


def test_a_study_shapes_report_trains_each_row_at_the_studys_shape(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with_policy("study-shapes", tmp_path / "docs/results/study-shapes")
    result = CliRunner().invoke(tfae, ["report", "--models", "randomized", "--limit", "300",
                                       "--study-shapes"])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "docs/results/study-shapes.md").read_text()
    assert page.startswith("# Results at the study's shapes: `randomized`")
    results, goals, settings = tables(page)
    assert [row.split("|")[1].strip() for row in results[2:]] == [
        "`randomized`", "*raw pixels*", "*PCA-300*"]  # 700 components, capped by 300 images
    assert "| `randomized` linear probe >= 93.6%, the study's best |" in "\n".join(goals)
    assert "hidden=700,700" in settings[2] and "## Against the study" in page


def test_report_refuses_an_unknown_family_before_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(tfae, ["report", "--models", "deep,huge"])
    assert result.exit_code == 1 and "unknown report row 'huge'; choose from shallow" in result.output
    assert not (tmp_path / "docs").exists()


@pytest.mark.parametrize("content", ['[]', '{"goals": [{"goal": "x"}]}', '{"goal": []}',
                                     '{"goals": [{"goal": "x", "metric": ["probe"], "unit": "%", '
                                     '"at_least": 1, "below": 2}]}'])
def test_a_page_policy_of_another_shape_is_refused_in_one_line(content, tmp_path):
    (tmp_path / "page.json").write_text(content)
    with pytest.raises(TfaeError, match="page.json must hold goals"):
        page_policy(tmp_path)


@pytest.mark.parametrize("page", [".", "study-shapes", "latent-32"])
def test_the_pages_own_policies_are_well_formed(page):
    assert page_policy(RESULTS / page)["goals"]


def test_the_compact_page_gives_contractive_the_studys_deep_encoder():
    # One sigmoid layer of 32 under the penalty weighed for 1,024 flattened its code (72% probe).
    from tfae.config import FitConfig, resolve
    from tfae.report import _row_fields, row_names

    policy = page_policy(RESULTS / "latent-32")
    options = resolve(FitConfig.from_dict(_row_fields("contractive", policy, 32))).options
    assert (options.hidden, options.latent_activation, options.latent_dim) == (
        (500, 200, 100), "linear", 32)
    assert row_names(policy) == row_names(page_policy(RESULTS / "study-shapes"))  # families only
    assert row_names(page_policy(RESULTS / "."))[-2:] == ["randomized-denoising",
                                                        "randomized-occlusion"]


def test_study_shapes_without_rows_are_refused_before_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(tfae, ["report", "--study-shapes", "--limit", "100"])
    assert result.exit_code == 1
    assert "reads each family's shape from the rows of docs/results/study-shapes/page.json" \
        in result.output


def test_a_page_of_the_users_at_the_pages_path_is_never_overwritten(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rep").mkdir()
    (tmp_path / "rep/mine.md").write_text("# My notes\n")
    result = CliRunner().invoke(tfae, ["report", "--models", "shallow", "--out", "rep/mine"])
    assert result.exit_code == 1
    assert "rep/mine.md exists and is not a page tfae report wrote" in result.output
    assert (tmp_path / "rep/mine.md").read_text() == "# My notes\n"
    assert not (tmp_path / "rep/mine").exists()  # refused before any training


def test_a_page_names_the_commit_of_the_code_that_made_it():
    checkout = pathlib.Path(__file__).parents[1]
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=checkout,
                          capture_output=True, text=True)
    if head.returncode:
        pytest.skip("not a git checkout: a page names tfae's version only")
    assert source_version().startswith(f"tfae {__version__} at commit {head.stdout.strip()}")


def test_rows_without_a_pca_baseline_or_without_baselines_are_compared_with_what_they_have():
    from tfae.report import Row, _baseline_goals, _baseline_rows

    measured = {"probe": {"linear": 0.95, "knn": 0.96}, "reconstruction": {"psnr": 30.0}}
    wide = Row("wide", {}, {**measured, "baselines": {"pixels": {"linear": 0.9, "knn": 0.97}}},
               {})
    skipped = Row("skipped", {}, {**measured, "baselines": None}, {})
    assert _baseline_goals([wide, skipped], with_pixels=True) == [
        ("`wide` linear probe beats the raw pixels'", "95.00% against 90.00%", True)]
    header = ["model", "MSE", "linear probe", "kNN (k=5)"]
    assert _baseline_rows([wide, skipped], header) == ["| *raw pixels* | – | 90.00% | 97.00% |"]
