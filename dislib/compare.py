"""One protocol for every method of the book: ``python -m dislib compare`` (the comparison chapter).

Every method trains on ``styled-mnist`` (Ruiz et al. 2019) with the supervision its paper allows
(:data:`METHODS`), for the same wall-clock time, with several seeds; then each is measured the same
way: probes and regressors are fitted on the codes of 10,000 training images that are not references
and tested on the 10,000 test images.

* for the code meant to carry the digit and the code meant to carry the style (``s`` and ``z``
  for the label-based models, ``z`` and ``e`` for the reference-based ones, the one code of the
  unsupervised baselines as their style code): the digit accuracy of an MLP and a linear probe
  (:func:`dislib.evaluate.probe`) on the code's means (and, for a Gaussian style code, on a sample),
  the mean absolute error of linear regressors on the five style factors
  (:func:`dislib.evaluate.regress`, chance 0.159) and the code's KL to ``N(0, I)`` in nats;
* the swap ratio of the style code (:func:`dislib.evaluate.swap_ratio`): how much worse an image
  is rebuilt with the style code of another image of the same digit;
* one likelihood for every model (:func:`shared_nll`), DCI (:func:`dislib.dci.dci`) of the whole
  representation on the style factors, the steps reached, the seconds and the images per second;
* whether the budget sufficed (:func:`convergence`): during training every run is evaluated
  ``evaluations`` times (quick probes and regressors on 2,000 test images, whose time the budget
  does not count), and the last fifth of that history says how much the style code still moved.

Each run trains in ``RUNS/KEY-seedN`` (the training loop's run directory) and its measurement is
written to ``RESULTS/KEY-seedN.json``, a small file meant to be committed: a result that matches the
protocol, the budget and the method is reused without training, an unfinished run is resumed, and
``restart`` (``--restart``) trains and measures each anew.
"""

from __future__ import annotations

import json
import math
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

import torch
from torch import Tensor
from tqdm.auto import tqdm

from dislib import data, losses, settings
from dislib.data.base import ImageDataset
from dislib.dci import dci
from dislib.evaluate import code_views, decode_codes, encode_dataset, probe, regress, swap_ratio
from dislib.models import MODELS, Budget, Codes, Disentangler
from dislib.compare_table import spread, summary_table
from dislib.train import (CONVERGED, METRICS, RUN, History, RunDirectoryError, fit, load_model, read_measurement, read_run,
                          seed_folder, write_json)

DATASET = "styled-mnist"
PROTOCOL_VERSION = 2  # bump when a measurement changes: stored results of another version are redone
SHARED_SCALE = 0.1
"""The standard deviation of the one Gaussian likelihood every model is scored under (:func:`shared_nll`)."""


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
    ``threads x jobs`` cores). The probes and regressors are fitted on the codes of ``probe_size``
    training images that are not references and tested on ``test_size`` test images; ``dci_size``
    of each feed the random forests of DCI. During training each run is evaluated ``evaluations``
    times, evenly in its training time, on ``eval_size`` test images (quick probes).
    """

    seconds: float
    seeds: tuple[int, ...]
    test_size: int
    dci_size: int
    train_size: int | None = None
    threads: int = 1
    jobs: int = 2
    probe_size: int = 10_000
    eval_size: int = 2_000
    evaluations: int = 10


BUDGETS = {
    "full": CompareBudget(seconds=150.0, seeds=(0, 1, 2), test_size=10_000, dci_size=2_500),
    "smoke": CompareBudget(seconds=1.0, seeds=(0,), test_size=400, dci_size=200, train_size=1_024, jobs=1,
                           probe_size=400, eval_size=200, evaluations=4),
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
    results: str | Path | None = None,
) -> dict[str, Any]:
    """Train (or reuse) every run of ``methods`` under the named budget and measure each; write one
    result file per run in ``results`` (default ``RUNS/results``), ``compare.json`` and ``compare.html``
    in ``runs``, and return what ``compare.json`` holds (:func:`summarise`). With ``restart``, each run
    trains from scratch and is measured anew, replacing its run directory and its result file."""
    plan, chosen, folder = BUDGETS[settings.budget(budget)], methods_named(methods), Path(runs)
    kept = folder / "results" if results is None else Path(results)
    for path in (folder, kept):
        if path.exists() and not path.is_dir():
            raise RunDirectoryError(f"{path} is a file, where compare keeps a folder: give --runs and --results "
                                    "folders, or move that file")
        path.mkdir(parents=True, exist_ok=True)
    tasks = [(method, seed) for method in chosen for seed in plan.seeds]
    args = [(method, seed, plan, folder, kept, device, restart) for method, seed in tasks]
    found = map_runs(_run_one, args, plan.jobs if jobs is None else jobs, plan.threads, progress, desc="compare")
    summary = summarise(found, settings.budget(budget), plan)
    write_json(folder / "compare.json", summary)
    (folder / "compare.html").write_text(summary_table(summary).to_html())
    return summary


def summarise(found: list[dict[str, Any]], budget: str, plan: CompareBudget) -> dict[str, Any]:
    """``compare.json``: the protocol, and per method (in :data:`METHODS`' order) what it is, its runs'
    results and their :func:`spread` over the seeds."""
    names = {m.key: m for m in METHODS}
    by_key: dict[str, list[dict[str, Any]]] = {}
    for result in found:
        by_key.setdefault(result["method"]["key"], []).append(result)
    chosen = [m for m in METHODS if m.key in by_key]
    unknown = sorted(set(by_key) - set(names))
    if unknown:
        raise ValueError(f"results of methods compare does not know: {unknown}; the methods are {', '.join(names)}")
    return {
        "dataset": DATASET, "budget": budget, "protocol": asdict(plan), "protocol_version": PROTOCOL_VERSION,
        "methods": {m.name: {"key": m.key, "model": m.model, "supervision": m.supervision,
                             "preset": m.preset or DATASET, "settings": m.settings,
                             "runs": sorted(by_key[m.key], key=lambda r: r["seed"]), **spread(by_key[m.key])}
                    for m in chosen},
    }


def load_results(folder: str | Path, budget: str = "full") -> dict[str, Any]:
    """:func:`summarise` of the result files in ``folder`` (``KEY-seedN.json``) that match today's
    protocol and the named budget, without training anything: how the chapter reads committed results.

    Raises
    ------
    FileNotFoundError
        If ``folder`` holds no such result (with the command that writes them).
    """
    plan, path = BUDGETS[budget], Path(folder)
    found = [stored_result(f) for f in sorted(path.glob("*-seed*.json"))] if path.is_dir() else []
    matching = [r for r in found if r.get("protocol_version") == PROTOCOL_VERSION and r.get("budget") == _trained_for(plan)]
    if not matching:
        raise FileNotFoundError(f"no result of the {budget} budget (protocol {PROTOCOL_VERSION}) in {path}: write them "
                                f"with python -m dislib compare --budget {budget} --results {path}")
    return summarise(matching, budget, plan)


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


RESULT_KEYS = ("protocol_version", "method", "seed", "budget", "steps", "seconds", "chance_accuracy",
               "style_code_digit_accuracy", "style_code_style_mae", "converged", "history")
"""What every result file holds (a model of two codes holds more)."""


def stored_result(path: Path) -> dict[str, Any]:
    """A run's stored result (``RESULTS/KEY-seedN.json``), or ``{}`` where there is none (the caller then
    measures the run); a :class:`RunDirectoryError` naming the file when it is damaged or lacks one of
    :data:`RESULT_KEYS` (of today's protocol): :func:`dislib.train.read_measurement`."""
    return read_measurement(path, PROTOCOL_VERSION, RESULT_KEYS)


def _trained_for(plan: CompareBudget) -> dict[str, Any]:
    return {"seconds": plan.seconds, "train_size": plan.train_size}


def _about(method: Method) -> dict[str, Any]:
    return {"name": method.name, "key": method.key, "model": method.model, "preset": method.preset or DATASET,
            "label": method.label, "settings": json.loads(json.dumps(method.settings))}


def _run_one(method: Method, seed: int, plan: CompareBudget, folder: Path, results: Path, device: str | None,
             restart: bool) -> dict:
    """Reuse the run's result when it matches; else train (or resume; with ``restart``, train anew) and
    measure it, and write its result file."""
    path = results / f"{method.key}-seed{seed}.json"
    stored = {} if restart else stored_result(path)
    if [stored.get(k) for k in ("protocol_version", "seed", "budget", "method")] == [
            PROTOCOL_VERSION, seed, _trained_for(plan), _about(method)]:
        return stored
    model, history, trained = trained_model(method, seed, plan, folder, device, restart)
    train = data.load(DATASET, "train", label="digit")
    references = data.load(DATASET, "train", label="set").labels == 1
    fit_set = train.subset(torch.nonzero(~references).squeeze(1)[: plan.probe_size])
    test = data.load(DATASET, "test", label="digit").subset(slice(0, plan.test_size))
    seconds = trained["seconds"] - trained.get("eval_seconds", 0.0)
    result = {"protocol_version": PROTOCOL_VERSION, "method": _about(method), "seed": seed,
              "budget": _trained_for(plan), **measure(model, method, fit_set, test, plan.dci_size, seed),
              "steps": trained["steps"], "seconds": round(seconds, 1), "threads": trained["threads"],
              "device": trained["device"], "torch": torch.__version__,
              "images_per_second": trained["steps"] * model.budget("full").batch_size / max(seconds, 1e-9),
              "converged": convergence(history, method), "history": headline_history(history, method)}
    write_json(path, result)
    return result


def trained_model(method: Method, seed: int, plan: CompareBudget, folder: Path, device: str | None = None,
                  restart: bool = False) -> tuple[Disentangler, History, dict[str, Any]]:
    """The method's model of ``seed`` trained under ``plan`` in ``FOLDER/KEY-seedN``: a finished run is
    loaded, an unfinished one resumed, a missing one trained (``restart``: trained anew). Returns the
    model, its history and its ``metrics.json``."""
    out = seed_folder(folder, method.key, seed)
    train = data.load(DATASET, "train", label=method.label)
    settings.seed_everything(seed)
    model = build(method, train)
    steps = Budget(steps=10**9, batch_size=model.budget("full").batch_size, eval_every=10**9,
                   train_size=plan.train_size, seconds=plan.seconds, eval_size=plan.eval_size)
    if not restart and (out / RUN).exists() and read_run(out).get("budget") != asdict(steps):
        raise RunDirectoryError(f"{out} holds a run of another budget than this one ({plan.seconds:g} s on "
                                f"{plan.train_size or 'all'} training images): compare reuses only runs of its own budget; "
                                "give --runs another folder (one per budget), delete that run, or replace it "
                                "with --restart")
    watch = data.load(DATASET, "test", label="digit")
    try:
        history = fit(model, train, watch, budget=steps, seed=seed, out=out, device=device, progress=False,
                      data_options={"label": method.label}, resume=not restart,
                      eval_seconds=plan.seconds / plan.evaluations)
    except RunDirectoryError as error:
        raise RunDirectoryError(f"{error}. compare keeps each run in a folder of --runs (here {out}): give --runs "
                                "another folder, delete that run, or replace it with --restart") from error
    return load_model(out, device), history, json.loads((out / METRICS).read_text())


def style_metric(method: Method) -> str:
    """The key of the quick evaluation that the convergence of ``method`` is judged on: the style MAE of
    its style code (:func:`dislib.evaluate.quick_regression`), which every method records."""
    return f"{'s' if method.style_code == 'specified' else 'z'}_factor_mae"


def headline_history(history: History, method: Method) -> dict[str, list[float]]:
    """The quick evaluations a chapter plots: steps, the style code's style MAE and, for a model of two
    codes, the digit accuracy of the quick probe on each code (``s_accuracy``, ``z_accuracy``)."""
    keys = [style_metric(method), "s_accuracy", "z_accuracy", "chance_accuracy"]
    rows = history.metrics
    return {"steps": list(history.steps), **{k: [row[k] for row in rows] for k in keys if rows and all(k in row for row in rows)}}


def convergence(history: History, method: Method) -> dict[str, Any]:
    """``{"metric", "last_fifth_change", "converged"}``: how much the style code's style MAE moved over
    the last fifth of the run (:meth:`History.last_fifth_change`) and whether that is below
    :data:`dislib.train.CONVERGED`; a change of None where the run has too few evaluations to say."""
    metric = style_metric(method)
    try:
        change = history.last_fifth_change(metric)
    except ValueError:
        return {"metric": metric, "last_fifth_change": None, "converged": False}
    return {"metric": metric, "last_fifth_change": change, "converged": change < CONVERGED}


def measure(model: Disentangler, method: Method, fit_set: ImageDataset, test: ImageDataset, dci_size: int,
            seed: int = 0) -> dict[str, float]:
    """The protocol's numbers for one trained model (see the module): ``{digit,style}_code_*``,
    ``swap_ratio``, ``shared_nll``, ``dci_*`` and ``chance_accuracy``; a code the model lacks gives none.
    Probes and regressors are fitted on ``fit_set`` and tested on ``test``."""
    codes = {"fit": encode_dataset(model, fit_set), "test": encode_dataset(model, test)}
    digits = {"fit": fit_set.labels.cpu(), "test": test.labels.cpu()}
    factors = {"fit": fit_set.factors.cpu(), "test": test.factors.cpu()}
    generator = torch.Generator().manual_seed(seed)
    out = {"chance_accuracy": float((digits["test"] == digits["fit"].bincount().argmax()).float().mean())}
    for role, which in (("digit_code", method.digit_code), ("style_code", method.style_code)):
        if which is None:
            continue
        views = {split: {"": getattr(codes[split], which)} for split in codes}  # a field of Codes
        logvar = {split: getattr(codes[split], f"{which}_logvar") for split in codes}
        if role == "style_code" and logvar["test"] is not None:
            for split in codes:
                style = Codes(specified=None, unspecified=views[split][""], unspecified_logvar=logvar[split])
                views[split]["_sample"] = code_views(style, generator)["z"]["sample"]
        for view in views["fit"]:
            for kind, suffix in (("mlp", ""), ("linear", "_linear")):
                result = probe(views["fit"][view], digits["fit"], views["test"][view], digits["test"], seed, kind)
                out[f"{role}_digit_accuracy{suffix}{view}"] = 1.0 - result.test_error
        out[f"{role}_style_mae"] = float(regress(views["fit"][""], factors["fit"], views["test"][""], factors["test"]).mean())
        if logvar["test"] is not None:
            out[f"{role}_kl_nats"] = float(losses.kl_normal_standard_per_dimension(views["test"][""], logvar["test"]).mean(0).sum())
    if method.digit_code is not None:
        out["swap_ratio"] = swap_ratio(model, test, seed, swapped=method.style_code)
    out["shared_nll"] = shared_nll(model, test, codes["test"])
    whole = {split: torch.cat([c for c in (codes[split].specified, codes[split].unspecified) if c is not None], 1)
             for split in codes}
    scores = dci(whole["fit"][:dci_size], factors["fit"][:dci_size], whole["test"][:dci_size],
                 factors["test"][:dci_size], seed=seed, trees=25)
    out |= {f"dci_{k}": scores[k] for k in ("disentanglement", "completeness", "informativeness_mae")}
    return out


def shared_nll(model: Disentangler, test: ImageDataset, codes: Codes, scale: float = SHARED_SCALE) -> float:
    r"""One likelihood for every model: the mean over test images of

    .. math:: -\log \mathcal{N}(x;\ \hat x,\ \sigma^2 I)
       = \sum_i \Big[\tfrac{(x_i - \hat x_i)^2}{2\sigma^2} + \log \sigma + \tfrac12 \log 2\pi\Big],

    in nats per image, with :math:`\hat x` the model's reconstruction from its posterior means (the
    codes of ``test``) and :math:`\sigma` = ``scale``. The models train under different likelihoods
    (Bernoulli, Gaussians of several scales, a Laplace), whose own values cannot be compared; this one
    scores every reconstruction alike. It is a reconstruction term, not a bound: the models' priors
    differ too (a mixture, a one-hot label), so their KLs are shown beside it, not added."""
    rebuilt = decode_codes(model, codes.specified, codes.unspecified).float().cpu()
    squared = (rebuilt - test.images.float().cpu()).pow(2).flatten(1).sum(1)
    pixels = rebuilt[0].numel()
    return float((squared / (2 * scale**2)).mean() + pixels * (math.log(scale) + 0.5 * math.log(2 * math.pi)))


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
