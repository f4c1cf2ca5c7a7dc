"""Attention: where the language model's attention goes over (context, item) read as one text."""

import streamlit as st

from ctxrec import ModelLoadError
from ctxrec.export import matrix_csv
from ctxrec.viz import attention_grid_figure, heatmap_figure
from ui import state
from ui.learned_context import render_prediction_attention
from ui.options import pick_item
from ui.page_setup import context_summary, prepare

VIEWS = {"One head": "head", "Head average": "average", "Rollout (all layers)": "rollout",
         "All layers × heads": "grid"}

st.title("🔍 Attention")
page = prepare()
context_summary(page.context)
item_id = pick_item(page.ranking)
if item_id is None:
    st.stop()
try:
    model = state.attention_model()
except ModelLoadError as err:
    st.error(str(err))
    st.stop()
pair = state.pair_attention(model.name, state.encoder_trust(), page.context_text,
                            page.catalog.text(item_id))

for key, top in (("att_layer", pair.n_layers - 1), ("att_head", pair.n_heads - 1)):
    st.session_state[key] = min(st.session_state.get(key, 0), top)  # another model may be smaller
view_col, layer_col, head_col, special_col = st.columns([3, 2, 2, 2])
focus = st.radio("Show", ("all", "context→item", "item→context"), key="att_focus",
                 horizontal=True, help="Zoom into the block where one text looks at the other.")
view = VIEWS[view_col.radio("View", list(VIEWS), key="att_view", horizontal=True)]
layer = layer_col.slider("Layer", 0, pair.n_layers - 1, key="att_layer",
                         disabled=view in ("rollout", "grid"))
head = head_col.slider("Head", 0, pair.n_heads - 1, key="att_head", disabled=view != "head")
hide = special_col.toggle("Hide special tokens", key="att_hide_special")

st.caption(f"{model.name} read the context (tokens 1…) and the item (after the separator) as one "
           f"sequence of {len(pair.tokens)} tokens. Row = the token that looks; column = where it "
           "looks; each row sums to 1. Red boxes: context words looking at item words, and back."
           + (" Causal model: tokens only see earlier tokens." if pair.causal else ""))
if view == "grid":
    st.plotly_chart(attention_grid_figure(pair.attentions), key="att_grid")
else:
    matrix, rows, cols, boxes = pair.select(view, layer, head, hide, focus)
    title = {"head": f"Layer {layer}, head {head}", "average": f"Layer {layer}, mean of heads",
             "rollout": "Attention rollout across all layers (with residual identity)"}[view]
    st.plotly_chart(heatmap_figure(matrix, cols, rows, title=title, boxes=boxes),
                    key="att_heatmap")
    st.download_button("Download this matrix (CSV)", matrix_csv(matrix, rows, cols),
                       file_name=f"attention-{view}-{layer}-{head}.csv", key="att_csv")
st.caption("Attention shows where the model looks, not what caused the score: compare the "
           "breakdown on the Recommend page.")

sequence = state.sequence_model()
known = [h.item_id for h in page.context.history if page.catalog.position(h.item_id) is not None]
if sequence is not None and known:
    st.subheader("Sequence model: self-attention over the history")
    positions = [page.catalog.position(i) for i in known]
    weights, n = sequence.self_attention(positions)
    seq_layer, seq_head = st.columns(2)
    # a slider needs two values at least; a one-layer (or one-head) model has nothing to pick
    s_layer = seq_layer.slider("Layer", 0, weights.shape[0] - 1, key="seq_layer") \
        if weights.shape[0] > 1 else 0
    s_head = seq_head.slider("Head", 0, weights.shape[1] - 1, key="seq_head") \
        if weights.shape[1] > 1 else 0
    titles = [f"{i + 1}. {page.catalog.title(item)[:30]}" for i, item in
              enumerate(known[-n:])]
    st.plotly_chart(heatmap_figure(weights[s_layer, s_head], titles, titles,
                                   title=f"Layer {s_layer}, head {s_head}: each history item "
                                         "looks only at itself and earlier items"),
                    key="seq_heatmap")
    st.caption(f"The last row is the state that scores what comes next. Oldest first; the "
               f"model reads the last {sequence.config.max_len} items.")
    if page.recommender.learned_context:
        st.subheader("Sequence model: what the prediction attends to")
        render_prediction_attention(page.recommender, page.context)
