"""What every ranker answers: a :class:`Query` (what is known at the moment of one
recommendation) in, one score per catalog item out.

Evaluation, the CLI and the app rank through this one protocol, so a baseline, the recommender, a
sequence model and the LLM re-ranker are compared on the same information.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from ..data.context import Context, HistoryEntry, utc_seconds, utc_time

__all__ = ["Query", "Ranker", "query_context"]


@dataclass(frozen=True)
class Query:
    """Everything a ranker may know when it ranks for one held-out event: what the user did
    before it (oldest first; in file order when the log has no time) and the event's own time and
    context — never its item. Every ranker gets the same queries, and every protocol masks the
    same items (``items``), so rankers are compared on equal information.

    Attributes:
        keys: the context key of each history event ("" when the log has none).
        times: each history event's wall-clock time (seconds since 1970 read as UTC; NaN where
            unknown), or None when the log has no time.
        counts: how often each history event used its item, or None (once each).
    """

    user: str
    items: np.ndarray
    ratings: np.ndarray
    keys: np.ndarray
    timestamp: float | None
    context: Context | None
    key: str
    times: np.ndarray | None = None
    counts: np.ndarray | None = None

    @property
    def clock(self) -> float | None:
        """The held-out event's wall-clock time, seconds since 1970 read as UTC."""
        if self.context is not None and self.timestamp is not None:
            return utc_seconds(self.context.when)
        return self.timestamp


class Ranker(Protocol):
    """Anything that scores every catalog item for a batch of held-out events. What a ranker
    learns from the training data it takes when it is built; at ranking time it sees only the
    queries."""

    name: str

    def scores(self, queries: Sequence[Query]) -> np.ndarray:
        """(len(queries), N) scores, higher is better."""


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
