"""Results as small HTML tables, for the book's pages and for notebooks.

Every function returns a :class:`pandas.DataFrame` of formatted strings: its HTML form is a
compact table that fits the book's text column, and its text form still reads in a terminal.
Tables put the models (or targets) in rows and a few short columns across. A column whose name
says ``error`` or ``accuracy`` holds fractions and is shown in percent, so that the kind of every
percentage is in its column's name.

The evaluation helpers wrap :mod:`dislib.evaluate`: :func:`table1` measures one model the way
Table 1 of Mathieu et al. (2016) does, :func:`probe_table` shows its probes target by target,
:func:`versus_paper` puts rows beside the paper's published numbers and :func:`leak_table`
shows where the label hides in the unspecified code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import pandas as pd

from dislib import evaluate
from dislib.data.base import ImageDataset, LabelledData
from dislib.evaluate import ProbeResult
from dislib.models.base import Disentangler
from dislib.train import CONVERGED, History

MISSING = "–"
"""What a table shows where a row has no value for a column."""

PERCENT_KINDS = ("error", "accuracy")

PAPER_TABLE1: dict[str, dict[str, float]] = {
    "Sprites": {"s train error": 0.055, "s test error": 0.052, "z train error": 0.586, "z test error": 0.598,
                "chance error": 0.607},
    "NORB": {"s train error": 0.026, "s test error": 0.135, "z train error": 0.798, "z test error": 0.799,
             "chance error": 0.800},
    "Extended-YaleB": {"s train error": 0.0005, "s test error": 0.0008, "z train error": 0.964,
                       "z test error": 0.964, "chance error": 0.964},
}
"""Table 1 of Mathieu et al. (2016): error rates of a two-layer classifier (256 hidden units, early
stopping) reading the label from ``s`` and from ``z``, as fractions. The paper has no MNIST column.
On Sprites the errors are averages over the seven attributes (our reading; see the sprites chapter).
"""

RUIZ_TABLE1_MNIST: dict[str, dict[str, float]] = {
    "VAE": {"R": 0.099, "G": 0.104, "B": 0.101, "scale": 0.034, "width": 0.085, "mean": 0.085},
    "DIP-VAE-I": {"R": 0.055, "G": 0.064, "B": 0.063, "scale": 0.038, "width": 0.100, "mean": 0.064},
    "DIP-VAE-II": {"R": 0.077, "G": 0.069, "B": 0.076, "scale": 0.035, "width": 0.098, "mean": 0.071},
    "beta-VAE": {"R": 0.093, "G": 0.099, "B": 0.094, "scale": 0.039, "width": 0.089, "mean": 0.083},
    "sVAE": {"R": 0.094, "G": 0.092, "B": 0.084, "scale": 0.036, "width": 0.104, "mean": 0.082},
    "Rb-VAE": {"R": 0.065, "G": 0.069, "B": 0.062, "scale": 0.061, "width": 0.095, "mean": 0.070},
    "sRb-VAE": {"R": 0.057, "G": 0.053, "B": 0.055, "scale": 0.038, "width": 0.095, "mean": 0.060},
}
"""Table 1 of Ruiz et al. (2019), MNIST: the mean absolute error of linear regressors from ``e``
(Rb-VAE, sRb-VAE) or from all latents (the unsupervised models) to each style factor, and their
mean. The text adds the mean from ``z``: 0.195 (Rb-VAE) and 0.189 (sRb-VAE). The conversion of the
paper interleaved the B and scale rows; single cells are approximate, the means firm (NOTES.md)."""

RUIZ_MAE_FROM_Z_MNIST = {"Rb-VAE": 0.195, "sRb-VAE": 0.189}
"""Ruiz et al. (2019), Sec. 5.3: the mean absolute error of the regressors from ``z`` on MNIST."""


def table(
    rows: Mapping[str, Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    percent: Sequence[str] | None = None,
    digits: int = 2,
    percent_digits: int = 1,
    label: str = "",
) -> pd.DataFrame:
    """One row per key of ``rows``, one column per setting or metric, as formatted strings.

    Parameters
    ----------
    rows
        ``{row name: {column name: value}}``; values are numbers or strings. A row without a
        column shows :data:`MISSING` there.
    columns
        The columns to show, in order. Default: every column, in the order they are first met.
    percent
        Columns holding fractions in ``[0, 1]``, shown in percent. Each name must say whether it
        is an ``error`` or an ``accuracy``. Default: every column whose name says so.
    digits
        Decimals of the other non-integer numbers; integers get thousands separators.
    percent_digits
        Decimals of the percentages.
    label
        What the rows are (``"model"``, ``"target"``), shown in the top-left corner.

    Returns
    -------
    pandas.DataFrame
        The formatted table; a notebook shows it as HTML.

    Raises
    ------
    ValueError
        If ``rows`` is empty, ``columns`` names a column no row has, or a percent column does
        not say its kind or holds a value outside ``[0, 1]``.
    TypeError
        If a value is neither a number nor a string.
    """
    if not rows:
        raise ValueError("table needs at least one row: rows is empty")
    present = list(dict.fromkeys(column for row in rows.values() for column in row))
    unknown = [c for c in columns or () if c not in present]
    if unknown:
        raise ValueError(f"no row has the columns {unknown}; the columns are {present}")
    columns = list(columns) if columns is not None else present
    shown = _percent_columns(columns, percent)
    cells = {
        name: [_cell(row, column, column in shown, digits, percent_digits, name) for column in columns]
        for name, row in rows.items()
    }
    frame = pd.DataFrame.from_dict(cells, orient="index", columns=columns)
    frame.columns.name = label or None
    return frame


def _percent_columns(columns: list[str], percent: Sequence[str] | None) -> set[str]:
    if percent is None:
        return {c for c in columns if any(kind in c for kind in PERCENT_KINDS)}
    if isinstance(percent, str):
        raise TypeError(f"percent is a sequence of column names, got the string {percent!r}: write ({percent!r},)")
    unknown = set(percent) - set(columns)
    if unknown:
        raise ValueError(f"percent names columns that the table does not show: {sorted(unknown)}; it shows {columns}")
    vague = [c for c in percent if not any(kind in c for kind in PERCENT_KINDS)]
    if vague:
        raise ValueError(f"say whether each percentage is an error or an accuracy: rename the columns {vague}")
    return set(percent)


def _cell(row: Mapping[str, Any], column: str, as_percent: bool, digits: int, percent_digits: int, name: str) -> str:
    if column not in row or row[column] is None:
        return MISSING
    value = row[column]
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"row {name!r}, column {column!r}: expected a number or a string, got {value!r}")
    if as_percent:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"row {name!r}, column {column!r}: {value!r} is not a fraction in [0, 1]; "
                             "give errors and accuracies as fractions, not percentages")
        return f"{value:.{percent_digits}%}"
    if isinstance(value, Integral):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def config_table(config: Any, *others: Any, names: Sequence[str] | None = None, only_differences: bool = False) -> pd.DataFrame:
    """A dataclass configuration as a narrow table, one setting per row.

    Parameters
    ----------
    config, others
        Dataclass instances, such as ``model.config`` or a :class:`~dislib.models.base.Budget`.
        With several, each gets a column.
    names
        Column names, one per configuration; required with several (default for one: ``"value"``).
    only_differences
        Keep only the settings whose values differ between the configurations.

    Returns
    -------
    pandas.DataFrame
        Rows are settings, columns are configurations; a setting a configuration lacks shows
        :data:`MISSING`.

    Raises
    ------
    TypeError
        If an argument is not a dataclass instance.
    ValueError
        If the names do not match the configurations, or ``only_differences`` finds none.
    """
    configs = (config, *others)
    for c in configs:
        if not dataclasses.is_dataclass(c) or isinstance(c, type):
            raise TypeError(f"config_table takes dataclass instances such as model.config, got {c!r}")
    if names is None and others:
        raise ValueError("name the configurations: config_table(a, b, names=('first', 'second'))")
    names = list(names) if names is not None else ["value"]
    if len(names) != len(configs):
        raise ValueError(f"{len(configs)} configurations but {len(names)} names: {names}")
    values = [dataclasses.asdict(c) for c in configs]
    settings = list(dict.fromkeys(key for v in values for key in v))
    if only_differences:
        settings = [s for s in settings if len({repr(v.get(s, MISSING)) for v in values}) > 1]
        if not settings:
            raise ValueError("the configurations are identical: there is no difference to show")
    rows = {s: {n: _setting(v[s]) if s in v else MISSING for n, v in zip(names, values)} for s in settings}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=names)
    frame.columns.name = "setting"
    return frame


def _setting(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def last_metrics(histories: Mapping[str, History], columns: Mapping[str, str]) -> dict[str, dict[str, float]]:
    """Rows for :func:`table`: the metrics of each run's last evaluation interval.

    Parameters
    ----------
    histories
        ``{run name: History}``, as :func:`dislib.train.fit` or :func:`~dislib.train.train_or_load`
        return them.
    columns
        ``{key of History.last(): column name}``, in the order the columns should appear.

    Raises
    ------
    KeyError
        If a run did not record one of the keys.
    """
    rows = {}
    for name, history in histories.items():
        last = history.last()
        missing = [key for key in columns if key not in last]
        if missing:
            raise KeyError(f"run {name!r} recorded no {missing}; it has {sorted(last)}")
        rows[name] = {column: last[key] for key, column in columns.items()}
    return rows


def convergence(histories: Mapping[str, History], metrics: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Rows for :func:`table`: each run's steps, each metric's final value and its last-fifth change
    (:meth:`History.last_fifth_change`), and whether every change is below :data:`~dislib.train.CONVERGED`.

    Parameters
    ----------
    histories
        ``{run name: History}``.
    metrics
        ``{key of History.last(): column name}``: the metrics that say whether the budget sufficed. A
        run that does not record one (a baseline without a specified code) shows None there and is
        judged on the others.

    Raises
    ------
    KeyError
        If a run records none of ``metrics``.
    """
    rows = {}
    for name, history in histories.items():
        last = history.last()
        recorded = [key for key in metrics if key in last]
        if not recorded:
            raise KeyError(f"the run {name!r} records none of {sorted(metrics)}; it records: {sorted(last)}")
        changes = {key: history.last_fifth_change(key) for key in recorded}
        row: dict[str, Any] = {"steps": history.steps[-1]}
        for key, column in metrics.items():
            row[column] = last.get(key)
            row[f"{column}: last-fifth change"] = f"{changes[key]:.1%}" if key in changes else None
        row["converged"] = "yes" if max(changes.values()) < CONVERGED else "no"
        rows[name] = row
    return rows


def mean_row(rows: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The mean of each column over ``rows`` (for a row "mean" under several seeds).

    Raises
    ------
    ValueError
        If ``rows`` is empty or its rows do not have the same columns.
    """
    if not rows:
        raise ValueError("mean_row needs at least one row: rows is empty")
    columns = [list(row) for row in rows.values()]
    if any(c != columns[0] for c in columns):
        raise ValueError(f"the rows have different columns: {columns}")
    return {c: sum(row[c] for row in rows.values()) / len(rows) for c in columns[0]}


@dataclasses.dataclass(frozen=True)
class Table1Result:
    """What Table 1 of Mathieu et al. (2016) measures for one model, and two numbers about ``z``.

    Attributes
    ----------
    probes
        ``{"s": {target: ProbeResult}, "z": {...}}`` from :func:`dislib.evaluate.probe_codes`.
    kl_nats
        Mean KL of ``q(z|x)`` to the prior on the test images, in nats.
    swap_ratio
        Reconstruction error with the ``z`` of another image of the same class over that with
        the image's own ``z`` (:func:`dislib.evaluate.swap_ratio`).
    """

    probes: dict[str, dict[str, ProbeResult]]
    kl_nats: float
    swap_ratio: float

    def row(self, targets: Sequence[str] | None = None) -> dict[str, float]:
        """Errors averaged over ``targets`` (default: every probed target), the KL and the swap ratio.

        The keys are the columns of :func:`table`: ``s train error``, ``s test error``, ``z train
        error``, ``z test error``, ``chance error``, ``KL of z (nats)``, ``swap ratio``.
        """
        chosen = list(targets) if targets is not None else list(self.probes["z"])
        out: dict[str, float] = {}
        for code in self.probes:
            mean = evaluate.mean_error(self.probes[code], chosen)
            out[f"{code} train error"], out[f"{code} test error"] = mean.train_error, mean.test_error
        out["chance error"] = evaluate.mean_error(self.probes["z"], chosen).chance_error
        out["KL of z (nats)"] = self.kl_nats
        out["swap ratio"] = self.swap_ratio
        return out


def table1(
    model: Disentangler, train: ImageDataset, test: ImageDataset, targets: Sequence[str] = ("label",), seed: int = 0
) -> Table1Result:
    """Probe ``targets`` from ``s`` and from ``z``'s mean, and measure ``z``'s KL and swap ratio.

    Parameters
    ----------
    model
        A trained disentangler with a stochastic unspecified code.
    train, test
        The probes train on the codes of ``train`` and are tested on those of ``test``; the KL
        and the swap ratio are measured on ``test``.
    targets
        Names of :func:`dislib.evaluate.targets`: ``"label"`` and the ground-truth factors.
    seed
        Seeds the probes and the swap partners.
    """
    probes = evaluate.probe_codes(model, train, test, tuple(targets), seed)
    return Table1Result(probes, evaluate.kl_nats(model, test), evaluate.swap_ratio(model, test, seed))


def probe_table(result: Table1Result, means: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """One row per probed target, then one per entry of ``means`` (errors averaged over its targets).

    Columns: ``s`` and ``z`` train and test errors, and the chance error.
    """
    targets = {t: [t] for t in result.probes["z"]} | dict(means or {})
    rows = {}
    for name, chosen in targets.items():
        rows[name] = {k: v for k, v in result.row(chosen).items() if k.endswith("error")}
    return table(rows, label="target")


def versus_paper(rows: Mapping[str, Mapping[str, float]], dataset: str = "Sprites") -> pd.DataFrame:
    """Rows of :meth:`Table1Result.row` under the paper's Table 1 numbers for ``dataset``.

    Shows the columns of Table 1, in percent, and ``z test error / chance``, how close ``z`` is
    to telling nothing (1 is chance), as a plain number.

    Raises
    ------
    KeyError
        If the paper has no column for ``dataset``.
    """
    if dataset not in PAPER_TABLE1:
        raise KeyError(f"Table 1 of Mathieu et al. (2016) has no {dataset!r}; it has {sorted(PAPER_TABLE1)}")
    picked = {f"paper, {dataset}": PAPER_TABLE1[dataset], **rows}
    shown = {name: {**row, "z test error / chance": row["z test error"] / row["chance error"]} for name, row in picked.items()}
    columns = list(PAPER_TABLE1[dataset])
    return table(shown, columns=[*columns, "z test error / chance"], percent=columns, label="mean over targets")


LEAK_COLUMNS = {"s_mlp_mean": "s: MLP accuracy", "z_mlp_mean": "z: MLP accuracy, means",
                "z_linear_mean": "z: linear accuracy, means", "z_mlp_sample": "z: MLP accuracy, samples",
                "z_linear_sample": "z: linear accuracy, samples", "chance_accuracy": "chance accuracy",
                "z_kl_nats": "KL of z (nats)", "swap_ratio": "swap ratio"}
"""The columns of the book's leak tables: :func:`dislib.evaluate.leak_report`'s keys and their labels."""


def leak_row(measured: Mapping[str, float]) -> dict[str, float]:
    """One row of a leak table: the :data:`LEAK_COLUMNS` of a :func:`dislib.evaluate.leak_report`,
    labelled for readers (a reading the model lacks, such as samples of a deterministic code, is left out)."""
    return {label: measured[key] for key, label in LEAK_COLUMNS.items() if key in measured}


def leak_table(
    models: Mapping[str, Disentangler], train: LabelledData, test: LabelledData, seed: int = 0, active_nats: float = 0.5
) -> pd.DataFrame:
    """The label probe of ``z`` read four ways (:func:`dislib.evaluate.where_z_leaks`), one row per model.

    Columns: the number of active dimensions (KL above ``active_nats``), then the probe's test
    error from the posterior mean, from one sample, and from the mean of the active and of the
    collapsed dimensions alone (:data:`MISSING` where there are none).
    """
    rows = {}
    for name, model in models.items():
        found = evaluate.where_z_leaks(model, train, test, active_nats, seed)
        rows[name] = {"active dims": found["active_dimensions"]}
        rows[name] |= {f"error from {view}": found[view].test_error if view in found else None
                       for view in ("mean", "sample", "active", "collapsed")}
    return table(rows, label="model")
