"""Train: the self-attentive sequence model on real interactions, with live curves."""

import hashlib
import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import streamlit as st

from ctxrec.embed_cache import data_home
from ctxrec.movielens import find_movielens_folders
from ctxrec.sequence_experiment import TrainingRun
from ctxrec.sequence_model import SequenceConfig
from ctxrec.sequence_train import TrainConfig
from ctxrec.server_policy import PolicyError
from ctxrec.training_job import TrainingJob, latest_job, start_job
from ctxrec.viz import training_curves_figure
from ui import state
from ui.pickers import folder_picker

MODELS = data_home() / "models"
REPRS = {"hybrid": "ID + language-model text (hybrid)", "id": "ID embedding only",
         "text": "language-model text only"}
MEMORIES = {"truncate": "last N items only", "xl": "segment recurrence (Transformer-XL)",
            "hierarchical": "segment summaries (LCULM)"}


def use_model(path: str, data: str | None) -> None:
    """Attach a checkpoint; a MovieLens model also switches the catalog to its movies."""
    st.session_state[state.SEQUENCE_KEY] = path
    if data:
        st.session_state["catalog_source"] = "MovieLens"
        st.session_state["catalog_movielens"] = data


def detach_model() -> None:
    st.session_state.pop(state.SEQUENCE_KEY, None)


def report_tables(report: dict) -> None:
    rows = [{"model": r["model"], "protocol": r["protocol"], "HR@10": r["HR@10"],
             "NDCG@10": r["NDCG@10"], "MRR@10": r["MRR@10"]}
            for r in report.get("results", []) + report.get("baselines", [])]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key=f"tr_table_{report['model']}")
    long = report.get("long_history", {})
    if long.get("users"):
        st.caption(f"Users whose history is longer than the window of {long['window']} "
                   f"({long['users']} users), test NDCG@10: truncate {long['truncate']:.4f} · "
                   f"Transformer-XL recurrence {long['xl']:.4f} · LCULM summaries "
                   f"{long['hierarchical']:.4f} (same weights, read three ways).")
    cold = report.get("cold_start")
    if cold:
        st.caption(f"Cold start: {cold['held_out_items']} items kept out of training; "
                   f"{cold['test_events_on_them']} test events hit them; HR@10 on those: "
                   f"{cold['HR@10'] if cold['HR@10'] is not None else 'n/a'}.")


def finished_job(job: TrainingJob) -> None:
    if job.error:
        st.error(f"Training did not finish: {job.error}")
        return
    st.success(f"Done: best epoch {job.report['best_epoch']} of {len(job.epochs)}, saved as "
               f"{job.out.name}")
    if job.epochs:
        st.plotly_chart(training_curves_figure(job.epochs), key="tr_curves_done")
    report_tables(job.report)
    st.button("Use this model in the app", key="tr_use_new", type="primary",
              on_click=use_model, args=(str(job.out), job.run.data))


@st.fragment(run_every=1.0)
def running_job() -> None:
    """Redrawn on its own every second while the job runs; the whole page once it ends."""
    job = latest_job(state.owner())
    if job is None or job.done:
        st.rerun(scope="app")
    budget = job.run.train.time_budget_s or 0
    if job.batch is None:
        st.progress(0.0, text=job.stage)
    else:
        epoch, i, n, loss = job.batch
        share = min(1.0, job.elapsed_s() / budget) if budget else i / n
        st.progress(share, text=f"Epoch {epoch}: batch {i}/{n}, loss {loss:.3f} · "
                                f"{job.elapsed_s():.0f} s")
    if job.epochs:
        st.plotly_chart(training_curves_figure(job.epochs), key="tr_curves_live")
    st.button("Stopping after this epoch…" if job.stopping else "Stop (keeps the best epoch)",
              key="tr_stop", on_click=job.stop, disabled=job.stopping)
    st.caption("Training runs in the background: the other pages stay usable meanwhile.")


st.title("🏋️ Train a sequence model")
st.caption("Self-attention over a person's history in order (SASRec), trained with a full "
           "softmax over all items. Once trained on the active catalog's interactions, it adds "
           "the **sequence** component to the ranking and its attention to the Attention page.")

new_tab, saved_tab = st.tabs(["New model", "Saved models"])
with new_tab:
    source = st.radio("Interactions", ("MovieLens folder", "Interaction log CSV"),
                      key="tr_source", horizontal=True)
    data = log_file = None
    mapping: dict[str, str] = {}
    if source == "MovieLens folder":
        data = folder_picker("Folder", "tr_data", find_movielens_folders(),
                             hint="ml-latest-small, ml-1m or ml-25m; `python -m ctxrec data "
                                  "download ml-latest-small` fetches one")
    else:
        st.caption(f"Items must be ids of the active catalog (**{state.catalog().name}**).")
        upload = st.file_uploader("Log CSV: one row per interaction", type=["csv"],
                                  key="tr_log")
        if upload is not None:
            uploads = data_home() / "uploads"
            uploads.mkdir(parents=True, exist_ok=True)
            # named by content, so two sessions uploading "log.csv" never overwrite each other
            digest = hashlib.sha256(upload.getvalue()).hexdigest()[:12]
            log_file = str(uploads / f"{digest}-{Path(upload.name).name}")
            Path(log_file).write_bytes(upload.getvalue())
            header = upload.getvalue().split(b"\n", 1)[0].decode("utf-8", "replace")
            columns = [c.strip() for c in header.split(",")]
            cols = st.columns(4)
            for col, field, optional in zip(cols, ("user", "item", "timestamp", "rating"),
                                            (False, False, False, True)):
                options = ([""] if optional else []) + columns
                guess = field if field in columns else options[0]
                chosen = col.selectbox(field, options, index=options.index(guess),
                                       key=f"tr_map_{field}")
                if chosen:
                    mapping[field] = chosen
    job = latest_job(state.owner())
    running = job is not None and not job.done
    with st.form("tr_form"):
        left, mid, right = st.columns(3)
        item_repr = left.selectbox("Items as", list(REPRS), format_func=REPRS.get, key="tr_repr")
        memory = left.selectbox("Long histories", list(MEMORIES), format_func=MEMORIES.get,
                                key="tr_memory")
        max_len = mid.number_input("Window N (items)", 5, 500, 50, key="tr_len")
        hidden = mid.select_slider("Hidden size", (32, 64, 128, 256), 64, key="tr_hidden")
        layers = mid.number_input("Layers", 1, 6, 2, key="tr_layers")
        budget = right.number_input("Time limit (s)", 10, 7200, 180, key="tr_budget")
        patience = right.number_input("Early stopping patience (epochs)", 1, 50, 5,
                                      key="tr_patience")
        cold = right.checkbox("Hold 10 % of items out (cold-start test)", key="tr_cold")
        go = st.form_submit_button("Train", type="primary", disabled=running,
                                   help="One training at a time" if running else None)
    if go and not running:
        run = TrainingRun(
            data=data or None, log=log_file, catalog=state.catalog() if log_file else None,
            mapping=mapping,
            model=SequenceConfig(n_items=1, max_len=int(max_len), hidden=int(hidden),
                                 layers=int(layers), item_repr=item_repr, text_dim=1,
                                 memory=memory),
            train=TrainConfig(time_budget_s=float(budget), patience=int(patience)),
            cold_start=0.1 if cold else None, encoder=st.session_state[state.MODEL_KEY])
        # a new folder per run, so retraining never overwrites a saved model
        name = Path(data or log_file or "model").stem + \
            f"-{item_repr}-{memory}-{datetime.now():%Y%m%d-%H%M%S}"
        try:
            if data:
                state.POLICY.check_folder(data)
            start_job(run, MODELS / name, owner=state.owner())
        except (RuntimeError, PolicyError) as err:
            st.warning(f"Not started: {str(err).rstrip('.')}.")
        else:
            st.rerun()
    if running:
        running_job()
    elif job is not None:
        finished_job(job)

with saved_tab:
    saved = sorted(p for p in MODELS.glob("*") if (p / "config.json").is_file()) \
        if MODELS.is_dir() else []
    if not saved:
        st.info("No saved models yet: train one, or run `python -m ctxrec train --data FOLDER`.")
    else:
        chosen = st.selectbox("Model", saved, format_func=lambda p: p.name, key="tr_saved")
        meta = json.loads((chosen / "config.json").read_text())
        report = meta.get("extra", {}).get("report", {})
        config = meta["model"]
        st.caption(f"{config['item_repr']} items · {config['memory']} · window "
                   f"{config['max_len']} · hidden {config['hidden']} · {config['layers']} layers "
                   f"· {len(meta['item_ids']):,} items · best epoch {meta.get('best_epoch')}")
        if meta.get("history"):
            st.plotly_chart(training_curves_figure(meta["history"]), key="tr_saved_curves")
        if report:
            report_tables(report)
        attached = st.session_state.get(state.SEQUENCE_KEY) == str(chosen)
        if attached and state.sequence_model() is None:
            st.warning("This model is attached but does not match the active catalog, so the "
                       "ranking does not use it: switch to the catalog it was trained on.")
        cols = st.columns(2)
        cols[0].button("Use this model in the app", key="tr_use", disabled=attached,
                       on_click=use_model, args=(str(chosen), meta.get("extra", {}).get("data")))
        cols[1].button("Stop using it", key="tr_detach", disabled=not attached,
                       on_click=detach_model)
