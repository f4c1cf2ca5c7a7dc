"""Baselines every model is compared with: what a ranker gets without a language model or any
learning beyond counting."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..rank.query import Query
from .split import Split

__all__ = ["ContextPopularity", "ItemKNN", "Popularity", "TextSimilarity", "UserCounts"]


@dataclass
class Popularity:
    """How often each item was used in training."""

    train_counts: np.ndarray
    name: str = "popularity"

    def scores(self, queries: Sequence[Query]) -> np.ndarray:
        return np.broadcast_to(self.train_counts, (len(queries), len(self.train_counts)))


class ItemKNN:
    """Item co-occurrence kNN: Σ over history items of cosine-normalised co-occurrence counts,
    co-occurrence counted over the training histories."""

    def __init__(self, split: Split, name: str = "item-kNN") -> None:
        self.name = name
        users = list(split.histories)
        rows = np.repeat(np.arange(len(users)), [len(np.unique(split.histories[u])) for u in users])
        cols = np.concatenate([np.unique(split.histories[u]) for u in users]) if users else []
        self._matrix = torch.zeros(len(users), len(split.train_counts))
        self._matrix[rows, cols] = 1.0
        self._norm = self._matrix.sum(0).clamp(min=1).rsqrt()  # 1/sqrt(n_i)

    def scores(self, queries: Sequence[Query]) -> np.ndarray:
        query = torch.zeros(len(queries), self._matrix.shape[1])
        for row, q in enumerate(queries):
            query[row, np.unique(q.items)] = 1.0
        # Σ_j C_ij / sqrt(n_i n_j) with C = XᵀX, computed as ((q ⊙ norm) Xᵀ) X ⊙ norm; an item's
        # similarity to itself (exactly 1) is taken out, as neighbours exclude the item itself
        norm = self._norm
        return ((((query * norm) @ self._matrix.T) @ self._matrix) * norm - query).numpy()


@dataclass
class TextSimilarity:
    """Language-model text only: the mean of the history's item vectors, cosine to every item."""

    vectors: np.ndarray
    name: str = "LM text similarity"

    def scores(self, queries: Sequence[Query]) -> np.ndarray:
        dim = self.vectors.shape[1]
        profiles = np.stack([self.vectors[q.items].mean(axis=0) if len(q.items) else
                             np.zeros(dim, dtype=self.vectors.dtype) for q in queries])
        profiles /= np.maximum(np.linalg.norm(profiles, axis=1, keepdims=True), 1e-12)
        return (torch.from_numpy(profiles) @ torch.from_numpy(self.vectors).T).numpy()


@dataclass
class UserCounts:
    """How often the user used each item before the held-out event; with ``same_context``, only
    the uses in the held-out event's context (its key)."""

    n_items: int
    same_context: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or ("the user's counts in the same context" if self.same_context
                                  else "the user's counts")

    def scores(self, queries: Sequence[Query]) -> np.ndarray:
        out = np.zeros((len(queries), self.n_items))
        for row, query in enumerate(queries):
            items = query.items[query.keys == query.key] if self.same_context else query.items
            np.add.at(out[row], items, 1.0)
        return out


class ContextPopularity:
    """How often each item was used in training in the held-out event's context (its key)."""

    def __init__(self, split: Split, name: str = "popularity in the same context") -> None:
        self.name = name
        self._n_items = len(split.train_counts)
        self._counts: dict[str, np.ndarray] = {}
        for user, items in split.histories.items():
            keys = split.history_keys.get(user, np.full(len(items), "", dtype=object))
            for key in set(keys.tolist()):
                counts = self._counts.setdefault(key, np.zeros(self._n_items))
                np.add.at(counts, items[keys == key], 1.0)

    def scores(self, queries: Sequence[Query]) -> np.ndarray:
        empty = np.zeros(self._n_items)
        return np.stack([self._counts.get(q.key, empty) for q in queries]) if queries else \
            np.zeros((0, self._n_items))
