"""Offline evaluation of the LLM re-ranker: the first stage's top K per user, re-scored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..data.catalog import Catalog
from ..rank.components import top_in_order
from ..rank.query import Query, Ranker, query_context
from .rerank import LABELS, LLMReranker

__all__ = ["LLMRerankRanker"]


@dataclass
class LLMRerankRanker:
    """Any first-stage ranker followed by the LLM on its top ``top_k`` items, fused as in the app
    (:meth:`LLMReranker.contribution`: first-stage score + ``weight`` · the LLM's judgement
    standardised over the K items). The K items stay
    above the rest, so only their order changes and everything below keeps the first stage's."""

    base: Ranker
    reranker: LLMReranker
    catalog: Catalog
    weight: float = 1.0
    top_k: int = 20
    max_history: int = 10  # history items the prompt names
    name: str = "LLM re-rank"

    def scores(self, queries: Sequence[Query]) -> np.ndarray:
        base = np.array(self.base.scores(queries), dtype=np.float64)
        out = base.copy()
        ids = self.catalog.ids
        for row, query in enumerate(queries):
            finite = np.flatnonzero(np.isfinite(base[row]))
            k = min(self.top_k, finite.size,
                    len(LABELS) if self.reranker.scoring == "listwise" else finite.size)
            if k < 2:
                continue
            top = finite[top_in_order(base[row, finite], k)]  # a list reads in rank order
            context = query_context(query, ids, self.max_history)
            _, contribution = self.reranker.contribution(context, self.catalog, ids[top],
                                                         self.weight)
            fused = base[row, top] + contribution
            rest = np.delete(base[row], top)
            floor = rest[np.isfinite(rest)].max() if np.isfinite(rest).any() else 0.0
            out[row, top] = floor + 1.0 + (fused - fused.min())
        return out
