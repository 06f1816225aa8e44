"""The comparison's tables (:mod:`dislib.compare`): the spread of each number over the seeds, the
table of every method, whether each budget converged, and which method to use when."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from dislib.report import table
from dislib.train import CONVERGED


def spread(results: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """``{"mean": {...}, "std": {...}}`` of every number the runs share (std over seeds, ddof 1; 0 for one run)."""
    keys = [k for k, v in results[0].items() if isinstance(v, (int, float)) and k not in ("seed", "protocol_version")]
    values = {k: np.array([r[k] for r in results], dtype=float) for k in keys if all(k in r for r in results)}
    return {"mean": {k: float(v.mean()) for k, v in values.items()},
            "std": {k: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for k, v in values.items()}}


COLUMNS = {
    "supervision": "supervision",
    "digit_code_digit_accuracy": "digit code: digit (MLP)",
    "digit_code_digit_accuracy_linear": "digit code: digit (linear)",
    "digit_code_style_mae": "digit code: style MAE",
    "digit_code_kl_nats": "digit code: KL (nats)",
    "style_code_digit_accuracy": "style code: digit (MLP)",
    "style_code_digit_accuracy_linear": "style code: digit (linear)",
    "style_code_digit_accuracy_sample": "style code: digit (MLP, sample)",
    "style_code_style_mae": "style code: style MAE",
    "style_code_kl_nats": "style code: KL (nats)",
    "swap_ratio": "swap ratio",
    "shared_nll": "shared NLL (nats)",
    "dci_disentanglement": "DCI: D",
    "dci_completeness": "DCI: C",
    "dci_informativeness_mae": "DCI: I (MAE)",
    "steps": "steps",
    "seconds": "seconds",
    "images_per_second": "images/s",
    "converged": "budget",
}
"""The table's columns: the key in ``compare.json`` and the name shown."""


def summary_table(summary: dict[str, Any]) -> pd.DataFrame:
    """The comparison as a table of ``mean ± std`` over seeds (accuracies in percent), one row per method;
    its last column says whether every seed's budget converged (:func:`dislib.compare.convergence`)."""
    rows = {}
    for name, result in summary["methods"].items():
        mean, std = result["mean"], result["std"]
        row = {"supervision": result["supervision"]}
        for key, column in list(COLUMNS.items())[1:-1]:
            if key in mean:
                row[column] = spread_cell(key, mean[key], std[key], len(result["runs"]))
        row[COLUMNS["converged"]] = budget_cell(result["runs"])
        rows[name] = row
    return table(rows, columns=[c for c in COLUMNS.values() if any(c in r for r in rows.values())], label="method")


def budget_cell(runs: list[dict[str, Any]]) -> str:
    """``"converged"`` when every run's style MAE moved less than :data:`~dislib.train.CONVERGED` over
    its last fifth, else ``"not converged (2 of 3 seeds; up to 4.1%)"``."""
    changes = [r["converged"]["last_fifth_change"] for r in runs]
    late = [c for c in changes if c is None or c >= CONVERGED]
    if not late:
        return "converged"
    known = [c for c in changes if c is not None]
    worst = f"; up to {max(known):.1%}" if known else "; too few evaluations"
    return f"not converged ({len(late)} of {len(runs)} seed{'s' if len(runs) > 1 else ''}{worst})"


def spread_cell(key: str, mean: float, std: float, runs: int, percent: bool | None = None) -> str:
    """``"97.1 ± 0.4%"``, ``"0.052 ± 0.003"``, ``"12.4 ± 1.0"``, ``"1,234 ± 56"``; the mean alone for one run.
    Accuracies (``percent``; default: keys that say ``accuracy``) are shown in percent."""
    if ("accuracy" in key) if percent is None else percent:
        mean, std, unit, digits = 100 * mean, 100 * std, "%", 1
    else:
        unit = ""
        digits = 0 if key in ("steps", "seconds", "images_per_second") else 3 if abs(mean) < 10 else 1
    return (f"{mean:,.{digits}f}" if runs < 2 else f"{mean:,.{digits}f} ± {std:,.{digits}f}") + unit


WHEN_COLUMNS = {
    "digit_code_digit_accuracy": "gives: digit from the digit code",
    "style_code_digit_accuracy": "leaks: digit from the style code",
    "style_code_style_mae": "keeps: style MAE of the style code",
    "swap_ratio": "swap ratio",
    "images_per_second": "CPU images/s (1 thread)",
}


def which_method_when(summary: dict[str, Any], gpu: Mapping[int, Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """What each method needs, what it gives and what it costs, one row per method: its supervision,
    the means over the seeds of :data:`WHEN_COLUMNS` (the MLP probes; the style MAE of a constant guess
    is 0.159), and, from ``gpu`` (``{batch size: the output of python -m dislib bench --device cuda}``),
    the images per second of its model on that GPU at each batch size."""
    rows = {}
    for name, result in summary["methods"].items():
        mean, std, runs = result["mean"], result["std"], len(result["runs"])
        row = {"needs": result["supervision"]}
        for key, column in WHEN_COLUMNS.items():
            row[column] = spread_cell(key, mean[key], std[key], runs) if key in mean else "–"
        for size, bench in (gpu or {}).items():
            model = bench["models"].get(result["model"])
            row[f"GPU images/s, batch {size:,}"] = f"{model['images_per_second']:,.0f}" if model else "–"
        row[COLUMNS["converged"]] = budget_cell(result["runs"])
        rows[name] = row
    return table(rows, label="method")
