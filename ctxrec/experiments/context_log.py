"""ctxrec against the trivial baselines on a log whose events carry their context."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from datetime import datetime

from ..data.catalog import Catalog
from ..data.context_log import ContextEvents
from ..evaluation.baselines import ContextPopularity, Popularity, UserCounts
from ..evaluation.context_split import ContextProtocol, context_split
from ..evaluation.protocol import Protocol, evaluate_protocols
from ..evaluation.statistics import paired_test, summarise
from ..rank.ranker import RecommenderRanker
from ..rank.recommender import Recommender
from .results import code_version

if TYPE_CHECKING:
    from ..sequence.train import TrainedModel

__all__ = ["evaluate_context"]


def evaluate_context(recommender: Recommender, events: ContextEvents,
                     protocol: ContextProtocol = "repeat", k: int = 10, seed: int = 0,
                     progress: Callable[[str, int, int], None] | None = None,
                     model: TrainedModel | None = None) -> dict:
    """Rank each user's held-out event with ctxrec (its own context, and the context blanked)
    and the trivial baselines, under ``protocol``, on the same events and the same masks; with
    a trained context ``model``, also with it (the event's context, and every field unknown),
    holding out the events its training left out.

    Returns:
        JSON-ready results: NDCG, HR and MRR at ``k`` per ranker with 95 % intervals, the paired
        p-value of every ranker against the first (the model when given, else ctxrec), of
        context against blanked context, per-user ranks, and what was left out of the log.

    Raises:
        ValueError: the model was trained for another catalog, or with another seed or split
            (its training data would then hold some of the held-out events).
    """
    by_time = None
    if model is not None:
        from ..sequence.context_train import ContextRanker

        by_time = _check_model(model, recommender.catalog, events, seed)
    split = context_split(events, recommender.catalog, protocol, seed, by_time)
    if not split.test:
        raise ValueError(f"no user of {events.source or 'the log'} has an event to hold out "
                         f"under the {protocol} protocol with an earlier event before it")
    n_items = len(recommender.catalog)
    rankers = [ContextRanker(model), ContextRanker(model, "all")] if model is not None else []
    rankers += [RecommenderRanker(recommender, name="ctxrec"),
                RecommenderRanker(recommender, name="ctxrec, context blanked",
                                  blank_context=True)]
    if protocol == "repeat":  # in discovery every item these count is masked
        rankers += [UserCounts(n_items), UserCounts(n_items, same_context=True)]
    rankers += [Popularity(split.train_counts), ContextPopularity(split)]
    rule = Protocol("full", mask_history=protocol == "discovery")
    evaluated = []
    for ranker in rankers:
        evaluated += evaluate_protocols(
            ranker, split, [rule], k=k,
            progress=(lambda d, t, n=ranker.name: progress(n, d, t)) if progress else None)
    results, per_user = summarise(evaluated, seed=seed)
    label = f"{protocol} · {rule.label}"
    compared = {}
    if model is not None:
        names = [r.name for r in rankers[:2]]
        compared["p_ndcg_model_context_vs_unknown"] = paired_test(
            per_user[names[0]]["ndcg"].to_numpy(), per_user[names[1]]["ndcg"].to_numpy(),
            seed=seed)
    return {**compared, "dataset": events.source, "split": split.name, "protocol": label,
            "protocols": [label], "k": k, "seed": seed,
            "events": len(split.test), "unknown_values": events.unknown_values,
            "results": results,
            "p_ndcg_context_vs_blank": paired_test(per_user["ctxrec"]["ndcg"].to_numpy(),
                                                   per_user["ctxrec, context blanked"]["ndcg"]
                                                   .to_numpy(), seed=seed),
            "created": datetime.now().isoformat(timespec="seconds"), "commit": code_version(),
            "per_user": {name: table["rank"].tolist() for name, table in per_user.items()}}


def _check_model(model: TrainedModel, catalog: Catalog, events: ContextEvents, seed: int
                 ) -> bool:
    """Whether the model's training held out the last events by time; raises when evaluating it
    here would rank events it was trained on."""
    if model.schema is None:
        raise ValueError("the checkpoint is not a context model: train one with "
                         "python -m ctxrec train --log … (see --context-entry)")
    if not model.matches(catalog):
        raise ValueError("the checkpoint was trained for another catalog (its items differ "
                         "from this one's)")
    trained_on = (model.extra or {}).get("log") or {}
    if trained_on.get("seed", seed) != seed:
        raise ValueError(f"the checkpoint was trained leaving out the events drawn with --seed "
                         f"{trained_on['seed']}; evaluate with --seed {trained_on['seed']}, or "
                         "it would rank events it was trained on")
    if trained_on.get("source") and trained_on["source"] != events.source:
        raise ValueError(f"the checkpoint was trained on {trained_on['source']}, not on "
                         f"{events.source}")
    by_time = trained_on.get("split", "leave-last-out") == "leave-last-out"
    if by_time and events.timestamps is None:
        raise ValueError("the checkpoint was trained holding out the last events by time, "
                         "and this log has no timestamp column (map timestamp=COLUMN)")
    return by_time
