"""The app side of ctxrec: cached models and catalogs, and the session's current choices.

Everything Streamlit-specific that pages share lives here, so pages stay thin and ``ctxrec`` stays
free of UI code.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import streamlit as st

from ctxrec import (DEFAULT_ENCODER, Catalog, EmbeddingCache, Recommender, TextEncoder,
                    builtin_catalog, item_embeddings)
from ctxrec.data.context import Context, context_from_params
from ctxrec.data.scenarios import Scenario, ScenarioError, ScenarioStore, load_presets, store_path
from ctxrec.inspect.attention import AttentionModel, PairAttention, StepByStep
from ctxrec.inspect.similarity import project_2d
from ctxrec.llm.adapters import load_tuned_reranker
from ctxrec.llm.models import CausalLM, load_llm
from ctxrec.llm.rerank import AnswerFocus, LLMReranker, OcclusionRow
from ctxrec.sequence.train import TrainedModel, load_checkpoint
from ctxrec.text.deferred import DeferredEncoder, deferred_encoder
from ctxrec.text.vector_index import index_for
from ui.costs import STARTUP, startup_stage
from ctxrec.server_policy import PolicyError, ServerPolicy

log = logging.getLogger("ctxrec.app")
if not log.handlers:  # the operator sees each model load once in the server log
    log.addHandler(logging.StreamHandler())
    log.setLevel(logging.INFO)

MODEL_KEY = "active_model"  # name of the encoder in use (changes only when a load succeeds)
ENCODER_TRUST_KEY = "active_encoder_trust"  # whether that encoder may run its own code
CATALOG_KEY = "active_catalog"  # an uploaded Catalog, or absent for the built-in one
SEQUENCE_KEY = "active_sequence_model"  # checkpoint folder of the attached sequence model
OWNER_KEY = "session_owner"  # this session's id, to tell its training jobs from others'
_WARMED: set[str] = set()  # encoders whose default situations are stored (this process)
LOAD_DELAY_S = 2.0  # a deferred model starts loading this long after the first page


def _read_policy() -> tuple[ServerPolicy, str | None]:
    try:
        return ServerPolicy.from_env(), None
    except PolicyError as err:  # refuse visitors rather than guess what the operator meant
        return ServerPolicy(shared=True, max_models=1), str(err)


# Read once per server process: the cache bounds below are fixed when this module is imported.
POLICY, POLICY_ERROR = _read_policy()
MODELS = POLICY.max_models

# st.cache_resource hands every session the same object, so it holds models (read-only, see
# ctxrec.llm.rerank) and other unserialisable objects only; data goes through st.cache_data,
# which gives each caller its own copy. Every cache is bounded and drops the least recently used.


@st.cache_resource(show_spinner="Loading the language model…", max_entries=MODELS)
def cached_encoder(name: str, trust_remote_code: bool) -> TextEncoder:
    # a local model seen before answers from its card and loads after the first ranking
    # (load_model_in_background), so the first page does not wait 3–4 s for it
    def loaded(seconds: float) -> None:
        STARTUP.setdefault("model load (background, after the first page)", seconds)
        log.info("ctxrec: encoder %s finished loading in the background (%.1f s)", name, seconds)

    with startup_stage("model load"):
        encoder = deferred_encoder(name, trust_remote_code=trust_remote_code, on_loaded=loaded)
    deferred = isinstance(encoder, DeferredEncoder) and not encoder.is_loaded
    log.info("ctxrec: loaded encoder %s on %s (%s)", name, encoder.device,
             "from its card; the model loads after the first page" if deferred else "the model")
    return encoder


def _store_default_situations(encoder: DeferredEncoder) -> None:
    """Encode the first page's situation (now, at home) on every weekday, time of day and season
    once the model is loaded, so that a server started at any hour draws its first ranking
    without waiting for the model."""
    base, _ = context_from_params({})
    texts = sorted({replace(base, when=datetime(2026, month, day, hour)).describe_situation(
        clock=False) for month in (1, 4, 7, 10) for day in range(1, 8) for hour in range(24)})
    try:
        encoder.loaded("storing the first page's situations", hurry=False)
        for start in range(0, len(texts), 64):
            encoder.encode(texts[start:start + 64])
    except Exception:  # noqa: BLE001  (a missed warm-up costs one later wait, not the page)
        log.exception("ctxrec: storing the default situations failed")


def load_model_in_background() -> None:
    """Start loading the active encoder's model if only its card is in use, then store the
    default situations (after a page is drawn: the load would otherwise compete with the page
    for the interpreter)."""
    enc = encoder()
    if isinstance(enc, DeferredEncoder) and enc.fingerprint() not in _WARMED:
        _WARMED.add(enc.fingerprint())
        # the page reaches the browser after its script ends, sent by the server's thread, which an
        # import running at once slows by 0.5–1 s; anything that needs the model cuts the wait
        enc.start_loading(delay=LOAD_DELAY_S)
        threading.Thread(target=_store_default_situations, args=(enc,), daemon=True,
                         name="ctxrec-store-situations").start()


@st.cache_data(show_spinner=False, max_entries=1)
def cached_builtin_catalog() -> Catalog:
    return builtin_catalog()


@st.cache_resource(show_spinner="Preparing the recommender…", max_entries=MODELS)
def _cached_recommender(encoder_key: str, catalog_key: str, sequence_key: str | None,
                        _encoder: TextEncoder, _catalog: Catalog) -> Recommender:
    with startup_stage("embedding cache read"):
        vectors = item_embeddings(_encoder, _catalog)
    with startup_stage("recommender set-up"):
        recommender = Recommender(_catalog, _encoder, vectors)
        recommender.attach_index(index_for(_encoder, _catalog, vectors, recommender.retrieval))
    if sequence_key:
        recommender.attach_sequence_model(sequence_checkpoint(sequence_key))
    return recommender


@st.cache_resource(show_spinner="Loading the sequence model…", max_entries=MODELS)
def _sequence_checkpoint(path: str, stamp: float) -> TrainedModel:
    return load_checkpoint(path)


def sequence_checkpoint(path: str) -> TrainedModel:
    """A saved sequence model, reloaded when its folder is rewritten."""
    return _sequence_checkpoint(path, (Path(path) / "config.json").stat().st_mtime)


def sequence_model() -> TrainedModel | None:
    """The attached sequence model when it matches the active catalog."""
    path = st.session_state.get(SEQUENCE_KEY)
    if not path or not (Path(path) / "config.json").is_file():
        return None
    try:
        trained = sequence_checkpoint(path)
    except ValueError:
        return None
    return trained if trained.matches(catalog()) else None


@st.cache_data(show_spinner="Reading the MovieLens folder…", max_entries=2)
def movielens_catalog(folder: str) -> Catalog:
    from ctxrec.data.movielens import load_movielens

    return load_movielens(POLICY.check_folder(folder))[0]


def init_state() -> None:
    st.session_state.setdefault(MODEL_KEY, DEFAULT_ENCODER)
    st.session_state.setdefault(ENCODER_TRUST_KEY, False)
    st.session_state.setdefault(OWNER_KEY, uuid.uuid4().hex)


def owner() -> str | None:
    """Whose training jobs this session sees: its own on a shared server, every one otherwise."""
    return st.session_state[OWNER_KEY] if POLICY.shared else None


def encoder() -> TextEncoder:
    return cached_encoder(st.session_state[MODEL_KEY], st.session_state[ENCODER_TRUST_KEY])


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
    attached = sequence_model()
    return _cached_recommender(enc.fingerprint(), cat.content_hash(),
                               st.session_state.get(SEQUENCE_KEY) if attached else None, enc, cat)


@st.cache_resource(show_spinner="Loading the model with eager attention…", max_entries=MODELS)
def _attention_model(name: str, trust_remote_code: bool) -> AttentionModel:
    return AttentionModel(name, trust_remote_code=trust_remote_code)


def attention_model() -> AttentionModel:
    """The active encoder loaded for reading attention, with the trust given to that encoder."""
    return _attention_model(st.session_state[MODEL_KEY], st.session_state[ENCODER_TRUST_KEY])


def encoder_trust() -> bool:
    return st.session_state[ENCODER_TRUST_KEY]


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


@st.cache_resource(show_spinner=False, max_entries=2)
def _scenario_store(path: str) -> ScenarioStore:
    return ScenarioStore(path)


def scenario_store() -> ScenarioStore:
    return _scenario_store(str(store_path()))


@st.cache_data(show_spinner=False, max_entries=1)
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


@st.cache_resource(show_spinner="Loading the generative language model…", max_entries=MODELS)
def causal_lm(name: str, trust_remote_code: bool) -> CausalLM:
    llm = load_llm(name, trust_remote_code=trust_remote_code)
    log.info("ctxrec: loaded LLM %s on %s", name, llm.device)
    return llm


@st.cache_resource(max_entries=2 * MODELS)
def llm_reranker(name: str, trust_remote_code: bool, scoring: str = "pointwise") -> LLMReranker:
    """One re-ranker per scoring way, both over the one loaded model."""
    return LLMReranker(causal_lm(name, trust_remote_code), scoring=scoring)


@st.cache_resource(show_spinner="Loading the tuned re-ranker…", max_entries=MODELS)
def tuned_reranker(folder: str) -> LLMReranker:
    return load_tuned_reranker(folder)


@st.cache_data(show_spinner="Reading the model's attention…", max_entries=32)
def answer_focus(_reranker: LLMReranker, context: Context, item_text: str,
                 titles: dict[str, str], among: tuple[str, ...] = (),
                 model_name: str | None = None) -> AnswerFocus:
    return _reranker.answer_focus(context, item_text, titles, among)


@st.cache_data(show_spinner="Leaving each field out in turn…", max_entries=32)
def occlusion(_reranker: LLMReranker, context: Context, item_text: str, titles: dict[str, str],
              among: tuple[str, ...] = (), model_name: str | None = None) -> list[OcclusionRow]:
    return _reranker.occlusion(context, item_text, titles, among)
