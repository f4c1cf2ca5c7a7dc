"""What every page starts with: the active catalog and recommender, the context, and its ranking."""

from __future__ import annotations

from dataclasses import dataclass, replace

import streamlit as st

from ctxrec import Catalog, Context, Ranking, Recommender
from ui import state
from ui.context_editor import current_context, drop_unknown_history, share_in_url
from ui.options import current_ranking, linked_selections


@dataclass
class PageData:
    catalog: Catalog
    recommender: Recommender
    context: Context
    ranking: Ranking

    @property
    def context_text(self) -> str:
        """The context in words, as the language models read it."""
        titles = {h.item_id: self.catalog.title(h.item_id) for h in self.context.history}
        return self.context.describe(titles)


def prepare() -> PageData:
    catalog = state.catalog()
    for problem in st.session_state.get("ctx_link_problems", []):
        st.warning(f"Ignored from the link: {problem}")
    dropped = drop_unknown_history(catalog)
    if dropped:
        st.info(f"Removed {len(dropped)} history item(s) that are not in {catalog.name}.")
    recommender = state.recommender()
    context = _readable(current_context(), recommender)
    share_in_url(context, linked_selections())
    return PageData(catalog, recommender, context, current_ranking(recommender, context))


def _readable(context: Context, recommender: Recommender) -> Context:
    """The context with only the log fields the attached model reads: fields set for another
    model (or for one no longer attached) stay in the editor's state but rank nothing."""
    model = recommender.sequence_model if recommender.learned_context else None
    fields = set(model.schema.fields) - set(model.schema.from_time) if model else set()
    kept = tuple((name, value) for name, value in context.extra if name in fields)
    return context if kept == context.extra else replace(context, extra=kept)


def context_summary(context: Context) -> None:
    """One line naming the context, with a link to edit it."""
    intent = f" · wants “{context.intent.strip()[:80]}”" if context.intent.strip() else ""
    st.caption(f"Context: {context.describe_situation()}{intent} · {len(context.history)} "
               "history item(s)")
    st.page_link("app_pages/recommend.py", label="Edit the context", icon="✏️")
