"""Named contexts: the shipped presets, JSON import/export with validation, and a SQLite store.

The store keeps one row per scenario in a SQLite file (WAL journal, one transaction per change), so a
process killed in the middle of a save loses at most that save, never an earlier one.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .catalog import ASSETS, COMPANIONS, PLACES, Catalog
from .context import DEVICE_CHOICES, Context, HistoryEntry

__all__ = ["Scenario", "ScenarioError", "ScenarioStore", "load_presets", "scenarios_from_json",
           "scenarios_to_json", "store_path"]

FORMAT_VERSION = 1
MAX_JSON_BYTES = 2 * 1024 * 1024
MAX_HISTORY = 500
MAX_INTENT = 100_000
EARLIEST, LATEST = datetime(1900, 1, 1), datetime(2100, 12, 31)


class ScenarioError(ValueError):
    """A scenario or scenario file that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Scenario:
    """A context with a name and a one-line story."""

    name: str
    story: str
    context: Context

    def to_dict(self) -> dict:
        ctx = self.context
        return {"name": self.name, "story": self.story, "context": {
            "when": ctx.when.strftime("%Y-%m-%dT%H:%M"), "place": ctx.place, "city": ctx.city,
            "lat": ctx.lat, "lon": ctx.lon, "device": ctx.device,
            "companions": list(ctx.companions), "intent": ctx.intent,
            **({"extra": dict(ctx.extra)} if ctx.extra else {}),
            "history": [{"item_id": h.item_id, "feedback": h.feedback,
                         **({"rating": h.rating} if h.rating is not None else {})}
                        for h in ctx.history]}}

    def unknown_items(self, catalog: Catalog) -> list[str]:
        return [h.item_id for h in self.context.history if catalog.position(h.item_id) is None]


def store_path() -> Path:
    """``$CTXREC_SCENARIOS`` if set, else ``scenarios.sqlite`` in ctxrec's data folder."""
    from .home import data_home

    return Path(os.environ.get("CTXREC_SCENARIOS") or data_home() / "scenarios.sqlite")


def load_presets() -> list[Scenario]:
    """The scenarios shipped in ``assets/scenarios.json``."""
    return scenarios_from_json((ASSETS / "scenarios.json").read_bytes())


def scenarios_to_json(scenarios: Iterable[Scenario]) -> bytes:
    payload = {"version": FORMAT_VERSION, "scenarios": [s.to_dict() for s in scenarios]}
    return json.dumps(payload, ensure_ascii=False, indent=2).encode("utf-8")


def scenarios_from_json(raw: bytes | str) -> list[Scenario]:
    """Parse and validate a scenario file; raises :class:`ScenarioError` naming the first problem
    (which scenario, which field, what was expected)."""
    if isinstance(raw, bytes):
        if len(raw) > MAX_JSON_BYTES:
            raise ScenarioError(f"the file is {len(raw) / 2**20:.1f} MB; scenario files are at "
                                f"most {MAX_JSON_BYTES // 2**20} MB")
        try:
            raw = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ScenarioError("the file is not UTF-8 text") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ScenarioError(f"not valid JSON (line {err.lineno}, column {err.colno}: "
                            f"{err.msg})") from None
    if isinstance(data, dict) and "scenarios" in data:
        items = data["scenarios"]
    elif isinstance(data, dict) and "context" in data:
        items = [data]
    else:
        raise ScenarioError("expected an object with a 'scenarios' list (or one scenario with a "
                            "'context')")
    if not isinstance(items, list):
        raise ScenarioError("'scenarios' must be a list")
    return [scenario_from_dict(item, f"scenario {i + 1}") for i, item in enumerate(items)]


def scenario_from_dict(data: object, where: str = "scenario") -> Scenario:
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: expected an object, got {type(data).__name__}")
    name = _text(data.get("name"), f"{where}.name", required=True, limit=120)
    where = f"scenario '{name}'"
    story = _text(data.get("story", ""), f"{where}.story", limit=500)
    ctx = data.get("context")
    if not isinstance(ctx, dict):
        raise ScenarioError(f"{where}: 'context' must be an object")
    when = _when(ctx.get("when"), f"{where}.context.when")
    place = _choice(ctx.get("place", "home"), PLACES, f"{where}.context.place")
    device = _choice(ctx.get("device", "phone"), DEVICE_CHOICES, f"{where}.context.device")
    companions = ctx.get("companions", [])
    if not isinstance(companions, list):
        raise ScenarioError(f"{where}.context.companions: expected a list of "
                            f"{', '.join(COMPANIONS)}")
    companions = tuple(_choice(c, COMPANIONS, f"{where}.context.companions") for c in companions)
    lat = _number(ctx.get("lat"), f"{where}.context.lat", -90, 90)
    lon = _number(ctx.get("lon"), f"{where}.context.lon", -180, 180)
    history = ctx.get("history", [])
    if not isinstance(history, list):
        raise ScenarioError(f"{where}.context.history: expected a list")
    if len(history) > MAX_HISTORY:
        raise ScenarioError(f"{where}.context.history: {len(history)} entries; at most "
                            f"{MAX_HISTORY}")
    entries = tuple(_history_entry(h, f"{where}.context.history[{i}]")
                    for i, h in enumerate(history))
    extra = ctx.get("extra", {})
    if not isinstance(extra, dict) or len(extra) > 50:
        raise ScenarioError(f"{where}.context.extra: expected an object of at most 50 fields "
                            "(name → value)")
    extra = tuple((_text(k, f"{where}.context.extra", limit=60),
                   _text(v, f"{where}.context.extra.{k}", limit=100)) for k, v in extra.items())
    context = Context(history=entries, when=when, place=place, extra=extra,
                      city=_text(ctx.get("city", ""), f"{where}.context.city", limit=100),
                      lat=lat, lon=lon, device=device, companions=companions,
                      intent=_text(ctx.get("intent", ""), f"{where}.context.intent",
                                   limit=MAX_INTENT))
    return Scenario(name=name, story=story, context=context)


def _text(value: object, where: str, required: bool = False, limit: int = 1000) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ScenarioError(f"{where}: expected text, got {type(value).__name__}")
    if required and not value.strip():
        raise ScenarioError(f"{where}: must not be empty")
    if len(value) > limit:
        raise ScenarioError(f"{where}: {len(value):,} characters; at most {limit:,}")
    return value.strip() if required else value


def _choice(value: object, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise ScenarioError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return str(value)


def _number(value: object, where: str, low: float, high: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScenarioError(f"{where}: expected a number, got {type(value).__name__}")
    if not low <= value <= high:
        raise ScenarioError(f"{where}: {value} is outside {low}…{high}")
    return float(value)


def _when(value: object, where: str) -> datetime:
    if not isinstance(value, str):
        raise ScenarioError(f"{where}: expected a date and time like 2026-11-21T19:30")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ScenarioError(f"{where}: {value!r} is not a date and time like "
                            "2026-11-21T19:30") from None
    if when.tzinfo is not None:
        when = when.replace(tzinfo=None)  # local wall-clock time is what the context means
    if not EARLIEST <= when <= LATEST:
        raise ScenarioError(f"{where}: {value} is outside {EARLIEST.year}–{LATEST.year}")
    return when.replace(second=0, microsecond=0)


def _history_entry(value: object, where: str) -> HistoryEntry:
    if isinstance(value, str):
        return HistoryEntry(value, 1)
    if not isinstance(value, dict) or not isinstance(value.get("item_id"), str) \
            or not value["item_id"]:
        raise ScenarioError(f"{where}: expected an object with a text 'item_id'")
    feedback = value.get("feedback", 1)
    if feedback not in (-1, 0, 1) or isinstance(feedback, bool):
        raise ScenarioError(f"{where}.feedback: expected -1, 0 or 1, got {feedback!r}")
    rating = _number(value.get("rating"), f"{where}.rating", 0.5, 5)
    return HistoryEntry(value["item_id"], int(feedback), rating)


class ScenarioStore:
    """Saved scenarios in SQLite.

    Args:
        path: the database file; created with its folder when missing.
    """

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path else store_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS scenarios (name TEXT PRIMARY KEY, "
                       "body TEXT NOT NULL, saved_at TEXT NOT NULL)")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One connection, one transaction: committed on success, rolled back on error, closed."""
        db = sqlite3.connect(self.path, timeout=10)
        try:
            db.execute("PRAGMA synchronous=FULL")
            with db:
                yield db
        finally:
            db.close()

    def names(self) -> list[str]:
        with self._connect() as db:
            return [row[0] for row in db.execute("SELECT name FROM scenarios ORDER BY name")]

    def save(self, scenario: Scenario) -> None:
        """Insert or replace the scenario with this name, in one transaction."""
        body = json.dumps(scenario.to_dict(), ensure_ascii=False)
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO scenarios VALUES (?, ?, ?)",
                       (scenario.name, body, datetime.now().isoformat(timespec="seconds")))

    def load(self, name: str) -> Scenario:
        with self._connect() as db:
            row = db.execute("SELECT body FROM scenarios WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise KeyError(f"no saved scenario named '{name}'")
        return scenario_from_dict(json.loads(row[0]))

    def rename(self, old: str, new: str) -> None:
        new = new.strip()
        if not new:
            raise ScenarioError("the new name must not be empty")
        scenario = self.load(old)
        if new != old and new in self.names():
            raise ScenarioError(f"a scenario named '{new}' already exists")
        renamed = Scenario(new, scenario.story, scenario.context)
        with self._connect() as db:  # one transaction: both statements or neither
            db.execute("DELETE FROM scenarios WHERE name = ?", (old,))
            db.execute("INSERT INTO scenarios VALUES (?, ?, ?)",
                       (new, json.dumps(renamed.to_dict(), ensure_ascii=False),
                        datetime.now().isoformat(timespec="seconds")))

    def delete(self, name: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM scenarios WHERE name = ?", (name,))

    def check(self) -> bool:
        """SQLite's own integrity check."""
        with self._connect() as db:
            return db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
