"""Partners for pairs and triplets: another image of the same class, or one of another class.

Mathieu et al. (2016, Sec. 4.3 and Algorithm 1) train on triplets ``(x1, x1', x2)``: ``x1`` and
``x1'`` share a label, ``x2`` has another one. :class:`ClassIndex` sorts the indices by class once,
so drawing partners for a whole batch is a few vectorised tensor operations.

>>> index = ClassIndex(train.labels)
>>> anchor, same, other = index.triplets(batch_indices, generator)
"""

from __future__ import annotations

import torch
from torch import Tensor


class ClassIndex:
    """The indices of a label tensor grouped by class, for drawing partners.

    Parameters
    ----------
    labels
        ``int64`` tensor ``[N]`` of class labels (any values; classes absent from it do not exist).
    """

    def __init__(self, labels: Tensor) -> None:
        if labels.ndim != 1 or len(labels) == 0:
            raise ValueError(f"ClassIndex needs a non-empty 1-D label tensor, got shape {tuple(labels.shape)}")
        self.labels = labels
        self.classes, self.class_of, self.counts = torch.unique(labels, return_inverse=True, return_counts=True)
        self.members = torch.argsort(self.class_of, stable=True)  # indices, class by class
        self.starts = torch.cumsum(self.counts, 0) - self.counts  # where each class begins in members
        self.rank = torch.empty_like(self.members)  # position of each index within its class
        self.rank[self.members] = torch.arange(len(labels), device=labels.device) - self.starts[self.class_of[self.members]]

    def __len__(self) -> int:
        return len(self.labels)

    def has_partner(self) -> Tensor:
        """Boolean ``[N]``: whether the class of each index has another member (needed for pairs)."""
        return self.counts[self.class_of] > 1

    def same_class_partners(self, indices: Tensor, generator: torch.Generator) -> Tensor:
        """For each index, another index of the same class, drawn uniformly (never itself).

        Raises
        ------
        ValueError
            If the class of an index has no other member.
        """
        indices = self._check(indices)
        cls = self.class_of[indices]
        lonely = self.counts[cls] < 2
        if lonely.any():
            i = int(indices[lonely][0])
            raise ValueError(
                f"index {i} has label {int(self.labels[i])}, a class with a single image, so the pair/triplet "
                f"sampler finds no same-class partner for it: drop classes with one image from the dataset "
                f"(keep data.subset(ClassIndex(data.labels).has_partner())) or draw batches only from indices "
                f"whose class has two or more images"
            )
        offset = self._uniform(self.counts[cls] - 1, generator)
        offset += offset >= self.rank[indices]  # skip the index itself
        return self.members[self.starts[cls] + offset]

    def different_class_partners(self, indices: Tensor, generator: torch.Generator) -> Tensor:
        """For each index, an index of another class, drawn uniformly among all such indices.

        Raises
        ------
        ValueError
            If the labels hold a single class.
        """
        indices = self._check(indices)
        if len(self.classes) < 2:
            raise ValueError(
                f"all labels are {int(self.classes[0])}: a different-class partner needs at least two classes "
                f"in the dataset"
            )
        cls = self.class_of[indices]
        position = self._uniform(len(self) - self.counts[cls], generator)
        position += (position >= self.starts[cls]) * self.counts[cls]  # skip the index's own class
        return self.members[position]

    def triplets(self, indices: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """``(indices, same-class partners, different-class partners)``, the triplets of Mathieu et al."""
        return indices, self.same_class_partners(indices, generator), self.different_class_partners(indices, generator)

    def _check(self, indices: Tensor) -> Tensor:
        indices = indices.to(self.labels.device)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"indices must lie in [0, {len(self)}), got [{int(indices.min())}, {int(indices.max())}]")
        return indices

    def _uniform(self, upper: Tensor, generator: torch.Generator) -> Tensor:
        """An integer in ``[0, upper)`` for each entry of ``upper`` (all > 0)."""
        u = torch.rand(upper.shape, generator=generator, device=generator.device).to(upper.device)
        return torch.minimum((u * upper).long(), upper - 1)


def same_class_partners(labels: Tensor | ClassIndex, indices: Tensor, generator: torch.Generator) -> Tensor:
    """:meth:`ClassIndex.same_class_partners` for a label tensor (indexed once per call) or an index."""
    return _index(labels).same_class_partners(indices, generator)


def different_class_partners(labels: Tensor | ClassIndex, indices: Tensor, generator: torch.Generator) -> Tensor:
    """:meth:`ClassIndex.different_class_partners` for a label tensor or an index."""
    return _index(labels).different_class_partners(indices, generator)


def triplets(
    labels: Tensor | ClassIndex, indices: Tensor, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """:meth:`ClassIndex.triplets` for a label tensor or an index: ``(i1, i1_same, i2_other)``."""
    return _index(labels).triplets(indices, generator)


def _index(labels: Tensor | ClassIndex) -> ClassIndex:
    return labels if isinstance(labels, ClassIndex) else ClassIndex(labels)
