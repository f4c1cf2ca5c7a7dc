"""Files that arrive through the app: kept under the data home by content, and their CSV header.

A training job reads its log from disk on another thread, after the upload's script run has ended,
so an upload is written to a file first. The file is named by its content: two sessions uploading
a different ``log.csv`` never overwrite each other, and the same file uploaded again is kept once.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path

from .home import data_home
from .interaction_log import guess_separator

__all__ = ["guess_mapping", "read_csv_columns", "save_upload", "uploads_folder"]


def uploads_folder() -> Path:
    """Where uploads are kept: ``data_home() / "uploads"``."""
    return data_home() / "uploads"


def save_upload(data: bytes, name: str, folder: str | Path | None = None) -> Path:
    """Write an upload's bytes as ``<first 12 hex of sha256>-<name>``.

    Args:
        data: the file's content.
        name: the name it was uploaded under; any folder part is dropped.
        folder: where to keep it (default: :func:`uploads_folder`); created when missing.

    Returns:
        the file's path. Same bytes and name give the same path, written once.
    """
    folder = Path(folder) if folder is not None else uploads_folder()
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(data).hexdigest()[:12]
    path = folder / f"{digest}-{Path(name).name or 'upload'}"
    if path.is_file():  # named by content, so it already holds these bytes
        return path
    # written aside and renamed into place, so a job reading it never sees half a file
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=f".{digest}-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_csv_columns(source: bytes | str | Path) -> list[str]:
    """The column names in a CSV's header row, stripped, in file order.

    The separator is guessed as the interaction log reader guesses it
    (:func:`~ctxrec.data.interaction_log.guess_separator`).

    Args:
        source: the file's bytes, or a path to it.

    Returns:
        the names; empty when the file is empty or its first line is blank.

    Raises:
        ValueError: the header is not UTF-8 text.
    """
    if isinstance(source, bytes):
        head = source.split(b"\n", 1)[0]
    else:
        with Path(source).open("rb") as handle:
            head = handle.readline(65536)
    try:
        line = head.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ValueError("the header is not UTF-8 text; save the file as UTF-8 CSV") from None
    if not line.strip():
        return []
    sep = guess_separator(head)
    return [name.strip() for name in next(csv.reader([line], delimiter=sep))]


def guess_mapping(columns: Sequence[str], fields: Sequence[str],
                  optional: Collection[str] = ()) -> dict[str, str]:
    """A first guess of which column holds each field, for a person to correct.

    A field takes the column named like it, ignoring case and punctuation (``userId`` and
    ``user_id`` for ``user``, ``time`` for ``timestamp``); a field named by no column takes the
    first column not yet taken, unless it is ``optional``, which then stays unmapped.

    Args:
        columns: the header's column names, in file order.
        fields: the fields to map, e.g. ``("user", "item", "timestamp", "rating")``.
        optional: fields that may stay unmapped.

    Returns:
        field → column; a column is given to one field at most.
    """
    def norm(name: str) -> str:
        return re.sub(r"[^a-z0-9]", "", name.lower())

    mapping: dict[str, str] = {}
    for field in fields:
        free = [c for c in columns if c not in mapping.values()]
        named = [c for c in free if norm(c) and (norm(c).startswith(field)
                                                 or field.startswith(norm(c)))]
        exact = [c for c in named if norm(c) == field]
        if exact or named:
            mapping[field] = (exact or named)[0]
        elif free and field not in optional:
            mapping[field] = free[0]
    return mapping
