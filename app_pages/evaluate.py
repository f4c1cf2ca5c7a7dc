"""Evaluate: offline quality on MovieLens or on a log whose events carry context, every number
labelled with its protocol."""

import json
from pathlib import Path

import streamlit as st

from ctxrec.data.context_log import ColumnMap, read_context_log
from ctxrec.data.home import data_home
from ctxrec.data.judged_intents import load_judged_intents
from ctxrec.data.movielens import find_movielens_folders
from ctxrec.evaluation.context_split import CONTEXT_PROTOCOLS
from ctxrec.experiments.context_log import evaluate_context
from ctxrec.experiments.intents import evaluate_intents
from ctxrec.experiments.movielens import MASKINGS, MODELS, ExperimentConfig, run_experiment
from ctxrec.experiments.results import save_results
from ctxrec.sequence.job import saved_checkpoints
from ui import state
from ui.pickers import folder_picker
from ui.results import show_results

RESULTS = data_home() / "results"
MASK_WORDS = {"both": "both, side by side", "unmasked": "not masked", "masked": "masked"}
PROTOCOL_WORDS = {"repeat": "repeat: nothing masked (people use items again)",
                  "discovery": "discovery: an item new to the user, used items masked"}


def _progress_run(job, *args, **kwargs) -> dict | None:
    """Run ``job`` with a progress bar; a bad input or a broken model shows its message."""
    bar = st.progress(0.0, text="Starting…")
    try:
        run = job(*args, **kwargs, progress=lambda stage, done, total: bar.progress(
            done / total, text=f"{stage}: {done:,} / {total:,}"))
    except (FileNotFoundError, ValueError) as err:
        st.error(str(err))
        return None
    finally:
        bar.empty()
    path = save_results(run, RESULTS)
    st.session_state["ev_result"] = run
    st.success(f"Saved to {path}")
    return run


st.title("📏 Evaluate")
movielens_tab, log_tab, intents_tab, load_tab = st.tabs(
    ["MovieLens", "Log with context", "Judged intents", "Load results"])
with movielens_tab:
    data = folder_picker("MovieLens folder", "ev_data", list(find_movielens_folders()),
                         hint="ml-latest-small, ml-25m or ml-1m layout")
    models = st.multiselect("Models", MODELS, default=list(MODELS), key="ev_models")
    checkpoints = st.multiselect("Trained sequence models (with several, also their ensemble)",
                                 saved_checkpoints(), format_func=lambda p: p.name, key="ev_checkpoints")
    left, right = st.columns(2)
    split = left.radio("Split", ("leave-last-out", "temporal", "random"), key="ev_split",
                       horizontal=True)
    right.caption("leave-last-out: each user's last item by time; temporal: the first item after "
                  "one global time cut; random: a random held-out item per user.")
    protocol = left.radio("Protocol", ("full", "sampled"), key="ev_protocol", horizontal=True,
                          format_func={"full": "full ranking", "sampled": "sampled negatives"}.get)
    masking = left.radio("Items the user used before the held-out one (full ranking)", MASKINGS,
                         key="ev_masking", horizontal=True, format_func=MASK_WORDS.get)
    negatives = right.number_input("Negatives (sampled)", 10, 1000, 100, key="ev_negatives")
    sampling = right.radio("Sampling", ("uniform", "popularity"), key="ev_sampling",
                           horizontal=True)
    k = left.slider("K", 1, 50, 10, key="ev_k")
    max_users = right.number_input("Users (0 = all; small numbers for a quick look)", 0, 10**7,
                                   0, key="ev_users")
    extras = st.columns(2)
    do_ablations = extras[0].checkbox("Ablations of ctxrec", key="ev_ablations")
    blank = extras[1].checkbox("ctxrec with the context blanked", key="ev_blank")
    if st.button("Run", key="ev_run", type="primary",
                 disabled=not (data and (models or checkpoints))):
        _progress_run(run_experiment, ExperimentConfig(
            data=data, models=tuple(models), split=split, protocol=protocol, masking=masking,
            n_negatives=int(negatives), sampling=sampling, k=k, ablations=do_ablations,
            context_blank=blank, max_users=int(max_users) or None,
            checkpoint=[str(p) for p in checkpoints] or None))
with log_tab:
    st.caption("A log of events with their context (time, or columns such as daytime, place, "
               "companions, weather), ranked against the catalog chosen in the sidebar: ctxrec "
               "with the event's context and with it blanked, beside the trivial baselines "
               "(the user's own counts, popularity, both also within the same context).")
    events_file = st.file_uploader("Events (CSV or TSV)", type=["csv", "tsv", "txt"],
                                   key="ev_log_file")
    mapping_text = st.text_input(
        "Columns (FIELD=COLUMN)", key="ev_log_map", value="user=user item=item",
        help="fields: user item timestamp daytime weekday weekend place city companions")
    extra_text = st.text_input("Other context columns (NAME=COLUMN)", key="ev_log_extra",
                               placeholder="weather=Weather")
    left, right = st.columns(2)
    log_protocol = left.radio("Protocol", CONTEXT_PROTOCOLS, key="ev_log_protocol",
                              format_func=PROTOCOL_WORDS.get)
    seed = right.number_input("Seed (picks the held-out event when the log has no time)", 0,
                              10**6, 0, key="ev_log_seed")
    log_k = right.slider("K", 1, 50, 10, key="ev_log_k")
    if st.button("Run on the log", key="ev_log_run", type="primary", disabled=events_file is None):
        try:
            mapping = ColumnMap.from_pairs(mapping_text.split(), extra_text.split())
            events = read_context_log(events_file, mapping, state.catalog())
        except ValueError as err:
            st.error(f"Could not read the log: {err}")
        else:
            _progress_run(evaluate_context, state.recommender(), events, log_protocol,
                          k=log_k, seed=int(seed))
with intents_tab:
    st.caption("The project's judged requests (assets/intents.jsonl: intents with their context "
               "and graded items of the built-in catalog), ranked with the intent reader and "
               "without it.")
    builtin = state.catalog().name == state.cached_builtin_catalog().name
    if not builtin:
        st.info("The judged intents grade items of the built-in catalog: switch to it in the "
                "sidebar to run them.")
    if st.button("Run on the judged intents", key="ev_int_run", type="primary",
                 disabled=not builtin):
        _progress_run(evaluate_intents, state.recommender(),
                      load_judged_intents(catalog=state.catalog()))
with load_tab:
    files = sorted(RESULTS.glob("*.json"), reverse=True) if RESULTS.is_dir() else []
    st.caption(f"Results from `python -m ctxrec evaluate`, `evaluate-context`, "
               f"`evaluate-intents`, `tune-encoder` or `tune-llm`, or earlier runs, in {RESULTS}.")
    chosen = st.selectbox("Results file", files, format_func=lambda p: p.name, key="ev_file",
                          index=None, placeholder="pick a results file…")
    if chosen is not None and st.button("Load", key="ev_load"):
        try:
            st.session_state["ev_result"] = json.loads(Path(chosen).read_text())
        except (OSError, ValueError) as err:
            st.error(f"Could not read {chosen.name}: {err}")

run = st.session_state.get("ev_result")
if run:
    show_results(run)
