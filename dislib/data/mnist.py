"""MNIST and Fashion-MNIST through torchvision, read from the data root."""

from __future__ import annotations

from pathlib import Path

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
# the uncompressed idx files and their sizes in bytes (the same for MNIST and Fashion-MNIST)
_SIZES = {
    "train-images-idx3-ubyte": 16 + 60_000 * 28 * 28,
    "train-labels-idx1-ubyte": 8 + 60_000,
    "t10k-images-idx3-ubyte": 16 + 10_000 * 28 * 28,
    "t10k-labels-idx1-ubyte": 8 + 10_000,
}
_FILES = tuple(_SIZES)


class DatasetNotFound(FileNotFoundError):
    """A dataset's files are missing and could not be downloaded."""


class DatasetDamaged(ValueError):
    """A dataset's files are there but truncated or unreadable."""


def load_mnist(name: str, split: str, root: Path, download: bool | None = None) -> ImageDataset:
    """Load ``mnist`` or ``fashion-mnist``: images ``[N, 1, 28, 28]`` in ``[0, 1]``, labels 0-9.

    Raises
    ------
    DatasetNotFound
        When idx files are missing and cannot be downloaded.
    DatasetDamaged
        When an idx file has the wrong size (checked before torchvision reads it) or cannot be read.
    """
    cls, folder, class_names = _SOURCES[name]
    download = settings.downloads_allowed() if download is None else download
    raw = root / folder / "raw"
    _check_sizes(name, raw)
    have = all((raw / f).exists() for f in _FILES)
    if not have and not download:
        raise DatasetNotFound(_missing(name, raw, "downloads are off (DISLIB_DOWNLOAD=0)"))
    try:
        ds = cls(str(root), train=split == "train", download=not have)
    except (OSError, RuntimeError, AssertionError) as err:  # torchvision asserts on a bad idx header
        if have:
            why = str(err) or "not an idx file"
            raise DatasetDamaged(f"cannot read {name} from {raw} ({why}): replace its idx files with good copies") from err
        raise DatasetNotFound(_missing(name, raw, f"the download failed ({err})")) from err
    images = ds.data.unsqueeze(1).float().div_(255.0)
    return ImageDataset(images, ds.targets.long(), 10, name, class_names=class_names)


def _check_sizes(name: str, raw: Path) -> None:
    """Raise :class:`DatasetDamaged` naming the first idx file in ``raw`` that has the wrong size."""
    for file, expected in _SIZES.items():
        path = raw / file
        if path.exists() and path.stat().st_size != expected:
            size = path.stat().st_size
            what = "is truncated" if size < expected else "is too long"
            raise DatasetDamaged(
                f"{name} file {path} {what}: {size:,} bytes, expected {expected:,}. Delete it, then put a "
                "complete uncompressed copy there or let dislib download it again (DISLIB_DOWNLOAD=1)"
            )


def _missing(name: str, raw: Path, why: str) -> str:
    missing = [f for f in _FILES if not (raw / f).exists()]
    return (
        f"{name} is not under the data root and {why}. Missing in {raw}: {', '.join(missing)}. "
        f"Put the uncompressed idx files there, or point DISLIB_DATA (or root=) at a folder that "
        f"has {raw.parent.name}/raw/, or allow downloads on a machine with a network."
    )
