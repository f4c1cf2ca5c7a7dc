"""Widgets that edit the context, kept in session state so every page sees the same context."""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from ctxrec import Catalog, Context, HistoryEntry
from ctxrec.data.catalog import COMPANIONS, PLACES
from ctxrec.data.context import DEVICE_CHOICES, context_from_params, context_to_params
from ctxrec.data.context_fields import ContextSchema, context_fields

INTENT_MAX_CHARS = 100_000
KEYS = ("ctx_date", "ctx_time", "ctx_place", "ctx_city", "ctx_device", "ctx_companions",
        "ctx_intent", "ctx_liked", "ctx_disliked", "ctx_extra")
UNKNOWN = "(unknown)"


def init_context_state() -> None:
    """Start from the link's query parameters (a shared view), else from now at home."""
    if "ctx_date" not in st.session_state:
        context, problems = context_from_params(st.query_params.to_dict())
        st.session_state["ctx_link_problems"] = problems
        _load(context)
    # Streamlit forgets a widget's value on pages that do not draw it; re-assigning keeps it.
    for key in KEYS:
        st.session_state[key] = st.session_state[key]


def apply_scenario(context: Context) -> None:
    """Button callback: put a scenario's context into the editor."""
    _load(context)


def _load(context: Context) -> None:
    state = st.session_state
    state["ctx_date"], state["ctx_time"] = context.when.date(), context.when.time()
    state["ctx_place"], state["ctx_city"] = context.place, context.city
    state["ctx_device"], state["ctx_companions"] = context.device, list(context.companions)
    state["ctx_intent"] = context.intent
    state["ctx_liked"] = [h.item_id for h in context.history if h.signal > 0]
    state["ctx_disliked"] = [h.item_id for h in context.history if h.signal < 0]
    state["ctx_extra"] = dict(context.extra)  # the fields a log-trained model learned
    for key in [k for k in state if str(k).startswith("ctx_x_")]:
        del state[key]  # their widgets start again from ctx_extra


def share_in_url(context: Context, selections: dict[str, str] | None = None) -> None:
    """Mirror the context (and the page's selections) in the address bar, so a copied link
    reproduces the view."""
    params = {**context_to_params(context), **(selections or {})}
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)


def drop_unknown_history(catalog: Catalog) -> list[str]:
    """Remove history ids the active catalog lacks (e.g. after switching catalogs); returns them."""
    dropped = []
    for key in ("ctx_liked", "ctx_disliked"):
        kept = [i for i in st.session_state[key] if catalog.position(i) is not None]
        dropped += [i for i in st.session_state[key] if catalog.position(i) is None]
        st.session_state[key] = kept
    return dropped


def add_feedback(item_id: str, sign: int) -> None:
    """Button callback: 👍 (+1) or 👎 (-1) moves the item into the matching history list."""
    target, other = ("ctx_liked", "ctx_disliked") if sign > 0 else ("ctx_disliked", "ctx_liked")
    st.session_state[other] = [i for i in st.session_state[other] if i != item_id]
    if item_id not in st.session_state[target]:
        st.session_state[target] = st.session_state[target] + [item_id]


def _set_field(name: str) -> None:
    value = st.session_state[f"ctx_x_{name}"]
    st.session_state["ctx_extra"] = {**st.session_state["ctx_extra"],
                                     name: "" if value == UNKNOWN else value}


def render_learned_fields(schema: ContextSchema, context: Context) -> None:
    """One choice per field the attached model learned from its log (its values as the log
    wrote them); the time fields follow the date and time above."""
    st.markdown("**Fields the attached model learned from its log**")
    timed = [f"{name} {fields[name]}" for fields in [context_fields(context)]
             for name in schema.from_time]
    if timed:
        st.caption("From the date and time: " + " · ".join(timed))
    chosen = {**context_fields(context), **st.session_state["ctx_extra"]}  # what the model reads
    columns = st.columns(2)
    for i, (name, values) in enumerate(zip(schema.fields, schema.vocabularies)):
        if name in schema.from_time:
            continue
        options = [UNKNOWN, *values]
        current = chosen.get(name, "")
        columns[i % 2].selectbox(name, options, key=f"ctx_x_{name}",
                                 index=options.index(current) if current in options else 0,
                                 on_change=_set_field, args=(name,),
                                 help=f"{len(values)} values in the log; {UNKNOWN} is what the "
                                      "model learned for a missing one")


def render_context_editor(catalog: Catalog, schema: ContextSchema | None = None) -> None:
    label = {item_id: f"{catalog.title(item_id)} · {cat}" for item_id, cat in
             zip(catalog.ids, catalog.items.get("category", [""] * len(catalog)))}
    st.text_area("What do you want right now?", key="ctx_intent", height=90,
                 max_chars=INTENT_MAX_CHARS,
                 placeholder="e.g. something light and funny to watch with the kids")
    when_date, when_time = st.columns(2)
    when_date.date_input("Date", key="ctx_date")
    when_time.time_input("Time", key="ctx_time", step=900)
    place, city = st.columns(2)
    place.selectbox("Place", PLACES, key="ctx_place")
    city.text_input("City", key="ctx_city", placeholder="optional")
    device, companions = st.columns(2)
    device.selectbox("Device", DEVICE_CHOICES, key="ctx_device")
    companions.multiselect("With", COMPANIONS, key="ctx_companions", placeholder="alone?")
    st.multiselect("👍 Liked before", list(catalog.ids), key="ctx_liked",
                   format_func=label.get, placeholder="type to search the catalog")
    st.multiselect("👎 Did not like", list(catalog.ids), key="ctx_disliked",
                   format_func=label.get, placeholder="type to search the catalog")
    if schema is not None:
        render_learned_fields(schema, current_context())


def current_context() -> Context:
    state = st.session_state
    liked = [HistoryEntry(i, 1) for i in state["ctx_liked"]]
    disliked = [HistoryEntry(i, -1) for i in state["ctx_disliked"] if i not in state["ctx_liked"]]
    return Context(history=tuple(liked + disliked),
                   when=datetime.combine(state["ctx_date"], state["ctx_time"]),
                   place=state["ctx_place"], city=state["ctx_city"], device=state["ctx_device"],
                   companions=tuple(state["ctx_companions"]), intent=state["ctx_intent"],
                   extra=tuple(state["ctx_extra"].items()))
