"""Interaction logs whose events carry their context.

Two kinds of log are read: events with timestamps (the time becomes daypart, weekday/weekend and
season; seconds since 1970 and ISO times without a zone are read as UTC, ISO times with a zone keep
that zone's wall clock) and events with categorical context columns (daytime, weekday, weekend
flag, home/work, city, companions, and any other column named with ``extra``), as in public
context-aware datasets. Column names are mapped by the person; values the vocabulary does not know
are tolerated and counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from .catalog import COMPANIONS, Catalog
from .context import DEVICE_CHOICES, Context, utc_seconds, utc_time

__all__ = ["ColumnMap", "ContextEvents", "read_context_log"]

_HOURS = {"morning": 8, "midday": 12, "noon": 12, "afternoon": 15, "evening": 19, "night": 22,
          "late": 23, "dawn": 6}
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONDAY = datetime(2026, 11, 23)  # any Monday: categorical logs name a weekday, not a date
_PLACES = {"home": "home", "work": "work", "office": "work", "school": "work",
           "commute": "commute", "car": "commute", "transport": "commute", "city": "city",
           "cinema": "city", "restaurant": "city",
           "outdoors": "outdoors", "outside": "outdoors", "gym": "gym", "travel": "travel"}
_COMPANIONS = {"solo": "alone", "couple": "partner", "couples": "partner", "business": "colleagues",
               "children": "kids", "child": "kids", "friend": "friends", **{c: c for c in COMPANIONS}}
_MISSING = {"", "na", "n/a", "nan", "null", "none", "unknown", "?"}  # how logs write "not given"
_CONTEXT_FIELDS = ("daytime", "weekday", "weekend", "place", "city", "companions", "device")


@dataclass(frozen=True)
class ColumnMap:
    """Which column of the events file holds what. ``None`` means the log lacks it.

    Attributes:
        extra: other categorical context columns (name → column), e.g. weather; they take part
            in the "same context" of the baselines.
    """

    user: str = "user"
    item: str = "item"
    timestamp: str | None = None  # seconds since 1970, or an ISO date and time
    daytime: str | None = None  # morning / afternoon / evening / night …
    weekday: str | None = None  # monday … sunday
    weekend: str | None = None  # weekend / weekday, or 1 / 0, true / false
    place: str | None = None  # home / work / …
    city: str | None = None
    companions: str | None = None  # alone / partner / friends / family / kids / colleagues
    device: str | None = None  # phone / tablet / laptop / tv …
    count: str | None = None  # how often the item was used in the event (default 1)
    extra: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_pairs(cls, fields: Iterable[str], extra: Iterable[str] = ()) -> ColumnMap:
        """A map from ``FIELD=COLUMN`` strings (``fields``) and ``NAME=COLUMN`` strings
        (``extra``), as typed on the command line or the Evaluate page.

        Raises:
            ValueError: a pair without ``=``, or a field this map does not know.
        """
        known = [f for f in cls.__dataclass_fields__ if f != "extra"]
        named = dict(_pair(p, known) for p in fields)
        unknown = [k for k in named if k not in known]
        if unknown:
            raise ValueError(f"unknown field '{unknown[0]}' (fields: {', '.join(known)})")
        return cls(**named, extra=tuple(_pair(p, known) for p in extra))

    def columns(self) -> dict[str, str]:
        named = {k: v for k, v in vars(self).items() if k != "extra" and v is not None}
        return {**named, **dict(self.extra)}


def _pair(text: str, fields: list[str]) -> tuple[str, str]:
    name, sep, column = text.partition("=")
    if not sep or not name.strip() or not column.strip():
        raise ValueError(f"'{text}' is not NAME=COLUMN (fields: {', '.join(fields)})")
    return name.strip(), column.strip()


@dataclass
class ContextEvents:
    """Events in file order, each with its own Context (history filled in at evaluation time).

    Attributes:
        timestamps: seconds since 1970 (UTC) per event, or None when the log has no time.
        keys: each event's context as one string ("field=value|…"; unknown values are empty).
        clock: each event's wall-clock time as seconds since 1970 read as UTC (differs from
            ``timestamps`` only for ISO times with a zone), or None when the log has no time.
        counts: how often the item was used in each event (1 when the log has no count).
    """

    users: list[str]
    items: list[str]
    contexts: list[Context]
    keys: list[str]
    timestamps: np.ndarray | None
    unknown_values: dict[str, int] = field(default_factory=dict)
    source: str = ""
    clock: np.ndarray | None = None
    counts: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.clock is None and self.timestamps is not None:
            self.clock = self.timestamps
        if self.counts is None:
            self.counts = np.ones(len(self.items))


def read_context_log(events: str | Path | IO, mapping: ColumnMap, catalog: Catalog,
                     sep: str | None = None) -> ContextEvents:
    """Read an events file or an open file (comma- or tab-separated; detected when ``sep`` is
    None). Events whose
    item is not in the catalog, or whose timestamp cannot be read, are left out and counted.

    Raises:
        ValueError: a mapped column is missing from the file (the message lists what it has), or
            no event's item is in the catalog.
    """
    source = Path(getattr(events, "name", None) or str(events)).name
    try:
        table = pd.read_csv(events, sep=sep, engine="python", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{source} is not a readable CSV or TSV file ({err})") from err
    table.columns = [c.strip() for c in table.columns]
    missing = [f"{k}={v}" for k, v in mapping.columns().items() if v not in table.columns]
    if missing:
        raise ValueError(f"columns not in {source}: {', '.join(missing)} (it has: "
                         f"{', '.join(table.columns)})")
    unknown: dict[str, int] = {}
    parsed = [_event(row, mapping, unknown) for row in table.to_dict("records")]
    known = np.array([catalog.position(str(i)) is not None for i in table[mapping.item]])
    if not known.any():
        raise ValueError(f"no event's item is in {catalog.name}: check the item column mapping")
    if (~known).any():
        unknown["item not in the catalog"] = int((~known).sum())
    timed = mapping.timestamp is not None
    keep = np.flatnonzero(known & np.array([not timed or p[2] is not None for p in parsed]))
    counts = None
    if mapping.count is not None:
        counts = pd.to_numeric(table[mapping.count].iloc[keep], errors="coerce").to_numpy(float)
        bad = ~np.isfinite(counts) | (counts <= 0)
        if bad.any():
            unknown["count (read as 1)"] = int(bad.sum())
            counts[bad] = 1.0
    return ContextEvents(
        users=[str(table[mapping.user].iloc[i]) for i in keep],
        items=[str(table[mapping.item].iloc[i]) for i in keep],
        contexts=[parsed[i][0] for i in keep], keys=[parsed[i][1] for i in keep],
        timestamps=np.array([parsed[i][2] for i in keep], dtype=np.float64) if timed else None,
        unknown_values=unknown, source=source, counts=counts,
        clock=np.array([utc_seconds(parsed[i][0].when) for i in keep]) if timed else None)


def _value(row: dict, column: str | None) -> str:
    text = str(row.get(column, "")).strip().lower() if column else ""
    return "" if text in _MISSING else text


def _event(row: dict, m: ColumnMap, unknown: dict[str, int]) -> tuple[Context, str, float | None]:
    """One row → its Context, its context key and its time (seconds since 1970, UTC)."""
    def miss(kind: str) -> None:
        unknown[kind] = unknown.get(kind, 0) + 1

    when, seconds = _MONDAY + timedelta(days=2, hours=12), None  # a neutral Wednesday noon
    key: dict[str, str] = {}
    if m.timestamp is not None:
        parsed = _parse_time(_value(row, m.timestamp))
        if parsed is None:
            miss("timestamp")
        else:
            when, seconds = parsed
            key.update(daypart=Context(when=when).daypart, day=Context(when=when).day_type)
    day, weekend, daytime = _value(row, m.weekday), _value(row, m.weekend), _value(row, m.daytime)
    if day in _WEEKDAYS:
        named = _MONDAY + timedelta(days=_WEEKDAYS.index(day))
    elif weekend in ("weekend", "1", "true", "yes"):
        named = _MONDAY + timedelta(days=5)
    elif weekend in ("weekday", "workday", "0", "false", "no"):
        named = _MONDAY + timedelta(days=2)
    else:
        named = when
        if day or weekend:
            miss("weekday")
    if daytime in _HOURS:
        named = named.replace(hour=_HOURS[daytime])
    elif daytime:
        miss("daytime")
    if seconds is None:  # a real time beats the named day and daytime
        when = named
    place_text = _value(row, m.place)
    if place_text and place_text not in _PLACES:
        miss("place")
    companions = tuple(_COMPANIONS[c.strip()] for c in
                       _value(row, m.companions).replace(";", ",").split(",")
                       if c.strip() in _COMPANIONS)
    for name in _CONTEXT_FIELDS:
        if getattr(m, name) is not None:
            key[name] = _value(row, getattr(m, name))
    for name, column in m.extra:
        key[name] = _value(row, column)
    device = _value(row, m.device)
    context = Context(when=when, place=_PLACES.get(place_text, "home"),
                      city=_value(row, m.city).title(), companions=companions,
                      device=device if device in DEVICE_CHOICES else "phone")
    return context, "|".join(f"{k}={v}" for k, v in key.items()), seconds


def _parse_time(raw: str) -> tuple[datetime, float] | None:
    """(wall-clock time, seconds since 1970) of a timestamp: numbers are seconds since 1970 in
    UTC; ISO times without a zone are UTC; with a zone, the wall clock is that zone's."""
    try:
        if raw.replace(".", "", 1).isdigit():
            seconds = float(raw)
            return utc_time(seconds), seconds
        parsed = datetime.fromisoformat(raw)
    except (ValueError, OSError, OverflowError):
        return None
    if parsed.tzinfo is None:
        return parsed, parsed.replace(tzinfo=timezone.utc).timestamp()
    return parsed.replace(tzinfo=None), parsed.timestamp()
