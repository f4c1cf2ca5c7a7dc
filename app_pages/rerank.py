"""LLM re-rank: a generative model judges the first stage's top K, and the page opens its decision."""

import streamlit as st

from ctxrec import COMPONENTS, ModelLoadError
from ctxrec.llm.models import DEFAULT_LLM
from ctxrec.server_policy import PolicyError
from ctxrec.viz import bar_figure, contributions_figure, heatmap_figure
from ui import state
from ui.options import current_ranking
from ui.page_setup import context_summary, prepare
from ui.pickers import model_picker

SUGGESTED_LLMS = ("Qwen/Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-7B-Instruct")
VIEWS = {"Answer position, head average": "average", "Answer position, one head": "head",
         "Rollout (all layers)": "rollout"}

st.title("🤖 LLM re-rank")
page = prepare()
context_summary(page.context)
st.caption("The first stage ranks the whole catalog; a generative language model then reads the "
           "context and each of the top K items and is asked “is this a good fit? Yes or No”. Its "
           "score is log P(Yes) − log P(No) at the answer position, standardised over the K items "
           "and added with the weight you set, as the **llm** component.")

model_col, k_col, w_col = st.columns([3, 2, 2])
pick = model_picker("llm", "Language model", DEFAULT_LLM, SUGGESTED_LLMS, key="llm",
                    container=model_col)
top_k = k_col.slider("Re-rank the top K", 3, 50, 20, key="llm_k")
weight = w_col.slider("LLM weight", 0.0, 3.0, 1.0, step=0.1, key="llm_weight")
if not pick.name:
    st.info("Type a model id or folder to load it.")
    st.stop()
try:
    state.POLICY.check_model("llm", pick.name, DEFAULT_LLM)
    reranker = state.llm_reranker(pick.name, pick.trust_remote_code)
except (ModelLoadError, PolicyError) as err:
    st.error(str(err))
    st.stop()
llm = reranker.llm
st.caption(f"In use: **{llm.name}** on **{llm.device}** ({str(llm.dtype).removeprefix('torch.')})"
           + (" · chat template" if llm.has_chat_template else " · plain prompt (no chat "
              "template)"))

first = current_ranking(page.recommender, page.context, k=top_k)
if first.table.empty:
    st.info("Nothing is ranked for this context, so there is nothing to re-rank.")
    st.stop()
with st.spinner(f"{llm.name} is reading {len(first.table)} items…"):
    ranking = reranker.rerank(first, page.catalog, page.context, weight, top_k=top_k)
table = ranking.table
before = dict(zip(first.table["item_id"], first.table["rank"]))
table = table.assign(first_rank=[before[i] for i in table["item_id"]])

left, right = st.columns([4, 3])
with left:
    shown = [c for c in (*COMPONENTS, "llm") if table[c].abs().sum() > 0]
    labels = [f"{r}. {t}" for r, t in zip(table["rank"], table["title"])]
    st.plotly_chart(contributions_figure(labels, {c: table[c] for c in shown}, table["score"]),
                    key="llm_breakdown")
with right:
    view = table[["first_rank", "title", "raw_llm", "score"]].rename(columns={
        "first_rank": "before", "raw_llm": "LLM yes−no"}).round(3)
    st.dataframe(view, hide_index=True, key="llm_table", height=420)
    st.caption("LLM yes−no = log P(Yes) − log P(No) at the answer position.")
for note in ranking.notes[-1:]:
    st.caption(note)

st.subheader("Inside the decision")
ids = list(table["item_id"])
if st.session_state.get("llm_item") not in ids:
    st.session_state["llm_item"] = ids[0]
titles = dict(zip(table["item_id"], table["title"]))
item_id = st.selectbox("Item", ids, key="llm_item",
                       format_func=lambda i: f"{ids.index(i) + 1}. {titles[i]}")
history_titles = {h.item_id: page.catalog.title(h.item_id) for h in page.context.history}
item_text = page.catalog.brief(item_id)
focus = state.answer_focus(reranker, page.context, item_text, history_titles, llm.name)
occlusion = state.occlusion(reranker, page.context, item_text, history_titles, llm.name)

att_col, occ_col = st.columns(2)
with att_col:
    use_rollout = st.toggle("Rollout instead of the layer average", key="llm_rollout")
    fields = focus.fields[focus.fields["kind"] == "context"]
    values = fields["rollout"] if use_rollout else fields["attention"]
    st.plotly_chart(bar_figure(list(fields["label"]), list(values),
                               title="Attention: where the answer position looks"),
                    key="llm_attention_bars")
    st.caption("Share of the answer position's attention on each context field (summed over its "
               "tokens). Instructions, item and chat markup take the rest.")
with occ_col:
    st.plotly_chart(bar_figure([r.label for r in occlusion], [r.delta for r in occlusion],
                               title="Attribution: how much the score drops without each field"),
                    key="llm_occlusion_bars")
    st.caption("Each bar re-scores the prompt with one field removed: positive = the field argued "
               "for the item, negative = against it.")
st.info("Attention is not attribution: a field can draw attention and change nothing, or change "
        "the answer while drawing little attention. Compare the two charts.")

with st.expander("Full attention over the prompt (the Attention page's views)"):
    pair = focus.pair
    v_col, l_col, h_col = st.columns([3, 2, 2])
    view = VIEWS[v_col.radio("View", list(VIEWS), key="llm_view")]
    layer = l_col.slider("Layer", 0, pair.n_layers - 1, pair.n_layers - 1, key="llm_layer",
                         disabled=view == "rollout")
    head = h_col.slider("Head", 0, pair.n_heads - 1, 0, key="llm_head", disabled=view != "head")
    matrix, rows, cols, _ = pair.select(view, layer, head)
    keep = slice(max(0, len(cols) - 160), None)  # long prompts: the last 160 tokens stay legible
    st.plotly_chart(heatmap_figure(matrix[-1:, keep], cols[keep], ["answer"],
                                   title="Attention of the answer position over the prompt"),
                    key="llm_answer_row")

if st.toggle("Explain each item in one sentence (generated)", key="llm_explain"):
    for item, title in list(titles.items())[:5]:
        with st.spinner(f"Writing a reason for {title}…"):
            reason = reranker.explain(page.context, page.catalog.brief(item), history_titles)
        st.markdown(f"**{title}** — ✨ _{reason}_")
    st.caption(f"✨ Generated by {llm.name} with greedy decoding (at most 40 tokens): it may be "
               "wrong, and it is not how the score was computed.")
