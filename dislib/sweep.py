"""A trade-off curve over a model's settings: ``python -m dislib sweep zheng-mnist``.

A *sweep* trains one model on one dataset at its own full budget for several settings (the
*points* of the curve, :data:`SWEEPS`; a point may train another model of the same family), each
with several seeds, and measures every run (:data:`MEASURES`). ``"leak"`` is the book's leak
protocol (:func:`dislib.evaluate.leak_report`): MLP and linear probes fitted afresh on the codes of
10,000 training images and tested on 10,000 test images, on the means and on samples of each code,
beside the KL of each code in nats and the swap ratio of ``z``. ``"split"`` is Table 1's split of
a reference-based model (:func:`dislib.split.style_split`): the style read from ``e`` and from
``z`` by regressions fitted on 5,000 test images and scored on the next 5,000, beside what the
codes still carry (the digit read from each code by probes fitted on 10,000 training codes);
``"latents"`` reads the style the same way from the one code of an unsupervised baseline
(:func:`dislib.split.style_from_latents`). A point whose ``z`` carries almost nothing (swap ratio below :data:`EMPTY_SWAP`)
is marked ``empty``: its low leak is a code with nothing in it, not a split.

Each run lives in ``RUNS/KEY-seedN`` (the training loop's run directory, plus ``evaluation.json``
and the run's history of held-out metrics); a finished run is reused, an unfinished one resumed.
``sweep.json`` in ``RUNS`` holds every run and each point's mean and spread over the seeds. A sweep
of some points (``--point``) keeps there the other points of an earlier ``sweep.json`` of the same
protocol (:func:`kept_points`): a point added to a sweep trains alone into the summary of the others,
even where their runs are no longer on disk.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from dislib import data, settings
from dislib.compare import map_runs
from dislib.compare_table import spread, spread_cell
from dislib.data.base import LabelledData
from dislib.data.styled import regression_sets
from dislib.evaluate import leak_report
from dislib.models import MODELS
from dislib.models.base import Model
from dislib.models.ruiz import BOTH_REGRESSORS, BOUND_START, LIGHT_CODE_RECONSTRUCTION, NARROW_COMMON, TARGET_REGRESSOR
from dislib.models.zheng import LEAST_LEAK, STRONG_ADVERSARY
from dislib.report import LEAK_COLUMNS, table
from dislib.split import style_from_latents, style_split
from dislib.train import METRICS, RunDirectoryError, fit, load_model, read_json, read_measurement, seed_folder, write_json

EVALUATION = "evaluation.json"
PROTOCOL_VERSIONS = {"leak": 1, "split": 2, "latents": 1}
"""Each measurement's version: bump it when the measurement changes, and stored evaluations of another
version are measured again (split 2: the digit probes fitted on 10,000 training codes)."""
EMPTY_SWAP = 1.1
"""A swap ratio below this marks a ``z`` that the decoder hardly uses: the setting emptied it."""


@dataclass(frozen=True)
class Point:
    """One setting of the curve: its name, run key, the model settings, whether it is the paper's, the
    model it trains where that is not the sweep's, and ``step_multiple``, how many times the sweep
    budget's steps its runs train for (1: the budget's own)."""

    name: str
    key: str
    settings: dict[str, Any] = field(default_factory=dict)
    faithful: bool = False
    model: str | None = None
    step_multiple: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.step_multiple, int) or self.step_multiple < 1:
            raise ValueError(f"point {self.name!r}: step_multiple is how many times the budget's steps a run trains, "
                             f"a whole number >= 1, got {self.step_multiple!r}")


@dataclass(frozen=True)
class Sweep:
    """A model, the dataset it trains on, the points of its curve, what each run is measured with
    (:data:`MEASURES`) and the training loop's mode (``None``: exact, ``"fast"``: see :func:`dislib.train.fit`)."""

    model: str
    dataset: str
    points: tuple[Point, ...]
    measure: str = "leak"
    mode: str | None = None


SWEEPS = {
    "zheng-mnist": Sweep("zheng", "mnist", (
        Point("authors' settings (z 100)", "faithful", {}, faithful=True),
        Point("strong C_z, z 16, weight 3", "strong-z16-w3", LEAST_LEAK),
        Point("strong C_z, z 16", "strong-z16", {**STRONG_ADVERSARY, "unspecified_dim": 16}),
        Point("strong C_z, z 32, weight 3", "strong-z32-w3", {**STRONG_ADVERSARY, "unspecified_dim": 32, "code_adversary_weight": 3.0}),
        Point("strong C_z, z 100", "strong-z100", STRONG_ADVERSARY),
    )),
    "ruiz-styled-mnist": Sweep("rbvae", "styled-mnist", (
        Point("Rb-VAE", "rbvae", {}, faithful=True),
        Point("sRb-VAE", "srbvae", {}, faithful=True, model="srbvae"),
        Point("Rb-VAE + target regressor 1,000", "rbvae-target-1000", {**TARGET_REGRESSOR, "target_adversary_weight": 1_000.0}),
        Point("Rb-VAE + target regressor 10,000", "rbvae-target", TARGET_REGRESSOR),
        Point("Rb-VAE + both regressors 10,000", "rbvae-both", BOTH_REGRESSORS),
        Point("Rb-VAE + target regressor 10,000, common 1,000", "rbvae-both-1000",
              {**BOTH_REGRESSORS, "common_adversary_weight": 1_000.0}),
        Point("sRb-VAE + target regressor 10,000", "srbvae-target", TARGET_REGRESSOR, model="srbvae"),
        Point("Rb-VAE, z 16", "rbvae-z16", {"unspecified_dim": 16}),
        Point("Rb-VAE, z 8", "rbvae-z8", NARROW_COMMON),
        Point("Rb-VAE, z 4", "rbvae-z4", {"unspecified_dim": 4}),
        Point("Rb-VAE, z 8 + common regressor 1,000", "rbvae-z8-common-1000",
              {**NARROW_COMMON, "common_adversary_weight": 1_000.0, "extension_start": 1_000}),
        Point("sRb-VAE, z 16", "srbvae-z16", {"unspecified_dim": 16}, model="srbvae"),
        Point("sRb-VAE, z 8", "srbvae-z8", NARROW_COMMON, model="srbvae"),
        Point("sRb-VAE + Eq. 3 for 1,000 steps", "srbvae-bound-1000", BOUND_START, model="srbvae"),
        Point("sRb-VAE, z 8 + Eq. 3 for 1,000 steps", "srbvae-z8-bound-1000", {**NARROW_COMMON, **BOUND_START},
              model="srbvae"),
        Point("Rb-VAE, z 8, twice the steps", "rbvae-z8-x2", NARROW_COMMON, step_multiple=2),
        Point("sRb-VAE, z 8 + Eq. 3 for 1,000 steps, twice the steps", "srbvae-z8-bound-1000-x2",
              {**NARROW_COMMON, **BOUND_START}, model="srbvae", step_multiple=2),
        Point("Rb-VAE, z 8, four times the steps", "rbvae-z8-x4", NARROW_COMMON, step_multiple=4),
        Point("sRb-VAE, z 8 + Eq. 3 for 1,000 steps, four times the steps", "srbvae-z8-bound-1000-x4",
              {**NARROW_COMMON, **BOUND_START}, model="srbvae", step_multiple=4),
        Point("Rb-VAE, z 6", "rbvae-z6", {"unspecified_dim": 6}),
        Point("sRb-VAE, z 6 + Eq. 3 for 1,000 steps", "srbvae-z6-bound-1000", {"unspecified_dim": 6, **BOUND_START},
              model="srbvae"),
        Point("Rb-VAE, z 6, twice the steps", "rbvae-z6-x2", {"unspecified_dim": 6}, step_multiple=2),
        Point("sRb-VAE, z 6 + Eq. 3 for 1,000 steps, twice the steps", "srbvae-z6-bound-1000-x2",
              {"unspecified_dim": 6, **BOUND_START}, model="srbvae", step_multiple=2),
        Point("sRb-VAE, z 8 + Eq. 3 first, Eq. 8 weighted 300", "srbvae-z8-bound-1000-adv-300",
              {**NARROW_COMMON, **BOUND_START, "adversarial_weight": 300.0}, model="srbvae"),
        Point("sRb-VAE, z 8 + Eq. 3 first, Eq. 8 weighted 1,000", "srbvae-z8-bound-1000-adv-1000",
              {**NARROW_COMMON, **BOUND_START, "adversarial_weight": 1_000.0}, model="srbvae"),
        Point("sRb-VAE, z 8 + Eq. 3 first, Eq. 10 weighted 10", "srbvae-z8-bound-1000-code-10",
              {**NARROW_COMMON, **BOUND_START, **LIGHT_CODE_RECONSTRUCTION}, model="srbvae"),
        Point("sRb-VAE, z 8, Eq. 10 weighted 10, twice the steps", "srbvae-z8-bound-1000-code-10-x2",
              {**NARROW_COMMON, **BOUND_START, **LIGHT_CODE_RECONSTRUCTION}, model="srbvae", step_multiple=2),
        Point("sRb-VAE, z 8 + Eq. 3 first, Eq. 10 weighted 30", "srbvae-z8-bound-1000-code-30",
              {**NARROW_COMMON, **BOUND_START, "code_reconstruction_weight": 30.0}, model="srbvae"),
        Point("sRb-VAE, z 8, Eq. 10 weighted 30, twice the steps", "srbvae-z8-bound-1000-code-30-x2",
              {**NARROW_COMMON, **BOUND_START, "code_reconstruction_weight": 30.0}, model="srbvae", step_multiple=2),
        Point("sRb-VAE, z 8 + Eq. 3 first, Eq. 10 weighted 1,000", "srbvae-z8-bound-1000-code-1000",
              {**NARROW_COMMON, **BOUND_START, "code_reconstruction_weight": 1_000.0}, model="srbvae"),
    ), measure="split", mode="fast"),
    "ruiz-baselines-styled-mnist": Sweep("dipvae1", "styled-mnist", (
        Point("DIP-VAE-I, lambda_od=10", "dipvae1-10", {"lambda_od": 10.0}, faithful=True),
        Point("DIP-VAE-I, lambda_od=10, twice the steps", "dipvae1-10-x2", {"lambda_od": 10.0}, faithful=True, step_multiple=2),
        Point("DIP-VAE-I, lambda_od=10, four times the steps", "dipvae1-10-x4", {"lambda_od": 10.0}, faithful=True,
              step_multiple=4),
    ), measure="latents", mode="fast"),
}


@dataclass(frozen=True)
class SweepBudget:
    """The model budget each run trains for, the seeds, the probe's images, and the processes.

    ``threads`` is each run's CPU threads and ``jobs`` how many runs train at once; ``probe_size``
    training images fit the probes and as many test images test them.
    """

    model_budget: str
    seeds: tuple[int, ...]
    probe_size: int
    threads: int = 1
    jobs: int = 2


BUDGETS = {
    "full": SweepBudget("full", seeds=(0, 1, 2), probe_size=10_000),
    "smoke": SweepBudget("smoke", seeds=(0,), probe_size=300, jobs=1),
}


def points_named(sweep: Sweep, keys: list[str] | None) -> tuple[Point, ...]:
    """The sweep's points with these keys (all when ``None``), or a ValueError naming the known keys."""
    if not keys:
        return sweep.points
    known = {p.key: p for p in sweep.points}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ValueError(f"no point {unknown} in this sweep; its points are {', '.join(known)}")
    return tuple(known[k] for k in keys)


def run(
    name: str = "zheng-mnist",
    budget: str = "full",
    runs: str | Path | None = None,
    points: list[str] | None = None,
    device: str | None = None,
    jobs: int | None = None,
    progress: bool = True,
    restart: bool = False,
) -> dict[str, Any]:
    """Train (or reuse) every run of the sweep's ``points`` and measure each; write ``sweep.json`` in
    ``runs`` (default ``runs/sweep-NAME``) and return what it holds. With ``restart``, each chosen run
    trains from scratch and is measured anew, replacing what its directory holds."""
    if name not in SWEEPS:
        raise ValueError(f"no sweep {name!r}; the sweeps are {', '.join(SWEEPS)}")
    sweep, plan = SWEEPS[name], BUDGETS[settings.budget(budget)]
    chosen, folder, jobs = points_named(sweep, points), Path(runs or f"runs/sweep-{name}"), plan.jobs if jobs is None else jobs
    if jobs < 1:
        raise ValueError(f"jobs is how many runs train at once, at least 1, got {jobs}")
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file, not a folder of runs: give --runs a folder (it is made if missing)")
    folder.mkdir(parents=True, exist_ok=True)
    summary = {"sweep": name, "model": sweep.model, "dataset": sweep.dataset, "measure": sweep.measure, "mode": sweep.mode,
               "budget": settings.budget(budget), "protocol": asdict(plan), "empty_swap": EMPTY_SWAP, "points": {}}
    kept = kept_points(folder / "sweep.json", summary, sweep) if len(chosen) < len(sweep.points) else {}  # before training
    tasks = [(point, seed) for point in chosen for seed in plan.seeds]
    args = [(sweep, point, seed, plan, folder, device, restart) for point, seed in tasks]
    results = map_runs(_run_one, args, jobs, plan.threads, progress, desc=name)
    measured = {}
    for point in chosen:
        mine = [r for (p, _), r in zip(tasks, results) if p == point]
        stats = spread([{k: v for k, v in r.items() if k != "history"} for r in mine])
        measured[point.name] = {"key": point.key, "model": point.model or sweep.model,
                                "settings": point.settings, "faithful": point.faithful, "step_multiple": point.step_multiple,
                                "empty": stats["mean"].get("swap_ratio", EMPTY_SWAP) < EMPTY_SWAP,
                                "runs": mine, **stats}
    summary["points"] = {p.name: measured.get(p.name, kept.get(p.name)) for p in sweep.points if p.name in measured | kept}
    write_json(folder / "sweep.json", summary)
    return summary


def page_summary(name: str, budget: str, summary: str | Path, runs: str | Path, smoke_points: list[str],
                 device: str | None = None, jobs: int | None = None) -> dict[str, Any]:
    """The sweep a book page shows. Under the ``full`` budget: the committed summary at ``summary`` where
    it exists, else the sweep run (or its finished runs reused) in ``runs`` and its summary copied to
    ``summary``. Under another budget: ``smoke_points`` trained for one seed in a new temporary folder,
    one at a time, so that a test of the page never touches the committed runs; that folder is the
    summary's ``"runs"``."""
    summary = Path(summary)
    if settings.budget(budget) == "full":
        if summary.exists():
            return read_json(summary, "restore it from the repository, or delete it to rebuild it from the runs")
        result = run(name, "full", runs, device=device, jobs=jobs, progress=False)
        summary.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(runs) / "sweep.json", summary)
        return result
    folder = tempfile.mkdtemp(prefix=f"dislib-sweep-{name}-")
    return {**run(name, budget, folder, points=smoke_points, device=device, jobs=1, progress=False), "runs": folder}


def kept_points(path: Path, summary: dict[str, Any], sweep: Sweep) -> dict[str, dict]:
    """The points of an earlier ``sweep.json`` at ``path`` that a run of fewer points keeps beside its own:
    those measured under the same sweep, budget, protocol and training mode, with the settings and model
    their point still has and the current measurement version (:data:`PROTOCOL_VERSIONS`). So that
    points added to a sweep can be trained alone, into the summary of the others (which need not be
    on disk); anything else in the file is dropped, and a damaged file is an error naming it."""
    if not path.exists():
        return {}
    earlier = read_json(path, "delete it (a sweep of every point writes it anew from the run folders), or move it "
                        "out of --runs", keys=("points",))
    same = ("sweep", "dataset", "measure", "mode", "budget", "protocol")
    if any(earlier.get(k) != _as_stored(summary[k]) for k in same):
        return {}
    version = PROTOCOL_VERSIONS[sweep.measure]
    points = {p.name: p for p in sweep.points}
    return {name: point for name, point in earlier["points"].items()
            if name in points and point.get("settings") == _as_stored(points[name].settings)
            and point.get("model") == (points[name].model or sweep.model)
            and point.get("step_multiple", 1) == points[name].step_multiple
            and all(r.get("protocol_version") == version for r in point.get("runs", []))}


def _as_stored(value: Any) -> Any:
    """``value`` as a JSON file gives it back (tuples become lists), to compare it with what one holds."""
    return json.loads(json.dumps(value))


MEASURED_KEYS = {"leak": ("z_mlp_mean", "z_kl_nats"), "split": ("e_mae", "z_ratio", "reference_stroke_drawn"),
                 "latents": ("latents_mae", "latents_kl_nats")}
"""What every stored measurement of its kind holds, beside the run's seed, steps and history."""


def stored_evaluation(path: Path, measure: str) -> dict[str, Any]:
    """A run's stored measurement (``evaluation.json``) under :func:`dislib.train.read_measurement`, checked
    against what a measurement of today's version of ``measure`` (:data:`PROTOCOL_VERSIONS`) holds."""
    required = ("protocol_version", "seed", "probe_size", "steps", "seconds", "history", *MEASURED_KEYS[measure])
    return read_measurement(path, PROTOCOL_VERSIONS[measure], required)


def _run_one(sweep: Sweep, point: Point, seed: int, plan: SweepBudget, folder: Path, device: str | None,
             restart: bool = False) -> dict:
    """Train (or resume, or reuse; with ``restart``, train anew) one run and measure it; the measurement
    is kept in its directory."""
    out = seed_folder(folder, point.key, seed)
    stored = {} if restart else stored_evaluation(out / EVALUATION, sweep.measure)
    if (out / METRICS).exists() and (stored.get("protocol_version"), stored.get("seed"), stored.get("probe_size")) == (
            PROTOCOL_VERSIONS[sweep.measure], seed, plan.probe_size):
        return stored
    train, test = data.load(sweep.dataset, "train"), data.load(sweep.dataset, "test")
    settings.seed_everything(seed)
    model = MODELS[point.model or sweep.model].for_dataset(train, **point.settings)
    named = model.budget(plan.model_budget)
    budget = replace(named, steps=named.steps * point.step_multiple)
    try:
        history = fit(model, train, test, budget=budget, seed=seed, out=out, device=device, progress=False,
                      resume=not restart, mode=sweep.mode)
    except RunDirectoryError as error:
        raise RunDirectoryError(f"{error}. A sweep keeps each run in a folder of --runs (here {out}) and resumes only "
                                "its own runs: give --runs another folder (one per budget and sweep), delete that run, "
                                "or replace it with --restart") from error
    trained = json.loads((out / METRICS).read_text())
    model = load_model(out, device)
    measured = MEASURES[sweep.measure](model, sweep.dataset, train, test, plan.probe_size, seed)
    result = {"protocol_version": PROTOCOL_VERSIONS[sweep.measure], "seed": seed, "probe_size": plan.probe_size, **measured,
              **{k: trained[k] for k in ("steps", "seconds", "threads", "device")},
              **{k: trained[k] for k in ("forward_dtype",) if k in trained},  # absent from runs trained before metrics.json had it
              "history": {"steps": history.steps, "metrics": history.metrics}}
    write_json(out / EVALUATION, result)
    return result


def _leak(model: Model, dataset: str, train: LabelledData, test: LabelledData, size: int, seed: int) -> dict[str, float]:
    """The book's leak protocol (:func:`dislib.evaluate.leak_report`) on ``size`` training and test images."""
    with torch.no_grad():
        return leak_report(model, train.subset(slice(0, size)), test.subset(slice(0, size)), seed)


def _split(model: Model, dataset: str, train: LabelledData, test: LabelledData, size: int, seed: int) -> dict[str, float]:
    """Table 1's split (:func:`dislib.split.style_split`): regressions fitted on ``size / 2`` test images
    and scored on the next ``size / 2``; the digit probes fitted on ``size`` training images that are
    not references and tested on those test images; 500 reference digits drawn."""
    fit_set, score_set = regression_sets(data.load(dataset, "test", label="digit"), size // 2)
    is_reference = train.labels == model.config.reference_label
    probe_train = data.load(dataset, "train", label="digit").subset(torch.nonzero(~is_reference).squeeze(1)[:size])
    return style_split(model, fit_set, score_set, train.images[is_reference][:500], probe_train, seed)


def _latents(model: Model, dataset: str, train: LabelledData, test: LabelledData, size: int, seed: int) -> dict[str, float]:
    """Table 1's row of a one-code baseline (:func:`dislib.split.style_from_latents`): regressions fitted
    on ``size / 2`` test images and scored on the next ``size / 2``, as :func:`_split`'s."""
    return style_from_latents(model, *regression_sets(data.load(dataset, "test"), size // 2))


MEASURES = {"leak": _leak, "split": _split, "latents": _latents}
"""How a sweep measures each run: the leak of the label from ``z`` (probes), Table 1's split of the
style, or the style read from a baseline's latents."""

COLUMNS = {**{key: LEAK_COLUMNS[key] for key in ("z_mlp_mean", "z_linear_mean", "z_mlp_sample", "z_linear_sample",
                                                  "z_kl_nats", "swap_ratio", "s_mlp_mean")},
           "s_linear_mean": "s: linear accuracy", "chance_accuracy": LEAK_COLUMNS["chance_accuracy"], "seconds": "seconds"}
"""The leak table's columns: the key in ``sweep.json`` and the name shown (accuracies of the digit, in percent)."""

SPLIT_COLUMNS = {
    "e_mae": "e: style MAE", "e_colour": "e: colour", "e_scale": "e: scale", "e_width": "e: width",
    "z_ratio": "z / chance", "z_colour_ratio": "z: colour / chance", "z_scale_ratio": "z: scale / chance",
    "z_width_ratio": "z: width / chance", "z_mlp_ratio": "z / chance (MLP)", "z_kl_nats": "KL of z (nats)",
    "z_digit_mlp": "z: digit accuracy (MLP)", "e_digit_mlp": "e: digit accuracy (MLP)", "swap_ratio": "swap ratio",
    "reference_stroke_drawn": "reference stroke drawn", "seconds": "seconds",
}
"""The split table's columns (:func:`dislib.split.style_split`): errors in range units, ratios to chance, digit accuracies in percent."""

LATENT_COLUMNS = {"latents_mae": "all latents: style MAE", "latents_colour": "all latents: colour",
                  "latents_scale": "all latents: scale", "latents_width": "all latents: width",
                  "latents_kl_nats": "KL of the latents (nats)", "seconds": "seconds"}
"""A baseline's columns (:func:`dislib.split.style_from_latents`): errors in range units."""


def summary_table(summary: dict[str, Any]) -> pd.DataFrame:
    """The sweep as a table of ``mean ± std`` over seeds, one row per point, the paper's marked and
    points whose ``z`` is empty flagged."""
    measure = summary.get("measure", "leak")
    split = measure == "split"
    columns = {"leak": COLUMNS, "split": SPLIT_COLUMNS, "latents": LATENT_COLUMNS}[measure]
    rows = {}
    for name, point in summary["points"].items():
        row = {"settings": "the paper's" if point["faithful"] else "extension"}
        if measure != "latents":  # a baseline has no z of its own to empty
            row["z empty"] = "yes" if point["empty"] else "no"
        for key, column in columns.items():
            if key in point["mean"]:
                accuracy = key.endswith("_mlp") if split else key.endswith(("_mean", "_sample", "accuracy"))
                row[column] = spread_cell(key, point["mean"][key], point["std"][key], len(point["runs"]), accuracy)
        rows[name] = row
    return table(rows, label="point (mean ± std over seeds)")
