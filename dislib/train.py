"""One training loop for every model: seeding, batches, progress, evaluation, checkpoints.

A run directory holds ``checkpoint.pt`` (weights, optimizers, random state, step, history),
``run.json`` (what was trained on what) and, at the end, ``metrics.json``; each is replaced
atomically. While a process trains there, ``run.lock`` holds its process id.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import pickle
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from dislib import data as datasets, evaluate, precision, settings
from dislib.data.base import LabelledData
from dislib.data.cache import write_atomically
from dislib.models.base import Budget, Model

CHECKPOINT = "checkpoint.pt"
RUN_FORMAT = 1
"""The version of run.json this dislib writes; a newer one is refused with the fix."""
RUN = "run.json"
METRICS = "metrics.json"
LOCK = "run.lock"
SYNC_EVERY = 20  # steps between bringing the losses to the host (each transfer waits for a GPU)
_SAME_ON_RESUME = ("model", "dataset", "data_options", "seed", "budget", "mode")
_BEFORE_MODES = "eager"  # what a run.json written before the fast path existed trained in
_CHECKPOINT_KEYS = {"model", "config", "weights", "optimizers", "step", "history", "rng"}
_RESTART = "train again with --restart (resume=False)"
_FOLDER = "move or delete that folder (--restart replaces files, not folders)"
CONVERGED = 0.02
"""A run has converged for a metric when the metric moved less than this fraction of its final
value over the last fifth of the run (:meth:`History.last_fifth_change`)."""


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite."""


class RunDirectoryError(RuntimeError):
    """A run directory is damaged, in use by another process, or holds another run."""


@dataclass
class History:
    """Mean losses per evaluation interval, the evaluation metrics at its end, and where it trained.

    ``device`` and ``threads`` (``torch.get_num_threads()``) are those of the last session that
    trained; empty and 0 in checkpoints written before they were recorded. ``step_seconds`` is the
    part of ``seconds`` spent inside ``train_step`` (the rest: batches, evaluation, checkpoints; on
    CUDA, where steps run asynchronously, a step's time lands where the loop next waits for it), and
    ``eval_seconds`` the part spent in the periodic evaluations, which a wall-clock budget does not count.
    """

    steps: list[int] = field(default_factory=list)
    losses: list[dict[str, float]] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    step_seconds: float = 0.0
    eval_seconds: float = 0.0
    device: str = ""
    threads: int = 0

    def last(self) -> dict[str, float]:
        """Losses and metrics of the last interval, in one dict."""
        return {**self.losses[-1], **self.metrics[-1]} if self.steps else {}

    def last_fifth_change(self, key: str) -> float:
        """How much ``key`` (a loss or metric) moved over the last fifth of the run, relative to its
        final value: :math:`|v_T - v_t| / |v_T|`, with :math:`t` the last evaluation at or before
        :math:`0.8 T`. A budget counts as converged for ``key`` when this is below :data:`CONVERGED`."""
        rows = [{**losses, **metrics} for losses, metrics in zip(self.losses, self.metrics)]
        if not rows or key not in rows[-1]:
            known = ", ".join(sorted(rows[-1])) if rows else "none: the run has no evaluation yet"
            raise KeyError(f"the history records no {key!r} at its last evaluation; it records: {known}")
        earlier = [i for i, step in enumerate(self.steps) if step <= 0.8 * self.steps[-1]]
        if not earlier:
            raise ValueError(f"the last fifth of a run of {self.steps[-1]} steps holds every evaluation "
                             f"(steps {self.steps}): evaluate more often (eval_every) to measure it")
        final, before = rows[-1][key], rows[earlier[-1]][key]
        if final == 0:
            return 0.0 if before == 0 else math.inf
        return abs(final - before) / abs(final)


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7_919 + epoch))


class _IntervalLosses:
    """Sums of each loss term over the steps of an evaluation interval, kept on the device.

    Adding a step's losses does not wait for the device; :meth:`sync` brings the sums to the host
    in one transfer and checks them, every :data:`SYNC_EVERY` steps and before anything is kept.
    """

    def __init__(self, device: torch.device, sums: dict[str, float], count: int, step: int) -> None:
        self.device, self.count, self.synced = device, count, step
        self.sums = {k: torch.tensor(v, dtype=torch.float64, device=device) for k, v in sums.items()}
        self.host = dict(sums)

    def add(self, losses: dict[str, Tensor | float]) -> None:
        """Add one step's losses (0-d tensors or floats)."""
        for k, v in losses.items():
            total = self.sums.setdefault(k, torch.zeros((), dtype=torch.float64, device=self.device))
            total += torch.as_tensor(v, dtype=torch.float64, device=self.device).detach()
        self.count += 1

    def sync(self, step: int) -> dict[str, float]:
        """The means so far, on the host; :class:`TrainingDiverged` if a loss became NaN/inf since the last sync."""
        self.host = dict(zip(self.sums, torch.stack(list(self.sums.values())).tolist())) if self.sums else {}
        bad = {k: v for k, v in self.host.items() if not math.isfinite(v)}
        if bad:
            first = self.synced + 1
            where = f"at step {step}" if first == step else f"between steps {first} and {step}"
            raise TrainingDiverged(
                f"training diverged: a loss became NaN/inf {where}: {bad}. Lower the learning rate, check that "
                "the inputs are in [0, 1], or train from scratch with another seed (--restart --seed N / "
                "resume=False, seed=N)"
            )
        self.synced = step
        return {k: v / self.count for k, v in self.host.items()}

    def reset(self) -> None:
        """Start a new interval."""
        self.sums, self.host, self.count = {}, {}, 0

    def state(self) -> dict[str, Any]:
        """The synced sums and the step count, for a checkpoint (call :meth:`sync` first)."""
        return {"sums": self.host, "count": self.count}


def fit(
    model: Model,
    train_data: LabelledData,
    test_data: LabelledData | None = None,
    *,
    budget: str | Budget | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    device: str | torch.device | None = None,
    resume: bool = True,
    checkpoint_every: int | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    data_options: dict[str, Any] | None = None,
    mode: str | None = None,
    eval_seconds: float | None = None,
) -> History:
    """Train ``model`` on ``train_data`` for a budget, evaluating on ``test_data`` as it goes.

    Parameters
    ----------
    budget
        A :class:`Budget`, or the name of one of the model's budgets (``"smoke"``/``"full"``,
        default from ``DISLIB_BUDGET``).
    seed
        Seeds the weights' random draws and every batch: step ``t`` always sees the same batch.
    out
        Run directory for checkpoints and metrics; with ``resume`` an existing checkpoint there
        is continued, and the final weights equal those of an uninterrupted run. A resume with
        another model, configuration, dataset, ``data_options``, seed or budget is refused and
        leaves the directory as it was; ``resume=False`` trains from scratch, replacing it.
    checkpoint_every
        Steps between checkpoints (default: at each evaluation).
    stop_after
        Stop after this many steps of this call, leaving a checkpoint (for interrupting on purpose).
    data_options
        The options ``train_data`` was loaded with (``dislib.data.load(name, **data_options)``),
        kept in ``run.json`` so that the run can be evaluated and resumed on the same data
        (default: the dataset's own ``load_options``).
    mode
        How each step computes (:mod:`dislib.precision`): ``"fast"`` (bfloat16 forward passes where
        the hardware computes in bf16, channels-last) or ``"eager"`` (float32 on the CPU). Default:
        a resumed run's own mode, else ``"fast"``; kept in ``run.json``.
    eval_seconds
        Also evaluate after every ``eval_seconds`` of training (for a wall-clock budget, where the steps
        a run reaches are not known in advance). The time spent evaluating never counts against the
        budget's ``seconds``.

    Raises
    ------
    TypeError, ValueError
        Before anything is written: for a model that is not one of :mod:`dislib.models`, data that is
        not a dataset of :mod:`dislib.data` or that the model cannot read (its first batch is built once
        to check), or a seed, ``stop_after`` or ``checkpoint_every`` that is no count.
    TrainingDiverged
        When a loss becomes NaN or infinite; no checkpoint is written past the last finite one.
    RunDirectoryError
        When ``out`` is in use by another process, damaged, or holds another run.
    """
    _check_arguments(model, train_data, test_data)
    _check_counts(seed=seed, stop_after=stop_after, checkpoint_every=checkpoint_every)
    if eval_seconds is not None and (isinstance(eval_seconds, bool) or not isinstance(eval_seconds, numbers.Real)
                                     or not 0 < eval_seconds < math.inf):
        raise ValueError(f"fit's eval_seconds must be a number of seconds > 0 or None, got {eval_seconds!r}")
    plan = budget if isinstance(budget, Budget) else model.budget(settings.budget(budget))
    dev = settings.device(device)
    if mode is not None:
        precision.check_mode(mode)
    if plan.train_size:
        train_data = train_data.subset(slice(0, plan.train_size))
    if test_data is not None:
        test_data = test_data.subset(slice(0, plan.eval_size)).to(dev)
    train_data = train_data.to(dev)
    model.to(dev)
    first = torch.arange(min(plan.batch_size, len(train_data)), device=dev)
    model.make_batch(train_data, first, _step_generator(seed, 0))  # its refusals come before anything is written
    settings.seed_everything(seed)
    run_dir = Path(out) if out is not None else None
    mode = mode or _resumed_mode(run_dir, resume) or precision.DEFAULT_MODE
    options = train_data.load_options if data_options is None else data_options
    run = {"format": RUN_FORMAT, "model": model.name, "dataset": train_data.name, "data_options": options, "seed": seed,
           "budget": asdict(plan), "mode": mode, "config": asdict(model.config)}
    if run_dir is not None and run_dir.exists() and not run_dir.is_dir():
        raise RunDirectoryError(f"the run directory {run_dir} is a file: give a folder (new or a run's) as --out (out=)")
    with _locked(run_dir) if run_dir is not None else nullcontext():
        step, history, interval = _open_run(run_dir, run, model, resume) if run_dir is not None else (0, History(), {})
        steps_per_epoch = max(len(train_data) // plan.batch_size, 1)
        every = checkpoint_every or plan.eval_every
        precision.prepare(model, dev, mode)
        losses = _IntervalLosses(dev, interval.get("sums", {}), interval.get("count", 0), step)
        start, stop = time.perf_counter(), min(plan.steps, step + (stop_after or plan.steps))
        trained = lambda: history.seconds - history.eval_seconds + time.perf_counter() - start  # noqa: E731
        out_of_time = lambda: plan.seconds is not None and trained() >= plan.seconds  # noqa: E731
        due = lambda: eval_seconds is not None and trained() >= eval_seconds * (len(history.steps) + 1)  # noqa: E731
        timed_out = out_of_time()
        if step < stop and not timed_out:
            history.device, history.threads = str(dev), torch.get_num_threads()
        order, order_epoch = None, -1
        total = None if plan.seconds is not None else plan.steps  # a wall-clock budget: a count, no end known
        with tqdm(total=total, initial=step, desc=model.name, disable=not progress, leave=False) as bar:
            while step < stop and not timed_out:
                epoch, i = divmod(step, steps_per_epoch)
                if epoch != order_epoch:
                    order, order_epoch = _epoch_order(len(train_data), seed, epoch).to(dev), epoch
                indices = order[i * plan.batch_size : (i + 1) * plan.batch_size]
                model.train()
                batch = precision.prepare_batch(model.make_batch(train_data, indices, _step_generator(seed, step)), mode)
                began = time.perf_counter()
                losses.add(model.train_step(batch))
                history.step_seconds += time.perf_counter() - began
                step += 1
                bar.update(1)
                timed_out = out_of_time()
                evaluate_now = step % plan.eval_every == 0 or step == plan.steps or timed_out or due()
                save_now = run_dir is not None and (step % every == 0 or step == stop or timed_out)
                if step % SYNC_EVERY == 0 or evaluate_now or save_now or step == stop:
                    means = losses.sync(step)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in means.items()}, refresh=False)
                if evaluate_now:
                    began = time.perf_counter()
                    history.steps.append(step)
                    history.losses.append(means)
                    diagnosis = model.diagnose(batch)
                    history.metrics.append({**diagnosis, **_evaluate(model, test_data)})
                    losses.reset()
                    history.eval_seconds += time.perf_counter() - began
                if save_now:
                    history.seconds += time.perf_counter() - start
                    start = time.perf_counter()
                    _save(run_dir / CHECKPOINT, model, step, history, losses.state(), train_data.name)
        if run_dir is None:
            history.seconds += time.perf_counter() - start
        if run_dir is not None and (step == plan.steps or timed_out):
            write_json(run_dir / METRICS, {"model": model.name, "dataset": train_data.name, "steps": step,
                                            "seed": seed, "seconds": round(history.seconds, 1),
                                            "step_seconds": round(history.step_seconds, 1),
                                            "eval_seconds": round(history.eval_seconds, 1),
                                            "device": history.device, "threads": history.threads,
                                            "forward_dtype": forward_dtype(model), **history.last()})
    return history


def seed_folder(runs: str | Path, name: str, seed: int) -> Path:
    """``RUNS/NAME-seedN``: where a chapter, a sweep or a comparison keeps the run of ``name`` and ``seed``."""
    return Path(runs) / f"{name}-seed{seed}"


def forward_dtype(model: Model) -> str:
    """The precision ``model``'s forward passes compute in: ``"bfloat16"`` under its autocast (on the fast
    path, only where the hardware computes in bfloat16: :func:`dislib.precision.prepare`), else
    ``"float32"``. The fast path's numbers depend on it, so a run's ``metrics.json`` records it."""
    return str(model.autocast_dtype or torch.float32).removeprefix("torch.")


def _check_arguments(model: Model, train_data: LabelledData, test_data: LabelledData | None) -> None:
    """Raise a clear error for a model or data :func:`fit` cannot train with, before anything is written."""
    if not isinstance(model, Model):
        raise TypeError(f"fit trains a model of dislib.models, got {type(model).__name__}: build one for the data, "
                        "e.g. dislib.models.VAE.for_dataset(train_data)")
    for name, given, split in (("train_data", train_data, "train"), ("test_data", test_data, "test")):
        if given is None and name == "test_data":
            continue
        if not isinstance(given, LabelledData):
            optional = " or None" if name == "test_data" else ""
            raise TypeError(f"fit's {name} must be a dataset of dislib.data{optional}, got {type(given).__name__}: "
                            f"load it with dislib.data.load(name, {split!r})")
        model.check_data(given)


def _check_counts(**counts: int | None) -> None:
    """Raise a ValueError for a count :func:`fit` cannot use: ``seed`` a whole number >= 0, each other
    (``stop_after``, ``checkpoint_every``) a whole number >= 1 or None."""
    for name, value in counts.items():
        least, optional = (0, "") if name == "seed" else (1, " or None")
        if optional and value is None:
            continue
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < least:
            raise ValueError(f"fit's {name} must be a whole number >= {least}{optional}, got {value!r}")


def _resumed_mode(run_dir: Path | None, resume: bool) -> str | None:
    """The mode of the run that ``run_dir`` holds when it will be resumed; ``None`` for a new run."""
    if run_dir is None or not resume or not (run_dir / CHECKPOINT).exists() or not (run_dir / RUN).exists():
        return None
    mode = read_run(run_dir).get("mode", _BEFORE_MODES)
    if mode not in precision.MODES:
        raise RunDirectoryError(f"{run_dir / RUN} is damaged (it names the mode {mode!r}, not one of "
                                f"{', '.join(precision.MODES)}): {_RESTART}, or choose another --out")
    return mode


def _evaluate(model: Model, data: LabelledData | None) -> dict[str, float]:
    """The periodic evaluation, in the precision the steps compute in (the model's autocast)."""
    if data is None:
        return {}
    model.eval()
    with torch.no_grad(), model.autocast():
        return evaluate.held_out(model, data)


def _open_run(run_dir: Path, run: dict[str, Any], model: Model, resume: bool) -> tuple[int, History, dict[str, Any]]:
    """Resume the checkpoint in ``run_dir`` (after checking it holds this run) or clear it; then write run.json.

    Returns the step, the history and the running loss sums of the unfinished interval.
    """
    run = json.loads(json.dumps(run, default=str))  # as run.json will hold it (lists, not tuples)
    checkpoint = run_dir / CHECKPOINT
    if resume and checkpoint.exists():
        if not (run_dir / RUN).exists():
            raise RunDirectoryError(f"{checkpoint} has no {RUN} beside it, so what it was trained on is unknown: "
                                    f"{_RESTART}, or choose another --out")
        _check_same_run(run_dir, read_run(run_dir), run)
        state = _read_checkpoint(checkpoint, model.device)
        model.restore(state)
        torch.set_rng_state(state["rng"].cpu())
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        step, history, interval = state["step"], History(**state["history"]), state.get("interval", {})
    else:
        for name in (CHECKPOINT, METRICS):
            (run_dir / name).unlink(missing_ok=True)
        step, history, interval = 0, History(), {}
    write_json(run_dir / RUN, run)
    return step, history, interval


def _check_same_run(run_dir: Path, saved: dict[str, Any], run: dict[str, Any]) -> None:
    """Refuse to resume ``run_dir`` when its run.json differs from ``run`` in what was trained on what."""
    differences = []
    for key in _SAME_ON_RESUME:
        old, new = saved.get(key, {"data_options": {}, "mode": _BEFORE_MODES}.get(key)), run[key]
        if key == "data_options" and saved.get("dataset") == run["dataset"] and run["dataset"] in datasets.names():
            if datasets.resolved_options(run["dataset"], old) == datasets.resolved_options(run["dataset"], new):
                continue  # the defaults spelled out, or left out: the same data
        if key == "budget" and isinstance(old, dict):
            changed = [k for k in {**old, **new} if old.get(k) != new.get(k)]
            old, new = {k: old.get(k) for k in changed}, {k: new.get(k) for k in changed}
        if old != new:
            differences.append(f"{key} {old!r} (asked for: {new!r})")
    if differences:
        raise RunDirectoryError(
            f"{run_dir} holds a run with {'; '.join(differences)}: resume it with the same settings, "
            f"{_RESTART} to replace it, or choose another --out"
        )


@contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir/run.lock`` (our process id) while training there; removed at the end, even on error."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / LOCK
    _take_lock(lock)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _take_lock(lock: Path, take_over: bool = True) -> None:
    """Create ``lock`` atomically; take over a stale one (its process is gone) once, with a warning."""
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        pid = _lock_holder(lock)
        if take_over and not _running(pid):
            holder = f"process {pid} no longer runs" if pid else "it names no process"
            warnings.warn(f"taking over the stale lock {lock}: {holder}", stacklevel=5)
            lock.unlink(missing_ok=True)
            return _take_lock(lock, take_over=False)
        raise RunDirectoryError(
            f"{lock.parent} is in use by process {pid} (lock file {lock}): wait for it to finish or train into "
            "another --out; if no training runs there, delete the lock file"
        ) from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
    except OSError:
        lock.unlink(missing_ok=True)  # no empty lock left behind (a full disk)
        raise


def _lock_holder(lock: Path) -> int | None:
    """The process id written in ``lock``; ``None`` when it holds none or vanished meanwhile."""
    try:
        text = lock.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def _running(pid: int | None) -> bool:
    """Whether another process with this id runs (our own id counts as not: a lock we left behind)."""
    if not pid or pid == os.getpid():
        return False
    if os.name == "nt":  # signal 0 would interrupt the process there: assume it runs
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        pass
    return True


def write_json(path: Path, value: dict[str, Any]) -> None:
    """Write ``value`` as JSON to ``path`` atomically (a temporary file, then a rename)."""
    write_atomically(path, lambda tmp: tmp.write_text(json.dumps(value, indent=2, default=str)))


def _save(path: Path, model: Model, step: int, history: History, interval: dict[str, Any], dataset: str) -> None:
    state = {**model.checkpoint(), "step": step, "history": asdict(history), "rng": torch.get_rng_state(),
             "interval": interval, "dataset": dataset}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    write_atomically(path, lambda tmp: torch.save(state, tmp))


def _read_checkpoint(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    """The checkpoint at ``path``; a :class:`RunDirectoryError` naming the file if it is damaged."""
    if path.is_dir():
        raise RunDirectoryError(f"{path} is a folder, where dislib keeps the checkpoint file: {_FOLDER}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except PermissionError:
        raise
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError):  # what torch raises on broken files
        why = "empty" if path.stat().st_size == 0 else "truncated, or not a torch file"
    else:
        if isinstance(state, dict) and _CHECKPOINT_KEYS <= set(state):
            return state
        why = "not a dislib checkpoint"
    raise RunDirectoryError(f"{path} is damaged ({why}): delete it, or {_RESTART}")


def read_json(path: Path, fix: str, keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """The JSON object in ``path``, which holds at least ``keys``; a :class:`RunDirectoryError` naming the
    file, why it is damaged (empty, not JSON, not such an object) and ``fix`` otherwise, or that it is a
    folder and how to clear it."""
    if path.is_dir():
        raise RunDirectoryError(f"{path} is a folder, where dislib keeps a JSON file: {_FOLDER}")
    try:
        value = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        why = "empty" if path.stat().st_size == 0 else f"not JSON: {err}"
    else:
        if isinstance(value, dict) and set(keys) <= set(value):
            return value
        why = "not the JSON dislib writes"
    raise RunDirectoryError(f"{path} is damaged ({why}): {fix}")


def read_measurement(path: Path, version: int, keys: tuple[str, ...]) -> dict[str, Any]:
    """A run's stored measurement at ``path``, or ``{}`` where there is none (the caller then measures
    the run); a :class:`RunDirectoryError` naming the file when it is damaged, or when it was measured
    at ``version`` (its ``protocol_version``) and lacks one of ``keys``. A measurement of another version
    is returned as it is: the caller measures it again."""
    if not path.exists():
        return {}
    fix = "delete it to measure the run again (its training is kept)"
    result = read_json(path, fix)
    missing = [key for key in keys if key not in result]
    if result.get("protocol_version") == version and missing:
        raise RunDirectoryError(f"{path} is damaged (it lacks {', '.join(missing)}): {fix}")
    return result


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """What ``run_dir/run.json`` says was trained: model, dataset, data_options, seed, budget, config."""
    path = Path(run_dir) / RUN
    if not path.exists():
        raise FileNotFoundError(
            f"no {RUN} in {run_dir} (it names the dataset): train there with `python -m dislib train ... "
            f"--out {run_dir}` (add --restart if it holds a checkpoint)"
        )
    run = read_json(path, f"{_RESTART}, or delete the run directory", keys=("model", "dataset"))
    version = run.get("format", 1)  # run.json files written before the field existed are format 1
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RunDirectoryError(f"{path} is damaged (its format is {version!r}, not a version dislib writes): "
                                f"{_RESTART}, or delete the run directory")
    if not isinstance(run.get("data_options", {}), dict):
        raise RunDirectoryError(f"{path} is damaged (its data_options are {run['data_options']!r}, not names and "
                                f"values): {_RESTART}, or delete the run directory")
    if version > RUN_FORMAT:
        raise RunDirectoryError(f"{path} is in format {version!r}, which this dislib (format {RUN_FORMAT}) cannot "
                                "read: upgrade dislib (pip install -U dislib), or train the run anew")
    return run


def load_model(run_dir: str | Path, device: str | torch.device | None = None) -> Model:
    """The trained model saved in ``run_dir`` (by :func:`fit` or ``python -m dislib train``), in eval mode."""
    if not isinstance(run_dir, (str, os.PathLike)):
        raise TypeError(f"load_model needs the run directory (a path), got {run_dir!r}: "
                        "pass the folder `python -m dislib train ... --out` wrote, e.g. load_model('runs/vae-mnist')")
    path = Path(run_dir) / CHECKPOINT
    if Path(run_dir).is_file():
        raise RunDirectoryError(f"{run_dir} is a file, not a run directory: pass the folder that "
                                "`python -m dislib train ... --out` wrote")
    if not path.exists():
        raise FileNotFoundError(f"no {CHECKPOINT} in {run_dir}: train first with `python -m dislib train ... --out {run_dir}`")
    state = _read_checkpoint(path, "cpu")
    run = read_run(run_dir) if (Path(run_dir) / RUN).exists() else {}
    for key in ("model", "dataset"):  # checkpoints written before they kept the dataset: the model only
        if key in state and key in run and state[key] != run[key]:
            raise RunDirectoryError(f"{path} holds a {key} {state[key]!r} but {RUN} beside it says {run[key]!r}: "
                                    f"the two come from different runs; {_RESTART}, or choose another run directory")
    broken = [k for k, v in state["weights"].items() if torch.is_tensor(v) and v.is_floating_point() and not v.isfinite().all()]
    if broken:
        raise RunDirectoryError(f"{path} holds weights that are NaN or infinite ({', '.join(broken[:3])}"
                                f"{', ...' if len(broken) > 3 else ''}): the run diverged or the file is damaged; {_RESTART}")
    model = Model.from_checkpoint(state).to(settings.device(device)).eval()
    if not (Path(run_dir) / METRICS).exists():
        warnings.warn(f"{run_dir} holds an unfinished run: {_stopped_at(state, run.get('budget'))}, so its model is "
                      f"not fully trained; train again with the same --out {run_dir} (out=) to finish it, it resumes "
                      "there", stacklevel=2)
    return model


def _stopped_at(state: dict[str, Any], budget: Any) -> str:
    """Where an unfinished run stopped: ``"it stopped at step 12 of 40"`` (of a wall-clock budget: after
    how many of its seconds), from its checkpoint and the budget its run.json names."""
    stopped = f"it stopped at step {state['step']}"
    if not isinstance(budget, dict):
        return stopped
    if budget.get("seconds") is not None:
        return f"{stopped}, after {state['history'].get('seconds', 0):.0f} of its {budget['seconds']:g} seconds"
    return f"{stopped} of {budget.get('steps')}"


def train_or_load(
    model: Model,
    train_data: LabelledData,
    test_data: LabelledData | None = None,
    *,
    name: str,
    budget: str | None = None,
    extra_steps: int = 0,
    seed: int = 0,
    runs: str | Path | None = "runs",
    device: str | torch.device | None = None,
    mode: str | None = None,
    eval_seconds: float | None = None,
) -> History:
    """Train ``model`` for a chapter, or load its finished run, and print one line saying which.

    Parameters
    ----------
    name
        The run's name in the chapter; its directory is ``runs/NAME-seedSEED``.
    budget
        The model's budget by name (``"full"`` or ``"smoke"``; default ``DISLIB_BUDGET``). A run
        directory is kept only for the full budget; smoke runs keep nothing.
    extra_steps
        Steps added to the named budget (a pre-training stage that runs before the paper's steps).
    runs
        Folder of the chapter's run directories; ``None`` keeps nothing.
    mode
        How each step computes, as in :func:`fit` (default: a resumed run's own mode, else ``"fast"``).
    """
    if extra_steps < 0:
        raise ValueError(f"extra_steps must be >= 0, got {extra_steps}")
    budget_name = settings.budget(budget)
    named = model.budget(budget_name)
    plan = replace(named, steps=named.steps + extra_steps)
    out = seed_folder(runs, name, seed) if runs is not None and budget_name == "full" else None
    finished = out is not None and (out / METRICS).exists() and (out / CHECKPOINT).exists()
    history = fit(model, train_data, test_data, budget=plan, seed=seed, out=out, device=device, progress=False, mode=mode)
    trained = f"{plan.steps} steps of {plan.batch_size} images in {history.seconds:.0f} s"
    device_used, threads = history.device or "an unrecorded device", history.threads or "?"
    if finished:
        print(f"{name}: loaded the finished run from {out} (trained {trained} on {device_used}, {threads} CPU threads)")
    else:
        print(f"{name}: trained {trained} on {device_used} ({threads} CPU threads)")
    return history
