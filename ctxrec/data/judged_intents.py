"""The project's judged intents: requests with their context and graded items of the built-in
catalog (``assets/intents.jsonl``), written for this project by reading every item.

Each line holds ``id``, ``intent``, ``context`` (``when``, ``place``, ``device``, ``companions``),
``constraints`` (the kinds of limit the request states: duration, price, place, weather, screen,
audience, daytime, kind, negation, mood, topic) and ``relevant``: item id → grade, 2 for a great
fit and 1 for an acceptable one; items not listed are 0, and an item that breaks a limit of the
request is never listed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .catalog import ASSETS, Catalog
from .context import Context

__all__ = ["CONSTRAINT_KINDS", "JudgedIntent", "load_judged_intents"]

JUDGED_PATH = ASSETS / "intents.jsonl"
CONSTRAINT_KINDS = ("duration", "price", "place", "weather", "screen", "audience", "daytime",
                    "kind", "negation", "mood", "topic")


@dataclass(frozen=True)
class JudgedIntent:
    """One judged request."""

    id: str
    context: Context  # holds the intent text
    constraints: tuple[str, ...]
    relevant: dict[str, int]  # item id → grade 1 or 2


def load_judged_intents(path: str | Path = JUDGED_PATH, catalog: Catalog | None = None
                        ) -> list[JudgedIntent]:
    """Read a judged set; with ``catalog``, every graded item must be in it.

    Raises:
        ValueError: a line that is not a judged intent, naming the line and what is wrong.
    """
    path = Path(path)
    judged = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            judged.append(_judged(json.loads(line), catalog))
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path.name} line {number}: {err}") from None
    if not judged:
        raise ValueError(f"{path.name} holds no judged intents")
    return judged


def _judged(row: dict, catalog: Catalog | None) -> JudgedIntent:
    situation = row.get("context", {})
    device = situation.get("device", "phone")
    context = Context(when=datetime.fromisoformat(situation.get("when", "2026-11-21T19:00")),
                      place=situation.get("place", "home"), device=device,
                      companions=tuple(situation.get("companions", ())), intent=row["intent"])
    unknown = [c for c in row.get("constraints", []) if c not in CONSTRAINT_KINDS]
    if unknown:
        raise ValueError(f"unknown constraint kinds {unknown}; known: {', '.join(CONSTRAINT_KINDS)}")
    relevant = {str(k): int(v) for k, v in row["relevant"].items()}
    if any(g not in (1, 2) for g in relevant.values()):
        raise ValueError("grades must be 1 or 2")
    if catalog is not None:
        missing = [i for i in relevant if catalog.position(i) is None]
        if missing:
            raise ValueError(f"items not in {catalog.name}: {', '.join(missing[:5])}")
    return JudgedIntent(str(row["id"]), context, tuple(row.get("constraints", ())), relevant)
