"""Interaction logs whose events carry their context, and the context-aware evaluation on them.

Two kinds of log are read: events with timestamps (the time becomes daypart, weekday/weekend and
season) and events with categorical context columns (daytime, weekday, weekend flag, home/work,
city, companions), as in public context-aware datasets. Column names are mapped by the person;
values the vocabulary does not know are tolerated and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from .catalog import COMPANIONS, Catalog
from .context import Context, HistoryEntry
from .evaluate import bootstrap_ci, paired_test
from .metrics import rank_of
from .recommender import Recommender
from .weights import Weights

__all__ = ["ColumnMap", "ContextEvents", "compare_with_blank_context", "read_context_log"]

_HOURS = {"morning": 8, "midday": 12, "noon": 12, "afternoon": 15, "evening": 19, "night": 22,
          "late": 23, "dawn": 6}
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONDAY = datetime(2026, 11, 23)  # any Monday: categorical logs name a weekday, not a date
_PLACES = {"home": "home", "work": "work", "office": "work", "school": "work",
           "commute": "commute", "car": "commute", "transport": "commute", "city": "city",
           "outdoors": "outdoors", "outside": "outdoors", "gym": "gym", "travel": "travel"}


@dataclass(frozen=True)
class ColumnMap:
    """Which column of the events file holds what. ``None`` means the log lacks it."""

    user: str = "user"
    item: str = "item"
    timestamp: str | None = None  # seconds since 1970, or an ISO date and time
    daytime: str | None = None  # morning / afternoon / evening / night …
    weekday: str | None = None  # monday … sunday
    weekend: str | None = None  # weekend / weekday, or 1 / 0, true / false
    place: str | None = None  # home / work / …
    city: str | None = None
    companions: str | None = None  # alone / partner / friends / family / kids / colleagues


@dataclass
class ContextEvents:
    """Events in order, each with its own Context (history filled in at evaluation time)."""

    users: list[str]
    items: list[str]
    contexts: list[Context]
    unknown_values: dict[str, int] = field(default_factory=dict)


def read_context_log(events: str | Path, mapping: ColumnMap, catalog: Catalog,
                     sep: str | None = None) -> ContextEvents:
    """Read an events file (comma- or tab-separated; detected when ``sep`` is None).

    Raises:
        ValueError: a mapped column is missing from the file (the message lists what it has).
    """
    table = pd.read_csv(events, sep=sep, engine="python", dtype=str, keep_default_na=False)
    table.columns = [c.strip() for c in table.columns]
    wanted = {k: v for k, v in vars(mapping).items() if v is not None}
    missing = [f"{k}={v}" for k, v in wanted.items() if v not in table.columns]
    if missing:
        raise ValueError(f"columns not in {Path(events).name}: {', '.join(missing)} (it has: "
                         f"{', '.join(table.columns)})")
    unknown: dict[str, int] = {}
    contexts = [_context(row, mapping, unknown) for row in table.to_dict("records")]
    known = [catalog.position(str(i)) is not None for i in table[mapping.item]]
    if not any(known):
        raise ValueError(f"no event's item is in {catalog.name}: check the item column mapping")
    keep = np.flatnonzero(known)
    return ContextEvents(users=[str(table[mapping.user].iloc[i]) for i in keep],
                         items=[str(table[mapping.item].iloc[i]) for i in keep],
                         contexts=[contexts[i] for i in keep], unknown_values=unknown)


def _context(row: dict, m: ColumnMap, unknown: dict[str, int]) -> Context:
    def value(column: str | None) -> str:
        return str(row.get(column, "")).strip().lower() if column else ""

    def miss(kind: str) -> None:
        unknown[kind] = unknown.get(kind, 0) + 1

    when = _MONDAY + timedelta(days=2, hours=12)  # a neutral Wednesday noon
    if value(m.timestamp):
        raw = value(m.timestamp)
        try:
            when = datetime.fromtimestamp(int(raw)) if raw.isdigit() else \
                datetime.fromisoformat(raw)
        except (ValueError, OSError):
            miss("timestamp")
    else:
        day = value(m.weekday)
        weekend = value(m.weekend)
        if day in _WEEKDAYS:
            when = _MONDAY + timedelta(days=_WEEKDAYS.index(day))
        elif weekend in ("weekend", "1", "true", "yes"):
            when = _MONDAY + timedelta(days=5)
        elif weekend in ("weekday", "workday", "0", "false", "no"):
            when = _MONDAY + timedelta(days=2)
        elif day or weekend:
            miss("weekday")
        daytime = value(m.daytime)
        if daytime in _HOURS:
            when = when.replace(hour=_HOURS[daytime])
        elif daytime:
            miss("daytime")
    place = _PLACES.get(value(m.place), "home")
    if value(m.place) and value(m.place) not in _PLACES:
        miss("place")
    companions = tuple(c for c in value(m.companions).replace(";", ",").split(",")
                       if c in COMPANIONS)
    return Context(when=when, place=place, city=value(m.city).title(), companions=companions)


def compare_with_blank_context(recommender: Recommender, events: ContextEvents, k: int = 10,
                               max_history: int = 50) -> dict:
    """Each user's last event is ranked (full ranking, seen items excluded) with its own context
    and with the context blanked, on the same events; history = the user's earlier items.

    Returns:
        JSON-ready summary: HR@k and NDCG@k for both, 95 % intervals, and the paired p-value.
    """
    by_user: dict[str, list[int]] = {}
    for index, user in enumerate(events.users):
        by_user.setdefault(user, []).append(index)
    outcomes = {"context-aware": [], "context blanked": []}
    for indices in by_user.values():
        if len(indices) < 2:
            continue
        last = indices[-1]
        history = tuple(HistoryEntry(events.items[i]) for i in indices[:-1][-max_history:])
        context = replace(events.contexts[last], history=history)
        target = recommender.catalog.position(events.items[last])
        weights = recommender.recommend(context, k=1).weights
        blank = Weights.manual({**weights.values, "context": 0.0})
        for name, w in (("context-aware", weights), ("context blanked", blank)):
            scores = recommender.score_all(context, w).astype(np.float64)
            seen = [recommender.catalog.position(h.item_id) for h in history]
            scores[[s for s in seen if s != target]] = -np.inf
            outcomes[name].append(rank_of(scores[None, :], np.array([target]))[0])
    summary: dict = {"protocol": "full ranking, seen items excluded", "k": k,
                     "events": len(outcomes["context-aware"]),
                     "unknown_values": events.unknown_values}
    ndcg = {}
    for name, ranks in outcomes.items():
        ranks = np.asarray(ranks)
        hit = ranks <= k
        ndcg[name] = np.where(hit, 1 / np.log2(ranks + 1), 0.0)
        summary[name] = {f"HR@{k}": float(hit.mean()), f"NDCG@{k}": float(ndcg[name].mean()),
                         "ndcg_ci95": list(bootstrap_ci(ndcg[name]))}
    summary["p_ndcg"] = paired_test(ndcg["context-aware"], ndcg["context blanked"])
    return summary
