"""A person's recent history, and the time they ask, written as one query text for the encoder.

The frozen LM-text ranker averages the vectors of the items a person used. An encoder tuned on a
log (:mod:`ctxrec.tune.encoder`) instead learns to map the *text* of a recent history to the text
of the next item, so it is asked with the same text at ranking time: this module writes that
text once, for both.

The two queries see different things: the text holds the last ten titles and the time, the mean
of the item vectors the whole history. :func:`validated_history_ranker` adds the second to the
first at the weight that ranks the validation events best.
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
from .baselines import history_profiles
from .protocol import Protocol, evaluate_protocols
from .split import Split

__all__ = ["HISTORY_ITEMS", "PROFILE_WEIGHTS", "HistoryTextRanker", "history_text",
           "validated_history_ranker"]

HISTORY_ITEMS = 10  # the most recent items written into the query
PROFILE_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0)  # tried on the validation events, 0 = the text alone


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
    """Cosine between the encoded history text (:func:`history_text`) and every item, plus
    ``profile_weight`` times the cosine between the mean of the history's item vectors and it."""

    def __init__(self, encoder: TextEncoder, catalog: Catalog, vectors: np.ndarray,
                 name: str | None = None, max_items: int = HISTORY_ITEMS,
                 profile_weight: float = 0.0):
        self.encoder = encoder
        self.titles = catalog.items["title"].astype(str).tolist()
        self.vectors = vectors
        self.max_items = max_items
        self.profile_weight = profile_weight
        self._name = name
        self.validation: dict[float, float] | None = None  # validation NDCG@10 per weight tried
        self._encoded: dict[str, np.ndarray] = {}  # trying weights encodes each text once

    @property
    def name(self) -> str:
        if self._name:
            return self._name
        blend = f" + {self.profile_weight:g} × item mean" \
            if self.profile_weight or self.validation else ""
        return f"LM history text{blend} ({self.encoder.name})"

    @name.setter
    def name(self, name: str) -> None:
        self._name = name

    def query_text(self, query: Query) -> str:
        recent = query.items[max(0, len(query.items) - self.max_items):]
        return history_text([self.titles[i] for i in recent], query.timestamp)

    def scores(self, queries: Sequence[Query]) -> np.ndarray:
        texts = [self.query_text(q) for q in queries]
        missing = list(dict.fromkeys(t for t in texts if t not in self._encoded))
        if missing:
            self._encoded.update(zip(missing, self.encoder.encode(missing)))
        encoded = np.stack([self._encoded[t] for t in texts]).astype(np.float32)
        if self.profile_weight:
            encoded += self.profile_weight * history_profiles(self.vectors, queries)
        return (torch.from_numpy(np.ascontiguousarray(encoded)) @
                torch.from_numpy(np.ascontiguousarray(self.vectors, dtype=np.float32)).T).numpy()


def validated_history_ranker(encoder: TextEncoder, catalog: Catalog, vectors: np.ndarray,
                             split: Split, weights: Sequence[float] = PROFILE_WEIGHTS
                             ) -> HistoryTextRanker:
    """The history-text ranker at the profile weight whose validation NDCG@10 (full ranking,
    unmasked) is best (the smaller weight on a tie); its ``validation`` holds that NDCG per
    weight tried."""
    ranker = HistoryTextRanker(encoder, catalog, vectors)
    found = {}
    for weight in weights:
        ranker.profile_weight = weight
        result = evaluate_protocols(ranker, split, [Protocol("full")], target="valid")[0]
        found[float(weight)] = float(result.per_user["ndcg"].mean())
    ranker.profile_weight = max(found, key=lambda w: (found[w], -w))
    ranker.validation = found
    ranker._encoded.clear()  # the test's texts are other texts: keep no user's vector twice
    return ranker
