"""Grids of images: tiled images, named rows, and the grids of Mathieu et al. (2016): swaps (Fig. 2a),
interpolations (Fig. 2b) and conditional samples (Fig. 8)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from dislib.evaluate import decode_codes, encode_dataset
from dislib.models.base import Disentangler
from dislib.viz._common import _check_image, _check_images, _imshow, _lerp, _specified_codes, _table_figure, _to_numpy


# grids of images ---------------------------------------------------------------------------
def image_grid(images: Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Tile ``images [N, C, H, W]`` (values in ``[0, 1]``) into one ``H' x W' x C`` array.

    Parameters
    ----------
    nrow
        Images per row; the last row is filled with ``pad_value``.
    padding
        Pixels between images and around the grid.
    """
    images = _check_images(images)
    if nrow < 1 or padding < 0:
        raise ValueError(f"nrow must be >= 1 and padding >= 0, got nrow={nrow}, padding={padding}")
    n, c, h, w = images.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    grid = np.full((rows * (h + padding) + padding, cols * (w + padding) + padding, c), pad_value, dtype=np.float32)
    for k, image in enumerate(images.cpu()):
        top, left = padding + (k // cols) * (h + padding), padding + (k % cols) * (w + padding)
        grid[top : top + h, left : left + w] = _to_numpy(image)
    return grid


def show_images(
    images: Tensor, nrow: int = 8, title: str | None = None, scale: float = 1.0, padding: int = 2
) -> Figure:
    """A figure of ``images [N, C, H, W]`` (grey or RGB, in ``[0, 1]``) tiled ``nrow`` per row.

    ``scale`` enlarges the figure (1.0: about 50 image pixels per inch).
    """
    grid = image_grid(images, nrow, padding)
    height, width = grid.shape[:2]
    fig = plt.figure(figsize=(scale * width / 50, scale * height / 50 + (0.3 if title else 0)))
    ax = fig.add_axes((0, 0, 1, height / 50 * scale / fig.get_figheight()))
    _imshow(ax, grid)
    ax.set_axis_off()
    if title:
        fig.suptitle(title, y=1 - 0.05 / fig.get_figheight(), va="top")
    plt.close(fig)
    return fig


def named_rows(rows: Mapping[str, Tensor], title: str | None = None, scale: float = 1.0) -> Figure:
    """One row of images per entry of ``rows`` (``{name: [K, C, H, W]}``, every row as long), its name
    written on its left: the same inputs through several models, say."""
    if not rows:
        raise ValueError("named_rows needs at least one row: rows is empty")
    grids = {name: image_grid(images, nrow=len(_check_images(images, f"rows[{name!r}]"))) for name, images in rows.items()}
    shapes = {grid.shape for grid in grids.values()}
    if len(shapes) > 1:
        raise ValueError(f"every row must hold as many images of one size, got grids of shapes {sorted(shapes)}")
    height, width = next(iter(shapes))[:2]
    label_inches, row_inches = 2.4, scale * height / 50
    fig, axes = plt.subplots(len(grids), 1, squeeze=False,
                             figsize=(label_inches + scale * width / 50, row_inches * len(grids) + (0.4 if title else 0.1)))
    fig.subplots_adjust(left=label_inches / fig.get_figwidth(), right=1, top=1 - (0.4 if title else 0.05) / fig.get_figheight(),
                        bottom=0.05 / fig.get_figheight(), hspace=0.05)
    for ax, (name, grid) in zip(axes[:, 0], grids.items()):
        _imshow(ax, grid)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    plt.close(fig)
    return fig


# swaps, interpolations, conditional samples ---------------------------------------------
def swap_images(
    model: Disentangler, row_images: Tensor, column_images: Tensor, column_labels: Tensor | None = None
) -> Tensor:
    """Decoded swaps ``[R, C, ch, H, W]``: cell ``(i, j) = decode(s of column_images[j], z of row_images[i])``.

    ``z`` is the unspecified code (its mean for a stochastic encoder). With the same images as
    rows and columns, the diagonal holds the reconstructions. ``column_labels`` are needed only
    by a model whose specified code is the label (the conditional VAE).
    """
    rows, cols = _check_images(row_images, "row_images"), _check_images(column_images, "column_images")
    s = _specified_codes(model, cols, "swap_images", column_labels).specified
    return _every_pair(model, s, encode_dataset(model, rows).unspecified)


def _every_pair(model: Disentangler, specified: Tensor, unspecified: Tensor) -> Tensor:
    """``decode(s_j, z_i)`` for every row ``z_i`` of ``unspecified`` and column ``s_j`` of
    ``specified``: ``[len(unspecified), len(specified), C, H, W]``."""
    n_rows, n_cols = len(unspecified), len(specified)
    decoded = decode_codes(model, specified.repeat(n_rows, 1), unspecified.repeat_interleave(n_cols, 0))
    return decoded.view(n_rows, n_cols, *decoded.shape[1:])


def swap_grid(
    model: Disentangler,
    row_images: Tensor,
    column_images: Tensor,
    title: str | None = None,
    scale: float = 1.0,
    column_labels: Tensor | None = None,
) -> Figure:
    """Mathieu et al. (2016), Fig. 2a: every specified code with every unspecified code.

    The top row shows ``column_images`` (they give the specified code ``s``), the left column
    ``row_images`` (they give the unspecified code ``z``); cell ``(i, j)`` is
    ``decode(s_j, z_i)``, see :func:`swap_images`.
    """
    swaps = swap_images(model, row_images, column_images, column_labels)
    rows, cols = _check_images(row_images).cpu(), _check_images(column_images).cpu()
    cells: list[list[Tensor | None]] = [[None, *cols]]
    cells += [[rows[i], *swaps[i]] for i in range(len(rows))]
    return _table_figure(
        cells, header_row=True, header_column=True, title=title, scale=scale,
        column_label=f"specified code {model.specified_symbol} from the top row",
        row_label="unspecified code z from the left column",
    )


def interpolation_images(
    model: Disentangler, image_a: Tensor, image_b: Tensor, steps: int = 8, labels: Tensor | None = None
) -> Tensor:
    """Decoded interpolations ``[steps, steps, C, H, W]`` between two images.

    Row ``r`` has ``z = z_a + r / (steps - 1) * (z_b - z_a)``, column ``c`` has
    ``s = s_a + c / (steps - 1) * (s_b - s_a)``: cell ``(0, 0)`` reconstructs ``a`` and cell
    ``(-1, -1)`` reconstructs ``b``. ``labels`` (``[label_a, label_b]``) only for the conditional VAE.
    """
    if steps < 2:
        raise ValueError(f"steps must be at least 2 (the two end points), got {steps}")
    pair = torch.cat([_check_image(image_a, "image_a").cpu(), _check_image(image_b, "image_b").cpu()])
    codes = _specified_codes(model, pair, "interpolation_images", labels)
    s, z = codes.specified, codes.unspecified
    weights = torch.linspace(0, 1, steps)
    return _every_pair(model, _lerp(s[0], s[1], weights), _lerp(z[0], z[1], weights))


def interpolation_grid(
    model: Disentangler,
    image_a: Tensor,
    image_b: Tensor,
    steps: int = 8,
    title: str | None = None,
    scale: float = 1.0,
    labels: Tensor | None = None,
) -> Figure:
    """Mathieu et al. (2016), Fig. 2b: ``a``'s reconstruction top-left, ``b``'s bottom-right.

    Each row has one unspecified code (from ``a``'s down to ``b``'s), each column one specified
    code (from ``a``'s across to ``b``'s), see :func:`interpolation_images`.
    """
    grid = interpolation_images(model, image_a, image_b, steps, labels)
    return _table_figure(
        [list(row) for row in grid], title=title, scale=scale,
        column_label=f"specified code {model.specified_symbol}: a → b", row_label="unspecified code z: a → b",
    )


def conditional_sample_images(
    model: Disentangler,
    images: Tensor,
    n_samples: int,
    generator: torch.Generator | None = None,
    labels: Tensor | None = None,
) -> Tensor:
    """``[N, n_samples, C, H, W]``: each image's specified code with ``z ~ N(0, I)``.

    Column ``k`` uses the same ``z_k`` for every image, so a column shows one "style".
    ``generator`` (a CPU generator) makes the draws repeatable; ``labels`` only for the
    conditional VAE.
    """
    images = _check_images(images)
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    s = _specified_codes(model, images, "conditional_sample_images", labels).specified
    z = torch.randn(n_samples, model.unspecified_dim, generator=generator)
    n = s.shape[0]
    decoded = decode_codes(model, s.repeat_interleave(n_samples, 0), z.repeat(n, 1))
    return decoded.view(n, n_samples, *decoded.shape[1:])


def conditional_samples(
    model: Disentangler,
    images: Tensor,
    n_samples: int = 8,
    generator: torch.Generator | None = None,
    title: str | None = None,
    scale: float = 1.0,
    labels: Tensor | None = None,
) -> Figure:
    """Mathieu et al. (2016), Fig. 8: each row keeps the specified code of its left image and
    draws the unspecified code from the prior; see :func:`conditional_sample_images`."""
    samples = conditional_sample_images(model, images, n_samples, generator, labels)
    sources = _check_images(images).cpu()
    cells = [[sources[i], *samples[i]] for i in range(len(sources))]
    return _table_figure(
        cells, header_column=True, title=title, scale=scale,
        column_label="s from the left image, z ~ N(0, I) (one z per column)",
    )
