"""The leak trade-off of a sweep: what a code leaks against what it still carries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker
from matplotlib.figure import Figure


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
