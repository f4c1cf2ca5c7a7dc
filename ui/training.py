"""The Train page's parts: the preset and log pickers, the running and finished job, saved models.

The page lays these out and starts the job; the work itself (saving uploads, naming and reading
checkpoints, training) is in ``ctxrec``.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ctxrec.data.uploads import guess_mapping, read_csv_columns, save_upload
from ctxrec.sequence.config import PRESETS, SequenceConfig
from ctxrec.sequence.job import TrainingJob, latest_job, read_checkpoint_summary, saved_checkpoints
from ctxrec.viz import training_curves_figure
from ui import state

REPRS = {"hybrid": "ID + language-model text (hybrid)", "id": "ID embedding only",
         "text": "language-model text only"}
MEMORIES = {"truncate": "last N items only", "xl": "segment recurrence (Transformer-XL)",
            "hierarchical": "segment summaries (LCULM)"}
HIDDEN_SIZES = (32, 64, 128, 256)
_WHY = {"quick": "for a short time limit on a CPU",
        "standard": "the command line's defaults and the README's figures"}
PRESET_LABELS = {name: f"{name.capitalize()} (hidden {c.hidden}, dropout {c.dropout}) — "
                       f"{_WHY.get(name, 'a preset')}" for name, c in PRESETS.items()}
# the form's widgets that a preset fills in, and the SequenceConfig field each one sets
PRESET_FIELDS = {"tr_repr": "item_repr", "tr_memory": "memory", "tr_len": "max_len",
                 "tr_hidden": "hidden", "tr_layers": "layers"}
_LOG_FIELDS = (("user", False), ("item", False), ("timestamp", False), ("rating", True))


def preset_picker(default: str = "quick") -> SequenceConfig:
    """The preset choice (``tr_preset``). The form's architecture widgets start from its values,
    and choosing another preset puts that preset's values in them."""
    names = list(PRESETS)
    name = st.radio("Preset (fills in the settings below)", names, index=names.index(default),
                    format_func=PRESET_LABELS.get, key="tr_preset", on_change=_apply_preset)
    for key, field in PRESET_FIELDS.items():
        if key not in st.session_state:  # first visit: the preset's values, not widget minimums
            st.session_state[key] = getattr(PRESETS[name], field)
    return PRESETS[name]


def _apply_preset() -> None:
    preset = PRESETS[st.session_state["tr_preset"]]
    for key, field in PRESET_FIELDS.items():
        st.session_state[key] = getattr(preset, field)


def log_upload(catalog_name: str) -> tuple[str | None, dict[str, str]]:
    """The log uploader (``tr_log``) and a column picker per field (``tr_map_<field>``).

    Returns:
        the kept file's path and the chosen field → column mapping; ``(None, {})`` until a
        readable file with a header row arrives (a bad one gets a message saying why).
    """
    st.caption(f"Items must be ids of the active catalog (**{catalog_name}**).")
    upload = st.file_uploader("Log CSV: one row per interaction", type=["csv"], key="tr_log")
    if upload is None:
        return None, {}
    try:
        columns = list(dict.fromkeys(read_csv_columns(upload.getvalue())))
    except ValueError as err:
        st.error(f"{upload.name} was not loaded: {err}.")
        return None, {}
    if not columns:
        st.warning(f"{upload.name} has no header row: its first line must name the columns "
                   "(user, item, timestamp, and optionally rating).")
        return None, {}
    try:
        path = save_upload(upload.getvalue(), upload.name)
    except OSError as err:
        st.error(f"{upload.name} could not be kept for training ({err}); check the free space "
                 "and permissions of the ctxrec data folder (CTXREC_HOME).")
        return None, {}
    guess = guess_mapping(columns, [f for f, _ in _LOG_FIELDS],
                          optional=[f for f, optional in _LOG_FIELDS if optional])
    mapping: dict[str, str] = {}
    for col, (field, optional) in zip(st.columns(len(_LOG_FIELDS)), _LOG_FIELDS):
        options = ([""] if optional else []) + columns
        chosen = col.selectbox(field, options, index=options.index(guess.get(field, options[0])),
                               format_func=lambda c: c or "(none)", key=f"tr_map_{field}")
        if chosen:
            mapping[field] = chosen
    return str(path), mapping


def use_model(path: str, data: str | None) -> None:
    """Attach a checkpoint; a MovieLens model also switches the catalog to its movies."""
    st.session_state[state.SEQUENCE_KEY] = path
    if data:
        st.session_state["catalog_source"] = "MovieLens"
        st.session_state["catalog_movielens"] = data


def detach_model() -> None:
    st.session_state.pop(state.SEQUENCE_KEY, None)


def report_tables(report: dict) -> None:
    """The model's and the baselines' metrics per protocol, then long-history and cold-start
    notes when the report has them."""
    rows = [{"model": r["model"], "protocol": r["protocol"], "HR@10": r["HR@10"],
             "NDCG@10": r["NDCG@10"], "MRR@10": r["MRR@10"]}
            for r in report.get("results", []) + report.get("baselines", [])]
    # a context model's report: each test split with the context and with every field unknown
    rows += [{"model": r["model"], "protocol": f"{name} · {r['protocol']}", "HR@10": r["HR@10"],
              "NDCG@10": r["NDCG@10"], "MRR@10": r["MRR@10"]}
             for name, test in report.get("tests", {}).items() for r in test["results"]]
    st.dataframe(pd.DataFrame(rows), hide_index=True,
                 key=f"tr_table_{report.get('model', '')}")
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
    """The ended job: why it failed, or its curves, its results and a button to use it."""
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


def saved_models_tab() -> None:
    """Pick a saved checkpoint (``tr_saved``): its settings, curves and results, and buttons to
    use it in the app (``tr_use``) or stop using it (``tr_detach``)."""
    saved = saved_checkpoints()
    if not saved:
        st.info("No saved models yet: train one, or run `python -m ctxrec train --data FOLDER`.")
        return
    chosen = st.selectbox("Model", saved, format_func=lambda p: p.name, key="tr_saved")
    try:
        summary = read_checkpoint_summary(chosen)
    except ValueError as err:
        st.warning(f"{err}. Train it again, or delete the folder {chosen}.")
        return
    c = summary.model
    learned = f" · context learned from the log ({c.context}: " + ", ".join(
        summary.report.get("context_schema", {}).get("fields", [])) + ")" \
        if c.context != "none" else ""
    st.caption(f"{c.item_repr} items · {c.memory} · window {c.max_len} · hidden {c.hidden} · "
               f"dropout {c.dropout} · {c.layers} layers · {summary.n_items:,} items · best "
               f"epoch {summary.best_epoch}{learned}")
    if summary.history:
        st.plotly_chart(training_curves_figure(summary.history), key="tr_saved_curves")
    if summary.report:
        report_tables(summary.report)
    attached = st.session_state.get(state.SEQUENCE_KEY) == str(chosen)
    if attached and state.sequence_model() is None:
        st.warning("This model is attached but does not match the active catalog, so the "
                   "ranking does not use it: switch to the catalog it was trained on.")
    cols = st.columns(2)
    cols[0].button("Use this model in the app", key="tr_use", disabled=attached,
                   on_click=use_model, args=(str(chosen), summary.data))
    cols[1].button("Stop using it", key="tr_detach", disabled=not attached,
                   on_click=detach_model)
