"""The in-memory dataset every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor


def check_labels(name: str, labels: Tensor, n: int, num_classes: int) -> None:
    """Raise a clear error unless ``labels`` has shape ``[n]`` and values in ``[0, num_classes)``."""
    if labels.shape != (n,):
        raise ValueError(f"dataset {name!r}: labels must have shape ({n},), got {tuple(labels.shape)}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"dataset {name!r}: labels must lie in [0, {num_classes}), got [{int(labels.min())}, {int(labels.max())}]"
        )


@dataclass
class ImageDataset(torch.utils.data.Dataset):
    """Images with class labels and, where known, ground-truth factors of variation.

    Everything lives in memory as tensors (the datasets of this book are MNIST-sized), so a
    training loop indexes a batch directly instead of going through a ``DataLoader``.

    Parameters
    ----------
    images
        ``float32`` tensor ``[N, C, H, W]`` with values in ``[0, 1]``.
    labels
        ``int64`` tensor ``[N]`` with values in ``[0, num_classes)``.
    num_classes
        Number of classes the labels range over.
    name
        Dataset name as given to :func:`dislib.data.load`.
    factors
        Optional ``int64`` tensor ``[N, F]`` of ground-truth factors (sprites: hair, pose, ...).
    factor_names, factor_sizes
        Name and number of values of each factor column.
    class_names
        Optional human-readable name of each class.
    """

    images: Tensor
    labels: Tensor
    num_classes: int
    name: str
    factors: Tensor | None = None
    factor_names: tuple[str, ...] = ()
    factor_sizes: tuple[int, ...] = ()
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.images)
        if n == 0:
            raise ValueError(f"dataset {self.name!r} is empty: check the split and the files under the data root")
        if self.images.ndim != 4:
            raise ValueError(
                f"dataset {self.name!r}: images must be [N, C, H, W], got shape {tuple(self.images.shape)}"
            )
        check_labels(self.name, self.labels, n, self.num_classes)
        if self.factors is not None and (self.factors.ndim != 2 or len(self.factors) != n):
            raise ValueError(f"dataset {self.name!r}: factors must be [N, F] with N = {n}")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Tensor, ...]:
        if self.factors is None:
            return self.images[i], self.labels[i]
        return self.images[i], self.labels[i], self.factors[i]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of one image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, indices: Tensor | slice) -> "ImageDataset":
        """The images at ``indices``, keeping names and sizes."""
        factors = None if self.factors is None else self.factors[indices]
        return replace(self, images=self.images[indices], labels=self.labels[indices], factors=factors)

    def to(self, device: torch.device | str) -> "ImageDataset":
        """A copy with every tensor on ``device``."""
        factors = None if self.factors is None else self.factors.to(device)
        return replace(self, images=self.images.to(device), labels=self.labels.to(device), factors=factors)
