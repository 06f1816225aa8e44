"""Datasets of the book behind one entry point, :func:`load`.

>>> train = load("mnist", split="train")
>>> image, label = train[0]
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from typing import Any, Callable

from dislib import settings
from dislib.data.base import ImageDataset
from dislib.data.mnist import DatasetDamaged, DatasetNotFound, load_mnist
from dislib.data.moons import PointDataset, load_three_moons
from dislib.data.sprites import load_sprites
from dislib.data.lpc import load_lpc_sprites
from dislib.data.styled import load_styled_mnist
from dislib.data.norb import load_norb
from dislib.data.yaleb import load_yaleb

SPLITS = ("train", "test")

_LOADERS: dict[str, Callable[..., Any]] = {
    "mnist": functools.partial(load_mnist, "mnist"),
    "fashion-mnist": functools.partial(load_mnist, "fashion-mnist"),
    "lpc-sprites": load_lpc_sprites,
    "norb": load_norb,
    "yaleb": load_yaleb,
    "sprites": load_sprites,
    "styled-mnist": load_styled_mnist,
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
        Dataset-specific options (for example ``size=64`` for sprites): the keyword arguments of
        the dataset's loader (:func:`option_names`); any other raises a ValueError listing them.
    """
    if name not in _LOADERS:
        raise KeyError(f"unknown dataset {name!r}; available: {', '.join(names())}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
    _check_options(name, options)
    dataset = _LOADERS[name](split, settings.data_root(root), **options)
    dataset.load_options = dict(options)
    return dataset


def _option_parameters(name: str) -> list[inspect.Parameter]:
    """The keyword parameters of dataset ``name``'s loader after ``split`` and ``root``: its options."""
    parameters = list(inspect.signature(_LOADERS[name]).parameters.values())[2:]  # after split, root
    return [p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def option_names(name: str) -> list[str]:
    """Names of the options dataset ``name`` takes (the keyword arguments of its loader)."""
    return [p.name for p in _option_parameters(name)]


def resolved_options(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """The options dataset ``name`` is loaded with when ``given`` are passed: every option of its
    loader at its default value, then ``given`` (so ``{}`` and the defaults spelled out are equal)."""
    defaults = {p.name: p.default for p in _option_parameters(name) if p.default is not inspect.Parameter.empty}
    return {**defaults, **given}


def _check_options(name: str, given: dict[str, Any]) -> None:
    """Raise a ValueError naming the options ``name`` does not take and listing those it does."""
    unknown = sorted(set(given) - set(option_names(name)))
    if unknown:
        takes = ", ".join(option_names(name)) or "none"
        raise ValueError(
            f"{name} takes no option {', '.join(unknown)}; the options it takes: {takes}. "
            "Remove the others (train's --option, load's keyword arguments, or the data_options of a run's run.json)"
        )
    for parameter in _option_parameters(name):
        kind = parameter.annotation if isinstance(parameter.annotation, str) else getattr(parameter.annotation, "__name__", "")
        if parameter.name in given and not _of_type(given[parameter.name], kind):
            example = {"bool | None": "false", "int | None": "1000"}.get(kind, json.dumps(parameter.default))
            raise ValueError(f"option {parameter.name} of {name} takes {_OPTION_TYPES_IN_WORDS.get(kind, kind)}, "
                             f"like {parameter.name}={example}, got {given[parameter.name]!r}")


_OPTION_TYPES = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,), "None": (type(None),)}
_OPTION_TYPES_IN_WORDS = {"int": "a whole number", "float": "a number", "str": "a name", "bool | None": "true or false",
                          "int | None": "a whole number or null"}


def _of_type(value: Any, annotation: str) -> bool:
    """Whether ``value`` fits a loader's annotation of simple types (``"int"``, ``"bool | None"``);
    any other annotation (paths, tuples) is not checked here."""
    names = [part.strip() for part in annotation.split("|")]
    if not all(part in _OPTION_TYPES for part in names):
        return True
    if isinstance(value, bool) and "bool" not in names:
        return False
    return any(isinstance(value, _OPTION_TYPES[part]) for part in names)


__all__ = ["DatasetDamaged", "DatasetNotFound", "ImageDataset", "PointDataset", "load", "names", "option_names",
           "resolved_options"]
