"""The recommender as a :class:`~ctxrec.rank.query.Ranker`, and its ablations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .query import Query, query_context
from .recommender import Recommender
from .weights import COMPONENTS, Weights

__all__ = ["RecommenderRanker", "ablations"]


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
            out[row] = self.recommender.fused_scores(context, weights)
        return out


def ablations(recommender: Recommender, base: Weights) -> dict[str, RecommenderRanker]:
    """The recommender with each component dropped, and each component alone (constraints are
    left out: they act only with limits read from an intent, which logs do not have)."""
    rankers = {"all components": RecommenderRanker(recommender, base, name="all components")}
    for c in COMPONENTS:
        if base[c] == 0 or c == "constraints":
            continue
        rankers[f"without {c}"] = RecommenderRanker(
            recommender, Weights.manual({**base.values, c: 0.0}), name=f"without {c}")
        rankers[f"{c} only"] = RecommenderRanker(
            recommender, Weights.manual({c: base[c]}), name=f"{c} only")
    return rankers
