"""Tests of dislib.viz on a tiny linear Disentangler and random images."""

from __future__ import annotations

import io
import json
import re
import dataclasses
from dataclasses import dataclass

import matplotlib
import numpy as np
import pytest
import torch
from torch import Tensor, nn

from dislib import evaluate, viz
from dislib.models.base import Codes, Disentangler, ImageConfig
from dislib.train import History


@dataclass(frozen=True)
class TinyConfig(ImageConfig):
    specified_dim: int = 3
    unspecified_dim: int = 2


class Tiny(Disentangler):
    """Linear encoder and decoder; dropout in the decoder makes train mode visible."""

    name = "tiny-viz"
    Config = TinyConfig
    BUDGETS = {}

    def __init__(self, config: TinyConfig) -> None:
        super().__init__(config)
        self.specified_dim, self.unspecified_dim = config.specified_dim, config.unspecified_dim
        pixels = config.image_channels * config.image_size**2
        self.encoder = nn.Linear(pixels, self.specified_dim + self.unspecified_dim)
        self.decoder = nn.Sequential(nn.Linear(self.specified_dim + self.unspecified_dim, pixels), nn.Dropout(0.5))

    def encode(self, x: Tensor) -> Codes:
        self.check_images(x)
        h = self.encoder(x.flatten(1))
        specified = h[:, : self.specified_dim] if self.specified_dim else None
        z = h[:, self.specified_dim :]
        return Codes(specified=specified, unspecified=z, unspecified_logvar=torch.zeros_like(z))

    def decode(self, specified: Tensor | None, unspecified: Tensor) -> Tensor:
        self.check_codes(specified, unspecified)
        h = unspecified if specified is None else torch.cat([specified, unspecified], 1)
        c, s = self.config.image_channels, self.config.image_size
        return torch.sigmoid(self.decoder(h)).view(-1, c, s, s)


def tiny(channels: int = 1, size: int = 12, specified_dim: int = 3, unspecified_dim: int = 2) -> Tiny:
    torch.manual_seed(0)
    config = TinyConfig(image_channels=channels, image_size=size, specified_dim=specified_dim, unspecified_dim=unspecified_dim)
    return Tiny(config).train()


def images(n: int, channels: int = 1, size: int = 12) -> Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(n))


def image_cells(fig) -> int:
    return sum(len(ax.images) for ax in fig.axes)


def reference_decode(model: Tiny, specified: Tensor | None, unspecified: Tensor) -> Tensor:
    model.eval()
    with torch.no_grad():
        return model.decode(specified, unspecified)


# grids ---------------------------------------------------------------------------------
def test_image_grid_shape_and_placement():
    x = images(5)
    grid = viz.image_grid(x, nrow=3, padding=2)
    assert grid.shape == (2 * 14 + 2, 3 * 14 + 2, 1)
    np.testing.assert_allclose(grid[2:14, 2:14, 0], x[0, 0].numpy())
    np.testing.assert_allclose(grid[16:28, 16:28, 0], x[4, 0].numpy())
    assert (grid[16:28, 30:42] == 1.0).all()  # the empty sixth place


@pytest.mark.parametrize("channels", [1, 3])
def test_show_images_is_one_image(channels):
    fig = viz.show_images(images(6, channels), nrow=3, title="six")
    assert image_cells(fig) == 1
    assert fig.axes[0].images[0].get_array().shape[:2] == (2 * 14 + 2, 3 * 14 + 2)


@pytest.mark.parametrize(
    "bad, message",
    [(torch.rand(0, 1, 12, 12), "empty"), (torch.rand(1, 12, 12), "unsqueeze"), (torch.rand(2, 2, 12, 12), "C = 1 or 3"),
     ([1, 2], "tensor")],
)
def test_image_grid_rejects_bad_images(bad, message):
    with pytest.raises((ValueError, TypeError), match=message):
        viz.image_grid(bad)


# swaps and interpolations ----------------------------------------------------------------
def test_swap_images_cell_is_decode_of_column_specified_and_row_unspecified():
    model, rows, cols = tiny(), images(2), images(3)
    swaps = viz.swap_images(model, rows, cols)
    assert swaps.shape == (2, 3, 1, 12, 12)
    s, z = model.encode(cols).specified, model.encode(rows).unspecified
    for i in range(2):
        for j in range(3):
            expected = reference_decode(model, s[j : j + 1], z[i : i + 1])[0]
            torch.testing.assert_close(swaps[i, j], expected)


def test_swap_images_diagonal_is_reconstruction_and_mode_is_restored():
    model, x = tiny(), images(4)
    swaps = viz.swap_images(model, x, x)
    assert model.training
    codes = model.encode(x)
    reconstructions = reference_decode(model, codes.specified, codes.unspecified)
    torch.testing.assert_close(torch.stack([swaps[i, i] for i in range(4)]), reconstructions)


def test_swap_grid_has_headers_and_all_cells():
    fig = viz.swap_grid(tiny(channels=3), images(3, 3), images(4, 3), title="swap")
    assert image_cells(fig) == 3 * 4 + 3 + 4
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert buffer.getvalue()[:4] == b"\x89PNG"
    texts = lambda figure: " ".join(t.get_text() for t in figure.findobj(matplotlib.text.Text))  # noqa: E731
    assert "specified code s from the top row" in texts(fig)
    model = tiny(channels=3)
    model.specified_symbol = "e"  # Ruiz et al.'s target code
    assert "specified code e from the top row" in texts(viz.swap_grid(model, images(2, 3), images(2, 3)))


def test_swap_grid_errors():
    model = tiny()
    with pytest.raises(ValueError, match="row_images is empty"):
        viz.swap_grid(model, images(0), images(2))
    with pytest.raises(ValueError, match="expects images of shape"):
        viz.swap_grid(model, images(2, size=10), images(2, size=10))
    with pytest.raises(ValueError, match="needs a model with a specified code"):
        viz.swap_grid(tiny(specified_dim=0), images(2), images(2))


def test_interpolation_endpoints_are_reconstructions():
    model, x = tiny(), images(2)
    grid = viz.interpolation_images(model, x[0], x[1], steps=5)
    assert grid.shape == (5, 5, 1, 12, 12)
    codes = model.encode(x)
    reconstructions = reference_decode(model, codes.specified, codes.unspecified)
    torch.testing.assert_close(grid[0, 0], reconstructions[0])
    torch.testing.assert_close(grid[-1, -1], reconstructions[1])
    torch.testing.assert_close(grid[0, -1], reference_decode(model, codes.specified[1:], codes.unspecified[:1])[0])
    assert image_cells(viz.interpolation_grid(model, x[0], x[1], steps=4)) == 16


def test_interpolation_errors():
    model, x = tiny(), images(2)
    with pytest.raises(ValueError, match="steps must be at least 2"):
        viz.interpolation_images(model, x[0], x[1], steps=1)
    with pytest.raises(ValueError, match="must be one image"):
        viz.interpolation_images(model, x, x[1])


def test_conditional_samples_share_z_per_column():
    model, x = tiny(), images(3)
    samples = viz.conditional_sample_images(model, x, 4, torch.Generator().manual_seed(1))
    assert samples.shape == (3, 4, 1, 12, 12)
    z = torch.randn(4, model.unspecified_dim, generator=torch.Generator().manual_seed(1))
    s = model.encode(x).specified
    torch.testing.assert_close(samples[2, 1], reference_decode(model, s[2:3], z[1:2])[0])
    fig = viz.conditional_samples(model, x, 4, torch.Generator().manual_seed(1))
    assert image_cells(fig) == 3 * 5


# retrieval -----------------------------------------------------------------------------
def test_nearest_neighbours_finds_itself_first():
    bank = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
    for metric in ("euclidean", "cosine"):
        found = viz.nearest_neighbours(bank[[3, 7]], bank, k=3, metric=metric)
        assert found.shape == (2, 3)
        assert found[:, 0].tolist() == [3, 7]
    with pytest.raises(ValueError, match="k must be between 1 and the bank size 20"):
        viz.nearest_neighbours(bank[:2], bank, k=21)
    with pytest.raises(ValueError, match="same D"):
        viz.nearest_neighbours(bank[:2, :3], bank)


def test_retrieval_figure_cells_and_errors():
    queries, bank = images(2), images(10)
    indices = torch.tensor([[0, 1, 2], [3, 4, 5]])
    assert image_cells(viz.retrieval_figure(queries, bank, indices)) == 2 * 4
    with pytest.raises(ValueError, match="indices must lie in"):
        viz.retrieval_figure(queries, bank, torch.tensor([[0], [10]]))


# latent maps and history -------------------------------------------------------------
def test_latent_scatter_one_series_per_class():
    codes, labels = torch.randn(30, 2), torch.arange(30) % 3
    fig = viz.latent_scatter(codes, labels, class_names=["zero", "one", "two"])
    ax = fig.axes[0]
    assert len(ax.collections) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["zero", "one", "two"]
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        viz.latent_scatter(torch.randn(30, 3), labels)


def test_latent_manifold_decodes_a_grid():
    model = tiny(specified_dim=0)
    fig = viz.latent_manifold(viz.unspecified_decoder(model), extent=2, steps=4)
    assert fig.axes[0].images[0].get_array().shape == (4 * 12, 4 * 12)
    with pytest.raises(ValueError, match="dims must be two different"):
        viz.latent_manifold(viz.unspecified_decoder(model), dims=(0, 0))


def test_plot_history_one_plot_per_curve():
    history = History(steps=[10, 20], losses=[{"loss": 2.0, "kl": 1.0}] * 2, metrics=[{"test_elbo": 3.0}] * 2)
    fig = viz.plot_history(history)
    assert sum(1 for ax in fig.axes if ax.lines) == 3
    assert sum(1 for ax in viz.plot_history(history.__dict__, keys=["kl"]).axes if ax.lines) == 1
    with pytest.raises(ValueError, match="history is empty"):
        viz.plot_history(History())
    with pytest.raises(KeyError, match="available"):
        viz.plot_history(history, keys=["nope"])


# sliders ---------------------------------------------------------------------------------
def slider_frames(html: str) -> list[str]:
    return json.loads(re.search(r"var frames=(\[.*?\])", html).group(1))


def test_slider_html_has_two_ranges_and_all_frames():
    model, x = tiny(channels=3), images(2, 3)
    panel = viz.code_slider(model, x[0], x[1], steps=4, title="a <to> b")
    html = panel._repr_html_()
    assert html.count('type="range"') == 2
    assert len(slider_frames(html)) == 16
    assert all(f.startswith("data:image/png;base64,") for f in slider_frames(html))
    assert "a &lt;to&gt; b" in html
    ids = {re.search(r'id="(dislib-slider-\w+)"', panel.html()).group(1) for _ in range(2)}
    assert len(ids) == 2


def test_code_slider_corners():
    model, x = tiny(), images(2)
    frames = viz.code_slider(model, x[0], x[1], steps=3).frames()
    codes = model.encode(x)
    torch.testing.assert_close(frames[0, 0], reference_decode(model, codes.specified[:1], codes.unspecified[:1])[0])
    torch.testing.assert_close(frames[2, 0], reference_decode(model, codes.specified[1:], codes.unspecified[:1])[0])
    torch.testing.assert_close(frames[2, 2], reference_decode(model, codes.specified[1:], codes.unspecified[1:])[0])


def test_slider_html_is_small_for_smooth_rgb_frames():
    ramp = torch.linspace(0, 1, 32)

    def frame(a: float, b: float) -> Tensor:
        return torch.stack([ramp.outer(ramp) * a, ramp.outer(1 - ramp) * b, (ramp.outer(ramp) + a * b) / 2])

    assert len(viz.SliderPanel(frame, ("a", 0, 1), ("b", 0, 1), steps=11).html()) < 300_000


def test_latent_slider_frames_follow_the_grid():
    model = tiny(specified_dim=0, unspecified_dim=3)
    decode = viz.unspecified_decoder(model)
    panel = viz.latent_slider(decode, latent_dim=3, dims=(2, 0), extent=1.0, steps=3)
    frames = panel.frames()
    assert frames.shape == (3, 3, 1, 12, 12)
    torch.testing.assert_close(frames[0, 2], reference_decode(model, None, torch.tensor([[1.0, 0.0, -1.0]]))[0])


def test_live_slider_updates_the_image():
    model, x = tiny(), images(2)
    box = viz.code_slider(model, x[0], x[1]).live()
    image, first, second = box.children
    assert image.value[:4] == b"\x89PNG"
    before = image.value
    first.value = 1.0
    assert image.value != before
    second.value = 0.5
    assert image.value != before


def test_slider_errors():
    with pytest.raises(ValueError, match="must return one image"):
        viz.SliderPanel(lambda a, b: torch.rand(1, 1, 8, 8), ("a", 0, 1), ("b", 0, 1))
    with pytest.raises(ValueError, match="needs low < high"):
        viz.SliderPanel(lambda a, b: torch.rand(1, 8, 8), ("a", 1, 0), ("b", 0, 1))
    with pytest.raises(ValueError, match=r"center must be one code of shape \[2\]"):
        viz.latent_slider(viz.unspecified_decoder(tiny(specified_dim=0)), center=torch.zeros(3))
    with pytest.raises(ValueError, match="needs a model with a specified code"):
        viz.code_slider(tiny(specified_dim=0), images(1)[0], images(1)[0])


def test_batched_and_single_frame_functions_agree():
    def frame(a, b):
        return torch.full((1, 4, 4), 0.5) * a + 0.25 * b

    def frames(a, b):
        return torch.ones(len(a), 1, 4, 4) * (0.5 * a + 0.25 * b).view(-1, 1, 1, 1)

    single = viz.SliderPanel(frame, ("a", 0, 1), ("b", 0, 1), steps=3).frames()
    torch.testing.assert_close(viz.SliderPanel(frames, ("a", 0, 1), ("b", 0, 1), steps=3, batched=True).frames(), single)
    assert single[2, 1, 0, 0, 0] == pytest.approx(0.5 + 0.125)
    with pytest.raises(ValueError, match="one image per position"):
        viz.SliderPanel(lambda a, b: torch.rand(2, 1, 4, 4), ("a", 0, 1), ("b", 0, 1), batched=True)


def test_encode_dataset_in_batches_matches_one_call():
    model, x = tiny(), images(7)
    codes = evaluate.encode_dataset(model, x, batch_size=3)
    expected = model.eval().encode(x)
    torch.testing.assert_close(codes.specified, expected.specified.detach())
    torch.testing.assert_close(codes.unspecified, expected.unspecified.detach())
    assert evaluate.encode_dataset(tiny(specified_dim=0), x, batch_size=3).specified is None


def test_every_label_tiles_one_code_under_each_label():
    def generate(codes: Tensor, labels: Tensor) -> Tensor:  # image k is grey level labels[k] / 4 + codes[k, 0]
        return (labels.float() / 4 + codes[:, 0])[:, None, None, None].expand(-1, 1, 2, 3)

    row = viz.every_label(generate, torch.tensor([0.1, 7.0]), 3)
    assert row.shape == (1, 2, 9)
    torch.testing.assert_close(row[0, 0, ::3], torch.tensor([0.1, 0.35, 0.6]))
    with pytest.raises(ValueError, match="one vector"):
        viz.every_label(generate, torch.zeros(2, 2), 3)


def test_gradient_shares_are_stacked_per_run_and_refused_without_them():
    shares = [{"gradient_share_reconstruction": 0.7, "gradient_share_adversarial": 0.3, "test_kl_z": 5.0},
              {"gradient_share_reconstruction": 0.6, "gradient_share_adversarial": 0.4, "test_kl_z": 6.0}]
    history = History(steps=[10, 20], losses=[{}, {}], metrics=shares)
    fig = viz.plot_gradient_shares({"one": history, "two": dataclasses.asdict(history)})
    drawn = [ax for ax in fig.axes if ax.collections]
    assert len(drawn) == 2 and all(len(ax.collections) == 2 for ax in drawn)  # two parts stacked in each panel
    assert [t.get_text() for t in drawn[0].get_legend().get_texts()] == ["reconstruction", "adversarial"]
    with pytest.raises(ValueError, match="no gradient shares"):
        viz.plot_gradient_shares({"vae": History(steps=[10], losses=[{}], metrics=[{"test_kl_z": 1.0}])})


def test_plot_split_puts_one_marker_per_run_and_names_a_missing_column():
    rows = {"Rb-VAE": {"MAE from e": 0.08, "z / chance": 0.7, "scale z / chance": 0.4, "KL of z (nats)": 108.0},
            "Rb-VAE + set classifier (ext.)": {"MAE from e": 0.06, "z / chance": 0.69, "scale z / chance": 0.39,
                                               "KL of z (nats)": 0.04}}
    figure = viz.plot_split(rows)
    left, right = figure.axes
    assert [line.get_marker() for line in left.lines if line.get_label() in rows] == ["s", "o"]
    assert right.lines[1].get_xdata()[0] == 0.04 and right.get_xscale() == "symlog"
    with pytest.raises(KeyError, match="lacks \\['KL of z \\(nats\\)'\\]"):
        viz.plot_split({"x": {"MAE from e": 0.1, "z / chance": 0.5, "scale z / chance": 0.5}})
    with pytest.raises(ValueError, match="rows is empty"):
        viz.plot_split({})


def _comparison(changes: dict[str, list[float | None]]) -> dict:
    """A comparison summary of runs with these last-fifth changes; the one-code method has no swap ratio."""
    methods = {}
    for i, (name, per_seed) in enumerate(changes.items()):
        runs = []
        for seed, change in enumerate(per_seed):
            run = {"seed": seed, "chance_accuracy": 0.11, "style_code_digit_accuracy": 0.5 + 0.1 * i,
                   "style_code_digit_accuracy_linear": 0.4, "style_code_style_mae": 0.05 + 0.01 * seed,
                   "converged": {"metric": "z_factor_mae", "last_fifth_change": change,
                                 "converged": change is not None and change < 0.02},
                   "history": {"steps": [10, 20, 30, 40, 50], "z_factor_mae": [0.1, 0.08, 0.07, 0.065, 0.064]}}
            if name != "VAE":
                run["swap_ratio"] = 2.0 + seed
            runs.append(run)
        methods[name] = {"runs": runs}
    return {"methods": methods}


def test_the_leak_against_cost_draws_every_run_and_hollows_the_unconverged():
    fig = viz.plot_leak_cost(_comparison({"VAE": [0.01, 0.05], "Rb-VAE": [0.01, None]}))
    swap, style = fig.axes
    filled = lambda ax: [(line.get_label(), line.get_mfc()) for line in ax.lines if line.get_marker() == "o"]  # noqa: E731
    assert len(filled(swap)) == 2 and len(filled(style)) == 4  # the one-code VAE has no swap ratio
    assert [mfc == "white" for _, mfc in filled(style)] == [False, True, False, True]
    assert [label for label, _ in filled(style) if not label.startswith("_")] == ["VAE", "Rb-VAE"]
    with pytest.raises(ValueError, match="no methods"):
        viz.plot_leak_cost({"methods": {}})


def test_the_budget_curves_give_each_seeds_last_fifth_change_in_the_title():
    fig = viz.plot_budget_curves(_comparison({"VAE": [0.0123, 0.05], "Zheng": [None]}), columns=4)
    titles = [ax.get_title() for ax in fig.axes if ax.lines]
    assert titles == ["VAE\nlast fifth: 1.2%, 5.0%", "Zheng\nlast fifth: –"]
    assert [len(ax.lines) for ax in fig.axes if ax.lines] == [2, 1]
    with pytest.raises(ValueError, match="no methods"):
        viz.plot_budget_curves({"methods": {}})
    old = _comparison({"VAE": [0.01]})
    del old["methods"]["VAE"]["runs"][0]["history"]
    with pytest.raises(ValueError, match=r"\['VAE'\] carry no evaluation history .*python -m dislib compare"):
        viz.plot_budget_curves(old)


def test_a_split_sweep_of_many_points_tells_each_point_apart_by_colour_and_marker():
    run = {"z_ratio": 0.8, "e_mae": 0.07, "z_digit_mlp": 0.8, "e_digit_mlp": 0.5, "digit_chance": 0.11}
    points = {f"point {i}": {"mean": run, "std": {k: 0.01 for k in run}, "faithful": i < 2, "empty": False}
              for i in range(45)}
    figure = viz.plot_split_sweep({"points": points})
    handles, labels = figure.axes[0].get_legend_handles_labels()
    looks = {(matplotlib.colors.to_hex(h[0].get_color()), h[0].get_marker()) for h in handles}
    assert len(labels) == len(looks) == 45
    assert [h[0].get_marker() for h in handles][:3] == ["s", "s", "o"] and handles[25][0].get_marker() == "D"
