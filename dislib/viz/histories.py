"""Training curves: the losses and metrics of a run, the adversary's lag behind fresh probes, and the
gradient shares of an objective's parts."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from dislib.train import History


def _panels(count: int, columns: int, size: tuple[float, float], sharey: bool = False) -> tuple[Figure, list]:
    """A figure of ``count`` panels, ``columns`` to a row, each ``size`` inches: the figure and its
    ``count`` axes in reading order (the grid's spare axes switched off)."""
    cols = min(columns, count)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), layout="constrained", squeeze=False,
                             sharey=sharey)
    for ax in axes.flat[count:]:
        ax.set_axis_off()
    return fig, list(axes.flat[:count])


def plot_history(
    history: History | Mapping[str, Any], keys: Sequence[str] | None = None, columns: int = 3, title: str = ""
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
    fig, axes = _panels(len(curves), columns, (3.2, 2.4))
    for ax, (name, (kind, values)) in zip(axes, curves.items()):
        ax.plot(history.steps, values, marker="o", markersize=3, color="C0" if kind == "train" else "C1")
        ax.set_title(f"{name} ({kind})", fontsize=10)
        ax.set_xlabel("step", fontsize=9)
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
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
    fig, axes = _panels(len(runs), columns, (4.2, 3.2))
    for ax, (label, (history, parts)) in zip(axes, runs.items()):
        shares = [[100 * m[k] for m in history.metrics] for k in parts]
        ax.stackplot(history.steps, shares, labels=[k.removeprefix("gradient_share_").replace("_", " ") for k in parts],
                     alpha=0.8)
        ax.set_ylim(0, 100)
        ax.set_title(label, fontsize=11)
        ax.set_xlabel("step", fontsize=10)
        ax.set_ylabel("share of the gradient (%)", fontsize=10)
        ax.tick_params(labelsize=9)
        ax.legend(fontsize=8, loc="lower left")
    plt.close(fig)
    return fig


def plot_budget_curves(summary: Mapping[str, Any], columns: int = 4) -> Figure:
    """Whether each method's budget sufficed: the quick style MAE of its style code (the metric its
    convergence is judged on) against the step, one line per seed, one panel per method.

    ``summary`` is what :func:`dislib.compare.run` or :func:`~dislib.compare.load_results` return; each
    run's result carries its ``history`` and ``converged`` entry. The title gives each seed's change
    over the last fifth of its run; a shaded band marks that fifth for the first seed.
    """
    methods = summary["methods"]
    if not methods:
        raise ValueError("the comparison has no methods: run dislib.compare.run first")
    undated = [name for name, method in methods.items() if any("history" not in run for run in method["runs"])]
    if undated:
        raise ValueError(f"the runs of {undated} carry no evaluation history (results of an older protocol): "
                         "measure them again with python -m dislib compare")
    fig, axes = _panels(len(methods), columns, (3.3, 2.5))
    for ax, (name, method) in zip(axes, methods.items()):
        changes = []
        for i, run in enumerate(method["runs"]):
            history, metric = run["history"], run["converged"]["metric"]
            ax.plot(history["steps"], history[metric], marker="o", markersize=2.5, color=f"C{i}",
                    label=f"seed {run['seed']}")
            change = run["converged"]["last_fifth_change"]
            changes.append("–" if change is None else f"{change:.1%}")
        last = method["runs"][0]["history"]["steps"][-1]
        ax.axvspan(0.8 * last, last, color="grey", alpha=0.15, linewidth=0)
        ax.set_title(f"{name}\nlast fifth: {', '.join(changes)}", fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("style MAE of the style code (quick)", fontsize=8)
    axes[0].legend(fontsize=7)
    plt.close(fig)
    return fig


def plot_sweep_curves(summary: Mapping[str, Any], metric: str, points: Sequence[str] | None = None,
                      columns: int = 4, ylabel: str | None = None) -> Figure:
    """One held-out metric of a sweep's runs against the step: one panel per point, one line per seed.

    ``summary`` is what :func:`dislib.sweep.run` returns (each run keeps the history of the metrics
    the training loop recorded); ``metric`` names one of them (for a reference-based model
    ``s_factor_mae``, the quick style error from ``e``); ``points`` picks some points by name.
    Where a seed's curve sits flat and then drops, the model learnt that part of the style late.
    """
    chosen = list(summary["points"]) if points is None else list(points)
    unknown = [name for name in chosen if name not in summary["points"]]
    if unknown or not chosen:
        raise ValueError(f"no point {unknown} in this sweep; its points are {', '.join(summary['points'])}")
    fig, axes = _panels(len(chosen), columns, (3.3, 2.5), sharey=True)
    for ax, name in zip(axes, chosen):
        for i, run in enumerate(summary["points"][name]["runs"]):
            history = run["history"]
            values = [record.get(metric, math.nan) for record in history["metrics"]]
            if all(math.isnan(v) for v in values):
                raise KeyError(f"the runs of {name!r} recorded no {metric!r}; they recorded "
                               f"{sorted({k for record in history['metrics'] for k in record})}")
            ax.plot(history["steps"], values, marker="o", markersize=2.5, color=f"C{i}", label=f"seed {run['seed']}")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel or metric, fontsize=8)
    axes[0].legend(fontsize=7)
    plt.close(fig)
    return fig
