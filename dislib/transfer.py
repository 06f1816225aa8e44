"""Attribute transfer measured in pixel space (Ruiz et al. 2019, Sec. 5.4, Fig. 4).

A transfer decodes the target code ``e`` of an image B with the common code ``z`` of an image A:
``G(z_A, e_B)`` should look like A's digit drawn in B's style. The paper shows such grids; we also
*measure* them, on quantities read from the pixels alone, so that a real image, a reconstruction
and a transferred image are measured the same way (:func:`pixel_style`):

* **colour**: the chromaticity of the lit pixels, their summed R, G, B over the sum of all three
  (for a styled digit, its colour factor ``c / ||c||_1``; ``(1/3, 1/3, 1/3)`` for a white one);
* **extent**: the larger side of the lit pixels' bounding box over the image side (the scale);
* **stroke**: the stroke's width in pixels, ``2 * lit / (lit - eroded)``: a band ``w`` pixels wide
  and ``L`` long has ``w L`` lit pixels, of which about ``2 L`` lie on its border (not kept by an
  erosion with a 3x3 square).

A pixel is *lit* when its brightest channel reaches half the image's brightest pixel (the
colours have ``||c||_1 = 1``, so a dim colour is as much a digit as a bright one).
:func:`transfer_scores` then says, for each quantity, how close the transferred image is to B and
to A, and how often it is closer to B; a digit classifier says whose digit it shows.

:func:`sweep_transfers` measures every run of some points of a sweep (:mod:`dislib.sweep`), and
:func:`page_transfers` keeps that measurement beside the book page that shows it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dislib import settings
from dislib.compare_table import spread, spread_cell
from dislib.data import load
from dislib.data.base import check_pixels
from dislib.evaluate import decode_codes, encode_dataset
from dislib.models.base import Disentangler
from dislib.quality import cached_classifier, classifier_accuracy, classifier_probabilities
from dislib.report import table
from dislib.train import METRICS, load_model, read_json, seed_folder, write_json

LIT_FRACTION = 0.5
"""A pixel is lit when its brightest channel reaches this fraction of the image's brightest pixel."""

STYLE_QUANTITIES = ("colour", "extent", "stroke")


def lit_pixels(images: Tensor, fraction: float = LIT_FRACTION) -> Tensor:
    """Boolean ``[N, H, W]``: the pixels whose brightest channel reaches ``fraction`` of the image's
    brightest pixel (an image with no pixel above zero has none lit)."""
    brightness = images.amax(1)
    peak = brightness.flatten(1).amax(1).clamp_min(1e-6)[:, None, None]
    return (brightness >= fraction * peak) & (brightness > 0)


def pixel_style(images: Tensor, fraction: float = LIT_FRACTION) -> dict[str, Tensor]:
    """The style of RGB digit images read from their pixels: ``colour`` ``[N, 3]`` (chromaticity of
    the lit pixels), ``extent`` ``[N]`` (bounding box side over image side) and ``stroke`` ``[N]``
    (stroke width in pixels); see the module's docstring.

    Raises
    ------
    ValueError
        For images that are not ``[N, 3, H, W]`` in ``[0, 1]``.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"pixel_style reads RGB images [N, 3, H, W], got shape {tuple(images.shape)}")
    check_pixels("pixel_style input", images)
    images = images.float()
    lit = lit_pixels(images, fraction)
    weights = lit[:, None].float()
    totals = (images * weights).sum((2, 3))
    colour = totals / totals.sum(1, keepdim=True).clamp_min(1e-6)
    size = images.shape[-1]
    rows, cols = lit.any(2), lit.any(1)
    index = torch.arange(size, device=images.device)

    def side(mask: Tensor) -> Tensor:
        first = torch.where(mask, index, size).amin(1)
        last = torch.where(mask, index, -1).amax(1)
        return (last - first + 1).clamp_min(0).float()

    extent = torch.maximum(side(rows), side(cols)) / size
    eroded = -F.max_pool2d(-lit[:, None].float(), 3, stride=1, padding=1)[:, 0]
    n_lit, n_border = lit.flatten(1).sum(1).float(), (lit.float() - eroded).flatten(1).sum(1)
    stroke = 2 * n_lit / n_border.clamp_min(1.0)
    return {"colour": colour, "extent": extent, "stroke": stroke}


def style_distance(first: dict[str, Tensor], second: dict[str, Tensor]) -> dict[str, Tensor]:
    """Per image and quantity, the absolute difference of two :func:`pixel_style` results (colour:
    the mean over R, G, B)."""
    return {k: (first[k] - second[k]).abs().reshape(len(first[k]), -1).mean(1) for k in STYLE_QUANTITIES}


def transfer(model: Disentangler, content: Tensor, style: Tensor, batch_size: int = 500) -> Tensor:
    """``G(z_A, e_B)``: each image of ``content`` (A, its unspecified code's mean) decoded with the
    specified code's mean of the image of ``style`` (B) in the same row; images on the CPU."""
    _check_pairs(content, style)
    return decode_codes(model, encode_dataset(model, style, batch_size).specified,
                   encode_dataset(model, content, batch_size).unspecified, batch_size)


def _check_pairs(content: Tensor, style: Tensor) -> None:
    """Raise a clear error unless the content and style images pair up row by row."""
    if content.shape != style.shape:
        raise ValueError(f"transfer pairs content and style images row by row; got shapes "
                         f"{tuple(content.shape)} and {tuple(style.shape)}")


def transfer_scores(
    model: Disentangler,
    content: Tensor,
    style: Tensor,
    content_digits: Tensor,
    classifier: nn.Module,
    batch_size: int = 500,
) -> dict[str, float]:
    """How a model's transfers ``G(z_A, e_B)`` follow B's style and A's digit, in pixel space.

    For each quantity ``q`` of :func:`pixel_style`: ``q_to_style`` and ``q_to_content``, the mean
    absolute difference between the transferred image and B, and A; ``q_follows_style``, the
    fraction of pairs in which the transferred image is closer to B than to A (0.5: no better than
    a coin; 1: always B's). ``digit_accuracy``: the fraction of transferred images that
    ``classifier`` reads as A's digit (``content_digits``); ``reconstruction_digit_accuracy`` the
    same for the reconstructions of A, its ceiling.
    """
    if len(content_digits) != len(content):
        raise ValueError(f"content_digits has {len(content_digits)} labels for {len(content)} content images")
    _check_pairs(content, style)
    codes_a, codes_b = encode_dataset(model, content, batch_size), encode_dataset(model, style, batch_size)
    moved = decode_codes(model, codes_b.specified, codes_a.unspecified, batch_size)
    rebuilt = decode_codes(model, codes_a.specified, codes_a.unspecified, batch_size)
    content, style = content.cpu(), style.cpu()
    measured = {name: pixel_style(images) for name, images in
                (("moved", moved), ("content", content), ("style", style))}
    to_style = style_distance(measured["moved"], measured["style"])
    to_content = style_distance(measured["moved"], measured["content"])
    scores: dict[str, float] = {}
    for q in STYLE_QUANTITIES:
        scores[f"{q}_to_style"] = float(to_style[q].mean())
        scores[f"{q}_to_content"] = float(to_content[q].mean())
        scores[f"{q}_follows_style"] = float((to_style[q] < to_content[q]).float().mean())
    digits = content_digits.cpu()
    for name, images in (("digit_accuracy", moved), ("reconstruction_digit_accuracy", rebuilt)):
        scores[name] = float((classifier_probabilities(classifier, images, batch_size).argmax(1) == digits).float().mean())
    return scores


TRANSFER_COLUMNS = {"colour_follows_style": "colour follows B", "extent_follows_style": "extent follows B",
                    "stroke_follows_style": "stroke follows B", "digit_accuracy": "A's digit read",
                    "reconstruction_digit_accuracy": "A's digit read (reconstruction)"}
"""The columns of a sweep's transfer table (:func:`sweep_transfers`): fractions of the pairs."""


def sweep_transfers(summary: dict[str, Any], runs: str | Path, names: list[str], pairs: int = 1_000,
                    classifier_steps: int = 1_500, device: str | torch.device | None = None) -> dict[str, Any]:
    """:func:`transfer_scores` of every run of the points ``names`` of a sweep's ``summary``
    (:func:`dislib.sweep.run`), whose runs lie in ``runs``: A the first ``pairs`` test images, B the
    next ``pairs``, the digit read by a classifier of ``classifier_steps`` steps trained on the
    training digits (seed 0, kept in ``runs``). Returns each point's runs and their mean and spread.
    """
    if pairs < 1 or classifier_steps < 1:
        raise ValueError(f"pairs and classifier_steps must be at least 1, got {pairs} and {classifier_steps}")
    dataset, runs = summary["dataset"], Path(runs)
    missing = [name for name in names if name not in summary["points"]]
    if missing:
        raise ValueError(f"no point {missing} in the sweep {summary['sweep']!r}; its points are {', '.join(summary['points'])}")
    stored = summary["points"]
    folders = {name: {r["seed"]: seed_folder(runs, stored[name]["key"], r["seed"]) for r in stored[name]["runs"]}
               for name in names}
    for name, seeds in folders.items():
        for folder in seeds.values():
            if not (folder / METRICS).exists():
                raise FileNotFoundError(
                    f"no finished run in {folder}: train it with python -m dislib sweep {summary['sweep']} --budget "
                    f"{summary['budget']} --runs {runs} --point {stored[name]['key']}")
    test, test_digits = load(dataset, "test"), load(dataset, "test", label="digit")
    if len(test) < 2 * pairs:
        raise ValueError(f"{pairs:,} pairs need {2 * pairs:,} test images, {dataset} has {len(test):,}: ask for fewer pairs")
    classifier = cached_classifier(load(dataset, "train", label="digit"), runs / f"classifier-{dataset}-seed0.pt",
                                   steps=classifier_steps, device=device, progress=False)
    content, style = test.images[:pairs].to(device), test.images[pairs : 2 * pairs].to(device)
    points = {}
    for name, seeds in folders.items():
        measured = [{"seed": seed, **transfer_scores(load_model(folder, device), content, style, test_digits.labels[:pairs],
                                                     classifier)} for seed, folder in seeds.items()]
        points[name] = {"key": stored[name]["key"], "runs": measured, **spread(measured)}
    return {"sweep": summary["sweep"], "budget": summary["budget"], "pairs": pairs, "classifier_steps": classifier_steps,
            "classifier_accuracy": classifier_accuracy(classifier, test_digits), "points": points}


def page_transfers(summary: dict[str, Any], budget: str, result: str | Path, runs: str | Path, names: list[str],
                   device: str | torch.device | None = None) -> dict[str, Any]:
    """The transfers a book page shows, as :func:`dislib.sweep.page_summary` gives its sweep. Under the
    ``full`` budget: the committed ``result`` where it exists, else :func:`sweep_transfers` of the runs in
    ``runs`` (1,000 pairs, a classifier of 1,500 steps), written to ``result``. Under another budget:
    those of the points of ``names`` that the smoke sweep trained, in its temporary folder
    (``summary["runs"]``), on 50 pairs with a classifier of 20 steps."""
    result = Path(result)
    if settings.budget(budget) == "full":
        if result.exists():
            return read_json(result, "restore it from the repository, or delete it to measure it again from the runs")
        measured = sweep_transfers(summary, runs, names, device=device)
        write_json(result, measured)
        return measured
    if "runs" not in summary:
        raise ValueError(f"under the {budget!r} budget page_transfers measures the runs of a smoke sweep: pass the summary "
                         "that dislib.sweep.page_summary returned under that budget (it names its folder, 'runs')")
    return sweep_transfers(summary, summary["runs"], [name for name in names if name in summary["points"]], pairs=50,
                           classifier_steps=20, device=device)


def transfer_table(measured: dict[str, Any]) -> pd.DataFrame:
    """A sweep's transfers (:func:`sweep_transfers`) as a table: one row per point, in each column of
    :data:`TRANSFER_COLUMNS` the fraction of the pairs in percent, ``mean ± std`` over the seeds."""
    rows = {name: {shown: spread_cell(key, point["mean"][key], point["std"][key], len(point["runs"]), percent=True)
                   for key, shown in TRANSFER_COLUMNS.items()} for name, point in measured["points"].items()}
    return table(rows, columns=list(TRANSFER_COLUMNS.values()), label=f"transfer G(z_A, e_B), {measured['pairs']:,} pairs "
                 "(mean ± std over seeds)")
