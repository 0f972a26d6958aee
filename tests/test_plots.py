import matplotlib.image
import numpy as np
import pytest
from click.testing import CliRunner

import tfae
from tfae_cli.main import tfae as tfae_command
from tfae.errors import TfaeError
from tfae.figures import draw

# (width, height) in pixels: each figure's size follows from what it shows.
EXPECTED_SIZES = {
    "tsne": (800, 700),
    "reconstructions": (1320, 320),
    "denoising": (1320, 450),
    "occlusion": (1320, 450),
    "manifold": (1060, 1360),
    "history": (500, 400),
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    work = tmp_path_factory.mktemp("plots")
    tfae.fit(tfae.FitConfig(model="shallow", model_options={"latent_dim": 8}, epochs=2,
                            limit=600), work / "run", export=False, verbose=0)
    return work / "run"


@pytest.mark.parametrize("kind", sorted(EXPECTED_SIZES))
def test_each_kind_writes_a_png_of_the_expected_size(kind, run_dir):
    path = draw(run_dir, kind, limit=300, verbose=0)
    assert path == run_dir / "figures" / f"{kind}.png"
    pixels = matplotlib.image.imread(path)
    assert (pixels.shape[1], pixels.shape[0]) == EXPECTED_SIZES[kind]
    assert pixels[..., :3].std() > 0.05  # something was drawn, not a blank canvas


def test_the_occlusion_figure_draws_each_patch_in_orange_where_the_model_saw_black(run_dir):
    from tfae.figures import PATCH_COLOUR, Figure

    figure = Figure("shallow", run_dir / "o.png", None, splits=tfae.load("mnist", limit=300))
    occluded, images, _ = figure.shown("occlusion:14")
    patches = figure.shown_patches("occlusion:14")
    assert (patches.sum(axis=(1, 2, 3)) == 14 * 14).all()  # one whole patch an image
    assert (occluded[patches[..., 0]] == 0).all()
    assert (occluded[~patches[..., 0]] == images[~patches[..., 0]]).all()
    pixels = matplotlib.image.imread(draw(run_dir, "occlusion", limit=300, verbose=0))[..., :3]
    assert np.isclose(pixels, PATCH_COLOUR, atol=0.02).all(axis=-1).sum() > 10 * 14 * 14


def test_plot_command_writes_where_told(run_dir, tmp_path):
    result = CliRunner().invoke(tfae_command, ["plot", str(run_dir), "--kind", "reconstructions",
                                               "--limit", "50", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "reconstructions.png").stat().st_size > 1000


def test_plot_draws_every_kind_it_is_given_once(run_dir, tmp_path):
    result = CliRunner().invoke(tfae_command, [
        "plot", str(run_dir), "--kind", "history", "--kind", "reconstructions", "--kind",
        "history", "--limit", "50", "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"wrote {tmp_path / 'history.png'}",
                                          f"wrote {tmp_path / 'reconstructions.png'}"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["history.png",
                                                                "reconstructions.png"]


def test_history_of_an_export_is_a_clear_error(tmp_path):
    with pytest.raises(TfaeError, match="history needs a run folder"):
        draw(tmp_path, "history")


def test_a_figure_kind_of_ones_own_is_one_registration(run_dir, tmp_path):
    import numpy as np

    from tfae import plots
    from tfae.figures import FigureKind, figure_names, register_figure, unregister_figure

    def worst(figure):  # the test images the model reconstructs worst
        images, _, _ = figure.first(figure.splits.test, 100)
        errors = np.mean((figure.reconstruct(images) - images) ** 2, axis=(1, 2, 3))
        chosen = images[np.argsort(errors)[-5:]]
        return plots.plot_rows([("worst", chosen), ("reconstructed", figure.reconstruct(chosen))],
                               figure.path, f"{figure.name}: worst reconstructions")

    register_figure(FigureKind("worst", worst, "the worst reconstructed test images"))
    try:
        result = CliRunner().invoke(tfae_command, ["plot", str(run_dir), "--kind", "worst",
                                                   "--limit", "100", "--out", str(tmp_path)])
        assert result.exit_code == 0, result.output
        assert "the worst reconstructed test images" in result.output
        assert matplotlib.image.imread(tmp_path / "worst.png")[..., :3].std() > 0.05
    finally:
        unregister_figure("worst")
    assert "worst" not in figure_names()


def test_a_one_pixel_image_is_drawn_and_too_small_to_occlude(tmp_path):
    from tfae.figures import _occlusion_spec
    from tfae.plots import plot_rows

    images = np.full((2, 1, 1, 1), 0.5, np.float32)
    assert plot_rows([("original", images)], tmp_path / "rows.png", "1x1").is_file()
    with pytest.raises(TfaeError, match=r"images of 1x1 \(HxW\) are too small to occlude"):
        _occlusion_spec((1, 1, 1))
