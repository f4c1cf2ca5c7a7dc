"""Tune the encoder on a MovieLens log and say whether it paid: the history-text ranker on the
validation events with the frozen and the tuned encoder, and the judged intents of the built-in
catalog with both (the tuned encoder must keep its general retrieval)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np

from ..data.catalog import builtin_catalog
from ..data.judged_intents import load_judged_intents
from ..evaluation.history_text import HistoryTextRanker
from ..evaluation.protocol import Protocol, evaluate_protocols
from ..rank.recommender import Recommender
from ..sequence.run import hold_out_items
from ..text.embed_cache import item_embeddings
from ..text.encoders import DEFAULT_ENCODER, TextEncoder, load_encoder
from ..tune.encoder import TUNING_FILE, log_pairs, tune_encoder
from .intents import judge_rankings
from .movielens import ExperimentConfig, load_split
from .results import code_version

__all__ = ["INTENT_LOSS_ALLOWED", "run_tune_encoder"]

INTENT_LOSS_ALLOWED = 0.02  # the tuned encoder may lose at most 2 % of the frozen intent NDCG@10
Progress = Callable[[str, int, int], None]


def run_tune_encoder(data: str, out: str, base: str = DEFAULT_ENCODER, per_user: int = 80,
                     epochs: int = 1, batch_size: int = 32, learning_rate: float = 5e-5,
                     seed: int = 0, progress: Progress | None = None,
                     should_stop: Callable[[], bool] | None = None,
                     cold_start: float | None = None) -> dict:
    """Tune on the leave-last-out split's training histories (exact time order), then compare.

    ``cold_start``: leave out of the pairs the items that ``train --cold-start`` with the same
    share and seed holds out, so that a cold-start comparison with this encoder is fair (it never
    saw those items as a next item, nor in a history)."""
    config = ExperimentConfig(data=data, encoder=base)
    catalog, split = load_split(config)
    pairs, held_out = training_pairs(split, catalog, per_user, seed, cold_start)
    frozen = _validation_and_intents(load_encoder(base), catalog, split, progress, "frozen")
    tuned_encoder = load_encoder(base)
    tuning = tune_encoder(tuned_encoder, pairs, out, epochs=epochs, batch_size=batch_size,
                          learning_rate=learning_rate, seed=seed,
                          progress=(lambda s, n, _: progress("tuning", s, n)) if progress
                          else None, should_stop=should_stop)
    tuned = _validation_and_intents(load_encoder(str(Path(out).resolve())), catalog, split,
                                    progress, "tuned")
    change = (tuned["intents_ndcg@10"] - frozen["intents_ndcg@10"]) / \
        max(frozen["intents_ndcg@10"], 1e-12)
    validated = {"dataset": Path(data).name, "frozen": frozen, "tuned": tuned,
                 "intents_change": change, "cold_start_items_left_out":
                 None if held_out is None else {"share": cold_start, "seed": seed,
                                                "items": int(held_out.size)}}
    # kept beside the weights, so the app can say what this encoder is worth
    (Path(out) / TUNING_FILE).write_text(json.dumps({**tuning, "validated": validated}, indent=2))
    return {"kind": "tune-encoder", "dataset": Path(data).name, "out": str(out),
            "split": "leave-last-out (exact time), training histories only" +
                     (f", {cold_start:.0%} of items left out as in train --cold-start "
                      f"{cold_start} --seed {seed}" if held_out is not None else ""),
            "commit": code_version(), "created": datetime.now().isoformat(timespec="seconds"),
            "tuning": tuning, "frozen": frozen, "tuned": tuned,
            "valid_ndcg_ratio": tuned["valid_ndcg@10"] / max(frozen["valid_ndcg@10"], 1e-12),
            "intents_change": change,
            "keeps_general_retrieval": change >= -INTENT_LOSS_ALLOWED}


def training_pairs(split, catalog, per_user: int, seed: int, cold_start: float | None = None
                   ) -> tuple[dict[str, list[str]], np.ndarray | None]:
    """The (history text → next item text) pairs, and the items left out of them: those
    ``train --cold-start`` holds out with the same share and seed (``None`` without it)."""
    if not cold_start:
        return log_pairs(split, catalog, per_user=per_user, seed=seed), None
    reduced, held_out = hold_out_items(split, cold_start, seed)
    return log_pairs(reduced, catalog, per_user=per_user, seed=seed), held_out


def _validation_and_intents(encoder: TextEncoder, catalog, split, progress: Progress | None,
                            label: str) -> dict:
    vectors = item_embeddings(encoder, catalog, progress=(
        lambda d, t: progress(f"encoding items ({label})", d, t)) if progress else None)
    ranker = HistoryTextRanker(encoder, catalog, vectors)
    full, masked = evaluate_protocols(ranker, split, [Protocol("full"), Protocol("full", True)],
                                      target="valid")
    built_in = builtin_catalog()
    recommender = Recommender(built_in, encoder, item_embeddings(encoder, built_in))
    rows = judge_rankings(recommender, load_judged_intents(catalog=built_in))
    return {"encoder": encoder.name, "valid_ndcg@10": float(full.per_user["ndcg"].mean()),
            "valid_ndcg@10_masked": float(masked.per_user["ndcg"].mean()),
            "intents_ndcg@10": sum(r["ndcg@10"] for r in rows) / len(rows),
            "intents_p@5": sum(r["p@5"] for r in rows) / len(rows)}
