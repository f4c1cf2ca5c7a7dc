"""Training the context model from the command line or the app, and its report.

Two sources: a log whose events carry their context (``train --log``, with the column map of
``evaluate-context``), or a MovieLens folder, whose context is the time of each rating (hour,
daypart, weekday, weekend, season in UTC).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..data.catalog import Catalog
from ..data.context_fields import ContextSchema, event_fields
from ..data.context_log import ColumnMap
from ..evaluation.context_split import CONTEXT_PROTOCOLS, context_split
from ..evaluation.protocol import FULL_BOTH_WAYS, Protocol, evaluate_protocols
from ..evaluation.split import Split, leave_last_out
from ..evaluation.statistics import summarise
from .context_train import ContextRanker, LogData, log_data, train_context_model
from .run import TrainingRun, load_training_data
from .distributed import Ranks
from .train import EpochLog, EpochProgress, TrainedModel

__all__ = ["PRIOR_WEIGHTS", "choose_prior_weight", "context_report", "log_data_of_split",
           "train_context_and_report"]


def log_data_of_split(split: Split) -> LogData:
    """A time-ordered split (MovieLens) as the context model's training data: each rating's
    context is its time; validation and test are the split's own."""
    users = list(split.histories)
    sequences, start = {}, 1
    for user in users:
        sequences[user] = np.arange(start, start + len(split.histories[user]))
        start += len(split.histories[user])
    items = np.concatenate([[0], *(split.histories[u] + 1 for u in users)])
    clock = np.concatenate([[np.nan], *(split.history_times[u] for u in users)])
    fields = [event_fields("", t) for t in clock[1:]]
    schema = ContextSchema.fit(fields, columns=())
    codes = np.concatenate([np.zeros((1, len(schema.fields)), np.int64),
                            schema.codes_of(fields)])
    return LogData(schema, items, codes, clock, np.concatenate([[0.0], np.ones(len(fields))]),
                   sequences, split, ordered=True, split="leave-last-out", seed=0)


def train_context_and_report(run: TrainingRun, out: str | Path,
                             on_batch: EpochProgress | None = None,
                             on_epoch: Callable[[EpochLog], None] | None = None,
                             on_stage: Callable[[str], None] | None = None,
                             should_stop: Callable[[], bool] | None = None) -> dict:
    """Load, hold out, train the context model, save it to ``out`` with its report (test
    figures with the context and with every field unknown, and their paired p-value)."""
    say = on_stage or (lambda text: None)
    if run.log:
        if run.catalog is None:
            raise ValueError("give the interaction log with its catalog CSV (--catalog)")
        from ..data.catalog import read_catalog_csv
        from ..data.context_log import read_context_log

        catalog = run.catalog if isinstance(run.catalog, Catalog) else \
            read_catalog_csv(run.catalog)
        events = read_context_log(run.log, run.columns or ColumnMap(), catalog)
        for name, count in events.unknown_values.items():
            say(f"note: {count} events with an unreadable {name}")
        data = log_data(events, catalog, run.split, run.train.seed)
        tests = {p: context_split(events, catalog, p, run.train.seed,
                                  by_time=run.split == "leave-last-out")
                 for p in CONTEXT_PROTOCOLS}
        notes = [f"{name}: {count}" for name, count in events.unknown_values.items()]
    else:
        catalog, interactions, notes = load_training_data(run)
        split = leave_last_out(interactions, catalog, run.time_order)
        data = log_data_of_split(split)
        tests = {"leave-last-out": split}
    vectors, encoder_name, encoder = None, None, None
    if run.model.item_repr != "id":
        from ..text.embed_cache import item_embeddings
        from ..text.encoders import DEFAULT_ENCODER, load_encoder

        encoder = load_encoder(run.encoder or DEFAULT_ENCODER)
        encoder_name = encoder.name
        say(f"encoding {len(catalog)} item texts with {encoder.name} (cached after the first run)")
        with Ranks().main_first():  # under torchrun, rank 0 fills the embedding cache
            vectors = item_embeddings(encoder, catalog)
    config = replace(run.model, n_items=len(catalog),
                     text_dim=vectors.shape[1] if vectors is not None else 0)
    say(f"training on {len(data.sequences)} users, {len(catalog)} items, context fields: "
        f"{', '.join(data.schema.fields) or 'none'}")
    trained = train_context_model(data, catalog, config, run.train, vectors, encoder_name,
                                  on_batch=on_batch, on_epoch=on_epoch, should_stop=should_stop)
    if not Ranks().main:
        return {"rank": Ranks().rank}  # rank 0 evaluates, saves and reports
    prior = None
    if encoder is not None:
        from ..rank.recommender import Recommender

        say("choosing the hand-written context prior's weight on validation")
        prior = choose_prior_weight(trained, Recommender(catalog, encoder, vectors),
                                    data.validation)
    trained.extra = {"prior_weight": prior["chosen"] if prior else 0.0}
    say("evaluating")
    report = {"model": f"context model ({config.context}, {config.item_repr})",
              "config": trained.config.to_dict(), "context_schema": data.schema.to_dict(),
              "best_epoch": trained.best_epoch,
              "best_valid_ndcg@10": max((e.valid_ndcg for e in trained.history), default=None),
              "held_out_events": data.held_out, "data_notes": notes,
              "context_prior": prior or {"chosen": 0.0, "note": "not measured: the hand-written "
                                         "prior needs a text model (--item-repr id loads none)"},
              "tests": {name: context_report(trained, split, masking=name)
                        for name, split in tests.items()},
              "training": {"epochs": len(trained.history),
                           "seconds": trained.history[-1].elapsed_s if trained.history else 0,
                           "curve": [e.__dict__ for e in trained.history]}}
    trained.extra = {**trained.extra, "report": report, "data": run.data,
                     "log": {"split": run.split if run.log else "leave-last-out",
                             "seed": run.train.seed, "source": Path(run.log).name
                             if run.log else None}}
    trained.save(out)
    (Path(out) / "report.json").write_text(json.dumps(report, indent=1))
    return report


def context_report(trained: TrainedModel, split: Split, masking: str = "leave-last-out",
                   k: int = 10, seed: int = 0) -> dict:
    """The model with its context and with every field unknown on ``split``'s test events:
    NDCG/HR/MRR with intervals, and the paired p-value of no context against the context.
    ``masking`` is a protocol name:
    ``repeat`` (nothing masked), ``discovery`` (history masked), or ``leave-last-out`` (both)."""
    protocols = {"repeat": [Protocol("full")],
                 "discovery": [Protocol("full", mask_history=True)]}.get(masking, FULL_BOTH_WAYS)
    evaluated = []
    for ranker in (ContextRanker(trained), ContextRanker(trained, "all")):
        evaluated += evaluate_protocols(ranker, split, list(protocols), k=k)
    results, _ = summarise(evaluated, seed=seed)  # each row's p-value is against the first
    return {"split": split.name, "events": len(split.test), "results": results}


PRIOR_WEIGHTS = (0.0, 0.25, 0.5, 1.0)


class _PriorBlend:
    """The context model's standardised log-probabilities plus ``weight`` × the hand-written
    context score, standardised: how the app ranks with both."""

    def __init__(self, trained: TrainedModel, recommender, weight: float):
        self.ranker, self.recommender, self.weight = ContextRanker(trained), recommender, weight
        self.name = f"context model + prior × {weight:g}"

    def scores(self, queries) -> np.ndarray:
        from ..rank.components import standardise
        from ..rank.query import query_context

        model = self.ranker.scores(queries)
        out = np.stack([standardise(row - np.logaddexp.reduce(row)) for row in model])
        if self.weight:
            ids = self.recommender.catalog.ids
            out += self.weight * np.stack([standardise(self.recommender.context_scores(
                query_context(q, ids))) for q in queries])
        return out


def choose_prior_weight(trained: TrainedModel, recommender, validation: Split,
                        weights: tuple[float, ...] = PRIOR_WEIGHTS) -> dict:
    """The weight of the hand-written context score beside the learned model that gives the best
    validation NDCG@10 (ties: the smaller weight), with each weight's figure."""
    figures = {}
    for weight in weights:
        result = evaluate_protocols(_PriorBlend(trained, recommender, weight), validation,
                                    [Protocol("full")], k=10, target="valid")[0]
        figures[f"{weight:g}"] = float(result.per_user["ndcg"].mean())
    best = max(figures.values())
    chosen = next(w for w in weights if figures[f"{w:g}"] >= best - 1e-12)
    return {"chosen": chosen, "validation_ndcg@10": figures}
