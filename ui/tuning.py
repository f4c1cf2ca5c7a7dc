"""The Train page's tuning tab: the LLM re-ranker (LoRA) or the text encoder tuned on a MovieLens
log in the background, with progress, live curves, Stop (keeping the best check) and "use this
model". The runs are the command line's (``tune-llm``, ``tune-encoder``)."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import streamlit as st

from ctxrec.data.movielens import find_movielens_folders
from ctxrec.experiments.tune_encoder import run_tune_encoder
from ctxrec.experiments.tune_llm import run_tune_llm
from ctxrec.llm.adapters import describe_adapter, read_adapter, rerankers_dir
from ctxrec.llm.models import DEFAULT_LLM
from ctxrec.sequence.job import latest_job, read_checkpoint_summary, saved_checkpoints
from ctxrec.server_policy import PolicyError
from ctxrec.tune.encoder import describe_tuning, encoders_dir, read_tuning
from ctxrec.tune.job import TuningJob, latest_tuning, start_tuning
from ctxrec.viz import tuning_curves_figure
from ui import state
from ui.pickers import folder_picker, model_picker

SUGGESTED_LLMS = ("Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct")
KINDS = {"llm": "LLM re-ranker (LoRA on the language model)",
         "encoder": "Text encoder (contrastive, sentence-transformers)"}


def tuning_tab() -> None:
    kind = st.radio("Tune", list(KINDS), format_func=KINDS.get, key="tn_kind", horizontal=True)
    data = folder_picker("MovieLens folder", "tn_data", find_movielens_folders(),
                         hint="examples come from its training split only")
    job = latest_tuning(state.owner())
    training = latest_job(state.owner())
    busy = (job is not None and not job.done) or (training is not None and not training.done)
    if kind == "llm":
        _llm_form(data, busy)
    else:
        _encoder_form(data, busy)
    if job is not None and not job.done:
        running_tuning()
    elif job is not None:
        finished_tuning(job)


def _stamp() -> str:
    return f"{datetime.now():%Y%m%d-%H%M%S}"


def _first_stages(data: str) -> list[Path]:
    """Saved sequence models trained on ``data``."""
    found = []
    for folder in saved_checkpoints():
        try:
            trained_on = read_checkpoint_summary(folder).data
        except ValueError:
            continue
        if trained_on and data and Path(trained_on).resolve() == Path(data).resolve():
            found.append(folder)
    return found


def _llm_form(data: str, busy: bool) -> None:
    st.caption("The re-ranker learns, from moments in the training histories, to pick the item "
               "used next among the first stage's top K. Validation picks the best step and the "
               "fusion weight; the command line runs the same: `python -m ctxrec tune-llm`.")
    stages = _first_stages(data)
    if not stages:
        st.info("Train a sequence model on this folder first (New model tab): it is the first "
                "stage whose top K the re-ranker learns to reorder.")
        return
    pick = model_picker("llm", "Language model", DEFAULT_LLM, SUGGESTED_LLMS, key="tn_llm")
    with st.form("tn_llm_form"):
        left, right = st.columns(2)
        checkpoint = left.selectbox("First stage", stages, format_func=lambda p: p.name,
                                    key="tn_checkpoint")
        scoring = left.selectbox("Scoring", ["listwise", "pointwise"], key="tn_scoring",
                                 help="listwise: one prompt, a letter per candidate; "
                                      "pointwise: a Yes/No per candidate")
        per_user = right.number_input("Moments per user", 1, 50, 2, key="tn_per_user")
        cross_fit = right.number_input(
            "Cross-fit: last N events per user", 0, 50, 0, key="tn_cross_fit",
            help="0: moments drawn from the training histories, ranked by the first stage. "
                 "N: each user's last N training events, ranked by a copy of the first stage "
                 "trained without them (as hard as the lists it will re-rank; replaces "
                 "moments per user, and trains that copy first)")
        every = right.number_input("Validate every N steps", 1, 10_000, 60, key="tn_every")
        go = st.form_submit_button("Tune", type="primary", disabled=busy,
                                   help="One job at a time" if busy else None)
    if go and not busy:
        try:
            state.POLICY.check_model("llm", pick.name, DEFAULT_LLM)
        except PolicyError as err:
            st.warning(f"Not started: {err}")
            return
        out = rerankers_dir() / f"{Path(data).name}-{scoring}-{_stamp()}"
        _start("llm", out, data, lambda progress, stop: run_tune_llm(
            data, str(checkpoint), str(out), model=pick.name or DEFAULT_LLM, scoring=scoring,
            per_user=int(per_user), cross_fit=int(cross_fit), eval_every=int(every),
            progress=progress,
            should_stop=stop))


def _encoder_form(data: str, busy: bool) -> None:
    st.caption("Pairs (recent history as text → the next item's text) from the training "
               "histories, contrastive loss; then the frozen and tuned encoders are compared on "
               "the validation events and the judged intents: `python -m ctxrec tune-encoder`.")
    with st.form("tn_encoder_form"):
        left, right = st.columns(2)
        per_user = left.number_input(
            "Pairs per user", 1, 200, 80, key="tn_pairs",
            help="On ml-latest-small, 80 gave 2.6× the frozen encoder's NDCG@10 in about 50 min "
                 "on 2 CPU cores; 20 gave 1.7× in 16 min.")
        epochs = right.number_input("Epochs", 1, 20, 1, key="tn_epochs")
        go = st.form_submit_button("Tune", type="primary", disabled=busy,
                                   help="One job at a time" if busy else None)
    if go and not busy:
        out = encoders_dir() / f"{Path(data).name}-{_stamp()}"
        _start("encoder", out, data, lambda progress, stop: run_tune_encoder(
            data, str(out), per_user=int(per_user), epochs=int(epochs),
            progress=_encoder_steps(progress), should_stop=stop))


def _encoder_steps(progress):
    """tune-encoder reports (stage, done, total); the job reads steps and stages."""
    def report(stage: str, done: int, total: int) -> None:
        if stage == "tuning":
            progress("step", {"step": done, "steps": total, "loss": math.nan})
        else:
            progress(f"{stage} {done}/{total}", {})
    return report


def _start(kind: str, out: Path, data: str, work) -> None:
    if not data:
        st.warning("Not started: pick a MovieLens folder.")
        return
    try:
        state.POLICY.check_folder(data)
        start_tuning(kind, out, work, owner=state.owner())
    except (RuntimeError, PolicyError) as err:
        st.warning(f"Not started: {str(err).rstrip('.')}.")
    else:
        st.rerun()


@st.fragment(run_every=1.0)
def running_tuning() -> None:
    """Redrawn every second while the tuning runs; the whole page once it ends."""
    job = latest_tuning(state.owner())
    if job is None or job.done:
        st.rerun(scope="app")
    if job.step is None:
        st.progress(0.0, text=f"{job.stage} · {job.elapsed_s():.0f} s")
    else:
        step, steps, loss = job.step
        shown = f", loss {loss:.3f}" if math.isfinite(loss) else ""
        st.progress(min(1.0, step / max(steps, 1)),
                    text=f"Step {step}/{steps}{shown} · {job.elapsed_s():.0f} s")
    _curves(job, "tn_curves_live")
    st.button("Stopping…" if job.stopping else "Stop (keeps the best check)", key="tn_stop",
              on_click=job.stop, disabled=job.stopping)
    st.caption("Tuning runs in the background: the other pages stay usable meanwhile.")


def _curves(job: TuningJob, key: str) -> None:
    losses = [(s, v) for s, v in job.losses if math.isfinite(v)]
    if job.checks or losses:
        first = job.checks[0]["by_weight"]["0"] if job.checks else None
        st.plotly_chart(tuning_curves_figure(losses, job.checks, first), key=key)


def finished_tuning(job: TuningJob) -> None:
    """The ended tuning: why it failed, or what it is worth and a button to use it."""
    if job.error:
        st.error(f"Tuning did not finish: {job.error}")
        return
    st.success(f"Done: saved as {job.out.name}")
    _curves(job, "tn_curves_done")
    if job.kind == "llm":
        st.info(describe_adapter(read_adapter(job.out)), icon="🎯")
        st.button("Use this re-ranker on the LLM re-rank page", key="tn_use", type="primary",
                  on_click=use_reranker, args=(str(job.out),))
    else:
        st.info(describe_tuning(read_tuning(job.out)), icon="🎯")
        st.button("Use this encoder in the app", key="tn_use", type="primary",
                  on_click=use_encoder, args=(str(job.out),))


def use_reranker(folder: str) -> None:
    st.session_state["llm_choice"] = folder  # the LLM re-rank page's model picker


def use_encoder(folder: str) -> None:
    st.session_state["model_choice"] = folder  # the sidebar's picker, and the model in use
    st.session_state[state.MODEL_KEY] = folder
    st.session_state[state.ENCODER_TRUST_KEY] = False
