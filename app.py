"""ctxrec app entry: page config, shared sidebar (model, catalog, device), navigation."""

import time

_START = time.perf_counter()

import streamlit as st  # noqa: E402  (after the clock, so the start-up panel counts imports)

from ctxrec import DEFAULT_ENCODER, CatalogError, ModelLoadError, read_catalog_csv
from ctxrec.data.movielens import find_movielens_folders
from ctxrec.server_policy import PolicyError
from ctxrec.tune.encoder import describe_tuning, read_tuning, tuned_encoders
from ui import state
from ui.context_editor import apply_scenario, init_context_state
from ui.costs import STARTUP
from ui.options import init_option_state
from ui.pickers import folder_picker, model_picker

STARTUP.setdefault("imports", time.perf_counter() - _START)

st.set_page_config(page_title="ctxrec", page_icon="🧭", layout="wide")
if state.POLICY_ERROR:
    st.error(f"This server's settings cannot be read: {state.POLICY_ERROR}")
    st.stop()
state.init_state()
init_context_state()
init_option_state()

SUGGESTED_ENCODERS = ("sentence-transformers/all-mpnet-base-v2", "BAAI/bge-small-en-v1.5")


def _sidebar_model() -> None:
    st.subheader("Language model")
    tuned = [str(p) for p in tuned_encoders()]  # `python -m ctxrec tune-encoder` saves here
    pick = model_picker("encoder", "Encoder", DEFAULT_ENCODER, [*tuned, *SUGGESTED_ENCODERS],
                        key="model")
    active = (st.session_state[state.MODEL_KEY], st.session_state[state.ENCODER_TRUST_KEY])
    if pick.name and (pick.name, pick.trust_remote_code) != active \
            and st.button("Load model", key="model_load", type="primary"):
        try:
            state.POLICY.check_model("encoder", pick.name, DEFAULT_ENCODER)
            state.cached_encoder(pick.name, pick.trust_remote_code)
        except (ModelLoadError, PolicyError) as err:
            st.session_state["model_error"] = str(err)
        else:
            st.session_state[state.MODEL_KEY] = pick.name
            st.session_state[state.ENCODER_TRUST_KEY] = pick.trust_remote_code
            st.session_state.pop("model_error", None)
    if st.session_state.get("model_error"):
        st.error(f"{st.session_state['model_error']} Keeping "
                 f"{st.session_state[state.MODEL_KEY]}.")
    enc = state.encoder()
    st.caption(f"In use: **{enc.name}** · {enc.dim}-d · window {enc.max_tokens} tokens · "
               f"device **{enc.device}** ({enc.precision})")
    effect = describe_tuning(read_tuning(st.session_state[state.MODEL_KEY]))
    if effect:
        st.caption(effect)


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
        folder = folder_picker("MovieLens folder", "catalog_movielens", find_movielens_folders(),
                               hint="ml-latest-small, ml-1m or ml-25m layout; `python -m ctxrec "
                                    "data download ml-latest-small` fetches one")
        try:
            st.session_state[state.CATALOG_KEY] = state.movielens_catalog(folder)
        except (OSError, ValueError) as err:
            st.session_state.pop(state.CATALOG_KEY, None)
            st.error(f"{str(err).rstrip('.')}. Using the built-in catalog.")
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
    if state.POLICY.shared:
        st.caption("🔒 Shared server: models and data folders come from the operator's list; "
                   "your training runs are yours alone.")
    _sidebar_scenario()
    _sidebar_model()
    _sidebar_catalog()

pages = [
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
]
page = st.navigation(pages)
page.run()
state.load_model_in_background()
