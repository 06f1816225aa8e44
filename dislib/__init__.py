"""dislib: disentangling a label-relevant code from everything else, three papers reproduced.

Its modules load on first use (``dislib.data``, ``dislib.fit`` ...): ``import dislib`` alone does not
import torch, so that ``python -m dislib`` can answer Ctrl-C while torch still imports.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["data", "fit", "load_model", "losses", "models", "settings", "train_or_load", "__version__"]
_FROM_TRAIN = ("fit", "load_model", "train_or_load")


def __getattr__(name: str) -> Any:
    """``dislib.fit`` and the other functions of :mod:`dislib.train` named in ``__all__``, or the
    submodule ``dislib.NAME``, imported on first use."""
    if name in _FROM_TRAIN:
        return getattr(importlib.import_module("dislib.train"), name)
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    """The names of the module, those loaded on first use included."""
    return sorted(set(globals()) | set(__all__))
