"""Tune the LLM re-ranker on a MovieLens log behind a trained sequence model, and say whether it
paid on the validation events (the test figures, with paired intervals, come from ``python -m
ctxrec evaluate --checkpoint … --llm-rerank --llm-adapter …``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from ..llm.models import DEFAULT_LLM, load_llm
from ..text.encoders import pick_device
from ..llm.rerank import LLMReranker
from ..sequence.train import SequenceRanker
from ..tune.cross_fit import held_back, proxy_first_stage
from ..tune.reranker import rerank_lists, training_moments, training_rows, tune_reranker
from .movielens import ExperimentConfig, load_checked_checkpoint, load_split
from .results import code_version

__all__ = ["run_tune_llm"]


def run_tune_llm(data: str, checkpoint: str, out: str, model: str = DEFAULT_LLM,
                 scoring: str = "listwise", per_user: int = 4, negatives: int = 3,
                 top_k: int = 20, epochs: int = 1, batch_size: int = 4,
                 learning_rate: float = 2e-4, lora_rank: int = 16, eval_every: int = 100,
                 patience: int = 2, seed: int = 0, cross_fit: int = 0,
                 progress: Callable[[str, dict], None] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> dict:
    """Tune on the leave-last-out split's training histories (exact time order), with the
    sequence model in ``checkpoint`` as first stage, validating on every user's validation event.

    With ``cross_fit`` > 0 the tuning lists are cross-fitted (:mod:`ctxrec.tune.cross_fit`): each
    user's last ``cross_fit`` training events are the moments, ranked by a copy of the first stage
    trained without them; ``per_user`` is then unused.
    """
    config = ExperimentConfig(data=data)
    catalog, split = load_split(config)
    trained = load_checked_checkpoint(checkpoint, catalog, config)
    first = SequenceRanker(trained)
    if cross_fit:
        reduced, queries, targets = held_back(split, cross_fit)
        if progress:
            progress("training the proxy first stage", {})
        moments = rerank_lists(proxy_first_stage(trained, reduced, catalog), queries, targets,
                               catalog, k=top_k)
    else:
        queries, targets = training_moments(split, per_user, seed=seed)
        moments = rerank_lists(first, queries, targets, catalog, k=top_k)
    users = sorted(split.valid, key=str)
    valid = rerank_lists(first, split.queries("valid", users),
                         [split.valid[u].item for u in users], catalog, k=top_k)
    # float32 on a CPU (tune_reranker says why); the adapter then loads onto either dtype
    reranker = LLMReranker(load_llm(model, dtype="float32" if pick_device() == "cpu" else None),
                           scoring=scoring)
    rows = training_rows(moments, catalog, reranker, negatives=negatives, seed=seed)
    record = {"dataset": Path(data).name, "checkpoint": str(checkpoint), "top_k": top_k,
              "cross_fit": cross_fit, "moments": len(moments), "moments_with_item_in_k":
                  sum(m.hit is not None for m in moments), "negatives": negatives}
    info = tune_reranker(reranker, rows, valid, catalog, out, epochs=epochs,
                         batch_size=batch_size, learning_rate=learning_rate,
                         lora_rank=lora_rank, eval_every=eval_every, patience=patience,
                         seed=seed, progress=progress, record=record, should_stop=should_stop)
    return {"kind": "tune-llm", "out": str(out), "commit": code_version(),
            "split": "leave-last-out (exact time); examples from training histories only" + (
                f", cross-fitted (the last {cross_fit} per user, ranked by a proxy trained "
                "without them)" if cross_fit else ""),
            "created": datetime.now().isoformat(timespec="seconds"), **info}
