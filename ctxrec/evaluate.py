"""Offline evaluation: splits, ranking protocols, baselines, per-user results and their uncertainty.

Every result names its protocol (full ranking or N sampled negatives, masked or not), split and K,
because the same model scores NDCG@10 ≈ 0.6 against 100 sampled negatives and ≈ 0.15 against the
whole catalog.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

import numpy as np
import pandas as pd
import torch

from .catalog import Catalog
from .context import Context, HistoryEntry
from .metrics import rank_of
from .recommender import Recommender
from .weights import COMPONENTS, Weights

__all__ = ["EvalResult", "ItemKNN", "Popularity", "Ranker", "RecommenderRanker", "Split",
           "SPLITS", "TIME_ORDERS", "TextSimilarity", "TimeOrder", "ablations", "bootstrap_ci",
           "evaluate", "leave_last_out", "paired_test", "random_split", "temporal_split",
           "user_context"]


@dataclass
class Split:
    """Interactions split per user into training history and held-out targets (item positions).

    Attributes:
        histories: user → training items, oldest first (positions in the catalog).
        ratings: user → ratings of those items (NaN when the log has none).
        valid, test: user → (held-out item position, timestamp).
        train_counts: (N,) training interactions per item.
        name: how the split was made.
    """

    histories: dict[str, np.ndarray]
    ratings: dict[str, np.ndarray]
    valid: dict[str, tuple[int, int]]
    test: dict[str, tuple[int, int]]
    train_counts: np.ndarray
    name: str


TimeOrder = Literal["exact", "float32"]
TIME_ORDERS: tuple[TimeOrder, ...] = ("exact", "float32")


def leave_last_out(interactions: pd.DataFrame, catalog: Catalog,
                   time_order: TimeOrder = "exact") -> Split:
    """Per user, ordered by time (ties keep file order): the last item is the test target, the one
    before it the validation target, the rest the history. Users with fewer than 3 known
    interactions are left out.

    ``time_order="float32"`` orders by the timestamps rounded to float32, which is what RecBole
    does (it stores float fields as float32, spaced 128 s apart around 2010): events a minute or
    two apart then tie and keep file order. On ml-latest-small this reproduces RecBole 1.2.1's
    leave-one-out split exactly, and its validation target differs from the exact order's for
    294 of 610 users, so figures are only comparable under the same order."""
    if time_order not in TIME_ORDERS:
        raise ValueError(f"unknown time order '{time_order}'; choose from {', '.join(TIME_ORDERS)}")
    clock = interactions["timestamp"].to_numpy()
    name = "leave-last-out (by time)"
    if time_order == "float32":
        clock = clock.astype(np.float32)
        name = "leave-last-out (by float32 time, as RecBole)"
    return _split(interactions, catalog, name,
                  lambda group: (len(group) - 2, len(group) - 1, np.arange(len(group) - 2)),
                  clock=clock)


def temporal_split(interactions: pd.DataFrame, catalog: Catalog, quantile: float = 0.8) -> Split:
    """One global time cut at the ``quantile`` of all timestamps: each user's first event after
    the cut is the test target, their last event before it the validation target; users with no
    event after the cut or fewer than 2 before it are left out."""
    cut = interactions["timestamp"].quantile(quantile)

    def targets(group: pd.DataFrame) -> _Targets | None:
        after = np.flatnonzero(group["timestamp"].to_numpy() > cut)
        if after.size == 0 or after[0] < 2:
            return None
        return after[0] - 1, after[0], np.arange(after[0] - 1)
    return _split(interactions, catalog, f"temporal cut at the {quantile:.0%} time quantile",
                  targets)


def random_split(interactions: pd.DataFrame, catalog: Catalog, seed: int = 0) -> Split:
    """Per user, two random events are held out (validation, then test); the history is the rest
    in time order."""
    rng = np.random.default_rng(seed)

    def targets(group: pd.DataFrame) -> _Targets:
        valid, test = rng.choice(len(group), size=2, replace=False)
        return int(valid), int(test), np.setdiff1d(np.arange(len(group)), [valid, test])
    return _split(interactions, catalog, f"random hold-out (seed {seed})", targets)


SPLITS = {"leave-last-out": leave_last_out, "temporal": temporal_split, "random": random_split}
_Targets = tuple[int, int, np.ndarray]  # validation index, test index, history indices


def _split(interactions: pd.DataFrame, catalog: Catalog, name: str,
           targets: Callable[[pd.DataFrame], _Targets | None],
           clock: np.ndarray | None = None) -> Split:
    """Apply ``targets`` to each user's events ordered by ``clock`` (default: the timestamps;
    ties in file order)."""
    pos = {item_id: i for i, item_id in enumerate(catalog.ids)}
    log = interactions.assign(position=interactions["item"].map(pos), order=np.arange(
        len(interactions)), clock=interactions["timestamp"] if clock is None else clock)
    log = log.dropna(subset=["position"])
    if "rating" not in log:
        log = log.assign(rating=np.nan)
    log = log.sort_values(["user", "clock", "order"], kind="stable")
    histories, ratings, valid, test = {}, {}, {}, {}
    counts = np.zeros(len(catalog))
    for user, group in log.groupby("user", sort=False):
        if len(group) < 3:
            continue
        chosen = targets(group)
        if chosen is None:
            continue
        valid_at, test_at, keep = chosen
        items = group["position"].to_numpy(dtype=np.int64)
        times = group["timestamp"].to_numpy()
        histories[user], ratings[user] = items[keep], group["rating"].to_numpy()[keep]
        valid[user] = (items[valid_at], times[valid_at])
        test[user] = (items[test_at], times[test_at])
        np.add.at(counts, items[keep], 1)
    return Split(histories, ratings, valid, test, counts, name)


class Ranker(Protocol):
    """Anything that scores every catalog item for a batch of users."""

    name: str

    def scores(self, users: list[str], split: Split, target: str) -> np.ndarray:
        """(len(users), N) scores; ``target`` is ``valid`` or ``test`` (for its timestamp)."""


@dataclass
class Popularity:
    name: str = "popularity"

    def scores(self, users: list[str], split: Split, target: str) -> np.ndarray:
        return np.broadcast_to(split.train_counts, (len(users), len(split.train_counts)))


@dataclass
class ItemKNN:
    """Item co-occurrence kNN: Σ over history items of cosine-normalised co-occurrence counts."""

    name: str = "item-kNN"
    _cache: dict = field(default_factory=dict, repr=False)

    def scores(self, users: list[str], split: Split, target: str) -> np.ndarray:
        if "matrix" not in self._cache:
            all_users = list(split.histories)
            rows = np.repeat(np.arange(len(all_users)),
                             [len(np.unique(split.histories[u])) for u in all_users])
            cols = np.concatenate([np.unique(split.histories[u]) for u in all_users])
            matrix = torch.zeros(len(all_users), len(split.train_counts))
            matrix[rows, cols] = 1.0
            norm = matrix.sum(0).clamp(min=1).rsqrt()  # 1/sqrt(n_i)
            self._cache.update(matrix=matrix, norm=norm)
        matrix, norm = self._cache["matrix"], self._cache["norm"]
        query = torch.zeros(len(users), matrix.shape[1])
        for row, user in enumerate(users):
            query[row, np.unique(split.histories[user])] = 1.0
        # Σ_j C_ij / sqrt(n_i n_j) with C = XᵀX, computed as ((q ⊙ norm) Xᵀ) X ⊙ norm; an item's
        # similarity to itself (exactly 1) is taken out, as neighbours exclude the item itself
        return ((((query * norm) @ matrix.T) @ matrix) * norm - query).numpy()


@dataclass
class TextSimilarity:
    """Language-model text only: the mean of the history's item vectors, cosine to every item."""

    vectors: np.ndarray
    name: str = "LM text similarity"

    def scores(self, users: list[str], split: Split, target: str) -> np.ndarray:
        profiles = np.stack([self.vectors[split.histories[u]].mean(axis=0) for u in users])
        profiles /= np.linalg.norm(profiles, axis=1, keepdims=True)
        return (torch.from_numpy(profiles) @ torch.from_numpy(self.vectors).T).numpy()


def user_context(split: Split, user: str, target: str, ids: np.ndarray, max_history: int = 50
                 ) -> Context:
    """A user's context at the time of their held-out event: the last ``max_history`` training
    items, with ratings as feedback."""
    held_out = split.valid if target == "valid" else split.test
    items = split.histories[user][-max_history:]
    ratings = split.ratings[user][-max_history:]
    history = tuple(HistoryEntry(str(ids[i]), rating=None if np.isnan(r) else float(r))
                    for i, r in zip(items, ratings))
    return Context(history=history, when=datetime.fromtimestamp(held_out[user][1]))


@dataclass
class RecommenderRanker:
    """The full recommender: each user's context is their recent history (ratings as feedback) at
    the time of the held-out event; ``weights`` None means adaptive. Like the app (exclude seen,
    on by default), it never recommends an item already in the user's history."""

    recommender: Recommender
    weights: Weights | None = None
    name: str = "ctxrec"
    max_history: int = 50
    blank_context: bool = False  # score with the time left out (context-aware vs not)
    exclude_seen: bool = True

    def scores(self, users: list[str], split: Split, target: str) -> np.ndarray:
        ids = self.recommender.catalog.ids
        out = np.empty((len(users), len(ids)), dtype=np.float32)
        for row, user in enumerate(users):
            context = user_context(split, user, target, ids, self.max_history)
            weights = self.weights
            if self.blank_context:
                base = weights or self.recommender.recommend(context, k=1).weights
                weights = Weights.manual({**base.values, "context": 0.0})
            out[row] = self.recommender.score_all(context, weights)
            if self.exclude_seen:
                out[row, split.histories[user]] = -np.inf
        return out


@dataclass
class EvalResult:
    """Per-user outcomes and their means, labelled with how they were measured."""

    model: str
    protocol: str
    split: str
    k: int
    per_user: pd.DataFrame  # user, rank, hr, ndcg, mrr
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict:
        means = self.per_user[["hr", "ndcg", "mrr"]].mean()
        return {"model": self.model, "protocol": self.protocol, "split": self.split, "k": self.k,
                "users": len(self.per_user), f"HR@{self.k}": float(means["hr"]),
                f"NDCG@{self.k}": float(means["ndcg"]), f"MRR@{self.k}": float(means["mrr"]),
                **self.extra}


def evaluate(ranker: Ranker, split: Split, k: int = 10, target: Literal["valid", "test"] = "test",
             protocol: Literal["full", "sampled"] = "full", mask_history: bool = False,
             n_negatives: int = 100, sampling: Literal["uniform", "popularity"] = "uniform",
             seed: int = 0, batch: int = 128, users: list[str] | None = None,
             progress: Callable[[int, int], None] | None = None) -> EvalResult:
    """Rank each user's held-out item and score the ranking.

    Args:
        protocol: ``full`` ranks against every item; ``sampled`` against ``n_negatives`` items the
            user never interacted with, drawn ``uniform``ly or by ``popularity``.
        mask_history: (full) remove the user's training items from the candidates.
        users: a subset to evaluate (default: every user in the split).
    """
    held_out = split.valid if target == "valid" else split.test
    users = list(held_out) if users is None else users
    rng = np.random.default_rng(seed)
    n_items = len(split.train_counts)
    popularity = split.train_counts + 1.0
    popularity /= popularity.sum()
    ranks = np.empty(len(users))
    for start in range(0, len(users), batch):
        chunk = users[start:start + batch]
        scores = np.array(ranker.scores(chunk, split, target), dtype=np.float64)
        targets = np.array([held_out[u][0] for u in chunk])
        for row, user in enumerate(chunk):
            seen = split.histories[user]
            if protocol == "sampled":
                allowed = np.ones(n_items, dtype=bool)
                allowed[seen] = False
                allowed[targets[row]] = False
                pool = np.flatnonzero(allowed)
                p = popularity[pool] / popularity[pool].sum() if sampling == "popularity" else None
                negatives = rng.choice(pool, size=min(n_negatives, len(pool)), replace=False, p=p)
                keep = np.zeros(n_items, dtype=bool)
                keep[negatives] = True
                keep[targets[row]] = True
                scores[row, ~keep] = -np.inf
            elif mask_history:
                mask = np.zeros(n_items, dtype=bool)
                mask[seen] = True
                mask[targets[row]] = False
                scores[row, mask] = -np.inf
        ranks[start:start + len(chunk)] = rank_of(scores, targets)
        if progress:
            progress(min(start + batch, len(users)), len(users))
    inside = ranks <= k
    per_user = pd.DataFrame({"user": users, "rank": ranks, "hr": inside.astype(float),
                             "ndcg": np.where(inside, 1.0 / np.log2(ranks + 1), 0.0),
                             "mrr": np.where(inside, 1.0 / ranks, 0.0)})
    label = (f"full ranking{' (history masked)' if mask_history else ''}" if protocol == "full"
             else f"{n_negatives} sampled negatives ({sampling})")
    return EvalResult(ranker.name, label, f"{split.name}, {target}", k, per_user)


def bootstrap_ci(values: np.ndarray, n: int = 2000, level: float = 0.95, seed: int = 0
                 ) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over users."""
    rng = np.random.default_rng(seed)
    values = np.asarray(values, dtype=float)
    means = values[rng.integers(0, len(values), (n, len(values)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def paired_test(a: np.ndarray, b: np.ndarray, n: int = 10_000, seed: int = 0) -> float:
    """Two-sided p-value that per-user metrics ``a`` and ``b`` have the same mean (sign-flip
    randomisation test on the paired differences)."""
    rng = np.random.default_rng(seed)
    diff = np.asarray(a, float) - np.asarray(b, float)
    observed = abs(diff.mean())
    flips = rng.choice([-1.0, 1.0], size=(n, len(diff)))
    return float(((np.abs((flips * diff).mean(axis=1)) >= observed - 1e-12).sum() + 1) / (n + 1))


def ablations(recommender: Recommender, base: Weights) -> dict[str, RecommenderRanker]:
    """The recommender with each component dropped, and each component alone."""
    rankers = {"all components": RecommenderRanker(recommender, base, name="all components")}
    for c in COMPONENTS:
        if base[c] == 0:
            continue
        rankers[f"without {c}"] = RecommenderRanker(
            recommender, Weights.manual({**base.values, c: 0.0}), name=f"without {c}")
        rankers[f"{c} only"] = RecommenderRanker(
            recommender, Weights.manual({c: base[c]}), name=f"{c} only")
    return rankers

