"""One training loop for every model: seeding, batches, progress, evaluation, checkpoints.

A run directory holds ``checkpoint.pt`` (weights, optimizers, random state, step, history),
``run.json`` (what was trained on what) and, at the end, ``metrics.json``.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from dislib import settings
from dislib.data.base import ImageDataset
from dislib.models.base import Budget, Model

CHECKPOINT = "checkpoint.pt"


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite."""


@dataclass
class History:
    """Mean losses per evaluation interval and the evaluation metrics at its end."""

    steps: list[int] = field(default_factory=list)
    losses: list[dict[str, float]] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    def last(self) -> dict[str, float]:
        """Losses and metrics of the last interval, in one dict."""
        return {**self.losses[-1], **self.metrics[-1]} if self.steps else {}


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7_919 + epoch))


def _check_finite(losses: dict[str, float], step: int) -> None:
    bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
    if bad:
        raise TrainingDiverged(
            f"training diverged at step {step}: {bad}. Lower the learning rate, check the inputs are "
            "in [0, 1], or resume from the last checkpoint with another seed"
        )


def fit(
    model: Model,
    train_data: ImageDataset,
    test_data: ImageDataset | None = None,
    *,
    budget: str | Budget | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    device: str | torch.device | None = None,
    resume: bool = True,
    checkpoint_every: int | None = None,
    progress: bool = True,
    stop_after: int | None = None,
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
        is continued, and the final weights equal those of an uninterrupted run.
    checkpoint_every
        Steps between checkpoints (default: at each evaluation).
    stop_after
        Stop after this many steps of this call, leaving a checkpoint (for interrupting on purpose).
    """
    plan = budget if isinstance(budget, Budget) else model.budget(settings.budget(budget))
    dev = settings.device(device)
    if plan.train_size:
        train_data = train_data.subset(slice(0, plan.train_size))
    if test_data is not None:
        test_data = test_data.subset(slice(0, plan.eval_size)).to(dev)
    train_data = train_data.to(dev)
    model.to(dev)
    settings.seed_everything(seed)
    history, step = History(), 0
    run_dir = Path(out) if out is not None else None
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "run.json").write_text(json.dumps(
            {"model": model.name, "dataset": train_data.name, "seed": seed, "budget": asdict(plan),
             "config": asdict(model.config)}, indent=2))
        if resume and (run_dir / CHECKPOINT).exists():
            step, history = _load(run_dir / CHECKPOINT, model)
    steps_per_epoch = max(len(train_data) // plan.batch_size, 1)
    every = checkpoint_every or plan.eval_every
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else nullcontext()
    sums: dict[str, float] = {}
    count, start, stop = 0, time.perf_counter(), min(plan.steps, step + (stop_after or plan.steps))
    bar = tqdm(total=plan.steps, initial=step, desc=model.name, disable=not progress, leave=False)
    order, order_epoch = None, -1
    while step < stop:
        epoch, i = divmod(step, steps_per_epoch)
        if epoch != order_epoch:
            order, order_epoch = _epoch_order(len(train_data), seed, epoch).to(dev), epoch
        indices = order[i * plan.batch_size : (i + 1) * plan.batch_size]
        model.train()
        batch = model.make_batch(train_data, indices, _step_generator(seed, step))
        with autocast:
            losses = model.train_step(batch)
        step += 1
        _check_finite(losses, step)
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v
        count += 1
        bar.update(1)
        bar.set_postfix({k: f"{v / count:.3g}" for k, v in sums.items()}, refresh=False)
        if step % plan.eval_every == 0 or step == plan.steps:
            history.steps.append(step)
            history.losses.append({k: v / count for k, v in sums.items()})
            history.metrics.append(_evaluate(model, test_data))
            sums, count = {}, 0
        if run_dir is not None and (step % every == 0 or step == stop):
            history.seconds += time.perf_counter() - start
            start = time.perf_counter()
            _save(run_dir / CHECKPOINT, model, step, history)
    bar.close()
    if run_dir is None:
        history.seconds += time.perf_counter() - start
    if run_dir is not None and step == plan.steps:
        metrics = {"model": model.name, "dataset": train_data.name, "steps": step, "seed": seed,
                   "seconds": round(history.seconds, 1), "device": str(dev), **history.last()}
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return history


def _evaluate(model: Model, data: ImageDataset | None) -> dict[str, float]:
    if data is None:
        return {}
    model.eval()
    with torch.no_grad():
        return model.evaluate(data)


def _save(path: Path, model: Model, step: int, history: History) -> None:
    state = {**model.checkpoint(), "step": step, "history": asdict(history), "rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _load(path: Path, model: Model) -> tuple[int, History]:
    state = torch.load(path, map_location=model.device, weights_only=False)
    model.restore(state)
    torch.set_rng_state(state["rng"].cpu())
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
    return state["step"], History(**state["history"])


def load_model(run_dir: str | Path, device: str | torch.device | None = None) -> Model:
    """The trained model saved in ``run_dir`` (by :func:`fit` or ``python -m dislib train``), in eval mode."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"no {CHECKPOINT} in {run_dir}: train first with `python -m dislib train ... --out {run_dir}`")
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    return Model.from_checkpoint(state).to(settings.device(device)).eval()
