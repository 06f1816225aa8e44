"""How a training step computes: the float32 path and the fast path.

``eager`` runs every forward pass in float32 on the CPU (bfloat16 autocast on CUDA, as PyTorch
advises there). ``fast`` adds what the hardware allows: bfloat16 autocast of the forward passes on
a CPU that computes in bfloat16 (oneDNN on AVX-512 BF16 or AMX), and channels-last images and
convolution weights everywhere. In both, every loss of :mod:`dislib.losses` casts its inputs to
float32, so the losses, their reductions, the backward pass into them and the optimizer states
stay float32; only the networks' arithmetic is narrower.

The training loop takes the fast path unless told otherwise (``fit(mode="eager")``,
``python -m dislib train --mode eager``); ``tests/test_precision.py`` checks for every model that
a short run's held-out metric on the fast path is within 2% of the float32 path's.
"""

from __future__ import annotations

import torch

from dislib.models.base import Model

MODES = ("eager", "fast")
DEFAULT_MODE = "fast"


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`MODES`, else a ValueError naming them."""
    if mode not in MODES:
        raise ValueError(f"mode is one of {', '.join(MODES)} (--mode / mode=), got {mode!r}")
    return mode


def bf16_capable(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively: any CUDA device here, a CPU with oneDNN's bf16
    support (AVX-512 BF16 or AMX)."""
    if device.type == "cuda":
        return True
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def prepare(model: Model, device: torch.device, mode: str) -> Model:
    """``model`` on ``device`` in train mode, set up for ``mode`` (:data:`MODES`): its autocast dtype
    and, on the fast path, channels-last weights."""
    check_mode(mode)
    model = model.to(device).train()
    fast = mode == "fast"
    model.autocast_dtype = torch.bfloat16 if device.type == "cuda" or (fast and bf16_capable(device)) else None
    model.to(memory_format=torch.channels_last if fast else torch.contiguous_format)
    return model


def prepare_batch(batch: dict[str, torch.Tensor], mode: str) -> dict[str, torch.Tensor]:
    """``batch`` with its images (4-d tensors) channels-last on the fast path; as it is otherwise."""
    if mode != "fast":
        return batch
    return {k: v.contiguous(memory_format=torch.channels_last) if v.ndim == 4 else v for k, v in batch.items()}
