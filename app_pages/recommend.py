"""Recommend: edit the context, see the ranking, its breakdown and the reasons; 👍/👎 re-rank."""

import streamlit as st

from ctxrec import COMPONENTS, why
from ctxrec.rank.explain import limits_note
from ctxrec.viz import contributions_figure
from ui.context_editor import add_feedback, render_context_editor
from ui.costs import render_costs
from ui.intent_chips import render_intent_chips
from ui.learned_context import render_field_effects
from ui.options import render_options
from ui.page_setup import prepare

st.title("🎯 Recommend")
page = prepare()
catalog, context, ranking = page.catalog, page.context, page.ranking

left, right = st.columns([2, 3], gap="large")
with left:
    st.subheader("Context")
    learned = page.recommender.sequence_model if page.recommender.learned_context else None
    render_context_editor(catalog, learned.schema if learned is not None else None)
    with st.expander("Ranking options"):
        render_options()

with right:
    st.subheader("For this context")
    st.caption(context.describe_situation())
    render_intent_chips(page.recommender, context)
    for note in ranking.notes:
        st.warning(note)
    used = ", ".join(f"{c} {ranking.weights[c]:g}" for c in COMPONENTS if ranking.weights[c])
    st.caption(f"Weights ({ranking.weights.mode.lower()}): {used or 'none'}. "
               + " ".join(ranking.weights.reasons))
    table = ranking.table
    if table.empty:
        st.info("Nothing to recommend with these settings.")
    else:
        labels = [f"{r}. {t}" for r, t in zip(table["rank"], table["title"])]
        figure = contributions_figure(labels, {c: table[c] for c in COMPONENTS}, table["score"])
        st.plotly_chart(figure, key="breakdown_chart")
        over = "the whole catalog" if ranking.candidates is None else \
            "a fixed sample of the catalog (ranked through the vector index)"
        st.caption(f"Score breakdown: each component is standardised over {over} "
                   "(0 = an average item), then weighted; a bar's segments sum to its score (◆).")
        if learned is not None and context.history:
            st.caption("The **context** bar is what the attached model learned from its log: "
                       "the item's score with this context minus its score with every field "
                       "unknown.")
        else:
            source = "the catalog's facets: when, where and with whom each item fits" \
                if page.recommender.situation_text_share(context) == 0 else \
                "the situation sentence and the catalog's facets"
            st.caption(f"The **context** bar is the hand-written prior ({source}), for catalogs "
                       "without a log; a sequence model trained on a log with context replaces "
                       "it with what it learned.")
        if learned is not None:
            render_field_effects(page.recommender, context, table)
    render_costs(ranking, "rec_costs")
    for row, item in enumerate(table.itertuples()):
        details = catalog.record(item.item_id)
        with st.container(border=True):
            facts = catalog.facts(item.item_id)
            st.markdown(f"**{item.rank}. {item.title}** &nbsp; :gray[{facts}] &nbsp; "
                        f"`{item.score:+.2f}`")
            if details.get("description"):
                st.caption(details["description"])
            st.markdown(f":blue[Why:] {why(ranking, row, catalog.title)}")
            note = limits_note(ranking, row)
            if note:
                st.markdown(note)
            with st.container(horizontal=True):
                st.button("👍", key=f"fb_up_{item.item_id}", on_click=add_feedback,
                          args=(item.item_id, 1), help="Liked it: add to history")
                st.button("👎", key=f"fb_down_{item.item_id}", on_click=add_feedback,
                          args=(item.item_id, -1), help="Not for me: add to history")
