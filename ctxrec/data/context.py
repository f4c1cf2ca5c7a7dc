"""The context a person edits, and how it is put into words for the language models."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Literal

from .catalog import COMPANIONS, PLACES

__all__ = ["DEVICE_CHOICES", "SEASONS", "Context", "HistoryEntry", "context_from_params",
           "context_to_params", "utc_seconds", "utc_time",
           "daypart", "season"]

DEVICE_CHOICES = ("phone", "tablet", "laptop", "tv", "speaker", "none")
SEASONS = ("winter", "spring", "summer", "autumn")  # in the year's order

Daypart = Literal["morning", "midday", "afternoon", "evening", "night"]

PLACE_WORDS = {"home": "at home", "work": "at work", "commute": "commuting", "city": "out in town",
                "outdoors": "outdoors", "gym": "at the gym", "travel": "travelling"}
DEVICE_WORDS = {"phone": "on a phone", "tablet": "on a tablet", "laptop": "on a laptop",
                 "tv": "in front of a TV", "speaker": "with a speaker (audio only)",
                 "none": "with no screen at hand"}
COMPANION_WORDS = {"alone": "alone", "partner": "with a partner", "friends": "with friends",
                    "family": "with family", "kids": "with children", "colleagues": "with colleagues"}


def daypart(hour: int) -> Daypart:
    """Map an hour 0–23 to a daypart: morning 5–11, midday 11–14, afternoon 14–17, evening 17–21,
    night 21–5."""
    if 5 <= hour < 11:
        return "morning"
    if 11 <= hour < 14:
        return "midday"
    if 14 <= hour < 17:
        return "afternoon"
    if 17 <= hour < 21:
        return "evening"
    return "night"


def season(month: int, southern: bool = False) -> str:
    """Meteorological season; flipped for the southern hemisphere."""
    index = (month % 12) // 3
    return SEASONS[(index + 2) % 4] if southern else SEASONS[index]


@dataclass(frozen=True)
class HistoryEntry:
    """One item the person used before.

    Attributes:
        item_id: catalog id.
        feedback: +1 liked (👍), -1 disliked (👎), 0 used without a judgement.
        rating: optional explicit rating on 0.5–5; overrides ``feedback`` when given.
        when: optional time of use.
    """

    item_id: str
    feedback: int = 1
    rating: float | None = None
    when: datetime | None = None

    @property
    def signal(self) -> float:
        """Signed strength in [-1, 1]: ratings map 1→-1, 3→0, 5→+1."""
        if self.rating is not None:
            return max(-1.0, min(1.0, (self.rating - 3.0) / 2.0))
        return float(max(-1, min(1, self.feedback)))


@dataclass(frozen=True)
class Context:
    """Who, when, where and what for.

    Attributes:
        history: earlier items, oldest first.
        when: local date and time of the request.
        place: one of ``PLACES`` (home, work, commute, city, outdoors, gym, travel).
        city: free text, optional.
        lat, lon: optional coordinates; the latitude picks the hemisphere for the season.
        device: one of ``DEVICE_CHOICES``.
        companions: subset of ``COMPANIONS``; empty means unspecified.
        intent: what the person wants right now, in their own words.
        extra: other context fields, as a log names them (``("weather", "rain")``); a model
            trained on that log reads them, and they override the fields above of the same name.
    """

    history: tuple[HistoryEntry, ...] = ()
    when: datetime = field(default_factory=lambda: datetime.now().replace(second=0, microsecond=0))
    place: str = "home"
    city: str = ""
    lat: float | None = None
    lon: float | None = None
    device: str = "phone"
    companions: tuple[str, ...] = ()
    intent: str = ""
    extra: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.place not in PLACES:
            raise ValueError(f"place '{self.place}' is not one of {', '.join(PLACES)}")
        if self.device not in DEVICE_CHOICES:
            raise ValueError(f"device '{self.device}' is not one of {', '.join(DEVICE_CHOICES)}")
        unknown = [c for c in self.companions if c not in COMPANIONS]
        if unknown:
            raise ValueError(f"companions {unknown} not in {', '.join(COMPANIONS)}")
        if self.lat is not None and not -90 <= self.lat <= 90:
            raise ValueError(f"latitude {self.lat} is outside -90…90")
        if self.lon is not None and not -180 <= self.lon <= 180:
            raise ValueError(f"longitude {self.lon} is outside -180…180")

    @property
    def daypart(self) -> Daypart:
        return daypart(self.when.hour)

    @property
    def day_type(self) -> Literal["weekday", "weekend"]:
        return "weekend" if self.when.weekday() >= 5 else "weekday"

    @property
    def season(self) -> str:
        return season(self.when.month, southern=self.lat is not None and self.lat < 0)

    def with_feedback(self, item_id: str, feedback: int) -> Context:
        """A copy with ``item_id`` appended to the history (an earlier entry for it is replaced)."""
        kept = tuple(h for h in self.history if h.item_id != item_id)
        return replace(self, history=kept + (HistoryEntry(item_id, feedback),))

    def describe_situation(self, clock: bool = True) -> str:
        """Time, place, device and companions as one sentence (no history, no intent);
        ``clock=False`` leaves out the hour and minute (what the encoder reads: the minute is
        noise to it, and a sentence that changes every minute is never cached)."""
        when = self.when
        hour = f" ({when:%H:%M})" if clock else ""
        text = (f"{when:%A} {self.daypart}{hour} in {self.season}, on a {self.day_type}, "
                f"{PLACE_WORDS[self.place]}")
        if self.city.strip():
            text += f" in {self.city.strip()}"
        text += f", {DEVICE_WORDS[self.device]}"
        if self.companions:
            text += ", " + " and ".join(COMPANION_WORDS[c] for c in self.companions)
        given = [f"{name} {value}" for name, value in self.extra if value]
        if given:
            text += "; " + ", ".join(given)
        return text + "."

    def describe(self, titles: dict[str, str] | None = None, max_history: int = 10) -> str:
        """The whole context in natural language, for language models and for people.

        Args:
            titles: item id → title, so history reads as titles rather than ids.
            max_history: most recent history entries to mention.
        """
        titles = titles or {}
        lines = [f"Situation: {self.describe_situation()}"]
        recent = self.history[-max_history:]
        liked = [titles.get(h.item_id, h.item_id) for h in recent if h.signal > 0]
        disliked = [titles.get(h.item_id, h.item_id) for h in recent if h.signal < 0]
        if liked:
            lines.append("Recently enjoyed: " + "; ".join(liked) + ".")
        if disliked:
            lines.append("Did not enjoy: " + "; ".join(disliked) + ".")
        if self.intent.strip():
            lines.append(f"Wants now: {self.intent.strip()}")
        return "\n".join(lines)



def context_to_params(context: Context) -> dict[str, str]:
    """The context as URL query parameters (a shareable link); inverse of
    :func:`context_from_params`. Ratings and times of history entries are not carried."""
    params = {"when": context.when.strftime("%Y-%m-%dT%H:%M"), "place": context.place,
              "device": context.device}
    if context.city:
        params["city"] = context.city
    if context.companions:
        params["with"] = ",".join(context.companions)
    if context.intent:
        params["intent"] = context.intent[:2000]
    liked = [h.item_id for h in context.history if h.signal > 0]
    disliked = [h.item_id for h in context.history if h.signal < 0]
    if liked:
        params["liked"] = ",".join(liked)
    if disliked:
        params["disliked"] = ",".join(disliked)
    return params


def context_from_params(params: dict[str, str]) -> tuple[Context, list[str]]:
    """Build a context from URL query parameters, skipping values that do not parse.

    Returns:
        the context and one message per ignored value, saying why.
    """
    problems: list[str] = []
    fields: dict = {}
    if "when" in params:
        try:
            fields["when"] = datetime.fromisoformat(params["when"]).replace(second=0,
                                                                            microsecond=0)
        except ValueError:
            problems.append(f"when='{params['when']}' is not a date and time like "
                            "2026-11-21T19:30")
    for key, allowed in (("place", PLACES), ("device", DEVICE_CHOICES)):
        if key in params:
            if params[key] in allowed:
                fields[key] = params[key]
            else:
                problems.append(f"{key}='{params[key]}' is not one of {', '.join(allowed)}")
    companions = [c for c in params.get("with", "").split(",") if c]
    unknown = [c for c in companions if c not in COMPANIONS]
    if unknown:
        problems.append(f"with: {', '.join(unknown)} not in {', '.join(COMPANIONS)}")
    fields["companions"] = tuple(c for c in companions if c in COMPANIONS)
    fields["city"] = params.get("city", "")[:100]
    fields["intent"] = params.get("intent", "")
    history = [HistoryEntry(i, 1) for i in params.get("liked", "").split(",") if i]
    history += [HistoryEntry(i, -1) for i in params.get("disliked", "").split(",") if i]
    fields["history"] = tuple(history)
    return Context(**fields), problems


def utc_seconds(when: datetime) -> float:
    """The inverse of :func:`utc_time`: a wall-clock time → seconds since 1970, read as UTC
    whatever zone ``when`` carries, so a time's fields (hour, weekday) come back unchanged."""
    return when.replace(tzinfo=timezone.utc).timestamp()


def utc_time(timestamp: float) -> datetime:
    """Seconds since 1970 → the naive UTC date and time, whatever the server's time zone, so
    dayparts and weekdays of logs without a zone are the same on every machine."""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).replace(tzinfo=None)
