"""Evaluate: offline quality on MovieLens, every number labelled with its protocol."""

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from ctxrec.embed_cache import data_home
from ctxrec.experiment import MODELS, ExperimentConfig, results_table, run_experiment
from ctxrec.export import safe_csv
from ctxrec.movielens import find_movielens_folders
from ctxrec.viz import metric_bars_figure, rank_distribution_figure

RESULTS = data_home() / "results"

st.title("📏 Evaluate")
run_tab, load_tab = st.tabs(["Run", "Load results"])
with run_tab:
    default = next((str(p) for p in find_movielens_folders()), "")
    st.session_state.setdefault("ev_data", default)
    data = st.text_input("MovieLens folder", key="ev_data",
                         help="ml-latest-small, ml-25m or ml-1m layout")
    models = st.multiselect("Models", MODELS, default=list(MODELS), key="ev_models")
    left, right = st.columns(2)
    split = left.radio("Split", ("leave-last-out", "temporal", "random"), key="ev_split",
                       horizontal=True)
    right.caption("leave-last-out: each user's last item by time; temporal: the first item after "
                  "one global time cut; random: a random held-out item per user.")
    protocol = left.radio("Protocol", ("full", "sampled"), key="ev_protocol", horizontal=True,
                          format_func={"full": "full ranking", "sampled": "sampled negatives"}.get)
    mask = left.checkbox("Mask the user's history (full ranking)", key="ev_mask")
    negatives = right.number_input("Negatives (sampled)", 10, 1000, 100, key="ev_negatives")
    sampling = right.radio("Sampling", ("uniform", "popularity"), key="ev_sampling",
                           horizontal=True)
    k = left.slider("K", 1, 50, 10, key="ev_k")
    max_users = right.number_input("Users (0 = all; small numbers for a quick look)", 0, 10**7,
                                   0, key="ev_users")
    extras = st.columns(2)
    do_ablations = extras[0].checkbox("Ablations of ctxrec", key="ev_ablations")
    blank = extras[1].checkbox("ctxrec with the context blanked", key="ev_blank")
    if st.button("Run", key="ev_run", type="primary", disabled=not models):
        config = ExperimentConfig(data=data, models=tuple(models), split=split, protocol=protocol,
                                  mask_history=mask, n_negatives=int(negatives), sampling=sampling,
                                  k=k, ablations=do_ablations, context_blank=blank,
                                  max_users=int(max_users) or None)
        bar = st.progress(0.0, text="Starting…")
        try:
            run = run_experiment(config, progress=lambda stage, done, total: bar.progress(
                done / total, text=f"{stage}: {done:,} / {total:,}"))
        except (FileNotFoundError, ValueError) as err:
            bar.empty()
            st.error(str(err))
        else:
            bar.empty()
            RESULTS.mkdir(parents=True, exist_ok=True)
            path = RESULTS / f"{run['created'].replace(':', '')}.json"
            path.write_text(json.dumps(run))
            st.session_state["ev_result"] = run
            st.success(f"Saved to {path}")
with load_tab:
    files = sorted(RESULTS.glob("*.json"), reverse=True) if RESULTS.is_dir() else []
    st.caption(f"Results from `python -m ctxrec evaluate --out …` or earlier runs, in {RESULTS}.")
    chosen = st.selectbox("Results file", files, format_func=lambda p: p.name, key="ev_file",
                          index=None, placeholder="pick a results file…")
    if chosen is not None and st.button("Load", key="ev_load"):
        try:
            st.session_state["ev_result"] = json.loads(Path(chosen).read_text())
        except (OSError, ValueError) as err:
            st.error(f"Could not read {chosen.name}: {err}")

run = st.session_state.get("ev_result")
if run:
    k = run["k"]
    st.subheader(f"{run['dataset']} · {run['protocol']} · K = {k}")
    st.caption(f"Split: {run['split']} · {run['results'][0]['users']:,} users · commit "
               f"{run['commit']} · {run['created']}. Intervals: 95 % bootstrap over users; p: "
               "paired sign-flip test against the first model.")
    table = pd.DataFrame(results_table(run))
    st.dataframe(table, hide_index=True, key="ev_table")
    rows = run["results"]
    st.plotly_chart(metric_bars_figure([r["model"] for r in rows], [r[f"NDCG@{k}"] for r in rows],
                                       [r["ndcg_ci95"] for r in rows],
                                       f"NDCG@{k} — {run['protocol']}"), key="ev_bars")
    st.plotly_chart(rank_distribution_figure(run["per_user"], k), key="ev_ranks")
    st.download_button("Download results (JSON)", json.dumps(run, indent=2),
                       file_name="ctxrec-results.json", key="ev_json")
    st.download_button("Download the table (CSV)", safe_csv(table), file_name="ctxrec-results.csv",
                       key="ev_csv")
