"""Cross-fitted tuning lists: moments the first stage has not been trained on.

A sequence model ranks the next item of its own training histories far better than an unseen
event (on ml-latest-small its top 20 holds the item used next at 56 % of training moments, at 18 %
of validation events), so a re-ranker tuned on lists from training moments learns from lists
easier than the ones it is used on. Here each user's last training events are held back, a copy
of the first stage is trained the same way without them (the proxy), and the tuning lists are
the proxy's top K at those events: lists as hard as the validation and test ones, from training
events only.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..data.catalog import Catalog
from ..evaluation.split import HeldOut, Split
from ..rank.query import Query
from ..sequence.train import SequenceRanker, TrainedModel, train_sequence_model
from .reranker import moment_query

__all__ = ["held_back", "proxy_first_stage"]


def held_back(split: Split, last: int, min_history: int = 3
              ) -> tuple[Split, list[Query], list[int]]:
    """``split`` with each user's last ``last`` training events held back (fewer when the history
    would keep under ``min_history`` items), and the moments of those events: the query (the items
    before it and its time) and the item used at it.

    The reduced split validates on each user's first held-back event, so the proxy stops early on
    events like the ones it makes lists for.
    """
    if last < 1:
        raise ValueError(f"hold back at least one event per user, not {last}")
    histories, ratings, valid = {}, {}, {}
    keys, times, counts = {}, {}, {}
    queries, targets = [], []
    for user in sorted(split.histories, key=str):
        items, marks = split.histories[user], split.ratings[user]
        when = split.history_times.get(user)
        cut = max(min_history, len(items) - last)
        histories[user], ratings[user] = items[:cut], marks[:cut]
        for source, kept in ((split.history_keys, keys), (split.history_times, times),
                             (split.history_counts, counts)):
            if user in source:
                kept[user] = source[user][:cut]
        if cut < len(items):
            valid[user] = HeldOut(int(items[cut]),
                                  None if when is None else float(when[cut]),
                                  float(marks[cut]))
        for t in range(cut, len(items)):
            queries.append(moment_query(split, user, t))
            targets.append(int(items[t]))
    train_counts = np.bincount(np.concatenate(list(histories.values())),
                               minlength=len(split.train_counts)).astype(split.train_counts.dtype)
    reduced = replace(split, histories=histories, ratings=ratings, valid=valid, test={},
                      train_counts=train_counts, history_keys=keys, history_times=times,
                      history_counts=counts,
                      name=f"{split.name}, each user's last {last} training events held back")
    return reduced, queries, targets


def proxy_first_stage(first: TrainedModel, split: Split, catalog: Catalog) -> SequenceRanker:
    """A copy of ``first`` trained the same way (its architecture, settings, seed and text
    vectors) on ``split``, for as many epochs as ``first`` needed to reach its best."""
    model = first.model
    vectors = model.text_vectors[1:].cpu().numpy() if hasattr(model, "text_vectors") else None
    train = replace(first.train, epochs=max(first.best_epoch, 1))
    proxy = train_sequence_model(split, catalog, first.config, train, vectors,
                                 encoder=first.encoder)
    return SequenceRanker(proxy)
