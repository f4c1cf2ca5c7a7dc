"""A person's recent history, and the time they ask, written as one query text for the encoder.

The frozen LM-text ranker averages the vectors of the items a person used. An encoder tuned on a
log (:mod:`ctxrec.tune.encoder`) instead learns to map the *text* of a recent history to the text
of the next item, so it is asked with the same text at ranking time: this module writes that
text once, for both.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

import numpy as np
import torch

from ..data.catalog import Catalog
from ..data.context import daypart
from ..rank.query import Query
from ..text.encoders import TextEncoder

__all__ = ["HISTORY_ITEMS", "HistoryTextRanker", "history_text"]

HISTORY_ITEMS = 10  # the most recent items written into the query


def history_text(titles: Sequence[str], timestamp: float | None = None) -> str:
    """"Recently: A; B; C. Now: Saturday evening." — the titles oldest first, and the time of
    the request (UTC seconds) when it is known."""
    text = "Recently: " + "; ".join(" ".join(str(t).split()) for t in titles) + "." \
        if len(titles) else "Nothing yet."
    if timestamp is not None and np.isfinite(timestamp):
        when = datetime.fromtimestamp(float(timestamp), tz=timezone.utc)
        text += f" Now: {when:%A} {daypart(when.hour)}."
    return text


class HistoryTextRanker:
    """Cosine between the encoded history text (:func:`history_text`) and every item."""

    def __init__(self, encoder: TextEncoder, catalog: Catalog, vectors: np.ndarray,
                 name: str | None = None, max_items: int = HISTORY_ITEMS):
        self.encoder = encoder
        self.titles = catalog.items["title"].astype(str).tolist()
        self.vectors = vectors
        self.max_items = max_items
        self.name = name or f"LM history text ({encoder.name})"

    def query_text(self, query: Query) -> str:
        recent = query.items[max(0, len(query.items) - self.max_items):]
        return history_text([self.titles[i] for i in recent], query.timestamp)

    def scores(self, queries: Sequence[Query]) -> np.ndarray:
        encoded = self.encoder.encode([self.query_text(q) for q in queries])
        return (torch.from_numpy(np.ascontiguousarray(encoded, dtype=np.float32)) @
                torch.from_numpy(np.ascontiguousarray(self.vectors, dtype=np.float32)).T).numpy()
