"""Baselines every model is compared with: what a ranker gets without a language model or any
learning beyond counting."""

from __future__ import annotations

import warnings

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..rank.query import Query
from .split import Split

__all__ = ["ContextPopularity", "ItemKNN", "Popularity", "TextSimilarity", "UserCounts",
           "history_profiles"]


def history_profiles(vectors: np.ndarray, queries: Sequence[Query]) -> np.ndarray:
    """(Q, d) the unit mean of each query's history item vectors; zeros for an empty history."""
    dim = vectors.shape[1]
    profiles = np.stack([vectors[q.items].mean(axis=0) if len(q.items) else
                         np.zeros(dim, dtype=vectors.dtype) for q in queries])
    return profiles / np.maximum(np.linalg.norm(profiles, axis=1, keepdims=True), 1e-12)


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
        bought = [np.unique(split.histories[u]) for u in users]
        counts = np.array([len(b) for b in bought], dtype=np.int64)
        # users × items, sparse: dense it would take 38 GB on MovieLens-25M
        crow = torch.from_numpy(np.concatenate([[0], np.cumsum(counts)]))
        cols = torch.from_numpy(np.concatenate(bought).astype(np.int64)) if users else \
            torch.zeros(0, dtype=torch.long)
        with warnings.catch_warnings():  # torch calls its CSR layout beta, once per process
            warnings.simplefilter("ignore", UserWarning)
            self._matrix = torch.sparse_csr_tensor(crow, cols, torch.ones(len(cols)),
                                                   (len(users), len(split.train_counts)),
                                                   check_invariants=True)
            self._transposed = self._matrix.t().to_sparse_csr()
        n_users_per_item = np.bincount(cols.numpy(), minlength=len(split.train_counts))
        self._norm = torch.from_numpy(n_users_per_item).float().clamp(min=1).rsqrt()

    def scores(self, queries: Sequence[Query]) -> np.ndarray:
        query = torch.zeros(len(queries), self._matrix.shape[1])
        for row, q in enumerate(queries):
            query[row, np.unique(q.items)] = 1.0
        # Σ_j C_ij / sqrt(n_i n_j) with C = XᵀX, computed as Xᵀ(X (q ⊙ norm)ᵀ) ⊙ norm; an item's
        # similarity to itself (exactly 1) is taken out, as neighbours exclude the item itself
        norm = self._norm
        users = self._matrix @ (query * norm).T
        return ((self._transposed @ users).T * norm - query).numpy()


@dataclass
class TextSimilarity:
    """Language-model text only: the mean of the history's item vectors, cosine to every item."""

    vectors: np.ndarray
    name: str = "LM text similarity"

    def scores(self, queries: Sequence[Query]) -> np.ndarray:
        profiles = history_profiles(self.vectors, queries)
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
