"""Item catalogs: the items table, its validation, and loaders.

A catalog is a table with one row per item. Only ``id`` and ``title`` are required; the built-in
catalog also carries structured attributes (mood, dayparts, places, …) that the context and mood
components use when present. Validation happens here, at the boundary, so the rest of the library can
trust the table.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

__all__ = [
    "CATEGORIES",
    "COMPANIONS",
    "DAYPARTS",
    "DAYS",
    "DEVICES",
    "MOODS",
    "PLACES",
    "PRICES",
    "Catalog",
    "CatalogError",
    "Problem",
    "builtin_catalog",
    "clip_text",
    "read_catalog_csv",
]

ASSETS = Path(__file__).resolve().parents[2] / "assets"
BUILTIN_PATH = ASSETS / "catalog.csv"

CATEGORIES = ("film", "series", "music", "podcast", "book", "longread", "recipe", "restaurant",
              "cafe", "event", "fitness", "daytrip", "game")
MOODS = ("calm", "cozy", "cheerful", "energetic", "romantic", "thoughtful", "funny", "tense",
         "adventurous", "melancholic", "social", "focused")
DAYPARTS = ("morning", "midday", "afternoon", "evening", "night")
DAYS = ("weekday", "weekend", "any")
PLACES = ("home", "work", "commute", "city", "outdoors", "gym", "travel")
DEVICES = ("phone", "tablet", "laptop", "tv", "speaker")
COMPANIONS = ("alone", "partner", "friends", "family", "kids", "colleagues")
PRICES = ("free", "low", "medium", "high")

REQUIRED = ("id", "title")
# header names other tools use for the required columns
ALIASES = {"item_id": "id", "itemid": "id", "item": "id", "name": "title"}
LIST_FIELDS = {"tags": None, "dayparts": DAYPARTS, "places": PLACES, "devices": DEVICES,
               "companions": COMPANIONS}
CHOICE_FIELDS = {"mood": MOODS, "days": DAYS, "price": PRICES}
TEXT_FIELDS = ("category", "description")
MAX_BYTES = 50 * 1024 * 1024
MAX_ROWS = 200_000
BRIEF_CHARS = 160  # a prompt names an item briefly: long descriptions add time, not judgement


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input row: where it is and how to fix it."""

    line: int  # line number in the file (the header is line 1); 0 for the whole file
    field: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}, " if self.line else ""
        return f"{where}field '{self.field}': {self.message}"


class CatalogError(ValueError):
    """The catalog cannot be used at all. ``problems`` lists why."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        shown = "; ".join(str(p) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"Catalog rejected: {shown}{more}")


@dataclass
class Catalog:
    """Items with text and optional structured attributes.

    Attributes:
        items: one row per item; ``id`` unique strings, list attributes as tuples.
        name: shown in the app.
        problems: rows that were skipped while loading, with the reason.
    """

    items: pd.DataFrame
    name: str = "catalog"
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.items = self.items.reset_index(drop=True)
        self._pos = {item_id: i for i, item_id in enumerate(self.items["id"])}

    def __len__(self) -> int:
        return len(self.items)

    @property
    def ids(self) -> np.ndarray:
        return self.items["id"].to_numpy()

    def has(self, column: str) -> bool:
        """Whether the catalog carries a structured attribute."""
        return column in self.items.columns

    def position(self, item_id: str) -> int | None:
        return self._pos.get(item_id)

    def title(self, item_id: str) -> str:
        pos = self._pos.get(item_id)
        return item_id if pos is None else str(self.items.at[pos, "title"])

    def record(self, item_id: str) -> dict:
        """The item's row as a dict (empty when the id is unknown)."""
        pos = self._pos.get(item_id)
        return {} if pos is None else self.items.iloc[pos].to_dict()

    def facts(self, item_id: str) -> str:
        """A short line of the item's attributes, e.g. ``film · tense · 118 min · medium``."""
        row = self.record(item_id)
        parts = [row.get("category"), row.get("mood"), _duration(row), row.get("price")]
        return " · ".join(str(p) for p in parts if p)

    def brief(self, item_id: str, max_tags: int = 5) -> str:
        """A short description for prompts, where every token costs time: title, mood, category,
        duration and tags, or the description's first sentence when the item has no tags, e.g.
        ``Paper Kites Over Lisbon (cheerful film, 92 min). Tags: animation, family.``"""
        row = self.record(item_id)
        if not row:
            return item_id
        kind = " ".join(str(row[c]) for c in ("mood", "category") if row.get(c))
        facts = ", ".join(filter(None, [kind, _duration(row)]))
        text = str(row["title"]).strip() + (f" ({facts})." if facts else ".")
        tags = list(row.get("tags") or ())[:max_tags]
        if tags:
            return text + " Tags: " + ", ".join(tags) + "."
        description = " ".join(str(row.get("description") or "").split())
        first = re.split(r"(?<=[.!?])\s", description, maxsplit=1)[0]
        return f"{text} {clip_text(first, BRIEF_CHARS)}".rstrip()

    def text(self, item_id: str) -> str:
        """The text the item is encoded from (see :meth:`texts`)."""
        return item_text(self.record(item_id))

    def texts(self) -> list[str]:
        """The text each item is encoded from: title, category, description and tags."""
        return [item_text(row) for row in self.items.to_dict("records")]

    def content_hash(self) -> str:
        """Changes whenever any item's encoded text or order changes."""
        digest = hashlib.sha256()
        for item_id, text in zip(self.items["id"], self.texts()):
            digest.update(f"{item_id}\x1f{text}\x1e".encode())
        return digest.hexdigest()[:16]


def clip_text(text: str, limit: int) -> str:
    """``text`` with its whitespace collapsed, cut to at most ``limit`` characters (an ellipsis
    marks the cut)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def item_text(row: dict) -> str:
    parts = [str(row["title"]).strip()]
    if row.get("category"):
        parts.append(f"({row['category']})")
    text = " ".join(parts) + "."
    if row.get("description"):
        text += " " + str(row["description"]).strip()
    if row.get("tags"):
        text += " Tags: " + ", ".join(row["tags"]) + "."
    return text


def builtin_catalog() -> Catalog:
    """The catalog shipped in ``assets/catalog.csv``; it must load without a single problem."""
    catalog = read_catalog_csv(BUILTIN_PATH, name="Built-in (multi-domain)")
    if catalog.problems:
        raise CatalogError(catalog.problems)
    return catalog


def read_catalog_csv(source: str | Path | IO[bytes] | bytes, name: str | None = None) -> Catalog:
    """Read and validate a catalog CSV.

    Rows with problems are skipped and listed in ``Catalog.problems``; the file is rejected with a
    :class:`CatalogError` only when nothing usable is left (wrong encoding, missing columns, no rows).

    Args:
        source: a path, an open binary file, or the file's bytes.
        name: display name; defaults to the file name.
    """
    raw, default_name = _read_bytes(source)
    if len(raw) > MAX_BYTES:
        raise CatalogError([Problem(0, "file", f"is {len(raw) / 2**20:.0f} MB; the limit is "
                                               f"{MAX_BYTES // 2**20} MB. Split the catalog or keep "
                                               "only the columns you need.")])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise CatalogError([Problem(0, "file", f"is not UTF-8 text (byte {err.start}). Save it as "
                                               "UTF-8 CSV and upload it again.")]) from None
    rows = []
    for row in csv.reader(io.StringIO(text)):
        rows.append(row)
        if len(rows) > MAX_ROWS + 1:  # stop reading as soon as the file is too long
            raise CatalogError([Problem(0, "file", f"has more than {MAX_ROWS:,} rows; the "
                                                   f"limit in the app is {MAX_ROWS:,}.")])
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise CatalogError([Problem(0, "file", "is empty; it needs a header row with at least "
                                               "'id' and 'title'.")])
    header = [h.strip().lower() for h in rows[0]]
    for alias, column in ALIASES.items():
        if column not in header and alias in header:
            header[header.index(alias)] = column
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise CatalogError([Problem(1, c, "column is missing (the header has: "
                                          f"{', '.join(header)})") for c in missing])
    records, problems, seen = [], [], set()
    for line, cells in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        record, row_problems = _parse_row(header, cells, line)
        if not row_problems and record["id"] in seen:
            row_problems.append(Problem(line, "id", f"'{record['id']}' appears twice; ids must be "
                                                    "unique"))
        if row_problems:
            problems.extend(row_problems)
            continue
        seen.add(record["id"])
        records.append(record)
    if not records:
        raise CatalogError(problems or [Problem(0, "file", "has a header but no item rows.")])
    items = pd.DataFrame.from_records(records)
    return Catalog(items=items, name=name or default_name, problems=problems)


def _read_bytes(source: str | Path | IO[bytes] | bytes) -> tuple[bytes, str]:
    if isinstance(source, bytes):
        return source, "uploaded catalog"
    if isinstance(source, (str, Path)):
        path = Path(source)
        return path.read_bytes(), path.name
    return source.read(), getattr(source, "name", "uploaded catalog")


def _parse_row(header: list[str], cells: list[str], line: int) -> tuple[dict, list[Problem]]:
    if len(cells) != len(header):
        return {}, [Problem(line, "row", f"has {len(cells)} cells but the header has "
                                         f"{len(header)} (check quoting of commas in text)")]
    raw = {h: c.strip() for h, c in zip(header, cells)}
    record: dict = {}
    problems: list[Problem] = []
    for col in REQUIRED:
        if not raw[col]:
            problems.append(Problem(line, col, "is empty"))
        record[col] = raw[col]
    for col in TEXT_FIELDS:
        if col in raw:
            record[col] = raw[col]
    for col, allowed in CHOICE_FIELDS.items():
        if col in raw:
            value = raw[col].lower()
            if value and value not in allowed:
                problems.append(Problem(line, col, f"'{raw[col]}' is not one of "
                                                   f"{', '.join(allowed)}"))
            record[col] = value
    for col, allowed in LIST_FIELDS.items():
        if col in raw:
            values = tuple(v.strip().lower() for v in raw[col].split(";") if v.strip())
            bad = [v for v in values if allowed is not None and v not in allowed]
            if bad:
                problems.append(Problem(line, col, f"{', '.join(repr(b) for b in bad)} not in "
                                                   f"{', '.join(allowed)}"))
            record[col] = values
    for col in ("duration_min", "popularity"):
        if col in raw:
            record[col], problem = _number(raw[col], col, line)
            if problem:
                problems.append(problem)
    return record, problems


def _number(value: str, col: str, line: int) -> tuple[float, Problem | None]:
    if not value:
        return float("nan"), None
    try:
        number = float(value)
    except ValueError:
        return float("nan"), Problem(line, col, f"'{value}' is not a number")
    if not np.isfinite(number) or number < 0:
        return float("nan"), Problem(line, col, f"'{value}' must be a non-negative number")
    return number, None


def _duration(row: dict) -> str:
    """``92 min``, or "" when the item has no duration."""
    minutes = row.get("duration_min")
    return f"{minutes:.0f} min" if isinstance(minutes, float) and np.isfinite(minutes) else ""
