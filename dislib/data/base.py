"""The in-memory datasets every loader returns: images, or points, with labels and factors.

Both kinds share :class:`LabelledData`, which is all the training loop needs: ``inputs`` (what a
model reads), ``labels``, ``subset`` and ``to``. A 2-D toy set therefore trains through the same
:func:`dislib.fit` as MNIST does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

import torch
from torch import Tensor

Data = TypeVar("Data", bound="LabelledData")


def check_labels(name: str, labels: Tensor, n: int, num_classes: int) -> None:
    """Raise a clear error unless ``labels`` is int64 ``[n]`` with values in ``[0, num_classes)``."""
    if labels.shape != (n,):
        raise ValueError(f"dataset {name!r}: labels must have shape ({n},), got {tuple(labels.shape)}")
    if labels.dtype != torch.long:
        raise ValueError(f"dataset {name!r}: labels must be int64, got {labels.dtype}; convert them with labels.long()")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"dataset {name!r}: labels must lie in [0, {num_classes}), got [{int(labels.min())}, {int(labels.max())}]"
        )


def check_pixels(what: str, images: Tensor) -> None:
    """Raise a clear error unless ``images`` are float32 values in ``[0, 1]`` (dislib's one pixel convention)."""
    if images.dtype != torch.float32:
        fix = "images.float().div(255)" if not images.is_floating_point() else "images.float()"
        raise ValueError(f"{what}: images must be float32 in [0, 1], got {images.dtype}; convert them with {fix}")
    if images.numel():
        low, high = images.aminmax()
        if low.isnan() or high.isnan():
            raise ValueError(f"{what}: pixels must lie in [0, 1], got NaN values; find where they came from "
                             "(a diverged model's output, a division by zero in preprocessing)")
        if low < 0 or high > 1:
            fix = "divide 0-255 images by 255" if high > 1.5 else "map [-1, 1] images with (x + 1) / 2"
            raise ValueError(f"{what}: pixels must lie in [0, 1], got [{float(low):.4g}, {float(high):.4g}]; {fix}")


class LabelledData(torch.utils.data.Dataset):
    """What the training loop needs from a dataset: inputs, labels, subsets and devices.

    Subclasses are dataclasses with ``labels``, ``num_classes``, ``name`` and ``factors`` fields
    and say which tensor is the model's input through :attr:`inputs`.
    """

    labels: Tensor
    num_classes: int
    name: str
    factors: Tensor | None

    @property
    def inputs(self) -> Tensor:
        """The tensor a model reads, one row per example."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.labels)

    def _tensors(self) -> dict[str, Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), Tensor)}

    def subset(self: Data, indices: Tensor | slice) -> Data:
        """The examples at ``indices``, keeping names and sizes."""
        return replace(self, **{k: v[indices] for k, v in self._tensors().items()})

    def to(self: Data, device: torch.device | str) -> Data:
        """A copy with every tensor on ``device``."""
        return replace(self, **{k: v.to(device) for k, v in self._tensors().items()})

    def _check_factors(self, n: int, sizes: tuple[int, ...]) -> None:
        f = self.factors
        if f is None:
            return
        if f.ndim != 2 or len(f) != n:
            raise ValueError(f"dataset {self.name!r}: factors must be [N, F] with N = {n}, got {tuple(f.shape)}")
        names = getattr(self, "factor_names", ())
        if names and len(names) != f.shape[1]:
            raise ValueError(f"dataset {self.name!r}: {len(names)} factor names for {f.shape[1]} factor columns")
        if f.is_floating_point():
            if sizes:
                raise ValueError(f"dataset {self.name!r}: real-valued factors have no factor_sizes; pass factor_sizes=()")
        elif f.dtype != torch.long:
            raise ValueError(f"dataset {self.name!r}: factors must be int64 (categories) or float32 (real values), got {f.dtype}")

    @property
    def real_factors(self) -> bool:
        """True when the factors are real numbers (colour, scale, width), False for categories."""
        return self.factors is not None and self.factors.is_floating_point()


@dataclass
class ImageDataset(LabelledData):
    """Images with class labels and, where known, ground-truth factors of variation.

    Everything lives in memory as tensors (the datasets of this book are MNIST-sized), so a
    training loop indexes a batch directly instead of going through a ``DataLoader``.

    Parameters
    ----------
    images
        ``float32`` tensor ``[N, C, H, W]`` with values in ``[0, 1]`` (checked).
    labels
        ``int64`` tensor ``[N]`` with values in ``[0, num_classes)``.
    num_classes
        Number of classes the labels range over.
    name
        Dataset name as given to :func:`dislib.data.load`.
    factors
        Optional ground-truth factors ``[N, F]``: ``int64`` categories (sprites: hair, pose, ...)
        or ``float32`` real values (styled digits: colour, scale, stroke width).
    factor_names, factor_sizes
        Name of each factor column, and the number of values of each categorical factor
        (empty for real-valued factors).
    class_names
        Optional human-readable name of each class.
    load_options
        The options :func:`dislib.data.load` was given (``size=32``): a run directory records
        them, so that evaluating the run later loads the same data.
    """

    images: Tensor
    labels: Tensor
    num_classes: int
    name: str
    factors: Tensor | None = None
    factor_names: tuple[str, ...] = ()
    factor_sizes: tuple[int, ...] = ()
    class_names: tuple[str, ...] = ()
    load_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.images)
        if n == 0:
            raise ValueError(f"dataset {self.name!r} is empty: check the split and the files under the data root")
        if self.images.ndim != 4:
            raise ValueError(
                f"dataset {self.name!r}: images must be [N, C, H, W], got shape {tuple(self.images.shape)}"
            )
        check_pixels(f"dataset {self.name!r}", self.images)
        check_labels(self.name, self.labels, n, self.num_classes)
        self._check_factors(n, self.factor_sizes)

    def __getitem__(self, i: int) -> tuple[Tensor, ...]:
        if self.factors is None:
            return self.images[i], self.labels[i]
        return self.images[i], self.labels[i], self.factors[i]

    @property
    def inputs(self) -> Tensor:
        return self.images

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of one image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]


@dataclass
class PointDataset(LabelledData):
    """Points with class labels, in memory (the 2-D toys).

    Parameters
    ----------
    points
        ``float32`` tensor ``[N, D]``.
    labels
        ``int64`` tensor ``[N]`` with values in ``[0, num_classes)``.
    num_classes
        Number of classes the labels range over.
    name
        Dataset name as given to :func:`dislib.data.load`.
    factors
        Optional real-valued factors ``[N, F]`` (the moons: the angle along the arc).
    factor_names
        Name of each factor column.
    load_options
        The options :func:`dislib.data.load` was given (``n``, ``noise``).
    """

    points: Tensor
    labels: Tensor
    num_classes: int
    name: str
    factors: Tensor | None = None
    factor_names: tuple[str, ...] = ()
    load_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.points)
        if n == 0:
            raise ValueError(f"dataset {self.name!r} is empty: ask for at least one point (n >= 1)")
        if self.points.ndim != 2:
            raise ValueError(f"dataset {self.name!r}: points must be [N, D], got shape {tuple(self.points.shape)}")
        if self.points.dtype != torch.float32:
            raise ValueError(f"dataset {self.name!r}: points must be float32, got {self.points.dtype}; use points.float()")
        check_labels(self.name, self.labels, n, self.num_classes)
        self._check_factors(n, ())

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.points[i], self.labels[i]

    @property
    def inputs(self) -> Tensor:
        return self.points

    @property
    def point_dim(self) -> int:
        """Number of coordinates of one point."""
        return self.points.shape[1]
