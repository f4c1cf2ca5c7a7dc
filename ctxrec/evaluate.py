"""Offline evaluation: splits, ranking protocols, baselines, per-user results and their uncertainty.

Every result names its protocol (full ranking or N sampled negatives, masked or not), split and K,
because the same model scores NDCG@10 ≈ 0.6 against 100 sampled negatives and ≈ 0.15 against the
whole catalog.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Literal, Protocol

import numpy as np
import pandas as pd
import torch

from .catalog import Catalog
from .context import Context, HistoryEntry
from .metrics import single_target_metrics, target_position
from .recommender import Recommender
from .weights import COMPONENTS, Weights

__all__ = ["EvalResult", "FULL_BOTH_WAYS", "HeldOut", "ItemKNN", "NonFiniteScores", "Popularity", "Protocol",
           "Query", "Ranker", "RecommenderRanker", "Split", "SPLITS", "TIME_ORDERS",
           "TextSimilarity", "TimeOrder", "UserCounts", "ContextPopularity", "ablations",
           "bootstrap_ci", "evaluate", "summarise",
           "evaluate_protocols", "leave_last_out", "paired_test", "query_context", "random_split",
           "temporal_split", "utc_time"]


@dataclass(frozen=True)
class HeldOut:
    """One held-out event.

    Attributes:
        item: its catalog position (what the rankers must find).
        timestamp: seconds since 1970 in UTC, or None when the log has no time.
        rating: the event's rating (NaN when the log has none).
        context: the event's own situation (time, place, companions …; no history), when the log
            carries one; else the time alone stands for it.
        key: the event's context as one string, for the same-context baselines ("" when none).
    """

    item: int
    timestamp: float | None = None
    rating: float = float("nan")
    context: Context | None = None
    key: str = ""


@dataclass(frozen=True)
class Query:
    """Everything a ranker may know when it ranks for one held-out event: what the user did
    before it (oldest first; in file order when the log has no time) and the event's own time and
    context — never its item. Every ranker gets the same queries, and every protocol masks the
    same items (``items``), so rankers are compared on equal information.

    Attributes:
        keys: the context key of each history event ("" when the log has none).
    """

    user: str
    items: np.ndarray
    ratings: np.ndarray
    keys: np.ndarray
    timestamp: float | None
    context: Context | None
    key: str


@dataclass
class Split:
    """Interactions split per user into training history and held-out events.

    Attributes:
        histories: user → training items, oldest first (positions in the catalog).
        ratings: user → ratings of those items (NaN when the log has none).
        valid, test: user → the held-out event; ``valid`` may be empty (logs evaluated once).
        train_counts: (N,) training interactions per item.
        name: how the split was made.
        history_keys: user → the context key of each training event (logs with context).
    """

    histories: dict[str, np.ndarray]
    ratings: dict[str, np.ndarray]
    valid: dict[str, HeldOut]
    test: dict[str, HeldOut]
    train_counts: np.ndarray
    name: str
    history_keys: dict[str, np.ndarray] = field(default_factory=dict)

    def held_out(self, target: str) -> dict[str, HeldOut]:
        if target not in ("valid", "test"):
            raise ValueError(f"unknown target '{target}'; choose valid or test")
        return self.valid if target == "valid" else self.test

    def query(self, user: str, target: str) -> Query:
        """What may be known before ``user``'s ``target`` event: the training history, and for
        the test event also the validation event, which happened before it."""
        event = self.held_out(target)[user]
        items, ratings = self.histories[user], self.ratings[user]
        keys = self.history_keys.get(user, np.full(len(items), "", dtype=object))
        earlier = self.valid.get(user) if target == "test" else None
        if earlier is not None:
            items = np.append(items, earlier.item)
            ratings = np.append(ratings, earlier.rating)
            keys = np.append(keys, earlier.key)
        return Query(user, items, ratings, keys, event.timestamp, event.context, event.key)

    def queries(self, target: str, users: Sequence[str] | None = None) -> list[Query]:
        users = list(self.held_out(target)) if users is None else users
        return [self.query(user, target) for user in users]


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
        rated = group["rating"].to_numpy(dtype=np.float64)
        histories[user], ratings[user] = items[keep], rated[keep]
        valid[user] = HeldOut(int(items[valid_at]), float(times[valid_at]), rated[valid_at])
        test[user] = HeldOut(int(items[test_at]), float(times[test_at]), rated[test_at])
        np.add.at(counts, items[keep], 1)
    return Split(histories, ratings, valid, test, counts, name)


class Ranker(Protocol):
    """Anything that scores every catalog item for a batch of held-out events. What a ranker
    learns from the training data it takes when it is built; at ranking time it sees only the
    queries."""

    name: str

    def scores(self, queries: Sequence[Query]) -> np.ndarray:
        """(len(queries), N) scores, higher is better."""


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


def utc_time(timestamp: float) -> datetime:
    """Seconds since 1970 → the naive UTC date and time, whatever the server's time zone, so
    dayparts and weekdays of logs without a zone are the same on every machine."""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).replace(tzinfo=None)


def query_context(query: Query, ids: np.ndarray, max_history: int = 50) -> Context:
    """The recommender's context for a held-out event: its own situation (or, without one, its
    time in UTC) and the user's last ``max_history`` earlier items, ratings as feedback."""
    items, ratings = query.items[-max_history:], query.ratings[-max_history:]
    history = tuple(HistoryEntry(str(ids[i]), rating=None if np.isnan(r) else float(r))
                    for i, r in zip(items, ratings))
    if query.context is not None:
        return replace(query.context, history=history)
    if query.timestamp is None:
        return Context(history=history)
    return Context(history=history, when=utc_time(query.timestamp))


@dataclass
class RecommenderRanker:
    """The full recommender: each event's context is the user's recent history (ratings as
    feedback) at the time (and, where the log has it, in the situation) of the held-out event;
    ``weights`` None means adaptive. Which items are masked is the protocol's business, the same
    for every ranker, so this ranker scores seen items too."""

    recommender: Recommender
    weights: Weights | None = None
    name: str = "ctxrec"
    max_history: int = 50
    blank_context: bool = False  # score with the context component off (context-aware vs not)

    def scores(self, queries: Sequence[Query]) -> np.ndarray:
        ids = self.recommender.catalog.ids
        out = np.empty((len(queries), len(ids)), dtype=np.float32)
        for row, query in enumerate(queries):
            context = query_context(query, ids, self.max_history)
            weights = self.weights
            if self.blank_context:
                base = weights or self.recommender.recommend(context, k=1).weights
                weights = Weights.manual({**base.values, "context": 0.0})
            out[row] = self.recommender.score_all(context, weights)
        return out


@dataclass
class EvalResult:
    """Per-user outcomes and their means, labelled with how they were measured."""

    model: str
    protocol: str
    split: str
    k: int
    per_user: pd.DataFrame  # user, rank, hr, ndcg, mrr, candidates
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict:
        means = self.per_user[["hr", "ndcg", "mrr"]].mean()
        return {"model": self.model, "protocol": self.protocol, "split": self.split, "k": self.k,
                "users": len(self.per_user), f"HR@{self.k}": float(means["hr"]),
                f"NDCG@{self.k}": float(means["ndcg"]), f"MRR@{self.k}": float(means["mrr"]),
                **self.extra}


class NonFiniteScores(ValueError):
    """A ranker returned NaN or +inf scores: its figures would be meaningless."""


@dataclass(frozen=True)
class Protocol:
    """How held-out items are ranked.

    Attributes:
        kind: ``full`` ranks against every item; ``sampled`` against ``n_negatives`` items the
            user never used before the held-out event, drawn ``uniform``ly or by ``popularity``.
        mask_history: (full) remove every item the user used before the held-out event.
    """

    kind: Literal["full", "sampled"] = "full"
    mask_history: bool = False
    n_negatives: int = 100
    sampling: Literal["uniform", "popularity"] = "uniform"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("full", "sampled"):
            raise ValueError(f"unknown protocol '{self.kind}'; choose full or sampled")
        if self.sampling not in ("uniform", "popularity"):
            raise ValueError(f"unknown sampling '{self.sampling}'; choose uniform or popularity")

    @property
    def label(self) -> str:
        if self.kind == "sampled":
            return f"{self.n_negatives} sampled negatives ({self.sampling})"
        return f"full ranking ({'history masked' if self.mask_history else 'history not masked'})"


FULL_BOTH_WAYS = (Protocol("full", mask_history=False), Protocol("full", mask_history=True))


def evaluate(ranker: Ranker, split: Split, k: int = 10, target: Literal["valid", "test"] = "test",
             protocol: Literal["full", "sampled"] = "full", mask_history: bool = False,
             n_negatives: int = 100, sampling: Literal["uniform", "popularity"] = "uniform",
             seed: int = 0, batch: int = 128, users: list[str] | None = None,
             progress: Callable[[int, int], None] | None = None) -> EvalResult:
    """Rank each user's held-out item under one protocol (see :class:`Protocol`)."""
    return evaluate_protocols(ranker, split, [Protocol(protocol, mask_history, n_negatives,
                                                       sampling, seed)],
                              k=k, target=target, batch=batch, users=users, progress=progress)[0]


def evaluate_protocols(ranker: Ranker, split: Split, protocols: Sequence[Protocol], k: int = 10,
                       target: Literal["valid", "test"] = "test", batch: int = 128,
                       users: list[str] | None = None,
                       progress: Callable[[int, int], None] | None = None) -> list[EvalResult]:
    """Rank each user's held-out item once and score the ranking under each protocol.

    Every ranker receives the same :class:`Query` per user, and each protocol removes the same
    items for every ranker. Metrics come from :func:`ctxrec.metrics.single_target_metrics`.

    Raises:
        NonFiniteScores: the ranker gave a NaN or +inf score to any candidate.
    """
    held_out = split.held_out(target)
    users = list(held_out) if users is None else users
    rngs = [np.random.default_rng(p.seed) for p in protocols]
    n_items = len(split.train_counts)
    popularity = split.train_counts + 1.0
    outcomes = [{"better": np.empty(len(users)), "tied": np.empty(len(users), np.int64),
                 "candidates": np.empty(len(users), np.int64)} for _ in protocols]
    for start in range(0, len(users), batch):
        chunk = users[start:start + batch]
        queries = split.queries(target, chunk)
        raw = np.array(ranker.scores(queries), dtype=np.float64)
        _check_finite(raw, ranker.name, chunk)
        targets = np.array([held_out[u].item for u in chunk])
        for protocol, rng, out in zip(protocols, rngs, outcomes):
            scores = raw.copy()
            for row, query in enumerate(queries):
                scores[row, ~_candidates(protocol, query.items, targets[row], n_items,
                                         popularity, rng)] = -np.inf
            better, tied = target_position(scores, targets)
            rows = slice(start, start + len(chunk))
            out["better"][rows], out["tied"][rows] = better, tied
            out["candidates"][rows] = (scores > -np.inf).sum(axis=1)
        if progress:
            progress(min(start + batch, len(users)), len(users))
    results = []
    for protocol, out in zip(protocols, outcomes):
        metrics = single_target_metrics(out["better"], out["tied"], k)
        per_user = pd.DataFrame({"user": users, **metrics, "candidates": out["candidates"]})
        results.append(EvalResult(ranker.name, protocol.label, f"{split.name}, {target}", k,
                                  per_user))
    return results


def _candidates(protocol: Protocol, seen: np.ndarray, target: int, n_items: int,
                popularity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N,) booleans: the items this protocol ranks the target against, the target included."""
    if protocol.kind == "sampled":
        allowed = np.ones(n_items, dtype=bool)
        allowed[seen] = False
        allowed[target] = False
        pool = np.flatnonzero(allowed)
        p = popularity[pool] / popularity[pool].sum() if protocol.sampling == "popularity" \
            else None
        keep = np.zeros(n_items, dtype=bool)
        keep[rng.choice(pool, size=min(protocol.n_negatives, len(pool)), replace=False, p=p)] = True
    else:
        keep = np.ones(n_items, dtype=bool)
        if protocol.mask_history:
            keep[seen] = False
    keep[target] = True
    return keep


def _check_finite(scores: np.ndarray, name: str, users: Sequence[str]) -> None:
    broken = np.isnan(scores) | np.isposinf(scores)
    if broken.any():
        rows = np.flatnonzero(broken.any(axis=1))
        raise NonFiniteScores(
            f"{name} gave NaN or infinite scores for {len(rows)} of {len(users)} users (first: "
            f"user {users[rows[0]]}, {int(broken[rows[0]].sum())} items); the model may have "
            "diverged, so no figure is reported")


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


def summarise(results: Sequence[EvalResult], seed: int = 0
              ) -> tuple[list[dict], dict[str, pd.DataFrame]]:
    """JSON-ready rows with 95 % bootstrap intervals of HR, NDCG and MRR and, under each
    protocol, the paired p-value of every model's NDCG against the first model's; and each
    result's per-user table, keyed by model (and protocol, when there are several)."""
    protocols = list(dict.fromkeys(r.protocol for r in results))
    rows, per_user = [], {}
    for result in results:
        row = result.summary()
        for metric in ("hr", "ndcg", "mrr"):
            row[f"{metric}_ci95"] = list(bootstrap_ci(result.per_user[metric].to_numpy(),
                                                      seed=seed))
        key = result.model if len(protocols) == 1 else f"{result.model} · {result.protocol}"
        if key in per_user:
            raise ValueError(f"two results are named '{key}'; give the models distinct names")
        per_user[key] = result.per_user
        rows.append(row)
    for protocol in protocols:
        same = [i for i, r in enumerate(results) if r.protocol == protocol]
        first = results[same[0]]
        for i in same[1:]:
            rows[i][f"p_ndcg_vs_{first.model}"] = paired_test(
                results[i].per_user["ndcg"].to_numpy(), first.per_user["ndcg"].to_numpy(),
                seed=seed)
    return rows, per_user


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

