"""The two protocols on logs whose events carry their context.

- **repeat**: one held-out event per user, nothing masked, since people use the same items again
  (the target may be in the history);
- **discovery**: the held-out event is an item the user had not used before it, and every item
  the user used before is masked.

The held-out event is the user's last by time when the log has timestamps (ties broken at random),
and one random event per user when it has none; the seed is stated in the results. File order is
never taken as time: without timestamps the history is every other event of the user.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..data.catalog import Catalog
from ..data.context_log import ContextEvents
from .split import HeldOut, Split

__all__ = ["CONTEXT_PROTOCOLS", "ContextProtocol", "context_split", "held_out_events"]

ContextProtocol = Literal["repeat", "discovery"]
CONTEXT_PROTOCOLS: tuple[ContextProtocol, ...] = ("repeat", "discovery")


def held_out_events(events: ContextEvents, catalog: Catalog, protocol: ContextProtocol = "repeat",
                    seed: int = 0, by_time: bool | None = None
                    ) -> dict[str, tuple[int | None, np.ndarray]]:
    """Per user: the index of the held-out event (None when the user has none to hold out, or no
    event before it) and the indices of the events that count as before it (all the user's
    events when none is held out).

    ``by_time`` holds out the latest eligible event (default: when the log has timestamps); without
    it one eligible event is drawn at random with ``seed``. Training (``train --log``) calls this
    with the same arguments as evaluation, so it can leave out exactly the events evaluation
    holds out."""
    if protocol not in CONTEXT_PROTOCOLS:
        raise ValueError(f"unknown protocol '{protocol}'; choose from "
                         f"{', '.join(CONTEXT_PROTOCOLS)}")
    if by_time and events.timestamps is None:
        raise ValueError(f"{events.source or 'the log'} has no timestamp column, so its last "
                         "event cannot be held out: map timestamp=COLUMN, or hold out a random "
                         "event")
    by_time = events.timestamps is not None if by_time is None else by_time
    rng = np.random.default_rng(seed)
    positions = np.array([catalog.position(i) for i in events.items], dtype=np.int64)
    by_user: dict[str, list[int]] = {}
    for index, user in enumerate(events.users):
        by_user.setdefault(user, []).append(index)
    picks = {}
    for user, indices in by_user.items():
        indices = np.array(indices)
        chosen, earlier = _hold_out(indices, positions, events.timestamps, protocol, rng,
                                    by_time)
        picks[user] = (None, indices) if chosen is None or earlier.size == 0 else \
            (chosen, earlier)
    return picks


def context_split(events: ContextEvents, catalog: Catalog, protocol: ContextProtocol = "repeat",
                  seed: int = 0, by_time: bool | None = None) -> Split:
    """Hold out one event per user under ``protocol`` (see the module docstring and
    :func:`held_out_events`); the history is every event of the user before it (without
    timestamps: every other event). Users with no history, or (discovery) no event on an item new
    to them, are not evaluated; their events are training data for the baselines like everyone's
    history."""
    picks = held_out_events(events, catalog, protocol, seed, by_time)
    positions = np.array([catalog.position(i) for i in events.items], dtype=np.int64)
    keys = np.array(events.keys, dtype=object)
    histories, ratings, history_keys, test, times, counts_of = {}, {}, {}, {}, {}, {}
    counts = np.zeros(len(catalog))
    for user, (chosen, earlier) in picks.items():
        histories[user] = positions[earlier]
        ratings[user] = np.full(earlier.size, np.nan)
        history_keys[user] = keys[earlier]
        counts_of[user] = events.counts[earlier]
        if events.clock is not None:
            times[user] = events.clock[earlier]
        np.add.at(counts, positions[earlier], 1)
        if chosen is None:
            continue
        time = None if events.timestamps is None else float(events.timestamps[chosen])
        test[user] = HeldOut(int(positions[chosen]), time, context=events.contexts[chosen],
                             key=events.keys[chosen])
    timed = events.timestamps is not None if by_time is None else by_time
    held = "the last event by time" if timed else f"one random event per user (seed {seed})"
    name = f"{protocol}: {held}" + ("; items used before masked" if protocol == "discovery"
                                    else "; nothing masked")
    return Split(histories, ratings, {}, test, counts, name, history_keys, times, counts_of)


def _hold_out(indices: np.ndarray, positions: np.ndarray, timestamps: np.ndarray | None,
              protocol: ContextProtocol, rng: np.random.Generator, by_time: bool
              ) -> tuple[int | None, np.ndarray]:
    """The held-out event of one user's events and the events that count as before it."""
    items = positions[indices]
    if timestamps is None:
        _, slot, uses = np.unique(items, return_inverse=True, return_counts=True)
        eligible = np.ones(len(indices), dtype=bool) if protocol == "repeat" else uses[slot] == 1
        if not eligible.any():
            return None, indices[:0]
        pick = rng.choice(np.flatnonzero(eligible))
        return int(indices[pick]), np.delete(indices, pick)
    times = timestamps[indices]
    order = np.argsort(times, kind="stable")
    if protocol == "repeat":
        eligible = np.ones(len(indices), dtype=bool)
    else:  # an item is new at an event when no earlier event of the user has it: the event
        # falls at the item's first time of use
        _, slot = np.unique(items, return_inverse=True)
        first = np.full(slot.max() + 1, np.inf)
        np.minimum.at(first, slot, times)
        eligible = times == first[slot]
    if not eligible.any():
        return None, indices[:0]
    if by_time:
        latest = times[eligible].max()
        pick = int(rng.choice(np.flatnonzero(eligible & (times == latest))))
    else:
        pick = int(rng.choice(np.flatnonzero(eligible)))
    before = order[times[order] < times[pick]]
    return int(indices[pick]), indices[before]
