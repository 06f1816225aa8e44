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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dislib.data.base import check_pixels
from dislib.evaluate import decode_codes, encode_dataset
from dislib.models.base import Disentangler
from dislib.quality import classifier_probabilities

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
