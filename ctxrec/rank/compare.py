"""Two rankings side by side: rank changes and the components that moved each item."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .recommender import Ranking
from .weights import COMPONENTS

__all__ = ["compare_rankings"]


def compare_rankings(a: Ranking, b: Ranking, k: int) -> pd.DataFrame:
    """Items in either top-k, with their ranks, scores and per-component change from A to B.

    Both rankings should cover the whole catalog (``recommend(..., k=len(catalog))``) so that an
    item leaving the top-k still has a rank and contributions on the other side.

    Returns:
        one row per item: item_id, title, rank_a, rank_b (NaN where the item was not ranked, e.g.
        excluded as seen), score_a, score_b, delta_score, delta_<component> (B − A) and
        ``moved_by``, the component whose contribution changed most; sorted by best rank.
    """
    left = a.table.set_index("item_id")
    right = b.table.set_index("item_id")
    top = list(dict.fromkeys(list(left.index[:k]) + list(right.index[:k])))
    out = pd.DataFrame({"item_id": top})
    out["title"] = [left["title"].get(i, right["title"].get(i)) for i in top]
    for side, table in (("a", left), ("b", right)):
        out[f"rank_{side}"] = [table["rank"].get(i, np.nan) for i in top]
        out[f"score_{side}"] = [table["score"].get(i, np.nan) for i in top]
    out["delta_score"] = out["score_b"] - out["score_a"]
    for c in COMPONENTS:
        out[f"delta_{c}"] = [right[c].get(i, np.nan) - left[c].get(i, np.nan) for i in top]
    deltas = out[[f"delta_{c}" for c in COMPONENTS]].abs().fillna(-1).to_numpy()
    out["moved_by"] = [COMPONENTS[j] if row[j] > 0 else "" for row, j in
                       zip(deltas, deltas.argmax(axis=1))]
    best = np.fmin(out["rank_a"].to_numpy(float), out["rank_b"].to_numpy(float))
    return out.iloc[np.argsort(best, kind="stable")].reset_index(drop=True)
