"""Any interaction log CSV (user, item, time, optional rating or count, optional context columns)
with a catalog CSV, in the same shape as :func:`ctxrec.data.movielens.load_movielens`.

Column names are mapped by the caller, so logs from other systems need no renaming. Problems that
make the log unusable raise :class:`LogError` naming the file, the column and, for a bad value, the
line; events whose item is not in the catalog are dropped and reported, not fatal, because logs and
catalogs exported at different times rarely agree on every item.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .catalog import Catalog, CatalogError, Problem, read_catalog_csv

__all__ = ["FIELDS", "InteractionLog", "LogError", "guess_separator", "load_interaction_log",
           "mapping_from_pairs"]

FIELDS = ("user", "item", "timestamp", "rating", "count", "context")
OUTPUT_COLUMNS = ("user", "item", "rating", "timestamp", "count")
_EPOCH = pd.Timestamp("1970-01-01", tz="UTC")


class LogError(ValueError):
    """The log cannot be used; ``file``, ``column`` and ``line`` say where (None when not known)."""

    def __init__(self, file: str, message: str, column: str | None = None,
                 line: int | None = None):
        self.file, self.column, self.line = file, column, line
        super().__init__(f"{file}: {message}")


@dataclass(frozen=True)
class InteractionLog:
    """A loaded log. Unpacks like ``load_movielens``: ``catalog, interactions = log``.

    Attributes:
        catalog: the items.
        interactions: user, item, rating, timestamp (+ count, + context columns), in file order.
        problems: what was dropped or assumed while loading (line 0: the whole file).
    """

    catalog: Catalog
    interactions: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)

    def __iter__(self) -> Iterator:
        # Two values, not three, so code written for load_movielens takes this unchanged.
        yield self.catalog
        yield self.interactions


def load_interaction_log(log_path: str | Path, catalog: str | Path | Catalog,
                         user: str = "user", item: str = "item",
                         timestamp: str | None = "timestamp", rating: str | None = None,
                         count: str | None = None, context_columns: Iterable[str] = (),
                         sep: str | None = None) -> InteractionLog:
    """Read an interaction log and its catalog.

    Args:
        log_path: CSV file (comma, tab or semicolon separated; detected when ``sep`` is None).
        catalog: a catalog CSV path or a loaded :class:`Catalog`.
        user, item: the columns holding user ids and catalog item ids.
        timestamp: seconds since 1970 or ISO date-times (naive ones are read as UTC); None when
            the log has no time, and then the line order stands in for it.
        rating: explicit ratings (empty cells become NaN); None gives NaN for every event.
        count: implicit feedback counts, kept in a ``count`` column.
        context_columns: other columns to keep as they are in the file (strings).

    Returns:
        an :class:`InteractionLog`; its interactions have user, item (str), rating (float),
        timestamp (int64 seconds), then count (float) and the context columns when asked for.

    Raises:
        LogError: missing or unreadable file, absent column, bad value, or nothing left.
    """
    path = Path(log_path)
    name = path.name
    context = list(dict.fromkeys(context_columns))
    clash = [c for c in context if c in OUTPUT_COLUMNS]
    if clash:
        raise LogError(name, f"context column '{clash[0]}' has the name of an output column "
                             f"({', '.join(OUTPUT_COLUMNS)}); rename it in the file",
                       column=clash[0])
    catalog = _catalog(catalog)
    mapped = {"user": user, "item": item, "timestamp": timestamp, "rating": rating,
              "count": count}
    table, lines = _rows(name, _read_table(path, sep), mapped, context)
    out, problems = _events(name, table, lines, mapped, context)
    out = _catalog_items(name, out, catalog, item, problems)
    return InteractionLog(catalog=catalog, interactions=out, problems=problems)


def _rows(name: str, table: pd.DataFrame, mapped: dict[str, str | None], context: list[str]
          ) -> tuple[pd.DataFrame, np.ndarray]:
    """The non-blank rows, once every mapped column is known to exist, and their line numbers."""
    wanted = [(f, c) for f, c in mapped.items() if c is not None]
    wanted += [("context", c) for c in context]
    _check_columns(name, table, wanted)
    lines = table.index.to_numpy() + 2  # the header is line 1
    blank = (table == "").all(axis=1).to_numpy()
    table, lines = table[~blank], lines[~blank]
    if table.empty:
        raise LogError(name, "has a header but no rows")
    return table, lines


def _events(name: str, table: pd.DataFrame, lines: np.ndarray, mapped: dict[str, str | None],
            context: list[str]) -> tuple[pd.DataFrame, list[Problem]]:
    """The output columns parsed from the mapped ones, and what the reader had to assume."""
    out = pd.DataFrame({"user": _ids(name, table, mapped["user"], "user", lines),
                        "item": _ids(name, table, mapped["item"], "item", lines)})
    problems: list[Problem] = []
    rating, timestamp, count = mapped["rating"], mapped["timestamp"], mapped["count"]
    out["rating"] = _numbers(name, table, rating, "rating", lines) if rating is not None \
        else np.nan
    if timestamp is not None:
        out["timestamp"] = _seconds(name, table, timestamp, lines)
    else:
        out["timestamp"] = np.arange(len(out), dtype=np.int64)
        problems.append(Problem(0, "timestamp", "no timestamp column: events are ordered by "
                                                "their line in the file"))
    if count is not None:
        out["count"] = _numbers(name, table, count, "count", lines, required=True,
                                non_negative=True)
    for column in context:
        out[column] = table[column]
    return out, problems


def _catalog_items(name: str, out: pd.DataFrame, catalog: Catalog, item: str,
                   problems: list[Problem]) -> pd.DataFrame:
    """The events whose item is in the catalog; the others are counted in ``problems``, and a
    log with none left is an error that points at the item column."""
    known = out["item"].isin(catalog.ids).to_numpy()
    if not known.all():
        unknown = out["item"][~known]
        examples = ", ".join(repr(i) for i in unknown.drop_duplicates().head(5))
        message = (f"{len(unknown):,} of {len(out):,} events dropped: their item is not in "
                   f"{catalog.name} (e.g. {examples})")
        if known.any():
            problems.append(Problem(0, item, message))
        else:
            raise LogError(name, f"no rows left: {message}; check that column '{item}' holds "
                                 "the catalog's ids", column=item)
    return out[known].reset_index(drop=True)


def mapping_from_pairs(pairs: Iterable[str]) -> dict:
    """Keyword arguments for :func:`load_interaction_log` from ``FIELD=COLUMN`` strings.

    ``context`` may repeat or hold a comma-separated list; an empty COLUMN (``timestamp=``) means
    the log lacks that field.
    """
    mapping: dict = {}
    context: list[str] = []
    for pair in pairs:
        key, sep, column = pair.partition("=")
        key, column = key.strip(), column.strip()
        if not sep or not key:
            raise ValueError(f"'{pair}' is not FIELD=COLUMN (fields: {', '.join(FIELDS)})")
        if key not in FIELDS:
            raise ValueError(f"unknown field '{key}' in '{pair}' (fields: {', '.join(FIELDS)})")
        if key == "context":
            context += [c.strip() for c in column.split(",") if c.strip()]
        elif not column and key in ("user", "item"):
            raise ValueError(f"'{pair}': the {key} column is required")
        else:
            mapping[key] = column or None
    if context:
        mapping["context_columns"] = tuple(context)
    return mapping


def _catalog(source: str | Path | Catalog) -> Catalog:
    if isinstance(source, Catalog):
        return source
    path = Path(source)
    if not path.is_file():
        raise LogError(path.name, f"catalog file not found ({path.resolve()})")
    try:
        return read_catalog_csv(path)
    except CatalogError as err:
        raise LogError(path.name, str(err)) from None


def _read_table(path: Path, sep: str | None) -> pd.DataFrame:
    name = path.name
    if not path.is_file():
        raise LogError(name, f"file not found ({path.resolve()})")
    try:
        with path.open("rb") as handle:
            head = handle.readline(65536)
        sep = sep or guess_separator(head)
        with warnings.catch_warnings():
            # pandas only warns when a row is longer than the header; that misaligns columns.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # Blank lines are kept (and dropped later) so the row index maps to the file's lines.
            table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False,
                                skip_blank_lines=False, index_col=False, encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise LogError(name, "is not UTF-8 text; save it as UTF-8 CSV") from None
    except pd.errors.EmptyDataError:
        raise LogError(name, "is empty; it needs a header row naming its columns") from None
    except pd.errors.ParserWarning:
        raise LogError(name, "a row has more cells than the header has columns (check the "
                             "separator and the quoting of text with commas)") from None
    except pd.errors.ParserError as err:
        detail = str(err).replace("Error tokenizing data. C error: ", "").strip()
        raise LogError(name, f"cannot be read as CSV: {detail}") from None
    table.columns = [str(c).strip() for c in table.columns]
    return table.fillna("")


def guess_separator(header: bytes) -> str:
    """Whichever of comma, tab and semicolon a CSV's header line holds most of (comma when it
    holds none)."""
    counts = {s: header.count(s.encode()) for s in (",", "\t", ";")}
    return max(counts, key=counts.get) if any(counts.values()) else ","


def _check_columns(name: str, table: pd.DataFrame, wanted: list[tuple[str, str]]) -> None:
    have = list(table.columns)
    missing = [(f, c) for f, c in wanted if c not in have]
    if not missing:
        return
    lowered = {h.lower(): h for h in have}
    described = []
    for f, c in missing:
        hint = f", did you mean '{lowered[c.lower()]}'?" if c.lower() in lowered else ""
        described.append(f"'{c}' ({f}{hint})")
    noun = "column" if len(missing) == 1 else "columns"
    raise LogError(name, f"{noun} {', '.join(described)} not in the header; the file has: "
                         f"{', '.join(have)}", column=missing[0][1])


def _fail(name: str, column: str, role: str, line: int, message: str, more: int) -> LogError:
    tail = f" (and {more:,} more line{'s' if more > 1 else ''} like it)" if more else ""
    return LogError(name, f"line {line}, column '{column}' ({role}): {message}{tail}",
                    column=column, line=line)


def _ids(name: str, table: pd.DataFrame, column: str, role: str, lines: np.ndarray) -> pd.Series:
    values = table[column].str.strip()
    empty = np.flatnonzero((values == "").to_numpy())
    if len(empty):
        raise _fail(name, column, role, int(lines[empty[0]]), "is empty", len(empty) - 1)
    return values


def _numbers(name: str, table: pd.DataFrame, column: str, role: str, lines: np.ndarray,
             required: bool = False, non_negative: bool = False) -> np.ndarray:
    raw = table[column].str.strip()
    parsed = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    present = (raw != "").to_numpy()
    bad = (present | required) & ~np.isfinite(parsed)
    if non_negative:
        bad |= np.isfinite(parsed) & (parsed < 0)
    where = np.flatnonzero(bad)
    if len(where):
        value = raw.iloc[where[0]]
        what = "is empty" if not value else f"'{value}' is not " + \
            ("a non-negative number" if non_negative else "a number")
        raise _fail(name, column, role, int(lines[where[0]]), what, len(where) - 1)
    return parsed


def _seconds(name: str, table: pd.DataFrame, column: str, lines: np.ndarray) -> np.ndarray:
    raw = table[column].str.strip()
    numeric = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    seconds = np.zeros(len(raw), dtype=np.int64)
    is_epoch = np.isfinite(numeric)
    seconds[is_epoch] = np.floor(numeric[is_epoch]).astype(np.int64)
    rest = ~is_epoch & (raw != "").to_numpy()
    if rest.any():
        dates = pd.to_datetime(raw[rest], utc=True, errors="coerce", format="ISO8601")
        parsed = dates.notna().to_numpy()
        seconds[np.flatnonzero(rest)[parsed]] = \
            ((dates[parsed] - _EPOCH) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)
        rest[np.flatnonzero(rest)[parsed]] = False
    bad = np.flatnonzero(rest | (raw == "").to_numpy())
    if len(bad):
        value = raw.iloc[bad[0]]
        what = "is empty" if not value else \
            f"'{value}' is neither seconds since 1970 nor an ISO date and time"
        raise _fail(name, column, "timestamp", int(lines[bad[0]]), what, len(bad) - 1)
    return seconds
