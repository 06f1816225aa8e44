"""Datasets of the book behind one entry point, :func:`load`.

>>> train = load("mnist", split="train")
>>> image, label = train[0]
"""

from __future__ import annotations

import os
from typing import Any, Callable

from dislib import settings
from dislib.data.base import ImageDataset
from dislib.data.mnist import DatasetNotFound, load_mnist
from dislib.data.moons import PointDataset, load_three_moons
from dislib.data.sprites import load_sprites
from dislib.data.lpc import load_lpc_sprites
from dislib.data.norb import load_norb
from dislib.data.yaleb import load_yaleb

SPLITS = ("train", "test")

_LOADERS: dict[str, Callable[..., Any]] = {
    "mnist": lambda split, root, **kw: load_mnist("mnist", split, root, **kw),
    "fashion-mnist": lambda split, root, **kw: load_mnist("fashion-mnist", split, root, **kw),
    "lpc-sprites": load_lpc_sprites,
    "norb": load_norb,
    "yaleb": load_yaleb,
    "sprites": load_sprites,
    "three-moons": load_three_moons,
}


def names() -> list[str]:
    """Names :func:`load` accepts."""
    return sorted(_LOADERS)


def load(name: str, split: str = "train", root: str | os.PathLike | None = None, **options: Any) -> Any:
    """Load dataset ``name``'s ``split`` (``"train"`` or ``"test"``).

    Parameters
    ----------
    root
        Data root; default ``DISLIB_DATA``, else ``data/``. Files found there are used; missing
        files are downloaded where allowed (``DISLIB_DOWNLOAD``) and possible.
    options
        Dataset-specific options (for example ``size=64`` for sprites).
    """
    if name not in _LOADERS:
        raise KeyError(f"unknown dataset {name!r}; available: {', '.join(names())}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
    return _LOADERS[name](split, settings.data_root(root), **options)


__all__ = ["DatasetNotFound", "ImageDataset", "PointDataset", "load", "names"]
