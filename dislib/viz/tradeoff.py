"""The leak trade-off of a sweep: what a code leaks against what it still carries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker
from matplotlib.figure import Figure


MANY_COLOURS = 20
"""How many distinct colours a figure of more than ten points cycles through (matplotlib's ``tab20``)."""


def _colour(i: int, n: int) -> str | tuple[float, ...]:
    """The colour of the ``i``-th of ``n`` points: matplotlib's ten cycle colours, or
    :data:`MANY_COLOURS` distinct ones where there are more than ten points."""
    return f"C{i}" if n <= 10 else plt.get_cmap("tab20")(i % MANY_COLOURS)


EXTENSION_MARKERS = ("o", "D", "^")
"""The markers of extension points, a new one after each round of :data:`MANY_COLOURS` colours:
colour and shape together tell up to sixty points apart."""


def _marker(i: int, faithful: bool) -> str:
    """The marker of the ``i``-th point: a square for the paper's settings, else
    :data:`EXTENSION_MARKERS` by the round of colours the point falls in."""
    return "s" if faithful else EXTENSION_MARKERS[(i // MANY_COLOURS) % len(EXTENSION_MARKERS)]


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
            mean, std, colour = point["mean"], point["std"], _colour(i, len(points))
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


def plot_split(rows: Mapping[str, Mapping[str, float]]) -> Figure:
    """Where each reference-based run lands on Table 1's split, one marker per run.

    ``rows`` maps a run's label to its ``"MAE from e"``, ``"z / chance"``, ``"scale z / chance"`` and
    ``"KL of z (nats)"`` (the Ruiz chapter's levers table). Left: how much of the style ``z`` reads
    (1: none, the paper's "at chance") against how well ``e`` reads it (lower is better); right: the
    size read from ``z`` against what ``z`` carries, so that an empty ``z`` shows as one. Labels
    ending in "(ext.)" are extensions (circles); the others squares.
    """
    needed = ("MAE from e", "z / chance", "scale z / chance", "KL of z (nats)")
    for label, row in rows.items():
        missing = [k for k in needed if k not in row]
        if missing:
            raise KeyError(f"the run {label!r} lacks {missing}: give each run the columns {list(needed)}")
    if not rows:
        raise ValueError("no runs to plot: rows is empty")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
    panels = (("MAE from e", "z / chance", "style MAE from e (range units; lower: e reads it better)",
               "style error from z / chance (1: z knows none of it)"),
              ("KL of z (nats)", "scale z / chance", "KL of z (nats; log scale above 1)", "size error from z / chance"))
    for ax, (x_key, y_key, x_label, y_label) in zip(axes, panels):
        for i, (label, row) in enumerate(rows.items()):
            ax.plot(row[x_key], row[y_key], marker="o" if label.endswith("(ext.)") else "s", markersize=8,
                    color=plt.cm.tab20(i % 20), linestyle="none", label=label)
        ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel(x_label, fontsize=10)
        ax.set_ylabel(y_label, fontsize=10)
        ax.set_ylim(0.0, 1.05)
        ax.grid(alpha=0.3)
    axes[1].set_xscale("symlog", linthresh=1.0)
    axes[1].set_xlim(0.0, 2.0 * max(row["KL of z (nats)"] for row in rows.values()))
    axes[1].xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right center", fontsize=8)
    plt.close(fig)
    return fig


def plot_split_sweep(summary: Mapping[str, Any], paper: Mapping[str, tuple[float, float]] | None = None) -> Figure:
    """Table 1's split over a sweep of reference-based models, and what it costs the codes.

    ``summary`` is what :func:`dislib.sweep.run` returns for a sweep measured with Table 1's split
    (:func:`dislib.split.style_split`). Each marker is a point's mean over its seeds, bars one standard
    deviation; the paper's objectives are squares, extensions circles (past twenty points, diamonds and
    then triangles: :func:`_marker`), a point whose ``z`` the decoder
    hardly uses (``empty``) is hollow. Left: the style error from ``e`` (range units) against the
    style error from ``z`` over chance (1: ``z`` reads none of it), with ``paper``'s models as stars
    (``{name: (z / chance, MAE from e)}``). Right: the digit an MLP probe reads from ``z`` (filled) and
    from ``e`` (cross) against the same ratio: the digit is the common factor, which ``z`` should
    keep and ``e`` should not take.
    """
    points = summary["points"]
    if not points:
        raise ValueError("the sweep has no points: run dislib.sweep.run first")
    missing = [name for name, p in points.items() if "z_ratio" not in p["mean"]]
    if missing:
        raise KeyError(f"points {missing} have no split (z_ratio): plot_split_sweep reads a sweep measured with "
                       "measure='split'; for a leak sweep use plot_tradeoff")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
    for i, (name, point) in enumerate(points.items()):
        mean, std, colour = point["mean"], point["std"], _colour(i, len(points))
        style = dict(marker=_marker(i, point["faithful"]), markersize=9, color=colour, linestyle="none", capsize=3,
                     mfc="white" if point["empty"] else colour)
        axes[0].errorbar(mean["z_ratio"], mean["e_mae"], xerr=std["z_ratio"], yerr=std["e_mae"], label=name, **style)
        axes[1].errorbar(mean["z_ratio"], 100 * mean["z_digit_mlp"], xerr=std["z_ratio"], yerr=100 * std["z_digit_mlp"], **style)
        axes[1].errorbar(mean["z_ratio"], 100 * mean["e_digit_mlp"], yerr=100 * std["e_digit_mlp"], marker="x",
                         markersize=9, color=colour, linestyle="none", capsize=3)
    for name, (ratio, error) in (paper or {}).items():
        axes[0].plot(ratio, error, marker="*", markersize=13, color="grey", linestyle="none", label=f"{name} (paper)")
    chance = np.mean([p["mean"]["digit_chance"] for p in points.values()])
    axes[1].axhline(100 * chance, color="grey", linestyle=":", linewidth=1, label="chance")
    axes[0].set_ylabel("style MAE from e (range units; lower: e reads it better)", fontsize=10)
    axes[1].set_ylabel("digit read by an MLP probe (%)", fontsize=10)
    axes[1].set_title("filled: from z, cross: from e", fontsize=10)
    for ax in axes:
        ax.axvline(1.0, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("style error from z / chance (1: z reads none of it)", fontsize=10)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=9, loc="center left")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right center", fontsize=8)
    plt.close(fig)
    return fig


def plot_leak_cost(summary: Mapping[str, Any]) -> Figure:
    """Who takes the digit out of the style code, and at what price: one marker per run of a comparison.

    ``summary`` is what :func:`dislib.compare.run` or :func:`~dislib.compare.load_results` return. The
    y axis is the digit accuracy of probes on the means of the style code (filled: the MLP probe,
    cross: the linear probe; the dotted line is chance). Left: against the swap ratio of the style
    code (how much worse an image is drawn with another image's style code; the models of one code
    have none); right: against what the style code still reads of the five style factors (its style
    MAE, lower is more). A run whose budget did not converge is drawn hollow.
    """
    methods = summary["methods"]
    if not methods:
        raise ValueError("the comparison has no methods: run dislib.compare.run first")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), layout="constrained")
    panels = (("swap_ratio", "swap ratio of the style code (higher: it carries more)"),
              ("style_code_style_mae", "style MAE of the style code (lower: it carries more)"))
    chance = np.mean([r["chance_accuracy"] for m in methods.values() for r in m["runs"]])
    for ax, (x_key, x_label) in zip(axes, panels):
        for i, (name, method) in enumerate(methods.items()):
            colour, labelled = f"C{i % 10}", False
            for run in method["runs"]:
                if x_key not in run:
                    continue
                hollow = not run["converged"]["converged"]
                ax.plot(run[x_key], 100 * run["style_code_digit_accuracy"], marker="o" if i < 10 else "s",
                        markersize=8, color=colour, mfc="white" if hollow else colour, linestyle="none",
                        label=None if labelled else name)
                ax.plot(run[x_key], 100 * run["style_code_digit_accuracy_linear"], marker="x", markersize=7,
                        color=colour, linestyle="none")
                labelled = True
        ax.axhline(100 * chance, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel(x_label, fontsize=10)
        ax.set_ylabel("digit read from the style code's means (%)", fontsize=10)
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_title("filled: MLP probe, cross: linear probe, hollow: not converged", fontsize=9)
    axes[1].set_title("dotted: chance", fontsize=9)
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    plt.close(fig)
    return fig
