"""Train: the self-attentive sequence model on real interactions, with live curves."""

from dataclasses import replace

import streamlit as st

from ctxrec.data.movielens import find_movielens_folders
from ctxrec.sequence.config import TrainConfig
from ctxrec.sequence.job import latest_job, models_home, run_folder_name, start_job
from ctxrec.sequence.run import TrainingRun
from ctxrec.server_policy import PolicyError
from ctxrec.tune.job import latest_tuning
from ui import state
from ui.pickers import folder_picker
from ui.training import (HIDDEN_SIZES, MEMORIES, REPRS, finished_job, log_upload, preset_picker,
                         running_job, saved_models_tab)
from ui.tuning import tuning_tab

st.title("🏋️ Train a sequence model")
st.caption("Self-attention over a person's history in order (SASRec), trained with a full "
           "softmax over all items. Once trained on the active catalog's interactions, it adds "
           "the **sequence** component to the ranking and its attention to the Attention page. "
           "**Tune a language model** teaches the LLM re-ranker or the text encoder the same log.")

new_tab, saved_tab, tune_tab = st.tabs(["New model", "Saved models", "Tune a language model"])
with new_tab:
    source = st.radio("Interactions", ("MovieLens folder", "Interaction log CSV"),
                      key="tr_source", horizontal=True)
    data = log_file = None
    mapping: dict[str, str] = {}
    if source == "MovieLens folder":
        data = folder_picker("Folder", "tr_data", find_movielens_folders(),
                             hint="ml-latest-small, ml-1m or ml-25m; `python -m ctxrec data "
                                  "download ml-latest-small` fetches one") or None
    else:
        log_file, mapping = log_upload(state.catalog().name)
    preset = preset_picker(default="quick")
    job = latest_job(state.owner())
    tuning = latest_tuning(state.owner())
    training = job is not None and not job.done
    running = training or (tuning is not None and not tuning.done)  # one job at a time
    with st.form("tr_form"):
        left, mid, right = st.columns(3)
        item_repr = left.selectbox("Items as", list(REPRS), format_func=REPRS.get, key="tr_repr")
        memory = left.selectbox("Long histories", list(MEMORIES), format_func=MEMORIES.get,
                                key="tr_memory")
        max_len = mid.number_input("Window N (items)", 5, 500, key="tr_len")
        hidden = mid.select_slider("Hidden size", sorted({*HIDDEN_SIZES, preset.hidden}),
                                   key="tr_hidden")
        layers = mid.number_input("Layers", 1, 6, key="tr_layers")
        budget = right.number_input("Time limit (s)", 10, 7200, 180, key="tr_budget")
        patience = right.number_input("Early stopping patience (epochs)", 1, 50,
                                      TrainConfig().patience, key="tr_patience")
        cold = right.checkbox("Hold 10 % of items out (cold-start test)", key="tr_cold")
        go = st.form_submit_button("Train", type="primary", disabled=running,
                                   help="One training at a time" if running else None)
    if go and not running and not (data or log_file):
        st.warning("Not started: pick a MovieLens folder, or upload an interaction log CSV.")
    elif go and not running:
        run = TrainingRun(
            data=data, log=log_file, catalog=state.catalog() if log_file else None,
            mapping=mapping,
            model=replace(preset, max_len=int(max_len), hidden=int(hidden), layers=int(layers),
                          item_repr=item_repr, memory=memory),
            train=TrainConfig(time_budget_s=float(budget), patience=int(patience)),
            cold_start=0.1 if cold else None, encoder=st.session_state[state.MODEL_KEY])
        try:
            if data:
                state.POLICY.check_folder(data)
            start_job(run, models_home() / run_folder_name(data or log_file, item_repr, memory),
                      owner=state.owner())
        except (RuntimeError, PolicyError) as err:
            st.warning(f"Not started: {str(err).rstrip('.')}.")
        else:
            st.rerun()
    if training:
        running_job()
    elif job is not None:
        finished_job(job)

with saved_tab:
    saved_models_tab()

with tune_tab:
    tuning_tab()
