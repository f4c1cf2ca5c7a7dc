"""Tables for download, safe to open in a spreadsheet."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["matrix_csv", "safe_csv"]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _neutralise(value: object) -> object:
    # a leading quote stops spreadsheets from evaluating the cell as a formula
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def safe_csv(table: pd.DataFrame) -> bytes:
    """CSV bytes in which no text cell or header can run as a spreadsheet formula."""
    cleaned = table.copy()
    cleaned.columns = [_neutralise(str(c)) for c in cleaned.columns]
    for column in cleaned.columns:
        if cleaned[column].dtype == object or pd.api.types.is_string_dtype(cleaned[column]):
            cleaned[column] = cleaned[column].map(_neutralise)
    return cleaned.to_csv(index=False).encode("utf-8")


def matrix_csv(matrix: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str]) -> bytes:
    """A labelled matrix as CSV; labels are numbered so repeated tokens stay distinct."""
    table = pd.DataFrame(matrix, columns=[f"{j}:{c}" for j, c in enumerate(col_labels)])
    table.insert(0, "row", [f"{i}:{r}" for i, r in enumerate(row_labels)])
    return safe_csv(table)
