"""History attention: the target-attention weights the recommender used for its history score."""

import streamlit as st

from ctxrec.export import matrix_csv
from ctxrec.viz import heatmap_figure
from ui.page_setup import context_summary, prepare

st.title("🧲 History attention")
page = prepare()
context_summary(page.context)
ranking = page.ranking
if not ranking.history_ids:
    st.info("The history is empty: mark items 👍 or 👎 on the Recommend page to see which of them "
            "each recommendation attends to.")
    st.stop()
if ranking.table.empty:
    st.info("Nothing is ranked for this context.")
    st.stop()

signs = ["👍" if s > 0 else "👎" if s < 0 else "•" for s in ranking.history_signals]
columns = [f"{sign} {page.catalog.title(i)}" for sign, i in zip(signs, ranking.history_ids)]
rows = [f"{r}. {t}" for r, t in zip(ranking.table["rank"], ranking.table["title"])]
st.caption("Each row is a ranked item; its weights over the history (softmax of cosine / τ, "
           f"τ = {page.recommender.config.history_temperature}) sum to 1. These are the numbers "
           "inside the ranking's history score: Σ weight × (👍 +1 / 👎 −1) × cosine.")
st.plotly_chart(heatmap_figure(ranking.history_attention, columns, rows,
                               value_name="attention", colorscale="Oranges", zmin=0, zmax=1,
                               height=34 * len(rows) + 160, show_values=len(columns) <= 12),
                key="history_heatmap")
st.download_button("Download the weights (CSV)",
                   matrix_csv(ranking.history_attention, rows, columns),
                   file_name="history-attention.csv", key="history_csv")
