"""The context of one event as named categorical fields, and the schema a model learns them in.

An event's fields come from two places: the log's context columns (its context key,
``"place=home|weather=rain"``) and, when the log has times, the wall clock of the event (hour,
daypart, weekday, weekend, season). A column the person mapped wins over a time field of the same
name. Every field has an "unknown" value (code 0): a value the log left empty, one the schema never
saw in training, and a field a person blinds all read as unknown.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .context import Context, daypart, season, utc_seconds, utc_time

__all__ = ["TIME_FIELDS", "ContextSchema", "column_fields", "context_fields", "event_fields",
           "key_fields"]

TIME_FIELDS = ("hour", "daypart", "weekday", "weekend", "season")
# what read_context_log writes into the key from an event's time; the time fields replace them
_KEY_TIME_FIELDS = ("daypart", "day")
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def key_fields(key: str) -> dict[str, str]:
    """``"place=home|weather="`` → ``{"place": "home", "weather": ""}``."""
    pairs = (part.partition("=") for part in key.split("|") if part)
    return {name: value for name, _, value in pairs}


def column_fields(key: str, timed: bool) -> set[str]:
    """The fields of a context key that come from the log's columns (in a log with times, the
    key's daypart and day type come from the time)."""
    return {name for name in key_fields(key) if not (timed and name in _KEY_TIME_FIELDS)}


def _time_fields(clock: float) -> dict[str, str]:
    when = utc_time(clock)
    return {"hour": f"{when.hour:02d}", "daypart": daypart(when.hour),
            "weekday": _WEEKDAYS[when.weekday()],
            "weekend": "weekend" if when.weekday() >= 5 else "weekday",
            "season": season(when.month)}


def event_fields(key: str, clock: float | None) -> dict[str, str]:
    """The fields of one event: its context key's, plus the time fields when ``clock`` (the
    wall-clock time as seconds since 1970 read as UTC) is known and not NaN."""
    fields = key_fields(key)
    if clock is None or np.isnan(clock):
        return fields
    columns = {k: v for k, v in fields.items() if k not in _KEY_TIME_FIELDS}
    return {**_time_fields(float(clock)), **columns}


def context_fields(context: Context) -> dict[str, str]:
    """The fields of a context edited in the app, named as a log's mapped columns name them
    (place, city, companions, device), the time fields, and its ``extra`` ones (weather …),
    which win over the others."""
    fields = _time_fields(utc_seconds(context.when))
    fields.update(place=context.place, device=context.device, city=context.city.lower(),
                  companions=",".join(context.companions))
    return {**fields, **dict(context.extra)}


@dataclass(frozen=True)
class ContextSchema:
    """The context fields a model was trained with and the values it knows of each.

    Attributes:
        fields: field names, in the order of the model's context inputs.
        vocabularies: per field, its known values; value ``i`` has code ``i + 1`` and code 0 is
            "unknown".
        from_time: the fields read from each event's time, not from a column (the app derives
            them from the date and time the person sets).
    """

    fields: tuple[str, ...]
    vocabularies: tuple[tuple[str, ...], ...]
    from_time: tuple[str, ...] = ()

    @classmethod
    def fit(cls, events: Iterable[dict[str, str]], min_count: int = 1,
            columns: Iterable[str] | None = None) -> ContextSchema:
        """The schema of training events: every field that is ever given, with the values seen
        at least ``min_count`` times (rarer ones read as unknown), most frequent first.
        ``columns`` names the fields that come from the log's columns (None: all); the time
        fields among the rest are marked ``from_time``."""
        counts: dict[str, Counter] = {}
        for fields in events:
            for name, value in fields.items():
                if value:
                    counts.setdefault(name, Counter())[value] += 1
        names = tuple(sorted(counts, key=lambda n: (n not in TIME_FIELDS, n)))
        vocabularies = tuple(tuple(v for v, c in counts[n].most_common() if c >= min_count)
                             for n in names)
        kept = [(n, v) for n, v in zip(names, vocabularies) if v]
        columns = None if columns is None else set(columns)
        timed = tuple(n for n, _ in kept if columns is not None and n in TIME_FIELDS and
                      n not in columns)
        return cls(tuple(n for n, _ in kept), tuple(v for _, v in kept), timed)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Codes per field, "unknown" included."""
        return tuple(len(v) + 1 for v in self.vocabularies)

    def codes(self, fields: dict[str, str], blind: Iterable[str] = ()) -> np.ndarray:
        """(F,) codes of one event's fields; fields in ``blind`` and values the schema does not
        know are 0 (unknown)."""
        blind = set(blind)
        lookup = self._lookup()
        return np.array([0 if name in blind else lookup[i].get(fields.get(name, ""), 0)
                         for i, name in enumerate(self.fields)], dtype=np.int64)

    def codes_of(self, events: Sequence[dict[str, str]], blind: Iterable[str] = ()
                 ) -> np.ndarray:
        """(len(events), F) codes."""
        blind = tuple(blind)
        out = np.zeros((len(events), len(self.fields)), dtype=np.int64)
        for row, fields in enumerate(events):
            out[row] = self.codes(fields, blind)
        return out

    def _lookup(self) -> list[dict[str, int]]:
        cached = self.__dict__.get("_cache")
        if cached is None:
            cached = [{v: i + 1 for i, v in enumerate(vocab)} for vocab in self.vocabularies]
            object.__setattr__(self, "_cache", cached)
        return cached

    def to_dict(self) -> dict:
        return {"fields": list(self.fields),
                "vocabularies": {n: list(v) for n, v in zip(self.fields, self.vocabularies)},
                "from_time": list(self.from_time)}

    @classmethod
    def from_dict(cls, saved: dict) -> ContextSchema:
        """The schema as :meth:`to_dict` wrote it.

        Raises:
            ValueError: the saved schema is not one.
        """
        try:
            fields = tuple(str(n) for n in saved["fields"])
            return cls(fields, tuple(tuple(str(v) for v in saved["vocabularies"][n])
                                     for n in fields),
                       tuple(str(n) for n in saved.get("from_time", ())))
        except (KeyError, TypeError) as err:
            raise ValueError(f"the saved context schema is damaged ({err})") from err
