"""The sequence model's evaluation: labelled protocols, long histories and cold start.

Everything here returns JSON-ready dicts, so ``python -m ctxrec train`` and the app report the same
numbers for the same checkpoint and split.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.catalog import Catalog
from ..data.context_log import ColumnMap
from ..evaluation.baselines import ItemKNN, Popularity, TextSimilarity
from ..evaluation.protocol import FULL_BOTH_WAYS, Protocol, evaluate, evaluate_protocols
from ..evaluation.split import Split, TimeOrder, leave_last_out
from .config import MEMORY_MODES, SequenceConfig, TrainConfig
from .distributed import Ranks
from .train import EpochLog, EpochProgress, SequenceRanker, TrainedModel, train_sequence_model

__all__ = ["TrainingRun", "hold_out_items", "load_training_data", "sequence_report",
           "train_and_report"]


@dataclass
class TrainingRun:
    """Where the interactions come from and how to train on them.

    Attributes:
        data: a MovieLens folder; or ``log`` (interaction CSV) with ``catalog`` (a catalog CSV
            or a loaded catalog) and ``mapping`` (field → column name: user, item, timestamp, rating, count).
        model: the architecture; ``n_items`` and ``text_dim`` are filled in from the data.
        cold_start: hold this share of items out of training and report cold-start hit rate.
        encoder: text model for the text and hybrid item representations (default: packaged).
        time_order: ``float32`` splits as RecBole does (see ``leave_last_out``); the checkpoint
            records it, so evaluation uses the same split.
        columns: the column map of a log whose events carry context (context models; ``mapping``
            is for the plain model).
        split: how a context model's log is split: ``leave-last-out`` or ``random-event``,
            drawn with ``train.seed``.
    """

    model: SequenceConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    data: str | None = None
    log: str | None = None
    catalog: str | Catalog | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    cold_start: float | None = None
    encoder: str | None = None
    baselines: bool = True
    time_order: TimeOrder = "exact"
    columns: ColumnMap | None = None
    split: str = "leave-last-out"


def load_training_data(run: TrainingRun) -> tuple[Catalog, pd.DataFrame, list[str]]:
    """(catalog, interactions, what was dropped while loading) from a MovieLens folder or an
    interaction log with its catalog."""
    if run.data:
        from ..data.movielens import load_movielens

        return (*load_movielens(run.data), [])
    if not (run.log and run.catalog):
        raise ValueError("give a MovieLens folder, or an interaction log with its catalog CSV")
    from ..data.interaction_log import load_interaction_log

    loaded = load_interaction_log(run.log, run.catalog, **run.mapping)
    return loaded.catalog, loaded.interactions, [str(p) for p in loaded.problems]


def train_and_report(run: TrainingRun, out: str | Path,
                     on_batch: EpochProgress | None = None,
                     on_epoch: Callable[[EpochLog], None] | None = None,
                     on_stage: Callable[[str], None] | None = None,
                     should_stop: Callable[[], bool] | None = None) -> dict:
    """Load, split (leave-last-out by time), train, save the checkpoint to ``out`` and return the
    report, with the baselines measured on the same split when ``run.baselines``. A context model
    (``run.model.context`` tokens or gate) is trained by
    :func:`~ctxrec.sequence.context_run.train_context_and_report`."""
    if run.model.context != "none":
        from .context_run import train_context_and_report

        return train_context_and_report(run, out, on_batch, on_epoch, on_stage, should_stop)
    say = on_stage or (lambda text: None)
    catalog, interactions, problems = load_training_data(run)
    for problem in problems:
        say(f"note: {problem}")
    split = leave_last_out(interactions, catalog, run.time_order)
    if not split.test:
        raise ValueError("no user has the three interactions a split needs")
    cold = None
    train_split = split
    if run.cold_start:
        train_split, cold = hold_out_items(split, run.cold_start, run.train.seed)
    vectors, encoder_name = None, None
    if run.model.item_repr != "id" or run.baselines:
        from ..text.embed_cache import item_embeddings
        from ..text.encoders import DEFAULT_ENCODER, load_encoder

        encoder = load_encoder(run.encoder or DEFAULT_ENCODER)
        encoder_name = encoder.name
        say(f"encoding {len(catalog)} item texts with {encoder.name} (cached after the first run)")
        with Ranks().main_first():  # under torchrun, rank 0 fills the embedding cache
            vectors = item_embeddings(encoder, catalog)
    config = replace(run.model, n_items=len(catalog),
                     text_dim=vectors.shape[1] if run.model.item_repr != "id" else 0)
    say(f"training on {len(train_split.histories)} users, {len(catalog)} items")
    trained = train_sequence_model(train_split, catalog, config, run.train,
                                   vectors if config.item_repr != "id" else None,
                                   encoder=encoder_name if config.item_repr != "id" else None,
                                   on_batch=on_batch, on_epoch=on_epoch,
                                   should_stop=should_stop)
    if not Ranks().main:
        return {"rank": Ranks().rank}  # rank 0 evaluates, saves and reports
    say("evaluating")
    report = sequence_report(trained, train_split, cold=cold,
                             name=f"SASRec ({config.item_repr}, {config.memory})")
    report["data_notes"] = problems
    report["training"] = {"epochs": len(trained.history),
                          "seconds": trained.history[-1].elapsed_s if trained.history else 0,
                          "curve": [e.__dict__ for e in trained.history]}
    if run.baselines and vectors is not None:
        report["baselines"] = [
            result.summary()
            for ranker in (Popularity(train_split.train_counts), ItemKNN(train_split),
                           TextSimilarity(vectors))
            for result in evaluate_protocols(ranker, train_split, FULL_BOTH_WAYS, k=10)]
    trained.extra = {"report": report, "data": run.data, "time_order": run.time_order}
    trained.save(out)
    (Path(out) / "report.json").write_text(json.dumps(report, indent=1))
    return report


def hold_out_items(split: Split, fraction: float = 0.1, seed: int = 0) -> tuple[Split, np.ndarray]:
    """Remove a random ``fraction`` of the items seen in training from every training history, so
    the model never learns them from interactions; returns the reduced split and those items
    (catalog positions)."""
    if not 0 < fraction < 1:
        raise ValueError(f"the held-out share of items must be between 0 and 1, not {fraction}")
    rng = np.random.default_rng(seed)
    seen = np.flatnonzero(split.train_counts > 0)
    cold = np.sort(rng.choice(seen, size=max(1, round(fraction * len(seen))), replace=False))
    histories = {u: h[~np.isin(h, cold)] for u, h in split.histories.items()}
    ratings = {u: r[~np.isin(split.histories[u], cold)] for u, r in split.ratings.items()}
    counts = split.train_counts.copy()
    counts[cold] = 0
    return replace(split, histories=histories, ratings=ratings, train_counts=counts,
                   name=f"{split.name}, {fraction:.0%} of items held out of training"), cold


def sequence_report(trained: TrainedModel, split: Split, k: int = 10,
                    cold: np.ndarray | None = None, name: str = "SASRec") -> dict:
    """Test figures under each protocol, the long-history comparison and (when ``cold`` items
    were held out) cold-start hit rate, each labelled with how it was measured."""
    ranker = SequenceRanker(trained, name=name, exclude=cold)
    report: dict = {"model": name, "config": trained.config.to_dict(), "split": split.name,
                    "best_epoch": trained.best_epoch,
                    "best_valid_ndcg@10": max((e.valid_ndcg for e in trained.history),
                                              default=None),
                    "results": []}
    protocols = [*FULL_BOTH_WAYS, Protocol("sampled")]
    report["results"] = [r.summary() for r in evaluate_protocols(ranker, split, protocols, k=k)]
    max_len = trained.config.max_len
    long_users = [u for u in split.test if len(split.histories[u]) + 1 > max_len]
    report["long_history"] = {
        "users": len(long_users), "window": max_len,
        "protocol": "full ranking, test item, users whose history is longer than the window",
        **{mode: evaluate(SequenceRanker(trained, memory=mode, exclude=cold), split, k=k,
                          users=long_users).summary()[f"NDCG@{k}"]
           for mode in MEMORY_MODES} } if long_users else {"users": 0}
    if cold is not None:
        hits = [u for u in split.test if split.test[u].item in set(cold.tolist())]
        result = evaluate(ranker, split, k=k, users=hits) if hits else None
        report["cold_start"] = {
            "held_out_items": int(len(cold)), "test_events_on_them": len(hits),
            f"HR@{k}": float(result.per_user["hr"].mean()) if result else None,
            "item_repr": trained.config.item_repr}
    return report
