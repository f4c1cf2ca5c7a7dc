"""Views of a sequence model that learned the context from a log: what each field does to the
ranking (occlusion), and what the prediction reads (attention over context fields and history)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from ctxrec import Context, Recommender
from ctxrec.sequence.context_train import field_effects, prediction_attention
from ctxrec.viz import bar_figure, heatmap_figure


def _history(recommender: Recommender, context: Context) -> list[int]:
    positions = (recommender.catalog.position(h.item_id) for h in context.history)
    return [p for p in positions if p is not None]


def render_field_effects(recommender: Recommender, context: Context, table: pd.DataFrame) -> None:
    """Per ranked item and learned field: how many places it moves when that field is unknown."""
    history = _history(recommender, context)
    with st.expander("What each learned context field does", expanded=True):
        if not history:
            st.info("The model predicts from the history: add items to it (👍 or 👎) to see "
                    "what each field of the context does.")
            return
        model = recommender.sequence_model
        items = [recommender.catalog.position(i) for i in table["item_id"]]
        moves = field_effects(model, history, context, items)
        rows = [f"{r}. {t}" for r, t in zip(table["rank"], table["title"])]
        reach = max(1, int(np.abs(moves.to_numpy()).max()))
        st.plotly_chart(heatmap_figure(moves.to_numpy(dtype=float), list(moves.columns), rows,
                                       value_name="places it falls", colorscale="RdBu_r",
                                       zmin=-reach, zmax=reach, show_values=True,
                                       value_format="d",
                                       height=34 * len(rows) + 160), key="field_effects_chart")
        top = moves.iloc[0]
        field = str(top.abs().idxmax())
        if top[field]:
            st.caption(f"With {field} unknown, {table['title'].iloc[0]} "
                       f"{'falls' if top[field] > 0 else 'rises'} {abs(int(top[field]))} "
                       f"place{'s' if abs(int(top[field])) != 1 else ''} in the model's "
                       "ranking. Each cell reads one field as unknown, the others as set; "
                       "positive means the item falls.")
        else:
            st.caption("No single field moves the first item in the model's ranking. Each cell "
                       "reads one field as unknown, the others as set; positive means the item "
                       "falls.")


def render_prediction_attention(recommender: Recommender, context: Context) -> None:
    """The attention of the model's prediction over its context fields and the history."""
    history = _history(recommender, context)
    if not history:
        st.info("The history is empty: the model's prediction has nothing to read yet.")
        return
    model = recommender.sequence_model
    labels, weights, shown = prediction_attention(model, history, context)
    titles = [f"{i + 1}. {recommender.catalog.title(str(recommender.catalog.ids[p]))}"
              for i, p in enumerate(shown)]
    names = [f"🧭 {label}" for label in labels] + titles
    st.plotly_chart(bar_figure(names, weights, title="Attention of the prediction"),
                    key="prediction_attention_chart")
    if model.config.context == "tokens":
        st.caption("The model's last layer: the prediction of the next item attends to each "
                   "field of the context you set (🧭) and to each history item (oldest first); "
                   "the weights, averaged over heads, sum to 1.")
    else:
        st.caption("This model takes the context through a gate, not through attention, so "
                   "these weights cover the history only (last self-attention layer, averaged "
                   "over heads); the Recommend page shows what each context field does.")
