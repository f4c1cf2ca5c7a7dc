"""What the intent reader understood, as chips the person can drop; a dropped chip re-ranks."""

from __future__ import annotations

import hashlib

import streamlit as st

from ctxrec import Context, Recommender


def _chips_key(intent: str) -> str:
    # one widget per intent text, so a new intent starts with every chip on
    return "rec_chips_" + hashlib.sha1(intent.strip().encode()).hexdigest()[:12]


def dropped_constraints(recommender: Recommender, context: Context) -> list[str]:
    """Keys of the limits the person switched off for the current intent."""
    key = _chips_key(context.intent)
    if not context.intent.strip() or key not in st.session_state:
        return []
    kept = set(st.session_state[key] or ())
    return [c.key for c in recommender.read_intent(context.intent).understood
            if c.key not in kept]


def render_intent_chips(recommender: Recommender, context: Context) -> None:
    """The chips, all on for a new intent; nothing is drawn when nothing was read."""
    if not context.intent.strip():
        return
    reading = recommender.read_intent(context.intent)
    for note in reading.notes:
        st.caption(note)
    if not reading.understood:
        st.caption("No limit or preference read from the intent: it is ranked by meaning alone.")
        return
    labels = {c.key: c.label for c in reading.understood}
    st.pills("Understood from the intent — click a chip to drop it", list(labels),
             selection_mode="multi", default=list(labels), format_func=labels.get,
             key=_chips_key(context.intent), width="stretch")
