"""Pictures of two codes: image grids, swaps, interpolations, retrieval, latent maps and sliders.

Everything here is written once against the two methods of
:class:`~dislib.models.base.Disentangler`: ``encode(x) -> Codes`` and
``decode(specified, unspecified) -> images in [0, 1]``. Inputs may live on any device; they are
moved to the model's device, decoded in eval mode without gradients, and brought back to the CPU.

Figures are returned, never shown: a figure as the last value of a notebook cell is displayed
once. A :class:`SliderPanel` displays as a self-contained HTML slider over pre-computed frames
(it works in the static book, JupyterLab and Colab) and offers :meth:`SliderPanel.live`, an
ipywidgets panel that decodes on every change while a kernel runs.
"""

from __future__ import annotations

import base64
import io
import json
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import matplotlib.pyplot as plt
from matplotlib import ticker
import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor

from dislib.evaluate import decode_codes, encode_dataset
from dislib.models.base import Codes, Disentangler
from dislib.train import History

FrameFn = Callable[[float, float], Tensor] | Callable[[Tensor, Tensor], Tensor]
DecodeFn = Callable[[Tensor], Tensor]

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


def _to_pil(image: Tensor, upscale: int = 1) -> Image.Image:
    """``[C, H, W]`` in ``[0, 1]`` as an 8-bit grey or RGB image, enlarged ``upscale`` times (nearest)."""
    pixels = np.round(_to_numpy(image) * 255).astype(np.uint8)
    picture = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    if upscale > 1:
        picture = picture.resize((picture.width * upscale, picture.height * upscale), Image.NEAREST)
    return picture


def _png(image: Tensor, upscale: int = 1) -> bytes:
    buffer = io.BytesIO()
    _to_pil(image, upscale).save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


def _imshow(ax: Any, image: np.ndarray, **kwargs: Any) -> None:
    grey = image.shape[2] == 1
    ax.imshow(image[..., 0] if grey else image, cmap="gray" if grey else None, vmin=0, vmax=1, interpolation="nearest", **kwargs)


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


def unspecified_decoder(model: Disentangler, specified: Tensor | None = None) -> DecodeFn:
    """A function ``z [N, D] -> images [N, C, H, W]`` (on the CPU) decoding with a fixed specified code.

    Parameters
    ----------
    specified
        One specified code ``[D_s]`` used for every ``z`` (for example a one-hot label of a
        conditional VAE); ``None`` for a model without a specified code.
    """
    if specified is not None and specified.ndim != 1:
        raise ValueError(f"specified must be one code of shape [D_s], got {tuple(specified.shape)}")

    def decode(unspecified: Tensor) -> Tensor:
        s = None if specified is None else specified.unsqueeze(0).expand(unspecified.shape[0], -1)
        return decode_codes(model, s, unspecified)

    return decode


def every_label(generate: Callable[[Tensor, Tensor], Tensor], code: Tensor, num_classes: int) -> Tensor:
    """One code decoded with each of ``num_classes`` labels, the images tiled in one row ``[C, H, K * W]``.

    ``generate(codes [K, D], labels [K])`` is a conditional generator (``gan.generate``, or a
    conditional VAE's decoder given one-hot labels); ``code`` ``[D]`` is repeated for every label.
    A frame for :class:`SliderPanel`: one noise vector or style, every class.
    """
    if code.ndim != 1:
        raise ValueError(f"code must be one vector [D], got shape {tuple(code.shape)}")
    labels = torch.arange(num_classes, device=code.device)
    with torch.no_grad():
        images = generate(code.unsqueeze(0).repeat(num_classes, 1), labels).float().cpu()
    return torch.cat(list(images), dim=-1)


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


def side_by_side(panels: Sequence["SliderPanel"]) -> str:
    """The HTML of several :class:`SliderPanel` in a row (they wrap on a narrow page); display it with
    ``IPython.display.HTML``."""
    return "<div>" + "".join(panel.html() for panel in panels) + "</div>"


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
    z = encode_dataset(model, rows).unspecified
    n_rows, n_cols = z.shape[0], s.shape[0]
    decoded = decode_codes(model, s.repeat(n_rows, 1), z.repeat_interleave(n_cols, 0))
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
    s_path, z_path = _lerp(s[0], s[1], weights), _lerp(z[0], z[1], weights)
    decoded = decode_codes(model, s_path.repeat(steps, 1), z_path.repeat_interleave(steps, 0))
    return decoded.view(steps, steps, *decoded.shape[1:])


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


# retrieval -----------------------------------------------------------------------------------
def nearest_neighbours(query_codes: Tensor, bank_codes: Tensor, k: int = 5, metric: str = "euclidean") -> Tensor:
    """Indices ``[Q, k]`` into ``bank_codes [B, D]`` of each query's ``k`` nearest codes, nearest first.

    ``metric`` is ``"euclidean"`` or ``"cosine"``.
    """
    if query_codes.ndim != 2 or bank_codes.ndim != 2 or query_codes.shape[1] != bank_codes.shape[1]:
        raise ValueError(
            f"codes must be [Q, D] and [B, D] with the same D, got {tuple(query_codes.shape)} and {tuple(bank_codes.shape)}"
        )
    if not 1 <= k <= bank_codes.shape[0]:
        raise ValueError(f"k must be between 1 and the bank size {bank_codes.shape[0]}, got {k}")
    queries, bank = query_codes.detach().float().cpu(), bank_codes.detach().float().cpu()
    if metric == "euclidean":
        distances = torch.cdist(queries, bank)
    elif metric == "cosine":
        distances = -torch.nn.functional.normalize(queries, dim=1) @ torch.nn.functional.normalize(bank, dim=1).T
    else:
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    return distances.topk(k, dim=1, largest=False).indices


def retrieval_figure(
    query_images: Tensor, bank_images: Tensor, indices: Tensor, title: str | None = None, scale: float = 1.0
) -> Figure:
    """One row per query: the query image, then the bank images at ``indices [Q, k]`` (nearest first)."""
    queries, bank = _check_images(query_images, "query_images").cpu(), _check_images(bank_images, "bank_images").cpu()
    if indices.ndim != 2 or indices.shape[0] != queries.shape[0]:
        raise ValueError(f"indices must be [Q, k] with Q = {queries.shape[0]} queries, got {tuple(indices.shape)}")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= bank.shape[0]):
        low, high = int(indices.min()), int(indices.max())
        raise ValueError(f"indices must lie in [0, {bank.shape[0]}) (the bank size), got [{low}, {high}]")
    cells = [[queries[q], *bank[indices[q].cpu()]] for q in range(queries.shape[0])]
    return _table_figure(cells, header_column=True, title=title, scale=scale, column_label="query | nearest neighbours →")


# latent maps ---------------------------------------------------------------------------------
def latent_scatter(
    codes2d: Tensor | np.ndarray,
    labels: Tensor | np.ndarray,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
    axis_names: tuple[str, str] = ("$z_1$", "$z_2$"),
) -> Figure:
    """A 2-D latent map: one point per code ``[N, 2]``, coloured by its integer label."""
    codes = np.asarray(codes2d.detach().cpu() if isinstance(codes2d, Tensor) else codes2d, dtype=np.float64)
    labels = np.asarray(labels.detach().cpu() if isinstance(labels, Tensor) else labels)
    if codes.ndim != 2 or codes.shape[1] != 2 or codes.shape[0] == 0:
        raise ValueError(
            f"codes2d must be [N, 2] with N >= 1, got {codes.shape}; pick two dimensions or project first (e.g. PCA)"
        )
    if labels.shape != (codes.shape[0],):
        raise ValueError(f"labels must be [N] with N = {codes.shape[0]}, got {labels.shape}")
    classes = np.unique(labels)
    if class_names is not None and len(class_names) <= int(classes.max()):
        raise ValueError(f"class_names has {len(class_names)} names but labels go up to {int(classes.max())}")
    fig, ax = plt.subplots(figsize=(5.5, 4.5), layout="constrained")
    colours = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for k, label in enumerate(classes):
        keep = labels == label
        name = class_names[int(label)] if class_names is not None else str(label)
        ax.scatter(codes[keep, 0], codes[keep, 1], s=4, alpha=0.6, color=colours(k % colours.N), label=name)
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.legend(markerscale=3, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    if title:
        ax.set_title(title)
    plt.close(fig)
    return fig


def _latent_points(center: Tensor, dims: tuple[int, int], first: Tensor, second: Tensor) -> Tensor:
    """Copies of ``center`` with dimension ``dims[0]`` set to ``first`` and ``dims[1]`` to ``second``."""
    points = center.unsqueeze(0).repeat(first.shape[0], 1)
    points[:, dims[0]], points[:, dims[1]] = first, second
    return points


def _latent_center(latent_dim: int, dims: tuple[int, int], center: Tensor | None) -> Tensor:
    if center is None:
        center = torch.zeros(latent_dim)
    if center.shape != (latent_dim,):
        raise ValueError(f"center must be one code of shape [{latent_dim}] (latent_dim), got {tuple(center.shape)}")
    if len(dims) != 2 or dims[0] == dims[1] or not all(0 <= d < latent_dim for d in dims):
        raise ValueError(f"dims must be two different dimensions in [0, {latent_dim}), got {dims}")
    return center.detach().float().cpu()


def _decoded_frames(decode_fn: DecodeFn, points: Tensor) -> Tensor:
    with torch.no_grad():
        images = decode_fn(points)
    return _check_images(images, "decode_fn(z)").cpu()


def latent_manifold(
    decode_fn: DecodeFn,
    extent: float = 3.0,
    steps: int = 15,
    latent_dim: int = 2,
    dims: tuple[int, int] = (0, 1),
    center: Tensor | None = None,
    title: str | None = None,
    scale: float = 1.0,
) -> Figure:
    """Kingma & Welling (2014), Fig. 4: images decoded on a ``steps x steps`` grid of latent values.

    Dimension ``dims[0]`` runs from ``-extent`` to ``extent`` left to right, ``dims[1]`` bottom to
    top; the other dimensions keep ``center`` (default 0). ``decode_fn`` maps ``z [N, latent_dim]``
    to images, for example ``unspecified_decoder(vae)`` (which moves ``z``, given on the CPU, to
    the model's device).
    """
    if steps < 2 or extent <= 0:
        raise ValueError(f"steps must be >= 2 and extent > 0, got steps={steps}, extent={extent}")
    base = _latent_center(latent_dim, dims, center)
    values = torch.linspace(-extent, extent, steps)
    second, first = torch.meshgrid(values.flip(0), values, indexing="ij")
    images = _decoded_frames(decode_fn, _latent_points(base, dims, first.reshape(-1), second.reshape(-1)))
    grid = image_grid(images, nrow=steps, padding=0)
    half = extent / (steps - 1)
    size = CELL_INCHES * scale * steps * images.shape[-1] / 32
    fig, ax = plt.subplots(figsize=(size + 0.8, size + 0.6 + 0.3 * bool(title)), layout="constrained")
    _imshow(ax, grid, extent=(-extent - half, extent + half, -extent - half, extent + half))
    ax.set_xlabel(f"$z_{{{dims[0] + 1}}}$")
    ax.set_ylabel(f"$z_{{{dims[1] + 1}}}$")
    if title:
        ax.set_title(title)
    plt.close(fig)
    return fig


# training curves -------------------------------------------------------------------------
def plot_history(
    history: History | Mapping[str, Any], keys: Sequence[str] | None = None, columns: int = 4, title: str = ""
) -> Figure:
    """One small plot per loss (training, mean over each interval) and metric (test) against the step.

    ``history`` is what :func:`dislib.fit` returns (or its ``dataclasses.asdict``); ``keys``
    picks some of the curves; ``title`` names the run above the plots.
    """
    if isinstance(history, Mapping):
        history = History(**history)
    if not history.steps:
        raise ValueError("history is empty: train for at least one evaluation interval (budget.eval_every steps)")
    curves: dict[str, tuple[str, list[float]]] = {}
    for kind, records in (("train", history.losses), ("test", history.metrics)):
        for name in dict.fromkeys(k for record in records for k in record):
            curves[name] = (kind, [record.get(name, math.nan) for record in records])
    if keys is not None:
        unknown = [k for k in keys if k not in curves]
        if unknown:
            raise KeyError(f"no curve named {unknown} in the history; available: {sorted(curves)}")
        curves = {k: curves[k] for k in keys}
    cols = min(columns, len(curves))
    rows = math.ceil(len(curves) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.3 * rows), layout="constrained", squeeze=False)
    for ax, (name, (kind, values)) in zip(axes.flat, curves.items()):
        ax.plot(history.steps, values, marker="o", markersize=3, color="C0" if kind == "train" else "C1")
        ax.set_title(f"{name} ({kind})", fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(curves) :]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    plt.close(fig)
    return fig


def plot_tradeoff(summary: Mapping[str, Any], code: str = "z") -> Figure:
    """The leak of ``code`` against what it still carries, one colour per point of a sweep.

    ``summary`` is what :func:`dislib.sweep.run` returns (or ``sweep.json``). Left: the MLP and the
    linear probe's accuracy on the code's means against the swap ratio; right: the same against
    the code's KL in nats (log scale). Each marker is a point's mean over its seeds, its bars one
    standard deviation: filled for the MLP probe, a cross for the linear probe; the paper's
    settings are squares, extensions circles, and a point whose code the decoder hardly uses
    (``empty``) is hollow. The dotted line is chance.
    """
    points = summary["points"]
    if not points:
        raise ValueError("the sweep has no points: run dislib.sweep.run first")
    carried = (("swap_ratio", f"swap ratio of {code}"), (f"{code}_kl_nats", f"KL of {code} (nats, log scale)"))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), layout="constrained")
    chance = np.mean([p["mean"]["chance_accuracy"] for p in points.values()])
    for ax, (x_key, x_label) in zip(axes, carried):
        for i, (name, point) in enumerate(points.items()):
            mean, std, colour = point["mean"], point["std"], f"C{i}"
            label = f"{name}{' (z empty)' if point['empty'] else ''}"
            ax.errorbar(mean[x_key], 100 * mean[f"{code}_mlp_mean"], xerr=std[x_key], yerr=100 * std[f"{code}_mlp_mean"],
                        marker="s" if point["faithful"] else "o", markersize=9, color=colour,
                        mfc="white" if point["empty"] else colour, linestyle="none", capsize=3, label=label)
            ax.errorbar(mean[x_key], 100 * mean[f"{code}_linear_mean"], yerr=100 * std[f"{code}_linear_mean"],
                        marker="x", markersize=8, color=colour, linestyle="none", capsize=3)
        ax.axhline(100 * chance, color="grey", linestyle=":", linewidth=1, label="chance")
        ax.set_xlabel(x_label, fontsize=11)
        ax.set_ylabel(f"digit read from the means of {code} (%)", fontsize=11)
        ax.tick_params(labelsize=10)
        ax.grid(alpha=0.3)
    axes[1].set_xscale("log")
    axes[1].xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axes[1].xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    axes[1].xaxis.set_minor_formatter(ticker.NullFormatter())
    axes[0].set_title("filled: MLP probe, cross: linear probe", fontsize=10)
    axes[1].legend(fontsize=9, loc="lower right")
    plt.close(fig)
    return fig


def _as_history(history: History | Mapping[str, Any]) -> History:
    """``history`` as a :class:`History`: a mapping (a run's stored history, which may carry more
    fields, such as a sweep's run record) keeps the fields of a history."""
    if isinstance(history, History):
        return history
    return History(**{k: v for k, v in history.items() if k in History.__dataclass_fields__})


def plot_adversary_lag(
    history: History | Mapping[str, Any], title: str = "", final: Mapping[str, float] | None = None
) -> Figure:
    """The adversary on ``z`` beside probes fitted afresh, at every evaluation of a run.

    ``test_code_adversary_accuracy`` is the accuracy of the classifier trained inside the model
    (on what it reads); ``z_accuracy`` and ``z_sample_accuracy`` are quick probes fitted afresh on
    the held-out codes (means and samples). The gap between them is how far the adversary lags.
    ``final``, a run's :func:`dislib.evaluate.leak_report`, adds the full probes (MLP on the means
    and on samples of ``z``) at the last step, as stars: what a quick probe under-reads.
    """
    history = _as_history(history)
    needed = ("test_code_adversary_accuracy", "z_accuracy")
    if not history.steps or any(k not in history.metrics[0] for k in needed):
        raise ValueError(f"this history has no {' and '.join(needed)}: it comes from a model with an adversary "
                         "on z (zheng), evaluated on labelled data")
    fig, ax = plt.subplots(figsize=(6, 3.6), layout="constrained")
    names = {"test_code_adversary_accuracy": "the adversary C_z (in training)", "z_accuracy": "quick probe, means of z",
             "z_sample_accuracy": "quick probe, samples of z", "chance_accuracy": "chance"}
    for key, label in names.items():
        if key in history.metrics[0]:
            ax.plot(history.steps, [100 * m[key] for m in history.metrics], marker="o", label=label,
                    linestyle=":" if key == "chance_accuracy" else "-")
    for key, label, colour in (("z_mlp_mean", "full probe, means of z", "C1"), ("z_mlp_sample", "full probe, samples of z", "C2")):
        if final is not None and key in final:
            ax.plot([history.steps[-1]], [100 * final[key]], marker="*", markersize=14, color=colour,
                    linestyle="none", label=label)
    ax.set_xlabel("step", fontsize=11)
    ax.set_ylabel("digit accuracy (%)", fontsize=11)
    ax.set_title(title, fontsize=11)
    ax.tick_params(labelsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    plt.close(fig)
    return fig


def plot_gradient_shares(histories: Mapping[str, History | Mapping[str, Any]], columns: int = 3) -> Figure:
    """What pulls on the encoders and the generator: each objective part's share of their gradient
    (``gradient_share_*``, recorded by :meth:`dislib.models.base.Model.diagnose` at every evaluation),
    stacked, against the step; one panel per run of ``histories`` (label: history)."""
    runs = {}
    for label, history in histories.items():
        history = _as_history(history)
        parts = [k for k in (history.metrics[0] if history.metrics else {}) if k.startswith("gradient_share_")]
        if not parts:
            raise ValueError(f"the history of {label!r} has no gradient shares: they come from a model whose "
                             "diagnose() gives them (rbvae, srbvae), trained with an evaluation interval")
        runs[label] = (history, parts)
    cols = min(columns, len(runs))
    rows = math.ceil(len(runs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), layout="constrained", squeeze=False)
    for ax, (label, (history, parts)) in zip(axes.flat, runs.items()):
        shares = [[100 * m[k] for m in history.metrics] for k in parts]
        ax.stackplot(history.steps, shares, labels=[k.removeprefix("gradient_share_").replace("_", " ") for k in parts],
                     alpha=0.8)
        ax.set_ylim(0, 100)
        ax.set_title(label, fontsize=11)
        ax.set_xlabel("step", fontsize=10)
        ax.set_ylabel("share of the gradient (%)", fontsize=10)
        ax.tick_params(labelsize=9)
        ax.legend(fontsize=8, loc="lower left")
    for ax in axes.flat[len(runs) :]:
        ax.set_axis_off()
    plt.close(fig)
    return fig


# sliders -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SliderRange:
    """One slider: its label, its range and its starting value (default: ``low``)."""

    label: str
    low: float = 0.0
    high: float = 1.0
    value: float | None = None

    def __post_init__(self) -> None:
        if not self.high > self.low:
            raise ValueError(f"slider {self.label!r} needs low < high, got [{self.low}, {self.high}]")
        if self.value is not None and not self.low <= self.value <= self.high:
            raise ValueError(f"slider {self.label!r} starts at {self.value}, outside [{self.low}, {self.high}]")

    @property
    def start(self) -> float:
        return self.low if self.value is None else self.value

    def values(self, steps: int) -> list[float]:
        return torch.linspace(self.low, self.high, steps).tolist()


def _slider_range(spec: SliderRange | tuple) -> SliderRange:
    return spec if isinstance(spec, SliderRange) else SliderRange(*spec)


class SliderPanel:
    """Two sliders ``a`` and ``b`` over an image ``frame(a, b) -> [C, H, W]`` in ``[0, 1]``.

    Displaying the panel in a notebook shows a self-contained HTML slider over ``steps x steps``
    pre-computed frames (no kernel needed: it works in the static book, JupyterLab and Colab);
    :meth:`live` returns ipywidgets that call ``frame`` on every change while a kernel runs.

    Parameters
    ----------
    frame
        ``frame(a: float, b: float) -> [C, H, W]``; with ``batched=True`` instead
        ``frame(a: Tensor [N], b: Tensor [N]) -> [N, C, H, W]``, which decodes the
        ``steps**2`` frames of the HTML version in one call (much faster for a model).
    a, b
        The two sliders, as :class:`SliderRange` or ``(label, low, high[, value])`` tuples.
    steps
        Positions per slider in the HTML version (``steps**2`` frames are decoded).
    size
        Displayed width of the image in pixels; small images are enlarged by nearest neighbour.
    """

    def __init__(
        self,
        frame: FrameFn,
        a: SliderRange | tuple,
        b: SliderRange | tuple,
        steps: int = 11,
        size: int = 192,
        title: str | None = None,
        batched: bool = False,
    ) -> None:
        if steps < 2:
            raise ValueError(f"steps must be at least 2, got {steps}")
        self.frame, self.a, self.b = frame, _slider_range(a), _slider_range(b)
        self.steps, self.size, self.title, self.batched = steps, size, title, batched
        self._frames: Tensor | None = None
        self._first = self._render(self.a.start, self.b.start)

    def __repr__(self) -> str:
        return f"SliderPanel(a={self.a}, b={self.b}, steps={self.steps}, title={self.title!r})"

    def _render_all(self, a: Tensor, b: Tensor) -> Tensor:
        """Frames ``[N, C, H, W]`` at the slider positions ``(a[k], b[k])``."""
        with torch.no_grad():
            if self.batched:
                images = _check_images(self.frame(a, b), "frame(a, b)")
                if images.shape[0] != a.shape[0]:
                    raise ValueError(
                        f"a batched frame(a, b) must return one image per position: {a.shape[0]}, got {images.shape[0]}"
                    )
                return images.cpu()
            images = [self.frame(float(x), float(y)) for x, y in zip(a, b)]
        for image in images:
            if not isinstance(image, Tensor) or image.ndim != 3 or image.shape[0] not in (1, 3):
                got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
                raise ValueError(f"frame(a, b) must return one image [C, H, W] with C = 1 or 3, got {got}")
        return torch.stack(images).detach().float().cpu()

    def _render(self, a: float, b: float) -> Tensor:
        return self._render_all(torch.tensor([a]), torch.tensor([b]))[0]

    def frames(self) -> Tensor:
        """All pre-computed frames, ``[steps, steps, C, H, W]``: ``[i, j]`` is at the ``i``-th ``a`` and ``j``-th ``b``."""
        if self._frames is None:
            n = self.steps
            a, b = torch.tensor(self.a.values(n)), torch.tensor(self.b.values(n))
            images = self._render_all(a.repeat_interleave(n), b.repeat(n))
            self._frames = images.view(n, n, *images.shape[1:])
        return self._frames

    def _upscale(self) -> int:
        return max(1, round(self.size / self._first.shape[-1]))

    def html(self) -> str:
        """Self-contained HTML and JavaScript: an image and two ``<input type=range>`` sliders."""
        frames = self.frames()
        uris = ["data:image/png;base64," + base64.b64encode(_png(f)).decode() for f in frames.flatten(0, 1)]
        a_values, b_values = self.a.values(self.steps), self.b.values(self.steps)
        start_a = min(range(self.steps), key=lambda i: abs(a_values[i] - self.a.start))
        start_b = min(range(self.steps), key=lambda j: abs(b_values[j] - self.b.start))
        root = f"dislib-slider-{uuid.uuid4().hex[:12]}"
        height = round(self.size * frames.shape[-2] / frames.shape[-1])
        rows = "".join(
            f"<span>{escape(r.label)}</span>"
            f'<input type="range" min="0" max="{self.steps - 1}" step="1" value="{start}" aria-label="{escape(r.label)}">'
            f'<span class="dislib-value">{values[start]:.2f}</span>'
            for r, values, start in ((self.a, a_values, start_a), (self.b, b_values, start_b))
        )
        heading = f'<div style="font-weight:bold;margin-bottom:4px">{escape(self.title)}</div>' if self.title else ""
        script = (
            "(function(){"
            f'var root=document.getElementById("{root}");'
            f"var frames={json.dumps(uris, separators=(',', ':'))},av={json.dumps([round(v, 2) for v in a_values])},"
            f"bv={json.dumps([round(v, 2) for v in b_values])},n={self.steps};"
            'var img=root.getElementsByTagName("img")[0],inputs=root.getElementsByTagName("input"),'
            'spans=root.getElementsByClassName("dislib-value");'
            "function update(){var i=+inputs[0].value,j=+inputs[1].value;img.src=frames[i*n+j];"
            "spans[0].textContent=av[i].toFixed(2);spans[1].textContent=bv[j].toFixed(2);}"
            'inputs[0].addEventListener("input",update);inputs[1].addEventListener("input",update);'
            "})();"
        )
        return (
            f'<div id="{root}" style="display:inline-block;vertical-align:top;margin:0 16px 8px 0;'
            f'font-family:sans-serif;font-size:13px">{heading}'
            f'<img src="{uris[start_a * self.steps + start_b]}" width="{self.size}" height="{height}" alt="slider frame" '
            'style="image-rendering:crisp-edges;image-rendering:pixelated;display:block;border:1px solid #ccc">'
            '<div style="display:grid;grid-template-columns:auto auto 3em;gap:2px 6px;align-items:center;margin-top:4px">'
            f"{rows}</div><script>{script}</script></div>"
        )

    def _repr_html_(self) -> str:
        return self.html()

    def live(self) -> Any:
        """An ipywidgets ``VBox(Image, FloatSlider a, FloatSlider b)`` decoding on every change (needs a kernel)."""
        import ipywidgets as widgets

        style, layout = {"description_width": "initial"}, widgets.Layout(width=f"{max(self.size, 320)}px")
        sliders = [
            widgets.FloatSlider(value=r.start, min=r.low, max=r.high, step=(r.high - r.low) / 100, description=r.label,
                                continuous_update=True, readout_format=".2f", style=style, layout=layout)
            for r in (self.a, self.b)
        ]
        image = widgets.Image(value=_png(self._first, self._upscale()), format="png")

        def update(_change: Any) -> None:
            image.value = _png(self._render(sliders[0].value, sliders[1].value), self._upscale())

        for slider in sliders:
            slider.observe(update, names="value")
        children = [widgets.HTML(f"<b>{escape(self.title)}</b>")] if self.title else []
        return widgets.VBox([*children, image, *sliders])

    def show(self, live: bool = False) -> None:
        """Display the live widget (``live=True``, while a kernel runs) or the static HTML slider.

        A notebook can set ``LIVE = False`` in its parameter cell and call ``panel.show(LIVE)``:
        the committed outputs keep the static slider, readers running the notebook set ``True``.
        """
        from IPython.display import HTML, display

        display(self.live() if live else HTML(self.html()))


def code_slider(
    model: Disentangler,
    image_a: Tensor,
    image_b: Tensor,
    steps: int = 11,
    size: int = 192,
    title: str | None = None,
    labels: Tensor | None = None,
) -> SliderPanel:
    """Slide the specified code (``a``) and the unspecified code (``b``) from image a's to image b's.

    At ``(0, 0)`` the panel shows a's reconstruction, at ``(1, 1)`` b's, at ``(1, 0)`` a's
    unspecified code with b's specified code: the swap of :func:`swap_grid`.
    """
    pair = torch.cat([_check_image(image_a, "image_a").cpu(), _check_image(image_b, "image_b").cpu()])
    codes = _specified_codes(model, pair, "code_slider", labels)
    s, z = codes.specified, codes.unspecified

    def frames(a: Tensor, b: Tensor) -> Tensor:
        return decode_codes(model, _lerp(s[0], s[1], a), _lerp(z[0], z[1], b))

    return SliderPanel(
        frames, (f"specified code {model.specified_symbol}: a → b", 0.0, 1.0), ("unspecified code z: a → b", 0.0, 1.0),
        steps=steps, size=size, title=title, batched=True,
    )


def latent_slider(
    decode_fn: DecodeFn,
    latent_dim: int = 2,
    dims: tuple[int, int] = (0, 1),
    extent: float = 3.0,
    center: Tensor | None = None,
    steps: int = 11,
    size: int = 192,
    title: str | None = None,
) -> SliderPanel:
    """Slide two latent dimensions ``dims`` from ``-extent`` to ``extent``, the others kept at ``center``.

    ``decode_fn`` maps ``z [N, latent_dim]`` (on the CPU) to images, for example
    ``unspecified_decoder(vae)``.
    """
    if extent <= 0:
        raise ValueError(f"extent must be positive, got {extent}")
    base = _latent_center(latent_dim, dims, center)

    def frames(a: Tensor, b: Tensor) -> Tensor:
        return _decoded_frames(decode_fn, _latent_points(base, dims, a, b))

    return SliderPanel(
        frames,
        SliderRange(f"z{dims[0] + 1}", -extent, extent, float(base[dims[0]].clamp(-extent, extent))),
        SliderRange(f"z{dims[1] + 1}", -extent, extent, float(base[dims[1]].clamp(-extent, extent))),
        steps=steps, size=size, title=title, batched=True,
    )
