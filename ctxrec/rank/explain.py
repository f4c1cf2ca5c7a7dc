"""Explanations of a ranking in words: which components carried an item, and which history items it
attended to."""

from __future__ import annotations

from collections.abc import Callable

from .recommender import Ranking
from .weights import COMPONENTS

__all__ = ["attended_history", "limits_note", "why"]

_LABELS = {"intent": "matches your intent", "history": "close to your history",
           "context": "fits the time and place", "mood": "the mood you asked for",
           "popularity": "popular", "sequence": "likely next after your recent items",
           "constraints": "the limits you stated",
           "llm": "the language model judged it a fit"}
_LEARNED_CONTEXT = "suits this context, as learned from the log"


def attended_history(ranking: Ranking, row: int, min_weight: float = 0.2,
                     limit: int = 2) -> list[tuple[str, float, float]]:
    """History items that ranked item ``row`` attended to most.

    Returns:
        (item_id, attention weight, feedback signal) for up to ``limit`` items with weight ≥
        ``min_weight``, strongest first.
    """
    if ranking.history_attention.size == 0:
        return []
    weights = ranking.history_attention[row]
    order = weights.argsort()[::-1][:limit]
    return [(ranking.history_ids[j], float(weights[j]), float(ranking.history_signals[j]))
            for j in order if weights[j] >= min_weight]


def why(ranking: Ranking, row: int, title_of: Callable[[str], str] | None = None) -> str:
    """One line saying why the item at ``row`` is where it is.

    Args:
        ranking: a ranking from :meth:`Recommender.recommend`.
        row: position in ``ranking.table``.
        title_of: item id → title, for naming history items (e.g. ``Catalog.title``).
    """
    title_of = title_of or str
    record = ranking.table.iloc[row]
    shown = [c for c in (*COMPONENTS, "llm") if c in record]  # llm: after an LLM re-rank
    parts = sorted(((float(record[c]), c) for c in shown if record[c] > 0), reverse=True)
    total = sum(v for v, _ in parts) or 1.0
    labels = {**_LABELS, "context": _LEARNED_CONTEXT} if ranking.learned_context else _LABELS
    lead = [f"{labels[c]} ({v / total:.0%})" for v, c in parts[:2] if v / total >= 0.15]
    text = "; ".join(lead).capitalize() if lead else "Ranked by a balance of weak signals"
    penalties = [c for c in shown if record[c] < 0]
    if penalties:
        text += f"; held back by {', '.join(penalties)}"
    if record["history"] != 0:
        attended = attended_history(ranking, row)
        if attended:
            named = [f"{'👍' if s > 0 else '👎' if s < 0 else '•'} {title_of(i)} ({w:.0%})"
                     for i, w, s in attended]
            text += " — attends to " + ", ".join(named)
    return text + "."


def limits_note(ranking: Ranking, row: int) -> str:
    """Which limits read from the intent the item at ``row`` keeps and which it breaks, and which
    of the preferences it matches, in Markdown ("" when none were read)."""
    if ranking.understood is None or not ranking.understood.understood:
        return ""
    broken = set(ranking.table["broken"].iloc[row]) if "broken" in ranking.table else set()
    labels = [c.label for c in ranking.understood.constraints]
    kept = [label for label in labels if label not in broken]
    liked = ranking.table["liked"].iloc[row] if "liked" in ranking.table else ()
    parts = []
    if kept:
        parts.append(":green[Keeps:] " + ", ".join(kept))
    if broken:
        parts.append(":red[Breaks:] " + ", ".join(label for label in labels if label in broken))
    if liked:
        parts.append(":blue[Matches:] " + ", ".join(label.removeprefix("likes: ")
                                                    for label in liked))
    return " · ".join(parts)
