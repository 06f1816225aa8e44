"""Latent maps: codes as points coloured by their label, images decoded on a grid of latent values
(Kingma & Welling 2014, Fig. 4), and a slider over two latent dimensions."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from dislib.evaluate import decode_codes
from dislib.models.base import Disentangler
from dislib.viz._common import CELL_INCHES, _check_images, _imshow
from dislib.viz.grids import image_grid
from dislib.viz.sliders import SliderPanel, SliderRange

DecodeFn = Callable[[Tensor], Tensor]


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
