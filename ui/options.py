"""Ranking options and shared selections, kept in session state so every page ranks the same way."""

from __future__ import annotations

import streamlit as st

from ctxrec import COMPONENTS, DEFAULT_WEIGHTS, Context, Ranking, Recommender, Weights
from ui.intent_chips import dropped_constraints

DEFAULTS = {"opt_k": 10, "opt_exclude_seen": True, "opt_diversity": 0.0,
            "opt_weight_mode": "Adaptive",
            **{f"opt_w_{c}": DEFAULT_WEIGHTS[c] for c in COMPONENTS}}
SELECTIONS = ("sel_item", "att_layer", "att_head", "att_view", "att_hide_special", "att_focus",
              "sim_source", "sim_a", "sim_b", "learn_text", "learn_token")


# selections carried in the link: query parameter → session key (pages clamp or fall back when a
# value does not fit, so a hand-edited link cannot break them)
LINKED = {"item": "sel_item", "layer": "att_layer", "head": "att_head"}


def init_option_state() -> None:
    if "opt_k" not in st.session_state:  # first run of this session: read the link
        for param, key in LINKED.items():
            value = st.query_params.get(param)
            if value is None:
                continue
            if key == "sel_item":
                st.session_state[key] = value
            elif value.isdigit():
                st.session_state[key] = int(value)
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)
    # keep values of widgets that the current page does not draw
    for key in (*DEFAULTS, *SELECTIONS):
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def render_options() -> None:
    st.slider("How many items", 3, 30, key="opt_k")
    st.checkbox("Leave out items already in the history", key="opt_exclude_seen")
    st.slider("Diversity (MMR)", 0.0, 1.0, step=0.05, key="opt_diversity",
              help="0 ranks by score alone; higher values trade score for variety.")
    mode = st.radio("Weights", ("Adaptive", "Manual"), key="opt_weight_mode", horizontal=True)
    for c in COMPONENTS:
        st.slider(c, 0.0, 2.0, step=0.05, key=f"opt_w_{c}", disabled=mode == "Adaptive")


def current_ranking(recommender: Recommender, context: Context, k: int | None = None) -> Ranking:
    """Rank with the options the person set; ``k`` overrides how many items come back."""
    state = st.session_state
    weights = Weights.manual({c: state[f"opt_w_{c}"] for c in COMPONENTS}) \
        if state["opt_weight_mode"] == "Manual" else None
    return recommender.recommend(context, k=k or state["opt_k"], weights=weights,
                                 exclude_seen=state["opt_exclude_seen"],
                                 diversity=state["opt_diversity"],
                                 dropped=dropped_constraints(recommender, context))


def pick_item(ranking: Ranking) -> str | None:
    """Selectbox over the ranked items (kept across pages); returns the chosen item id."""
    ids = list(ranking.table["item_id"])
    if not ids:
        st.info("Nothing is ranked for this context, so there is no item to inspect.")
        return None
    if st.session_state.get("sel_item") not in ids:
        st.session_state["sel_item"] = ids[0]
    titles = dict(zip(ranking.table["item_id"], ranking.table["title"]))
    ranks = dict(zip(ranking.table["item_id"], ranking.table["rank"]))
    return st.selectbox("Ranked item", ids, key="sel_item",
                        format_func=lambda i: f"{ranks[i]}. {titles[i]}")


def linked_selections() -> dict[str, str]:
    """The selections to put in the link."""
    return {param: str(st.session_state[key]) for param, key in LINKED.items()
            if key in st.session_state}
