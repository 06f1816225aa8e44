"""Retrieval: the nearest codes of a bank to each query, and the images they belong to."""

from __future__ import annotations

import torch
from matplotlib.figure import Figure
from torch import Tensor

from dislib.viz._common import _check_images, _table_figure


def nearest_neighbours(query_codes: Tensor, bank_codes: Tensor, k: int = 5, metric: str = "euclidean") -> Tensor:
    """Indices ``[Q, k]`` into ``bank_codes [B, D]`` of each query's ``k`` nearest codes, nearest first.

    ``metric`` is ``"euclidean"`` or ``"cosine"``.
    """
    if query_codes.ndim != 2 or bank_codes.ndim != 2 or query_codes.shape[1] != bank_codes.shape[1]:
        raise ValueError(
            f"codes must be [Q, D] and [B, D] with the same D, got {tuple(query_codes.shape)} and {tuple(bank_codes.shape)}"
        )
    if not 1 <= k <= bank_codes.shape[0]:
        raise ValueError(f"k must be between 1 and the bank size {bank_codes.shape[0]}, got {k}")
    queries, bank = query_codes.detach().float().cpu(), bank_codes.detach().float().cpu()
    if metric == "euclidean":
        distances = torch.cdist(queries, bank)
    elif metric == "cosine":
        distances = -torch.nn.functional.normalize(queries, dim=1) @ torch.nn.functional.normalize(bank, dim=1).T
    else:
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    return distances.topk(k, dim=1, largest=False).indices


def retrieval_figure(
    query_images: Tensor, bank_images: Tensor, indices: Tensor, title: str | None = None, scale: float = 1.0
) -> Figure:
    """One row per query: the query image, then the bank images at ``indices [Q, k]`` (nearest first)."""
    queries, bank = _check_images(query_images, "query_images").cpu(), _check_images(bank_images, "bank_images").cpu()
    if indices.ndim != 2 or indices.shape[0] != queries.shape[0]:
        raise ValueError(f"indices must be [Q, k] with Q = {queries.shape[0]} queries, got {tuple(indices.shape)}")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= bank.shape[0]):
        low, high = int(indices.min()), int(indices.max())
        raise ValueError(f"indices must lie in [0, {bank.shape[0]}) (the bank size), got [{low}, {high}]")
    cells = [[queries[q], *bank[indices[q].cpu()]] for q in range(queries.shape[0])]
    return _table_figure(cells, header_column=True, title=title, scale=scale, column_label="query | nearest neighbours →")
