"""ctxrec app entry: page config, shared sidebar (model, catalog, device), navigation."""

import streamlit as st

from ctxrec import DEFAULT_ENCODER, CatalogError, ModelLoadError, read_catalog_csv
from ctxrec.movielens import find_movielens_folders
from ui import state
from ui.context_editor import apply_scenario, init_context_state
from ui.options import init_option_state

st.set_page_config(page_title="ctxrec", page_icon="🧭", layout="wide")
state.init_state()
init_context_state()
init_option_state()

MODEL_CHOICES = (DEFAULT_ENCODER, "sentence-transformers/all-mpnet-base-v2",
                 "BAAI/bge-small-en-v1.5", "Other (Hugging Face id or local folder)…")


def _sidebar_model() -> None:
    st.subheader("Language model")
    choice = st.selectbox("Encoder", MODEL_CHOICES, key="model_choice")
    name = st.text_input("Model id or folder", key="model_custom") \
        if choice == MODEL_CHOICES[-1] else choice
    trust = st.checkbox("Trust remote code", key="model_trust",
                        help="Lets the model run its own Python code. Only for authors you trust.")
    if (name, trust) != (st.session_state[state.MODEL_KEY], st.session_state[state.TRUST_KEY]) \
            and st.button("Load model", key="model_load", type="primary"):
        try:
            state.cached_encoder(name, trust)
        except ModelLoadError as err:
            st.session_state["model_error"] = str(err)
        else:
            st.session_state[state.MODEL_KEY], st.session_state[state.TRUST_KEY] = name, trust
            st.session_state.pop("model_error", None)
    if st.session_state.get("model_error"):
        st.error(f"{st.session_state['model_error']} Keeping "
                 f"{st.session_state[state.MODEL_KEY]}.")
    enc = state.encoder()
    st.caption(f"In use: **{enc.name}** · {enc.dim}-d · window {enc.max_tokens} tokens · "
               f"device **{enc.device}** ({enc.precision})")


def _sidebar_catalog() -> None:
    st.subheader("Catalog")
    source = st.radio("Items", ("Built-in", "Upload CSV", "MovieLens"), key="catalog_source",
                      horizontal=True)
    if source == "Built-in":
        st.session_state.pop(state.CATALOG_KEY, None)
    elif source == "Upload CSV":
        upload = st.file_uploader("Catalog CSV (id, title, and optionally category, description, "
                                  "tags, mood, dayparts, …)", type=["csv"], key="catalog_upload")
        if upload is not None and st.session_state.get("catalog_upload_id") != upload.file_id:
            st.session_state["catalog_upload_id"] = upload.file_id
            try:
                st.session_state["catalog_uploaded"] = read_catalog_csv(upload.getvalue(),
                                                                        name=upload.name)
                st.session_state.pop("catalog_error", None)
            except CatalogError as err:
                st.session_state["catalog_error"] = err
        if st.session_state.get("catalog_error"):
            err = st.session_state["catalog_error"]
            st.error("The file was not loaded:\n\n" + "\n".join(f"- {p}" for p in err.problems[:8]))
        st.session_state[state.CATALOG_KEY] = st.session_state.get("catalog_uploaded")
    else:
        found = [str(p) for p in find_movielens_folders()]
        st.session_state.setdefault("catalog_movielens", found[0] if found else "")
        folder = st.text_input("MovieLens folder", key="catalog_movielens",
                               help="ml-latest-small, ml-1m or ml-25m layout; "
                                    "`python -m ctxrec data download ml-latest-small` fetches one")
        try:
            st.session_state[state.CATALOG_KEY] = state.movielens_catalog(folder.strip())
        except (OSError, ValueError) as err:
            st.session_state.pop(state.CATALOG_KEY, None)
            st.error(f"{err}. Using the built-in catalog.")
    cat = state.catalog()
    st.caption(f"In use: **{cat.name}** · {len(cat):,} items")
    if cat.problems:
        with st.expander(f"⚠️ {len(cat.problems)} row problem(s): those rows were skipped"):
            st.markdown("\n".join(f"- {p}" for p in cat.problems[:50]))


def _sidebar_scenario() -> None:
    st.subheader("Scenario")
    choices = state.scenario_choices()
    label = st.selectbox("Start from a story", list(choices), index=None, key="scenario_pick",
                         placeholder="pick a scenario…")
    if label in choices:
        st.caption(choices[label].story)
        st.button("Load this context", key="scenario_load", on_click=apply_scenario,
                  args=(choices[label].context,), type="primary")


with st.sidebar:
    _sidebar_scenario()
    _sidebar_model()
    _sidebar_catalog()

page = st.navigation([
    st.Page("app_pages/recommend.py", title="Recommend", icon="🎯", default=True),
    st.Page("app_pages/rerank.py", title="LLM re-rank", icon="🤖"),
    st.Page("app_pages/attention.py", title="Attention", icon="🔍"),
    st.Page("app_pages/history_attention.py", title="History attention", icon="🧲"),
    st.Page("app_pages/similarity.py", title="Similarity", icon="🧭"),
    st.Page("app_pages/learn.py", title="Learn", icon="🎓"),
    st.Page("app_pages/compare.py", title="Compare", icon="⚖️"),
    st.Page("app_pages/evaluate.py", title="Evaluate", icon="📏"),
    st.Page("app_pages/train.py", title="Train", icon="🏋️"),
    st.Page("app_pages/scenarios.py", title="Scenarios", icon="💾"),
])
page.run()
