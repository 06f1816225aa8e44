"""One protocol for every method of the book: ``python -m dislib compare`` (the comparison chapter).

Every method trains on ``styled-mnist`` (Ruiz et al. 2019) with the supervision its paper allows
(:data:`METHODS`), for the same wall-clock time, with several seeds; then each is measured the same
way on the test split (its first half fits the probes and regressors, the second tests them):

* for the code meant to carry the digit and the code meant to carry the style (``s`` and ``z``
  for the label-based models, ``z`` and ``e`` for the reference-based ones, the one code of the
  unsupervised baselines as their style code): the digit accuracy of an MLP probe
  (:func:`dislib.evaluate.probe`), the mean absolute error of linear regressors on the five style
  factors (:func:`dislib.evaluate.regress`, chance 0.159) and the code's KL to ``N(0, I)`` in nats;
* the swap ratio of the style code (:func:`dislib.evaluate.swap_ratio`): how much worse an image
  is rebuilt with the style code of another image of the same digit;
* DCI (:func:`dislib.dci.dci`) of the whole representation on the style factors;
* the steps reached, the seconds and the training images per second.

Each run lives in ``RUNS/KEY-seedN`` (the training loop's run directory, plus ``evaluation.json``);
a finished run is reused, an unfinished one resumed, unless ``restart`` (``--restart``) trains each anew.
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from dislib import data, losses, settings
from dislib.data.base import ImageDataset
from dislib.dci import dci
from dislib.evaluate import decode_codes, encode_dataset, probe, regress, swap_ratio
from dislib.models import MODELS, Budget, Disentangler
from dislib.report import table
from dislib.train import METRICS, RUN, RunDirectoryError, fit, load_model, read_json, read_run, write_json

DATASET = "styled-mnist"
EVALUATION = "evaluation.json"
PROTOCOL_VERSION = 1  # bump when a measurement changes: stored evaluations of another version are redone


@dataclass(frozen=True)
class Method:
    """One row of the comparison.

    Parameters
    ----------
    name, key
        The row's name and its run directories' (``KEY-seedN``).
    model
        A name of :data:`dislib.models.MODELS`; built with ``preset`` (``None``: its ``styled-mnist``
        preset) and ``settings``.
    supervision
        What the method sees besides the images, in words.
    label
        The labels it trains on: ``"digit"`` or ``"set"`` (reference or not; the unsupervised
        baselines ignore them).
    digit_code
        The code meant to carry the digit, ``"specified"`` or ``"unspecified"``; the other carries
        the style. ``None``: the model has one code (measured as its style code).
    """

    name: str
    key: str
    model: str
    supervision: str
    label: str = "set"
    settings: dict[str, Any] = field(default_factory=dict)
    digit_code: str | None = None
    preset: str | None = None

    @property
    def style_code(self) -> str:
        """The code meant to carry the style: the one that is not :attr:`digit_code`."""
        return "specified" if self.digit_code == "unspecified" else "unspecified"


RUIZ_LITERAL = "styled-mnist-literal"
"""The preset of the models on Ruiz et al.'s networks here: the paper's likelihood, learning rate and
weights on the laptop networks (Rb-VAE's chapter trains its own ``styled-mnist`` preset beside it)."""

METHODS = (
    Method("VAE", "vae", "ruizvae", "nothing", preset=RUIZ_LITERAL),
    Method("beta-VAE", "betavae", "betavae", "nothing", preset=RUIZ_LITERAL),
    Method("DIP-VAE-I", "dipvae1", "dipvae1", "nothing", preset=RUIZ_LITERAL),
    Method("DIP-VAE-II", "dipvae2", "dipvae2", "nothing", preset=RUIZ_LITERAL),
    Method("cVAE", "cvae", "cvae", "the digit, fed to the decoder", "digit", digit_code="specified"),
    Method("Mathieu et al.", "mathieu", "mathieu", "the digit; pairs of one digit", "digit", digit_code="specified"),
    Method("Mathieu et al. + class MMD (ext.)", "mathieu-mmd", "mathieu", "the digit; pairs of one digit", "digit",
           {"class_mmd_weight": 1000.0}, "specified"),
    Method("Zheng & Sun", "zheng", "zheng", "the digit", "digit", digit_code="specified"),
    Method("Rb-VAE", "rbvae", "rbvae", "which images are references", digit_code="unspecified", preset=RUIZ_LITERAL),
    Method("sRb-VAE", "srbvae", "srbvae", "which images are references", digit_code="unspecified", preset=RUIZ_LITERAL),
    Method("Rb-VAE, Gaussian (ext.)", "rbvae-gaussian", "rbvae", "which images are references",
           settings={"likelihood": "gaussian", "pixel_scale": 0.05}, digit_code="unspecified", preset=RUIZ_LITERAL),
)


@dataclass(frozen=True)
class CompareBudget:
    """The time every run trains, the seeds, and the images of the evaluation.

    ``threads`` is each run's CPU threads and ``jobs`` how many runs train at once (on a machine of
    ``threads x jobs`` cores); ``test_size`` test images are split in halves to fit and test the
    probes, ``dci_size`` of each half feed the random forests of DCI.
    """

    seconds: float
    seeds: tuple[int, ...]
    test_size: int
    dci_size: int
    train_size: int | None = None
    threads: int = 1
    jobs: int = 2


BUDGETS = {
    "full": CompareBudget(seconds=150.0, seeds=(0, 1, 2), test_size=10_000, dci_size=2_500),
    "smoke": CompareBudget(seconds=1.0, seeds=(0,), test_size=400, dci_size=200, train_size=1_024, jobs=1),
}


def methods_named(keys: list[str] | None) -> tuple[Method, ...]:
    """The methods with these keys (all when ``None``), or a ValueError naming the known keys."""
    if not keys:
        return METHODS
    known = {m.key: m for m in METHODS}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ValueError(f"no method {unknown}; the methods are {', '.join(known)}")
    return tuple(known[k] for k in keys)


def build(method: Method, train: ImageDataset) -> Disentangler:
    """The method's model for ``train``: its preset (default ``styled-mnist``) with the method's settings."""
    return MODELS[method.model].for_dataset(train, method.preset or DATASET, **method.settings)


def run(
    budget: str = "full",
    runs: str | Path = "runs/compare",
    methods: list[str] | None = None,
    device: str | None = None,
    jobs: int | None = None,
    progress: bool = True,
    restart: bool = False,
) -> dict[str, Any]:
    """Train (or reuse) every run of ``methods`` under the named budget and evaluate each; write
    ``compare.json`` and ``compare.html`` in ``runs`` and return what ``compare.json`` holds. With
    ``restart``, each run trains from scratch and is measured anew, replacing what its directory holds."""
    plan, chosen, folder = BUDGETS[settings.budget(budget)], methods_named(methods), Path(runs)
    folder.mkdir(parents=True, exist_ok=True)
    tasks = [(method, seed) for method in chosen for seed in plan.seeds]
    args = [(method, seed, plan, folder, device, restart) for method, seed in tasks]
    results = map_runs(_run_one, args, plan.jobs if jobs is None else jobs, plan.threads, progress, desc="compare")
    by_method = {m.name: [r for (method, _), r in zip(tasks, results) if method == m] for m in chosen}
    summary = {
        "dataset": DATASET, "budget": settings.budget(budget), "protocol": asdict(plan),
        "methods": {m.name: {"key": m.key, "model": m.model, "supervision": m.supervision,
                             "preset": m.preset or DATASET, "settings": m.settings,
                             "runs": by_method[m.name], **spread(by_method[m.name])} for m in chosen},
    }
    write_json(folder / "compare.json", summary)
    (folder / "compare.html").write_text(summary_table(summary).to_html())
    return summary


def map_runs(function: Callable[..., dict], args: list[tuple], jobs: int, threads: int, progress: bool, desc: str) -> list[dict]:
    """``[function(*a) for a in args]``, in order: with ``jobs > 1`` in that many spawned processes of
    ``threads`` CPU threads each, else in this process; a progress bar counts finished runs."""
    if jobs < 1:
        raise ValueError(f"jobs is how many runs train at once, at least 1, got {jobs}")
    pool = ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_start_worker,
                               initargs=(threads, os.getpid())) if jobs > 1 else nullcontext()
    with pool, tqdm(total=len(args), desc=desc, disable=not progress) as bar:
        results = []
        try:
            for result in (pool.map if jobs > 1 else map)(function, *zip(*args)):
                results.append(result)
                bar.update(1)
        except BaseException:
            bar.leave = False  # the error, not a half-filled bar, is the last line the user reads
            raise
    return results


def _start_worker(threads: int, parent: int) -> None:
    """A pool worker's start: ``threads`` CPU threads, and a watcher that ends the worker once its
    parent is gone (killed with SIGKILL, the pool cannot say so), so that no orphan keeps training."""
    torch.set_num_threads(threads)
    threading.Thread(target=_exit_with, args=(parent,), daemon=True, name="dislib-parent-watch").start()


def _exit_with(parent: int, every: float = 1.0) -> None:
    """Poll every ``every`` seconds whether ``parent`` is still this process's parent; exit at once when not."""
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


def stored_evaluation(path: Path) -> dict[str, Any]:
    """A run's stored measurement (``evaluation.json``), or ``{}`` where there is none (the caller then
    measures the run); a :class:`RunDirectoryError` naming the file when it is damaged."""
    if not path.exists():
        return {}
    return read_json(path, "delete it to measure the run again (its training is kept)")


def _run_one(method: Method, seed: int, plan: CompareBudget, folder: Path, device: str | None, restart: bool) -> dict:
    """Train (or resume, or reuse; with ``restart``, train anew) one run and evaluate it; the evaluation
    is kept in its directory."""
    out = folder / f"{method.key}-seed{seed}"
    stored = {} if restart else stored_evaluation(out / EVALUATION)
    trained_for = {"seconds": plan.seconds, "train_size": plan.train_size}
    if (out / METRICS).exists() and (stored.get("protocol_version"), stored.get("seed"), stored.get("budget")) == (
        PROTOCOL_VERSION, seed, trained_for
    ):
        return stored
    train = data.load(DATASET, "train", label=method.label)
    settings.seed_everything(seed)
    model = build(method, train)
    steps = Budget(steps=10**9, batch_size=model.budget("full").batch_size, eval_every=10**9,
                   train_size=plan.train_size, seconds=plan.seconds)
    if not restart and (out / RUN).exists() and read_run(out).get("budget") != asdict(steps):
        raise RunDirectoryError(f"{out} holds a run of another budget than this one ({plan.seconds:g} s on "
                                f"{plan.train_size or 'all'} training images): compare reuses only runs of its own budget; "
                                "give --runs another folder (one per budget), delete that run, or replace it "
                                "with --restart")
    try:
        fit(model, train, None, budget=steps, seed=seed, out=out, device=device, progress=False,
            data_options={"label": method.label}, resume=not restart)
    except RunDirectoryError as error:
        raise RunDirectoryError(f"{error}. compare keeps each run in a folder of --runs (here {out}): give --runs "
                                "another folder, delete that run, or replace it with --restart") from error
    trained = json.loads((out / METRICS).read_text())
    model = load_model(out, device)
    test = data.load(DATASET, "test", label="digit").subset(slice(0, plan.test_size))
    result = {"protocol_version": PROTOCOL_VERSION, "seed": seed, "budget": trained_for,
              **measure(model, method, test, plan.dci_size, seed),
              **{k: trained[k] for k in ("steps", "seconds", "threads", "device")},
              "images_per_second": trained["steps"] * steps.batch_size / max(trained["seconds"], 1e-9)}
    write_json(out / EVALUATION, result)
    return result


def measure(model: Disentangler, method: Method, test: ImageDataset, dci_size: int, seed: int = 0) -> dict[str, float]:
    """The protocol's numbers for one trained model (see the module): ``{digit,style}_code_*``,
    ``swap_ratio``, ``dci_*`` and ``chance_accuracy``; a code the model lacks gives none."""
    half = len(test) // 2
    fit_set, test_set = test.subset(slice(0, half)), test.subset(slice(half, 2 * half))
    codes = {"fit": encode_dataset(model, fit_set), "test": encode_dataset(model, test_set)}
    digits = {"fit": fit_set.labels.cpu(), "test": test_set.labels.cpu()}
    factors = {"fit": fit_set.factors.cpu(), "test": test_set.factors.cpu()}
    out = {"chance_accuracy": float((digits["test"] == digits["fit"].bincount().argmax()).float().mean())}
    for role, which in (("digit_code", method.digit_code), ("style_code", method.style_code)):
        if which is None:
            continue
        fit_code, test_code = getattr(codes["fit"], which), getattr(codes["test"], which)  # a field of Codes
        out[f"{role}_digit_accuracy"] = 1.0 - probe(fit_code, digits["fit"], test_code, digits["test"], seed).test_error
        out[f"{role}_style_mae"] = float(regress(fit_code, factors["fit"], test_code, factors["test"]).mean())
        logvar = getattr(codes["test"], f"{which}_logvar")
        if logvar is not None:
            out[f"{role}_kl_nats"] = float(losses.kl_normal_standard_per_dimension(test_code, logvar).mean(0).sum())
    if method.digit_code is not None:
        out["swap_ratio"] = swap_ratio(model, test_set, seed, swapped=method.style_code)
    whole = {split: torch.cat([c for c in (codes[split].specified, codes[split].unspecified) if c is not None], 1)
             for split in codes}
    scores = dci(whole["fit"][:dci_size], factors["fit"][:dci_size], whole["test"][:dci_size],
                 factors["test"][:dci_size], seed=seed, trees=25)
    out |= {f"dci_{k}": scores[k] for k in ("disentanglement", "completeness", "informativeness_mae")}
    return out


def spread(results: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """``{"mean": {...}, "std": {...}}`` of every number the runs share (std over seeds, ddof 1; 0 for one run)."""
    keys = [k for k, v in results[0].items() if isinstance(v, (int, float)) and k not in ("seed", "protocol_version")]
    values = {k: np.array([r[k] for r in results], dtype=float) for k in keys if all(k in r for r in results)}
    return {"mean": {k: float(v.mean()) for k, v in values.items()},
            "std": {k: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for k, v in values.items()}}


COLUMNS = {
    "supervision": "supervision",
    "digit_code_digit_accuracy": "digit code: digit accuracy",
    "digit_code_style_mae": "digit code: style MAE",
    "digit_code_kl_nats": "digit code: KL (nats)",
    "style_code_digit_accuracy": "style code: digit accuracy",
    "style_code_style_mae": "style code: style MAE",
    "style_code_kl_nats": "style code: KL (nats)",
    "swap_ratio": "swap ratio",
    "dci_disentanglement": "DCI: D",
    "dci_completeness": "DCI: C",
    "dci_informativeness_mae": "DCI: I (MAE)",
    "steps": "steps",
    "seconds": "seconds",
    "images_per_second": "images/s",
}
"""The table's columns: the key in ``compare.json`` and the name shown."""


def summary_table(summary: dict[str, Any]) -> pd.DataFrame:
    """The comparison as a table of ``mean ± std`` over seeds (accuracies in percent), one row per method."""
    rows = {}
    for name, result in summary["methods"].items():
        mean, std = result["mean"], result["std"]
        row = {"supervision": result["supervision"]}
        for key, column in list(COLUMNS.items())[1:]:
            if key in mean:
                row[column] = spread_cell(key, mean[key], std[key], len(result["runs"]))
        rows[name] = row
    return table(rows, columns=[c for c in COLUMNS.values() if any(c in r for r in rows.values())], label="method")


def spread_cell(key: str, mean: float, std: float, runs: int, percent: bool | None = None) -> str:
    """``"97.1 ± 0.4%"``, ``"0.052 ± 0.003"``, ``"12.4 ± 1.0"``, ``"1,234 ± 56"``; the mean alone for one run.
    Accuracies (``percent``; default: keys that say ``accuracy``) are shown in percent."""
    if ("accuracy" in key) if percent is None else percent:
        mean, std, unit, digits = 100 * mean, 100 * std, "%", 1
    else:
        unit = ""
        digits = 0 if key in ("steps", "seconds", "images_per_second") else 3 if abs(mean) < 10 else 1
    return (f"{mean:,.{digits}f}" if runs < 2 else f"{mean:,.{digits}f} ± {std:,.{digits}f}") + unit


def swaps(
    model: Disentangler, method: Method, style_images: Tensor, digit_images: Tensor,
    style_labels: Tensor | None = None, digit_labels: Tensor | None = None,
) -> Tensor:
    """``[K, C, H, W]``: image ``k`` drawn from the style code of ``style_images[k]`` and the digit code of
    ``digit_images[k]`` (the labels: the images' digits, for a model whose specified code is the label)."""
    if method.digit_code is None:
        raise ValueError(f"{method.name} has one code: there is nothing to swap")
    style = encode_dataset(model, style_images, labels=style_labels)
    digit = encode_dataset(model, digit_images, labels=digit_labels)
    if method.digit_code == "specified":
        return decode_codes(model, digit.specified, style.unspecified)
    return decode_codes(model, style.specified, digit.unspecified)
