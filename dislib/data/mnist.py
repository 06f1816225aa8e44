"""MNIST and Fashion-MNIST through torchvision, read from the data root."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision import datasets

from dislib import settings
from dislib.data.base import ImageDataset

_SOURCES = {
    "mnist": (datasets.MNIST, "MNIST", tuple(str(d) for d in range(10))),
    "fashion-mnist": (
        datasets.FashionMNIST,
        "FashionMNIST",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
}
_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class DatasetNotFound(FileNotFoundError):
    """A dataset's files are missing and could not be downloaded."""


def load_mnist(name: str, split: str, root: Path, download: bool | None = None) -> ImageDataset:
    """Load ``mnist`` or ``fashion-mnist``: images ``[N, 1, 28, 28]`` in ``[0, 1]``, labels 0-9."""
    cls, folder, class_names = _SOURCES[name]
    download = settings.downloads_allowed() if download is None else download
    raw = root / folder / "raw"
    have = all((raw / f).exists() for f in _FILES)
    if not have and not download:
        raise DatasetNotFound(_missing(name, raw, "downloads are off (DISLIB_DOWNLOAD=0)"))
    try:
        ds = cls(str(root), train=split == "train", download=not have)
    except (OSError, RuntimeError) as err:
        raise DatasetNotFound(_missing(name, raw, f"the download failed ({err})")) from err
    images = ds.data.unsqueeze(1).float().div_(255.0)
    return ImageDataset(images, ds.targets.long(), 10, name, class_names=class_names)


def _missing(name: str, raw: Path, why: str) -> str:
    missing = [f for f in _FILES if not (raw / f).exists()]
    return (
        f"{name} is not under the data root and {why}. Missing in {raw}: {', '.join(missing)}. "
        f"Put the uncompressed idx files there, or point DISLIB_DATA (or root=) at a folder that "
        f"has {raw.parent.name}/raw/, or allow downloads on a machine with a network."
    )
