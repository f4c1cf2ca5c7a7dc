"""The recommender on the judged intents: graded NDCG@10 and precision@5 through
``Recommender.recommend`` (the path the app and the CLI use), overall and per constraint kind."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import numpy as np

from ..data.judged_intents import CONSTRAINT_KINDS, JudgedIntent
from ..evaluation.metrics import graded_ndcg
from ..evaluation.statistics import bootstrap_ci, paired_test
from ..rank.recommender import Recommender
from .results import code_version

__all__ = ["evaluate_intents", "judge_rankings"]


def judge_rankings(recommender: Recommender, judged: Sequence[JudgedIntent], k: int = 10,
                   read_intent: bool = True) -> list[dict]:
    """Per intent: the top ``k`` ids, graded NDCG@k, P@5 (grade ≥ 1 counts as relevant) and the
    top-5 items the judges left out."""
    rows = []
    for item in judged:
        ranking = recommender.recommend(item.context, k=max(k, 5), read_intent=read_intent)
        top = [str(i) for i in ranking.table["item_id"]]
        gains = np.array([[item.relevant.get(i, 0) for i in top[:k]]], dtype=float)
        if gains.shape[1] < k:
            gains = np.pad(gains, ((0, 0), (0, k - gains.shape[1])))
        ndcg = float(graded_ndcg(gains, [np.array(list(item.relevant.values()), float)])[0])
        top5 = top[:5]
        rows.append({"id": item.id, "intent": item.context.intent,
                     "constraints": list(item.constraints), f"ndcg@{k}": ndcg,
                     "p@5": sum(item.relevant.get(i, 0) > 0 for i in top5) / 5,
                     "top5_not_judged_relevant": [i for i in top5 if i not in item.relevant],
                     "top": top[:k]})
    return rows


def evaluate_intents(recommender: Recommender, judged: Sequence[JudgedIntent], k: int = 10,
                     progress: Callable[[str, int, int], None] | None = None) -> dict:
    """The pipeline with the intent reader and without it, on the same intents: means with 95 %
    intervals, the paired p-value of the difference, and both per constraint kind."""
    runs = {}
    for name, read in (("with the intent reader", True), ("without the intent reader", False)):
        runs[name] = judge_rankings(recommender, judged, k, read_intent=read)
        if progress:
            progress(name, len(judged), len(judged))
    first, second = runs.values()
    metric = f"ndcg@{k}"
    summary = {}
    for name, rows in runs.items():
        ndcg = np.array([r[metric] for r in rows])
        p5 = np.array([r["p@5"] for r in rows])
        summary[name] = {f"NDCG@{k}": float(ndcg.mean()), "ndcg_ci95": list(bootstrap_ci(ndcg)),
                         "P@5": float(p5.mean()), "p5_ci95": list(bootstrap_ci(p5)),
                         "by_constraint": _by_constraint(rows, f"ndcg@{k}", k)}
    return {"kind": "intents", "intents": len(judged), "k": k,
            "encoder": recommender.encoder.name, "commit": code_version(),
            "intent_model": getattr(recommender.kind_reader, "name", None),
            "created": datetime.now().isoformat(timespec="seconds"),
            "results": summary,
            "p_ndcg_reader_vs_none": paired_test(np.array([r[metric] for r in first]),
                                                  np.array([r[metric] for r in second])),
            "per_intent": {name: [{key: r[key] for key in ("id", metric, "p@5",
                                                            "top5_not_judged_relevant")}
                                  for r in rows] for name, rows in runs.items()}}


def _by_constraint(rows: list[dict], metric: str, k: int) -> dict[str, dict]:
    out = {}
    for kind in (*CONSTRAINT_KINDS, "none"):
        chosen = [r for r in rows if (kind in r["constraints"]) or
                  (kind == "none" and not r["constraints"])]
        if chosen:
            out[kind] = {"intents": len(chosen),
                         f"NDCG@{k}": float(np.mean([r[metric] for r in chosen])),
                         "P@5": float(np.mean([r["p@5"] for r in chosen]))}
    return out
