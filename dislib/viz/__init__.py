"""Pictures of two codes: image grids, swaps, interpolations, retrieval, latent maps and sliders.

Everything here is written once against the two methods of
:class:`~dislib.models.base.Disentangler`: ``encode(x) -> Codes`` and
``decode(specified, unspecified) -> images in [0, 1]``. Inputs may live on any device; they are
moved to the model's device, decoded in eval mode without gradients, and brought back to the CPU.

Figures are returned, never shown: a figure as the last value of a notebook cell is displayed
once. A :class:`SliderPanel` displays as a self-contained HTML slider over pre-computed frames
(it works in the static book, JupyterLab and Colab) and offers :meth:`SliderPanel.live`, an
ipywidgets panel that decodes on every change while a kernel runs.

Each module draws one kind of picture; every name is also here, as ``dislib.viz.NAME``:

- :mod:`~dislib.viz.grids`: image grids (``image_grid``, ``show_images``, ``named_rows``) and the
  grids of Mathieu et al. (2016): swaps (``swap_images``, ``swap_grid``), interpolations
  (``interpolation_images``, ``interpolation_grid``), conditional samples
  (``conditional_sample_images``, ``conditional_samples``).
- :mod:`~dislib.viz.retrieval`: nearest codes and their images (``nearest_neighbours``,
  ``retrieval_figure``).
- :mod:`~dislib.viz.latents`: latent maps (``unspecified_decoder``, ``latent_scatter``,
  ``latent_manifold``, ``latent_slider``).
- :mod:`~dislib.viz.sliders`: slider panels (``SliderRange``, ``SliderPanel``, ``side_by_side``,
  ``every_label``, ``code_slider``).
- :mod:`~dislib.viz.histories`: training curves (``plot_history``), the adversary's lag
  (``plot_adversary_lag``), gradient shares (``plot_gradient_shares``), a comparison's budgets
  (``plot_budget_curves``), a sweep's runs against the step (``plot_sweep_curves``).
- :mod:`~dislib.viz.tradeoff`: a sweep's leak trade-off (``plot_tradeoff``), a reference-based split (``plot_split``; over a sweep, ``plot_split_sweep``),
  a comparison's leak against its cost (``plot_leak_cost``).
- ``_common``: what they share (checks of image tensors, the model calls, a table of images).
"""

from dislib.viz._common import CELL_INCHES, HEADER_GAP
from dislib.viz.grids import (
    conditional_sample_images, conditional_samples, image_grid, interpolation_grid, interpolation_images, named_rows,
    show_images, swap_grid, swap_images,
)
from dislib.viz.histories import (plot_adversary_lag, plot_budget_curves, plot_gradient_shares, plot_history,
                                  plot_sweep_curves)
from dislib.viz.latents import DecodeFn, latent_manifold, latent_scatter, latent_slider, unspecified_decoder
from dislib.viz.retrieval import nearest_neighbours, retrieval_figure
from dislib.viz.sliders import FrameFn, SliderPanel, SliderRange, code_slider, every_label, side_by_side
from dislib.viz.tradeoff import plot_leak_cost, plot_split, plot_split_sweep, plot_tradeoff

__all__ = [
    "CELL_INCHES", "HEADER_GAP", "DecodeFn", "FrameFn",
    "image_grid", "show_images", "named_rows", "swap_images", "swap_grid", "interpolation_images", "interpolation_grid",
    "conditional_sample_images", "conditional_samples",
    "nearest_neighbours", "retrieval_figure",
    "unspecified_decoder", "latent_scatter", "latent_manifold", "latent_slider",
    "SliderRange", "SliderPanel", "side_by_side", "every_label", "code_slider",
    "plot_history", "plot_adversary_lag", "plot_gradient_shares", "plot_budget_curves", "plot_sweep_curves",
    "plot_split", "plot_split_sweep", "plot_tradeoff", "plot_leak_cost",
]
