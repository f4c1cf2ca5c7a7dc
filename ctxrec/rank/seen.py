"""Which items a person has already met, as marks per item."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["SeenItems"]


@dataclass(frozen=True)
class SeenItems:
    """Which items each row has already met: the one way a history becomes per-item marks.

    Evaluation masks with it, the sequence model adds its repeat offset with it, and training
    marks every position's past with it. Kept as sorted unique keys ``row * width + item``
    because a dense (rows, items) matrix of a large catalog would cost as much as its logits;
    :meth:`dense` gives the matrix where it is small enough.

    Attributes:
        keys: (K,) int64 sorted unique keys.
        n_rows: how many rows (histories or positions) there are.
        width: items per row (the catalog size, or the model's index range with padding 0).
    """

    keys: torch.Tensor
    n_rows: int
    width: int

    @classmethod
    def of_histories(cls, histories: Sequence[np.ndarray], width: int) -> SeenItems:
        """One row per history of catalog positions."""
        lengths = [len(h) for h in histories]
        items = torch.from_numpy(np.concatenate(
            [np.asarray(h, dtype=np.int64) for h in histories]) if sum(lengths) else
            np.zeros(0, dtype=np.int64))
        rows = torch.repeat_interleave(torch.arange(len(histories)), torch.tensor(lengths,
                                                                                  dtype=torch.long))
        return cls((rows * width + items).unique(), len(histories), width)

    @classmethod
    def of_prefixes(cls, items: torch.Tensor, where: torch.Tensor, width: int) -> SeenItems:
        """One row per position picked by the (B, L) mask ``where`` (row-major order): the items
        at or before it in its window of (B, L) ``items``, where 0 is padding and never marked."""
        rows, positions = where.nonzero(as_tuple=True)
        earlier = torch.arange(items.shape[1], device=items.device) <= positions.unsqueeze(1)
        occurred = torch.where(earlier, items[rows], 0)
        keys = torch.arange(len(rows), device=items.device).unsqueeze(1) * width + occurred
        return cls(keys[occurred > 0].unique(), len(rows), width)

    def dense(self) -> torch.Tensor:
        """(n_rows, width) booleans."""
        out = torch.zeros(self.n_rows * self.width, dtype=torch.bool, device=self.keys.device)
        out[self.keys] = True
        return out.view(self.n_rows, self.width)

    def contains(self, rows: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Booleans shaped like ``items`` (broadcast with ``rows``): whether that row met it."""
        query = rows * self.width + items
        if len(self.keys) == 0:
            return torch.zeros_like(query, dtype=torch.bool)
        found = torch.searchsorted(self.keys, query.flatten()).clamp(max=len(self.keys) - 1)
        return (self.keys[found] == query.flatten()).view(query.shape)

    def add(self, scores: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """(n_rows, width) ``scores`` with ``value`` added where the item was met (a new tensor;
        gradients flow to ``value``)."""
        keys = self.keys.to(scores.device)
        return scores.index_put((keys // self.width, keys % self.width),
                                value.expand(len(keys)), accumulate=True)
