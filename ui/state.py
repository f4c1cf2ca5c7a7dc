"""The app side of ctxrec: cached models and catalogs, and the session's current choices.

Everything Streamlit-specific that pages share lives here, so pages stay thin and ``ctxrec`` stays
free of UI code.
"""

from __future__ import annotations

import logging

import numpy as np
import streamlit as st

from ctxrec import (DEFAULT_ENCODER, Catalog, EmbeddingCache, Recommender, TextEncoder,
                    builtin_catalog, item_embeddings, load_encoder)
from ctxrec.attention import AttentionModel, PairAttention, StepByStep
from ctxrec.scenarios import Scenario, ScenarioError, ScenarioStore, load_presets, store_path
from ctxrec.similarity import project_2d

log = logging.getLogger("ctxrec.app")
if not log.handlers:  # the operator sees each model load once in the server log
    log.addHandler(logging.StreamHandler())
    log.setLevel(logging.INFO)

MODEL_KEY = "active_model"  # name of the encoder in use (changes only when a load succeeds)
TRUST_KEY = "active_trust_remote_code"
CATALOG_KEY = "active_catalog"  # an uploaded Catalog, or absent for the built-in one


@st.cache_resource(show_spinner="Loading the language model…")
def cached_encoder(name: str, trust_remote_code: bool) -> TextEncoder:
    encoder = load_encoder(name, trust_remote_code=trust_remote_code)
    log.info("ctxrec: loaded encoder %s on %s", name, encoder.device)
    return encoder


@st.cache_resource(show_spinner=False)
def cached_builtin_catalog() -> Catalog:
    return builtin_catalog()


@st.cache_resource(show_spinner="Preparing the recommender…", max_entries=4)
def _cached_recommender(encoder_key: str, catalog_key: str, _encoder: TextEncoder,
                        _catalog: Catalog) -> Recommender:
    vectors = item_embeddings(_encoder, _catalog)
    return Recommender(_catalog, _encoder, vectors)


def init_state() -> None:
    st.session_state.setdefault(MODEL_KEY, DEFAULT_ENCODER)
    st.session_state.setdefault(TRUST_KEY, False)


def encoder() -> TextEncoder:
    return cached_encoder(st.session_state[MODEL_KEY], st.session_state[TRUST_KEY])


def catalog() -> Catalog:
    return st.session_state.get(CATALOG_KEY) or cached_builtin_catalog()


def recommender() -> Recommender:
    """The recommender for the active model and catalog; item vectors are encoded (with a progress
    bar) only when the disk cache does not have them."""
    enc, cat = encoder(), catalog()
    cache = EmbeddingCache()
    if not cache.path(enc, cat).is_file():
        bar = st.progress(0.0, text=f"Encoding {len(cat):,} items with {enc.name}…")
        item_embeddings(enc, cat, cache, progress=lambda done, total: bar.progress(
            done / total, text=f"Encoding items with {enc.name}: {done:,} / {total:,}"))
        bar.empty()
    return _cached_recommender(enc.fingerprint(), cat.content_hash(), enc, cat)


@st.cache_resource(show_spinner="Loading the model with eager attention…", max_entries=2)
def _attention_model(name: str, trust_remote_code: bool) -> AttentionModel:
    return AttentionModel(name, trust_remote_code=trust_remote_code)


def attention_model() -> AttentionModel:
    return _attention_model(st.session_state[MODEL_KEY], st.session_state[TRUST_KEY])


@st.cache_data(show_spinner=False, max_entries=64)
def pair_attention(model_name: str, trust: bool, context_text: str, item_text: str
                   ) -> PairAttention:
    """Cached per (model, texts), so moving a slider never recomputes."""
    return _attention_model(model_name, trust).attend(context_text, item_text)


@st.cache_data(show_spinner=False, max_entries=64)
def step_by_step(model_name: str, trust: bool, text: str, layer: int, head: int
                 ) -> tuple[list[str], StepByStep]:
    return _attention_model(model_name, trust).step_by_step(text, layer, head)


@st.cache_data(show_spinner="Projecting the catalog…", max_entries=8)
def projection(encoder_key: str, catalog_key: str, extra_key: tuple[str, ...],
               _vectors: np.ndarray, _extra: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    return project_2d(_vectors, _extra)


@st.cache_resource(show_spinner=False)
def _scenario_store(path: str) -> ScenarioStore:
    return ScenarioStore(path)


def scenario_store() -> ScenarioStore:
    return _scenario_store(str(store_path()))


@st.cache_resource(show_spinner=False)
def presets() -> list[Scenario]:
    return load_presets()


def scenario_choices() -> dict[str, Scenario]:
    """Label → scenario: the presets, then the saved ones (marked 💾)."""
    choices = {f"⭐ {s.name}": s for s in presets()}
    store = scenario_store()
    for name in store.names():
        try:
            choices[f"💾 {name}"] = store.load(name)
        except (ScenarioError, ValueError):
            continue  # a row that no longer validates is listed on the Scenarios page
    return choices
