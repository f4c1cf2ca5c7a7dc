"""Compare: two contexts side by side, how the ranks move, and which components moved them."""

import streamlit as st

from ctxrec import COMPONENTS
from ctxrec.export import safe_csv
from ctxrec.rank.compare import compare_rankings
from ctxrec.viz import slope_figure
from ui import state
from ui.options import current_ranking
from ui.page_setup import prepare

st.title("⚖️ Compare two contexts")
page = prepare()
choices = {"✏️ Current context": None, **state.scenario_choices()}
k = st.session_state["opt_k"]
full = len(page.catalog)
sides = {}
left, right = st.columns(2)
for side, column, default in (("A", left, 0), ("B", right, 2)):
    label = column.selectbox(f"Context {side}", list(choices), index=default, key=f"cmp_{side}")
    scenario = choices[label]
    context = page.context if scenario is None else scenario.context
    column.caption(context.describe_situation() + (f" Wants: “{context.intent}”"
                                                  if context.intent else ""))
    ranking = current_ranking(page.recommender, context, k=full)
    column.dataframe(ranking.table.head(k)[["rank", "title", "category", "score"]],
                     hide_index=True, key=f"cmp_table_{side}")
    sides[side] = ranking

moves = compare_rankings(sides["A"], sides["B"], k)
st.subheader("How the ranks move")
st.plotly_chart(slope_figure(list(moves["title"]), moves["rank_a"], moves["rank_b"], k),
                key="cmp_slope")
st.subheader("What moved them")
st.caption("Change in each component's weighted contribution from A to B (positive: helps in B). "
           "Both rankings use the ranking options from the Recommend page.")
shown = moves[["title", "rank_a", "rank_b", "delta_score", "moved_by",
               *[f"delta_{c}" for c in COMPONENTS]]]
st.dataframe(shown, hide_index=True, key="cmp_moves",
             column_config={"rank_a": st.column_config.NumberColumn("rank A", format="%d"),
                            "rank_b": st.column_config.NumberColumn("rank B", format="%d")})
st.download_button("Download the comparison (CSV)", safe_csv(moves), file_name="compare.csv",
                   key="cmp_csv")
