"""LLM re-rank: a generative model judges the first stage's top K, and the page opens its decision."""

from pathlib import Path

import streamlit as st

from ctxrec import COMPONENTS, ModelLoadError
from ctxrec.llm.adapters import ADAPTER_FILE, describe_adapter, read_adapter, tuned_rerankers
from ctxrec.llm.models import DEFAULT_LLM
from ctxrec.llm.rerank import LABELS
from ctxrec.server_policy import PolicyError
from ctxrec.viz import bar_figure, contributions_figure, heatmap_figure
from ui import state
from ui.costs import render_costs
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
           "context and the top K items. **Pointwise**, it is asked of each item “is this a good "
           "fit? Yes or No” and scores log P(Yes) − log P(No); **listwise**, it reads the K items "
           "as one lettered list, is asked which fits best, and scores each item by the "
           "log-probability of its letter, in one pass. The scores, standardised over the K "
           "items, are added with the weight you set, as the **llm** component. Re-rankers tuned "
           "on a log (`python -m ctxrec tune-llm`) are listed with the models.")

model_col, way_col, k_col, w_col = st.columns([3, 2, 2, 2])
tuned = [str(p) for p in tuned_rerankers()]  # `python -m ctxrec tune-llm` saves here
pick = model_picker("llm", "Language model", DEFAULT_LLM, [*tuned, *SUGGESTED_LLMS], key="llm",
                    container=model_col)
if not pick.name:
    st.info("Type a model id or folder to load it.")
    st.stop()
adapter = None
try:
    state.POLICY.check_model("llm", pick.name, DEFAULT_LLM)
    if (Path(pick.name).expanduser() / ADAPTER_FILE).is_file():
        adapter = read_adapter(pick.name)
        way_col.selectbox("Scoring", [adapter["scoring"]], key="llm_scoring_tuned",
                          disabled=True, help="the way this re-ranker was tuned to answer")
        reranker = state.tuned_reranker(pick.name)
    else:
        scoring = way_col.selectbox("Scoring", ["pointwise", "listwise"], key="llm_scoring")
        reranker = state.llm_reranker(pick.name, pick.trust_remote_code, scoring)
except (ModelLoadError, PolicyError) as err:
    st.error(str(err))
    st.stop()
# a tuned re-ranker starts at the weight chosen on validation (0 when it did not help)
if st.session_state.get("llm_weight_for") != pick.name:
    st.session_state["llm_weight"] = float(adapter["weight"]) if adapter else 1.0
    st.session_state["llm_weight_for"] = pick.name
most = len(LABELS) if reranker.scoring == "listwise" else 50
st.session_state["llm_k"] = min(st.session_state.get("llm_k", 20), most)
top_k = k_col.slider("Re-rank the top K", 3, most, key="llm_k")
weight = w_col.slider("LLM weight", 0.0, 5.0, step=0.05, key="llm_weight")
if adapter:
    st.info(describe_adapter(adapter), icon="🎯")
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
        "first_rank": "before", "raw_llm": "LLM yes−no" if reranker.scoring == "pointwise"
        else "LLM log P(letter)"}).round(3)
    st.dataframe(view, hide_index=True, key="llm_table", height=420)
    st.caption("LLM yes−no = log P(Yes) − log P(No) at the answer position."
               if reranker.scoring == "pointwise" else
               "LLM log P(letter) = the log-probability of the item's letter among the K.")
for note in ranking.notes[-1:]:
    st.caption(note)
render_costs(ranking, "llm_costs")

st.subheader("Inside the decision")
ids = list(table["item_id"])
if st.session_state.get("llm_item") not in ids:
    st.session_state["llm_item"] = ids[0]
titles = dict(zip(table["item_id"], table["title"]))
item_id = st.selectbox("Item", ids, key="llm_item",
                       format_func=lambda i: f"{ids.index(i) + 1}. {titles[i]}")
history_titles = {h.item_id: page.catalog.title(h.item_id) for h in page.context.history}
item_text = page.catalog.brief(item_id)
# a listwise answer reads the whole list, in the first stage's order, as it was scored
among = tuple(page.catalog.brief(i) for i in first.table["item_id"].head(top_k)) \
    if reranker.scoring == "listwise" else ()
cache_key = f"{llm.name} · {reranker.scoring}"
focus = state.answer_focus(reranker, page.context, item_text, history_titles, among, cache_key)
occlusion = state.occlusion(reranker, page.context, item_text, history_titles, among,
                            cache_key)

att_col, occ_col = st.columns(2)
with att_col:
    use_rollout = st.toggle("Rollout instead of the layer average", key="llm_rollout")
    fields = focus.fields[focus.fields["kind"] == "context"]
    values = fields["rollout"] if use_rollout else fields["attention"]
    st.plotly_chart(bar_figure(list(fields["label"]), list(values),
                               title="Attention: where the answer position looks"),
                    key="llm_attention_bars")
    st.caption("Share of the answer position's attention on each context field (summed over its "
               "tokens). Instructions, the items and chat markup take the rest.")
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
