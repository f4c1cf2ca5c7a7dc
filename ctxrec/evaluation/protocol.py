"""Offline evaluation: splits, ranking protocols, baselines, per-user results and their uncertainty.

Every result names its protocol (full ranking or N sampled negatives, masked or not), split and K,
because the same model scores NDCG@10 ≈ 0.6 against 100 sampled negatives and ≈ 0.15 against the
whole catalog.
"""


from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from ..rank.query import Ranker
from ..rank.seen import SeenItems
from .metrics import single_target_metrics, target_position
from .split import Split

__all__ = ["EvalResult", "FULL_BOTH_WAYS", "NonFiniteScores", "Protocol", "evaluate",
           "evaluate_protocols"]


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
    items for every ranker. Metrics come from :func:`ctxrec.evaluation.metrics.single_target_metrics`.

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
        seen = SeenItems.of_histories([q.items for q in queries], n_items).dense().numpy()
        for protocol, rng, out in zip(protocols, rngs, outcomes):
            scores = raw.copy()
            for row in range(len(queries)):
                scores[row, ~_candidates(protocol, seen[row], targets[row], popularity,
                                         rng)] = -np.inf
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


def _candidates(protocol: Protocol, seen: np.ndarray, target: int, popularity: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """(N,) booleans: the items this protocol ranks the target against, the target included;
    ``seen`` (N,) marks the items used before the held-out event."""
    n_items = len(seen)
    if protocol.kind == "sampled":
        allowed = ~seen
        allowed[target] = False
        pool = np.flatnonzero(allowed)
        p = popularity[pool] / popularity[pool].sum() if protocol.sampling == "popularity" \
            else None
        keep = np.zeros(n_items, dtype=bool)
        keep[rng.choice(pool, size=min(protocol.n_negatives, len(pool)), replace=False, p=p)] = True
    else:
        keep = ~seen if protocol.mask_history else np.ones(n_items, dtype=bool)
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
