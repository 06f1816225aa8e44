"""What the drawing modules share: checks of image tensors, the model calls, and a table of images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from dislib.evaluate import encode_dataset
from dislib.models.base import Codes, Disentangler

CELL_INCHES = 0.6
HEADER_GAP = 0.2


# checks and conversions ---------------------------------------------------------------------
def _check_images(images: Any, what: str = "images") -> Tensor:
    """``images`` as a float tensor ``[N, C, H, W]`` with ``N >= 1`` and ``C`` 1 or 3."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, Tensor):
        raise TypeError(f"{what} must be a tensor of shape [N, C, H, W], got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        hint = "; add the batch dimension with x.unsqueeze(0)" if images.ndim == 3 else ""
        raise ValueError(f"{what} must have shape [N, C, H, W] with C = 1 or 3, got {tuple(images.shape)}{hint}")
    if images.shape[0] == 0:
        raise ValueError(f"{what} is empty: pass at least one image")
    return images.detach().float()


def _check_image(image: Any, what: str) -> Tensor:
    """One image, ``[C, H, W]`` or ``[1, C, H, W]``, as a batch ``[1, C, H, W]``."""
    if isinstance(image, Tensor) and image.ndim == 3:
        image = image.unsqueeze(0)
    image = _check_images(image, what)
    if image.shape[0] != 1:
        raise ValueError(f"{what} must be one image [C, H, W], got a batch of {image.shape[0]}; index it, e.g. images[0]")
    return image


def _to_numpy(image: Tensor) -> np.ndarray:
    """``[C, H, W]`` in ``[0, 1]`` as ``H x W x C`` floats, clipped to ``[0, 1]``."""
    return image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def _imshow(ax: Any, image: np.ndarray, **kwargs: Any) -> None:
    grey = image.shape[2] == 1
    ax.imshow(image[..., 0] if grey else image, cmap="gray" if grey else None, vmin=0, vmax=1, interpolation="nearest", **kwargs)


# a table of images ---------------------------------------------------------------------------
def _table_figure(
    cells: Sequence[Sequence[Tensor | None]],
    *,
    header_row: bool = False,
    header_column: bool = False,
    title: str | None = None,
    row_label: str | None = None,
    column_label: str | None = None,
    scale: float = 1.0,
) -> Figure:
    """A figure with one axes per image in a table of ``[C, H, W]`` images (``None``: empty cell).

    A header row/column is set apart from the body by a small gap.
    """
    n_rows, n_cols = len(cells), len(cells[0])
    heights = [1.0] * n_rows
    widths = [1.0] * n_cols
    if header_row:
        heights.insert(1, HEADER_GAP)
    if header_column:
        widths.insert(1, HEADER_GAP)
    cell = CELL_INCHES * scale
    left = 0.3 if row_label else 0.05
    top = 0.05 + 0.3 * bool(title) + 0.25 * bool(column_label)
    body_width, body_height = cell * sum(widths) * 1.04, cell * sum(heights) * 1.04
    fig = plt.figure(figsize=(left + body_width + 0.05, top + body_height + 0.05))
    fw, fh = fig.get_figwidth(), fig.get_figheight()
    grid = fig.add_gridspec(
        len(heights), len(widths), height_ratios=heights, width_ratios=widths, wspace=0.04, hspace=0.04,
        left=left / fw, right=(left + body_width) / fw, top=1 - top / fh, bottom=0.05 / fh,
    )
    for i, row in enumerate(cells):
        for j, image in enumerate(row):
            if image is None:
                continue
            ax = fig.add_subplot(grid[i + (header_row and i > 0), j + (header_column and j > 0)])
            _imshow(ax, _to_numpy(image))
            ax.set_axis_off()
    if title:
        fig.text(0.5, 1 - 0.05 / fh, title, ha="center", va="top", fontsize=11)
    if column_label:
        fig.text((left + body_width / 2) / fw, 1 - (top - 0.05) / fh, column_label, ha="center", va="bottom", fontsize=9)
    if row_label:
        fig.text(0.15 / fw, 1 - (top + body_height / 2) / fh, row_label, ha="center", va="center", rotation=90, fontsize=9)
    plt.close(fig)
    return fig


# model calls ---------------------------------------------------------------------------------
def _specified_codes(model: Disentangler, images: Tensor, purpose: str, labels: Tensor | None = None) -> Codes:
    """The codes of ``images``; ``labels`` go to ``encode`` (the conditional VAE's code is the label)."""
    codes = encode_dataset(model, _check_images(images), labels=labels)
    if codes.specified is None:
        if model.specified_dim > 0:
            raise ValueError(f"{purpose}: {type(model).__name__}'s specified code is the label: pass the images' labels")
        raise ValueError(
            f"{purpose} needs a model with a specified code, but {type(model).__name__}.encode returned none; "
            "for a model with only an unspecified code use latent_manifold or latent_slider"
        )
    return codes


def _lerp(start: Tensor, end: Tensor, weights: Tensor) -> Tensor:
    """Rows ``(1 - w) * start + w * end`` for each weight ``w``."""
    return start.unsqueeze(0) + weights.unsqueeze(1) * (end - start).unsqueeze(0)
