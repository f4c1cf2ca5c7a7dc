"""Recommend: edit the context, see the ranking, its breakdown and the reasons; 👍/👎 re-rank."""

import streamlit as st

from ctxrec import COMPONENTS, DEFAULT_WEIGHTS, Weights, why
from ctxrec.viz import contributions_figure
from ui import state
from ui.context_editor import add_feedback, current_context, drop_unknown_history, \
    render_context_editor, share_in_url

st.title("🎯 Recommend")
catalog = state.catalog()
for problem in st.session_state.get("ctx_link_problems", []):
    st.warning(f"Ignored from the link: {problem}")
dropped = drop_unknown_history(catalog)
if dropped:
    st.info(f"Removed {len(dropped)} history item(s) that are not in {catalog.name}.")
recommender = state.recommender()

left, right = st.columns([2, 3], gap="large")
with left:
    st.subheader("Context")
    render_context_editor(catalog)
    with st.expander("Ranking options"):
        k = st.slider("How many items", 3, 30, 10, key="opt_k")
        exclude_seen = st.checkbox("Leave out items already in the history", True,
                                   key="opt_exclude_seen")
        diversity = st.slider("Diversity (MMR)", 0.0, 1.0, 0.0, 0.05, key="opt_diversity",
                              help="0 ranks by score alone; higher values trade score for variety.")
        mode = st.radio("Weights", ("Adaptive", "Manual"), key="opt_weight_mode", horizontal=True)
        manual = {c: st.slider(c, 0.0, 2.0, DEFAULT_WEIGHTS[c], 0.05, key=f"opt_w_{c}",
                               disabled=mode == "Adaptive") for c in COMPONENTS}

context = current_context()
share_in_url(context)
weights = Weights.manual(manual) if mode == "Manual" else None
ranking = recommender.recommend(context, k=k, weights=weights, exclude_seen=exclude_seen,
                                diversity=diversity)

with right:
    st.subheader("For this context")
    st.caption(context.describe_situation())
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
        st.caption("Score breakdown: each component is standardised over the whole catalog "
                   "(0 = an average item), then weighted; a bar's segments sum to its score (◆).")
    for row, item in enumerate(table.itertuples()):
        details = catalog.record(item.item_id)
        with st.container(border=True):
            facts = catalog.facts(item.item_id)
            st.markdown(f"**{item.rank}. {item.title}** &nbsp; :gray[{facts}] &nbsp; "
                        f"`{item.score:+.2f}`")
            if details.get("description"):
                st.caption(details["description"])
            st.markdown(f":blue[Why:] {why(ranking, row, catalog.title)}")
            with st.container(horizontal=True):
                st.button("👍", key=f"fb_up_{item.item_id}", on_click=add_feedback,
                          args=(item.item_id, 1), help="Liked it: add to history")
                st.button("👎", key=f"fb_down_{item.item_id}", on_click=add_feedback,
                          args=(item.item_id, -1), help="Not for me: add to history")
