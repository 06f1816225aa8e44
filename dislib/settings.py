"""Settings read from arguments first, then environment variables, then defaults.

=================  ===============  ==============================================
setting            variable         default
=================  ===============  ==============================================
data root          ``DISLIB_DATA``  ``data/`` of the checkout (else ``./data``)
budget             ``DISLIB_BUDGET`` ``full``
downloads allowed  ``DISLIB_DOWNLOAD`` ``1`` (set ``0`` to never touch the network)
device             ``DISLIB_DEVICE`` ``auto``: CUDA when present, else CPU
cache              ``DISLIB_CACHE``  composed datasets (lpc-sprites) cached under the data
                                    root when it is writable, else not cached
=================  ===============  ==============================================
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

BUDGETS = ("smoke", "full")
_CHECKOUT = Path(__file__).resolve().parents[1]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Return the folder datasets are read from and downloaded to."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("DISLIB_DATA"):
        return Path(os.environ["DISLIB_DATA"]).expanduser()
    if (_CHECKOUT / "pyproject.toml").exists():
        return _CHECKOUT / "data"
    return Path("data")


def budget(name: str | None = None) -> str:
    """Return the training budget name, ``"smoke"`` or ``"full"``."""
    name = name or os.environ.get("DISLIB_BUDGET") or "full"
    if name not in BUDGETS:
        raise ValueError(f"unknown budget {name!r}: use one of {BUDGETS} (argument or DISLIB_BUDGET)")
    return name


def downloads_allowed() -> bool:
    """Whether loaders may try to download missing files (``DISLIB_DOWNLOAD=0`` forbids it)."""
    return os.environ.get("DISLIB_DOWNLOAD", "1").lower() not in ("0", "false", "no")


def device(name: str | torch.device | None = None) -> torch.device:
    """Return the torch device: ``auto`` picks CUDA when present, else the CPU.

    Raises
    ------
    ValueError
        For a device name torch does not know, or a CUDA device this machine does not have.
    """
    if name:
        source, fix = "the device argument", "pass device='auto' (--device auto)"
    else:
        source, fix = "DISLIB_DEVICE", "set DISLIB_DEVICE=auto"
    name = name or os.environ.get("DISLIB_DEVICE") or "auto"
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"{source} names an unknown device {str(name)!r}: {fix}, or cpu, cuda, cuda:N") from err
    count = torch.cuda.device_count() if dev.type == "cuda" else 0
    if dev.type == "cuda" and (dev.index or 0) >= count:
        found = f"only {count} CUDA device(s)" if count else "no CUDA GPU"
        raise ValueError(f"{source} asks for {str(name)!r} but torch sees {found} here: {fix} or cpu")
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so a run repeats on the same machine."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
