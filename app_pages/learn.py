"""Learn: scaled dot-product attention, step by step, on the model's own vectors."""

import streamlit as st

from ctxrec import ModelLoadError
from ctxrec.viz import bar_figure, heatmap_figure
from ui import state
from ui.page_setup import context_summary, prepare

st.title("🎓 Learn: softmax(QKᵀ/√d)·V")
page = prepare()
context_summary(page.context)
try:
    model = state.attention_model()
except ModelLoadError as err:
    st.error(str(err))
    st.stop()

default = page.context.intent.strip() or page.context.describe_situation()
st.session_state.setdefault("learn_text", default[:300])
text = st.text_input("Text to read (first 48 tokens)", key="learn_text", max_chars=2000)
if not text.strip():
    st.info("Type a sentence to see the model attend over it.")
    st.stop()
config = model.model.config
layers, heads = config.num_hidden_layers, config.num_attention_heads
for key, top in (("att_layer", layers - 1), ("att_head", heads - 1)):
    st.session_state[key] = min(st.session_state.get(key, 0), top)
left, right = st.columns(2)
layer = left.slider("Layer", 0, layers - 1, key="att_layer")
head = right.slider("Head", 0, heads - 1, key="att_head")
try:
    tokens, step = state.step_by_step(model.name, state.encoder_trust(), text, layer,
                                      head)
except ValueError as err:
    st.error(str(err))
    st.stop()
labels = [f"{i}:{t}" for i, t in enumerate(tokens)]
st.session_state["learn_token"] = min(st.session_state.get("learn_token", 0), len(tokens) - 1)
query = st.select_slider("Query token (the one that looks)", options=range(len(tokens)),
                         key="learn_token", format_func=lambda i: labels[i])
d = step.q.shape[1]
dims = [f"d{j}" for j in range(d)]

st.markdown(f"**1. Project.** Each token's hidden state from layer {layer} is multiplied by this "
            f"head's weight matrices: Q = HW_Q, K = HW_K, V = HW_V, each {len(tokens)} × {d}.")
for name, matrix in (("Q", step.q), ("K", step.k), ("V", step.v)):
    with st.expander(f"{name} ({len(tokens)} × {d})", expanded=name == "Q"):
        st.plotly_chart(heatmap_figure(matrix, dims, tokens, value_name=name, colorscale="RdBu",
                                       height=300), key=f"learn_{name}")
st.markdown("**2. Compare.** Every query with every key: the dot products QKᵀ.")
st.latex(r"S = QK^\top,\quad S_{ij} = q_i \cdot k_j")
st.plotly_chart(heatmap_figure(step.scores, tokens, tokens, value_name="q·k",
                               colorscale="RdBu", boxes=[(0, len(tokens) - 1, query, query)]),
                key="learn_scores")
st.markdown(f"**3. Scale.** Divide by √d = √{d} = {d ** 0.5:.3f}, so the softmax does not saturate "
            "as d grows" + (" (and mask future tokens: this is a causal model)." if model.causal
                            else "."))
st.latex(rf"\tilde S = S / \sqrt{{{d}}}")
st.markdown("**4. Normalise.** A softmax along each row turns scores into weights that sum to 1.")
st.latex(r"A_{ij} = \frac{e^{\tilde S_{ij}}}{\sum_k e^{\tilde S_{ik}}}")
row_left, row_right = st.columns(2)
row_left.plotly_chart(bar_figure(tokens, step.scaled[query], f"row {labels[query]}: S/√d"),
                      key="learn_row_scaled")
row_right.plotly_chart(bar_figure(tokens, step.weights[query], f"row {labels[query]}: softmax"),
                       key="learn_row_weights")
st.plotly_chart(heatmap_figure(step.weights, tokens, tokens, value_name="weight",
                               boxes=[(0, len(tokens) - 1, query, query)]), key="learn_weights")
st.markdown("**5. Mix.** The output for each token is the weighted sum of the value vectors.")
st.latex(r"z_i = \sum_j A_{ij}\, v_j \quad\Longleftrightarrow\quad Z = AV")
st.plotly_chart(heatmap_figure(step.output, dims, tokens, value_name="z", colorscale="RdBu",
                               height=300), key="learn_output")
if step.max_difference < 1e-5:
    st.success("Check: these weights equal the model's own attention (output_attentions) to "
               f"{step.max_difference:.1e}.")
else:
    st.warning(f"The recomputed weights differ from the model's by up to {step.max_difference:.1e}"
               ": this model adds position terms (rotary or relative) inside attention, which "
               "this view does not show.")
