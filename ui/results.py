"""Showing saved evaluation results on the Evaluate page: rankings under a protocol, the
judged intents with and without the intent reader, an encoder tuned on a log against the frozen
one, or an LLM re-ranker tuned on a log with its validation checks."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from ctxrec.experiments.results import intents_table, results_table
from ctxrec.export import safe_csv
from ctxrec.llm.adapters import describe_adapter
from ctxrec.tune.encoder import describe_tuning
from ctxrec.viz import metric_bars_figure, rank_distribution_figure, tuning_curves_figure


def show_results(run: dict) -> None:
    """Draw one results file; a file of another shape says so instead of failing."""
    try:
        if run.get("kind") == "intents":
            _intents(run)
        elif run.get("kind") == "tune-encoder":
            _tuning(run)
        elif run.get("kind") == "tune-llm":
            _tuned_reranker(run)
        else:
            _rankings(run)
    except (KeyError, TypeError, IndexError, ValueError) as err:
        st.error(f"This file is not a ctxrec results file this version can show ({err!r}).")
        return
    st.download_button("Download results (JSON)", json.dumps(run, indent=2),
                       file_name="ctxrec-results.json", key="ev_json")


def _rankings(run: dict) -> None:
    k = run["k"]
    st.subheader(f"{run['dataset']} · {run['protocol']} · K = {k}")
    st.caption(f"Split: {run['split']} · {run['results'][0]['users']:,} users · commit "
               f"{run['commit']} · {run['created']}. Intervals: 95 % bootstrap over users; p: "
               "paired sign-flip test against the first model under the same protocol.")
    if "p_ndcg_context_vs_blank" in run:
        st.caption(f"Context against context blanked: paired p = "
                   f"{run['p_ndcg_context_vs_blank']:.3g}.")
    for row in run["results"]:
        if "vs_reference" in row:  # a re-ranker against the first stage it re-ranks
            paired = row["vs_reference"]
            low, high = paired["ndcg_difference_ci95"]
            st.caption(f"**{row['model']}** ({row['protocol']}) against **{paired['model']}**: "
                       f"NDCG ×{paired['ndcg_ratio']:.3f}, difference "
                       f"{paired['ndcg_difference']:+.4f} (95 % {low:+.4f} to {high:+.4f}), "
                       f"paired p = {paired['p_ndcg']:.3g}.")
    table = pd.DataFrame(results_table(run))
    st.dataframe(table, hide_index=True, key="ev_table")
    rows = run["results"]
    several = len(run.get("protocols", [run["protocol"]])) > 1
    st.plotly_chart(metric_bars_figure(
        [f"{r['model']} ({r['protocol']})" if several else r["model"] for r in rows],
        [r[f"NDCG@{k}"] for r in rows], [r["ndcg_ci95"] for r in rows],
        f"NDCG@{k} — {run['protocol']}"), key="ev_bars")
    st.plotly_chart(rank_distribution_figure(run["per_user"], k), key="ev_ranks")
    st.download_button("Download the table (CSV)", safe_csv(table), file_name="ctxrec-results.csv",
                       key="ev_csv")


def _intents(run: dict) -> None:
    k = run["k"]
    st.subheader(f"Judged intents · {run['intents']} intents · K = {k}")
    st.caption(f"Encoder {run['encoder']} · commit {run.get('commit', '?')} · "
               f"{run.get('created', '')}. Graded NDCG@{k} (gain = grade: 2 great fit, 1 "
               "acceptable) and P@5 (grade ≥ 1), both through Recommender.recommend; paired p "
               f"of the reader against none: {run['p_ndcg_reader_vs_none']:.3g}.")
    names = list(run["results"])
    st.plotly_chart(metric_bars_figure(
        names, [run["results"][n][f"NDCG@{k}"] for n in names],
        [run["results"][n]["ndcg_ci95"] for n in names], f"graded NDCG@{k}"), key="ev_int_bars")
    table = pd.DataFrame(intents_table(run))
    st.dataframe(table, hide_index=True, key="ev_int_table")
    st.download_button("Download the table (CSV)", safe_csv(table),
                       file_name="ctxrec-intents.csv", key="ev_int_csv")


def _tuning(run: dict) -> None:
    st.subheader(f"Encoder tuned on {run['dataset']}")
    st.caption(describe_tuning({**run["tuning"], "validated": {
        "dataset": run["dataset"], "frozen": run["frozen"], "tuned": run["tuned"],
        "intents_change": run["intents_change"]}}))
    rows = [{"encoder": side, **{key: value for key, value in run[side].items()
                                 if key != "encoder"}} for side in ("frozen", "tuned")]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="ev_tuning")
    st.caption(f"Split: {run['split']} · commit {run['commit']} · {run['created']}. "
               "Test figures: `python -m ctxrec evaluate --models lm-text lm-history "
               f"lm-history-mean --model {run['out']}`.")


def _tuned_reranker(run: dict) -> None:
    st.subheader(f"LLM re-ranker tuned on {run['dataset']} ({run['scoring']})")
    st.caption(describe_adapter(run))
    checks = run["checks"]
    st.plotly_chart(tuning_curves_figure([], checks, run["validation"]["first_stage"]),
                    key="ev_rerank_checks")
    st.dataframe(pd.DataFrame([{"step": c["step"], "valid NDCG@10": c["valid_ndcg@10"],
                                "weight": c["weight"],
                                "LLM alone": c["llm_alone_valid_ndcg@10"]} for c in checks]),
                 hide_index=True, key="ev_rerank_table")
    st.caption(f"Split: {run['split']} · commit {run['commit']} · {run['created']}. Test figures: "
               f"`python -m ctxrec evaluate --checkpoint {run['checkpoint']} --llm-adapter "
               f"{run['out']}`.")
