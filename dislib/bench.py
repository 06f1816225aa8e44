"""What each model costs: images per second through ``train_step``, and peak memory.

:func:`bench_model` times a model's training step on random images; :func:`peak_memory` measures
the most memory the steps held:

* on CUDA, the peak of the memory PyTorch allocated on the device (``torch.cuda.max_memory_allocated``,
  reset before each model);
* on the CPU, the peak resident memory of the whole process (``VmHWM`` of ``/proc/self/status``,
  reset before each model by writing ``5`` to ``/proc/self/clear_refs``; Linux only): the model,
  its optimizer states and activations, but also the data, the interpreter and the libraries,
  which every model pays alike. ``None`` where the system cannot say.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from dislib import settings
from dislib.precision import MODES, bf16_capable, prepare, prepare_batch
from dislib.data.base import ImageDataset
from dislib.models.base import MODELS, Model

_STATUS, _CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


@contextmanager
def peak_memory(device: torch.device) -> Iterator[dict[str, float | str | None]]:
    """Measure the peak memory of the code inside the block; the yielded dict gets
    ``peak_memory_mb`` (MiB, or ``None``) and ``memory`` (what was measured) when the block ends."""
    result: dict[str, float | str | None] = {}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield result
        torch.cuda.synchronize(device)
        result |= {"peak_memory_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1),
                   "memory": "CUDA memory allocated by PyTorch"}
        return
    reset = _reset_resident_peak()
    yield result
    peak = _resident_peak_kib() if reset else None
    result |= {"peak_memory_mb": None if peak is None else round(peak / 1024, 1),
               "memory": "resident memory of the whole process" if peak is not None else "not measurable here"}


def _reset_resident_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return _resident_peak_kib() is not None


def _resident_peak_kib() -> int | None:
    try:
        found = re.search(r"VmHWM:\s+(\d+)\s+kB", _STATUS.read_text())
    except OSError:
        return None
    return int(found.group(1)) if found else None


def bench_model(
    model: Model, data: ImageDataset, device: torch.device, steps: int, warmup: int, batch_size: int, seed: int = 0,
    mode: str = "eager",
) -> dict[str, float | int | str | None]:
    """Train ``model`` for ``warmup + steps`` steps on batches of ``data`` (on ``device``, as ``mode``
    says: :data:`dislib.precision.MODES`) and return ``images_per_second`` over the timed steps, ``peak_memory_mb`` and
    ``memory`` (see :func:`peak_memory`) over all of them, the ``batch_size`` and the ``dtype``.

    A triplet model counts its anchor images, a reference-based model both halves of its batch.
    """
    if steps < 1 or warmup < 0 or batch_size < 2:
        raise ValueError(f"bench needs steps >= 1, warmup >= 0 and batch_size >= 2, got {steps}, {warmup}, {batch_size}")
    model = prepare(model, device, mode)
    generator = torch.Generator().manual_seed(seed)
    times = []
    with peak_memory(device) as memory:
        for step in range(warmup + steps):
            indices = torch.randperm(len(data), generator=generator)[:batch_size].to(device)
            batch = model.make_batch(data, indices, generator)
            batch = prepare_batch(batch, mode)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            model.train_step(batch)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if step >= warmup:
                times.append(time.perf_counter() - start)
    dtype = "bfloat16 autocast" if model.autocast_dtype is not None else "float32"
    return {"images_per_second": round(batch_size * len(times) / sum(times), 1), "batch_size": batch_size,
            "dtype": dtype + (", channels-last" if mode == "fast" else ""), **memory}


def bench_all(
    device: torch.device, steps: int = 10, warmup: int = 2, batch_size: int = 64, modes: tuple[str, ...] = ("eager",)
) -> dict:
    """:func:`bench_model` for every model of :data:`dislib.models.MODELS` in each of ``modes``, with the
    device's name, the CPU threads and the dtype.

    Each model's row holds the first mode's numbers (``images_per_second``, ...); with more than one
    mode, ``modes`` holds each mode's row and ``speedup`` the last mode's images per second over the
    first's (``fast`` over ``eager`` for ``--mode eager --mode fast``), both measured in the same run.

    Each model is built with the preset of its book chapter's data and fed random images of that
    shape: its ``mnist`` preset on 28x28 grey images, else its ``styled-mnist`` preset on 32x32 RGB
    images of two sets (Ruiz et al.'s models), else its default configuration on 28x28 images.
    Each row names the preset used (``"default"``: none).
    """
    settings.seed_everything(0)
    n = 20 * batch_size
    synthetic = {
        "mnist": ImageDataset(torch.rand(n, 1, 28, 28), torch.arange(n) % 10, 10, "mnist").to(device),
        "styled-mnist": ImageDataset(torch.rand(n, 3, 32, 32), torch.arange(n) % 2, 2, "styled-mnist").to(device),
    }
    if not modes or any(m not in MODES for m in modes):
        raise ValueError(f"modes are one or more of {MODES}, got {modes}")
    results = {}
    for name, model_cls in sorted(MODELS.items()):
        preset = next((p for p in synthetic if p in model_cls.PRESETS), None)
        images = synthetic[preset or "mnist"]
        rows = {}
        for mode in modes:
            settings.seed_everything(0)
            model = model_cls.for_dataset(images, preset)
            rows[mode] = bench_model(model, images, device, steps, warmup, batch_size, mode=mode)
        results[name] = {**rows[modes[0]], "preset": preset or "default"}
        if len(modes) > 1:
            speedup = rows[modes[-1]]["images_per_second"] / rows[modes[0]]["images_per_second"]
            results[name] |= {"modes": rows, "speedup": round(speedup, 2)}
    name = f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)
    return {"device": name, "threads": torch.get_num_threads(), "dtype": results[next(iter(results))]["dtype"],
            "bf16_capable": bf16_capable(device), "models": results}
