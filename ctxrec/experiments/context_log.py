"""ctxrec against the trivial baselines on a log whose events carry their context."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from ..data.context_log import ContextEvents
from ..evaluation.baselines import ContextPopularity, Popularity, UserCounts
from ..evaluation.context_split import ContextProtocol, context_split
from ..evaluation.protocol import Protocol, evaluate_protocols
from ..evaluation.statistics import paired_test, summarise
from ..rank.ranker import RecommenderRanker
from ..rank.recommender import Recommender
from .results import code_version

__all__ = ["evaluate_context"]


def evaluate_context(recommender: Recommender, events: ContextEvents,
                     protocol: ContextProtocol = "repeat", k: int = 10, seed: int = 0,
                     progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Rank each user's held-out event with ctxrec (its own context, and the context blanked)
    and the trivial baselines, under ``protocol``, on the same events and the same masks.

    Returns:
        JSON-ready results: NDCG, HR and MRR at ``k`` per ranker with 95 % intervals, the paired
        p-value of every ranker against ctxrec and of context against blanked context, per-user
        ranks, and what was left out of the log.
    """
    split = context_split(events, recommender.catalog, protocol, seed)
    if not split.test:
        raise ValueError(f"no user of {events.source or 'the log'} has an event to hold out "
                         f"under the {protocol} protocol with an earlier event before it")
    n_items = len(recommender.catalog)
    rankers = [RecommenderRanker(recommender, name="ctxrec"),
               RecommenderRanker(recommender, name="ctxrec, context blanked", blank_context=True)]
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
    return {"dataset": events.source, "split": split.name, "protocol": label,
            "protocols": [label], "k": k, "seed": seed,
            "events": len(split.test), "unknown_values": events.unknown_values,
            "results": results,
            "p_ndcg_context_vs_blank": paired_test(per_user["ctxrec"]["ndcg"].to_numpy(),
                                                   per_user["ctxrec, context blanked"]["ndcg"]
                                                   .to_numpy(), seed=seed),
            "created": datetime.now().isoformat(timespec="seconds"), "commit": code_version(),
            "per_user": {name: table["rank"].tolist() for name, table in per_user.items()}}
