"""Splits: each user's interactions cut into a training history and held-out events."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from ..data.catalog import Catalog
from ..data.context import Context, utc_seconds
from ..rank.query import Query

__all__ = ["HeldOut", "SPLITS", "Split", "TIME_ORDERS", "TimeOrder", "leave_last_out",
           "random_split", "temporal_split"]


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
        history_times: user → each training event's wall-clock time (logs with time).
        history_counts: user → how often each training event used its item (logs with counts).
    """

    histories: dict[str, np.ndarray]
    ratings: dict[str, np.ndarray]
    valid: dict[str, HeldOut]
    test: dict[str, HeldOut]
    train_counts: np.ndarray
    name: str
    history_keys: dict[str, np.ndarray] = field(default_factory=dict)
    history_times: dict[str, np.ndarray] = field(default_factory=dict)
    history_counts: dict[str, np.ndarray] = field(default_factory=dict)

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
        times, counts = self.history_times.get(user), self.history_counts.get(user)
        earlier = self.valid.get(user) if target == "test" else None
        if earlier is not None:
            items = np.append(items, earlier.item)
            ratings = np.append(ratings, earlier.rating)
            keys = np.append(keys, earlier.key)
            if times is not None:
                clock = earlier.timestamp if earlier.context is None or \
                    earlier.timestamp is None else utc_seconds(earlier.context.when)
                times = np.append(times, np.nan if clock is None else clock)
            if counts is not None:
                counts = np.append(counts, 1.0)
        return Query(user, items, ratings, keys, event.timestamp, event.context, event.key,
                     times, counts)

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
    histories, ratings, valid, test, times_of = {}, {}, {}, {}, {}
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
        times_of[user] = times[keep].astype(np.float64)
        valid[user] = HeldOut(int(items[valid_at]), float(times[valid_at]), rated[valid_at])
        test[user] = HeldOut(int(items[test_at]), float(times[test_at]), rated[test_at])
        np.add.at(counts, items[keep], 1)
    return Split(histories, ratings, valid, test, counts, name, history_times=times_of)
