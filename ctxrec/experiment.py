"""One evaluation run from a config, shared by ``python -m ctxrec evaluate`` and the Evaluate page so
both give the same numbers for the same config."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np

from .encoders import DEFAULT_ENCODER
from .evaluate import (SPLITS, ItemKNN, Popularity, RecommenderRanker, TextSimilarity,
                       TimeOrder, ablations, bootstrap_ci, evaluate, leave_last_out, paired_test)

__all__ = ["MODELS", "ExperimentConfig", "results_table", "run_experiment"]

MODELS = ("popularity", "item-knn", "lm-text", "ctxrec")
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ExperimentConfig:
    """What to evaluate and how.

    Attributes:
        data: a MovieLens folder (ml-latest-small, ml-25m or ml-1m layout).
        models: any of ``MODELS``.
        split: per-user leave-last-out by time, one global temporal cut, or random hold-out.
        time_order: (leave-last-out) ``float32`` orders by timestamps rounded as RecBole does.
        protocol: ``full`` ranking or ``sampled`` negatives.
        mask_history: (full) leave the user's training items out of the candidates.
        n_negatives, sampling: (sampled) how many negatives, drawn uniformly or by popularity.
        k: cut-off for HR, NDCG and MRR.
        target: ``test`` or ``valid`` held-out item.
        ablations: also run ctxrec without each component and with each alone.
        context_blank: also run ctxrec with the context component blanked, on the same events.
        max_users: evaluate the first N users only (quick runs), ``None`` for all.
        encoder: language model for the text-based models.
        checkpoint: trained sequence models (``python -m ctxrec train``) to rank alongside;
            with several, their ensemble is ranked too.
        llm_rerank: also run a first stage followed by the generative LLM re-ranker on its top
            ``llm_k`` items with weight ``llm_weight``; the first stage is the sequence model
            when ``checkpoint`` is given, else ctxrec.
    """

    data: str
    models: tuple[str, ...] = MODELS
    split: Literal["leave-last-out", "temporal", "random"] = "leave-last-out"
    time_order: TimeOrder = "exact"
    protocol: Literal["full", "sampled"] = "full"
    mask_history: bool = False
    n_negatives: int = 100
    sampling: Literal["uniform", "popularity"] = "uniform"
    k: int = 10
    target: Literal["valid", "test"] = "test"
    ablations: bool = False
    context_blank: bool = False
    max_users: int | None = None
    seed: int = 0
    encoder: str = DEFAULT_ENCODER
    checkpoint: str | Sequence[str] | None = None
    llm_rerank: bool = False
    llm: str | None = None  # None: the packaged SmolLM2
    llm_k: int = 20
    llm_weight: float = 1.0


def run_experiment(config: ExperimentConfig, progress: Progress | None = None) -> dict:
    """Run every requested model under one protocol; JSON-ready results with 95 % bootstrap
    intervals, paired p-values against the first model, and per-user ranks."""
    from .movielens import load_movielens

    unknown = [m for m in config.models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown models {unknown}; choose from {', '.join(MODELS)}")
    catalog, interactions = load_movielens(config.data)
    if config.split not in SPLITS:
        raise ValueError(f"unknown split '{config.split}'; choose from {', '.join(SPLITS)}")
    if config.split == "leave-last-out":
        split = leave_last_out(interactions, catalog, config.time_order)
    elif config.time_order != "exact":
        raise ValueError("--time-order applies to the leave-last-out split only")
    else:
        split = SPLITS[config.split](interactions, catalog)
    users = sorted(split.test, key=str)[: config.max_users] if config.max_users else None
    rankers = []
    needs_text = {"lm-text", "ctxrec"} & set(config.models) or config.ablations or \
        config.context_blank or config.llm_rerank
    if needs_text:
        from .embed_cache import item_embeddings
        from .encoders import load_encoder
        from .recommender import Recommender

        encoder = load_encoder(config.encoder)
        vectors = item_embeddings(encoder, catalog, progress=(
            lambda d, t: progress("encoding items", d, t)) if progress else None)
        recommender = Recommender(catalog, encoder, vectors, popularity=split.train_counts)
    for name in config.models:
        if name == "popularity":
            rankers.append(Popularity())
        elif name == "item-knn":
            rankers.append(ItemKNN())
        elif name == "lm-text":
            rankers.append(TextSimilarity(vectors))
        else:
            rankers.append(RecommenderRanker(recommender))
    if config.checkpoint:
        from .sequence_train import SequenceEnsemble, SequenceRanker, load_checkpoint

        if config.split != "leave-last-out":
            raise ValueError("sequence models are trained on the leave-last-out split; other "
                             "splits would put test events in their training data")
        folders = [config.checkpoint] if isinstance(config.checkpoint, str) else \
            list(config.checkpoint)
        members = []
        for folder in folders:
            trained = load_checkpoint(folder)
            if not trained.matches(catalog):
                raise ValueError(f"{folder} was trained on another catalog than {config.data}")
            trained_order = trained.extra.get("time_order", "exact")
            if trained_order != config.time_order:
                raise ValueError(f"{folder} was trained on the {trained_order} time order; "
                                 f"evaluate it with --time-order {trained_order}, since the "
                                 f"other order holds out different events")
            c = trained.config
            members.append(trained)
            rankers.append(SequenceRanker(
                trained, name=f"SASRec ({c.item_repr}, {c.memory}, seed {trained.train.seed})"))
        if len(members) > 1:
            rankers.append(SequenceEnsemble(members))
    if config.llm_rerank:
        # the stronger first stage when there is one: re-ranking can only reorder what it is given
        first = rankers[-1] if config.checkpoint else RecommenderRanker(recommender)
        from .llm_eval import LLMRerankRanker
        from .llm_models import DEFAULT_LLM, load_llm
        from .llm_rerank import LLMReranker

        reranker = LLMReranker(load_llm(config.llm or DEFAULT_LLM))
        rankers.append(LLMRerankRanker(
            first, reranker, catalog, weight=config.llm_weight, top_k=config.llm_k,
            name=f"{first.name} + {reranker.name} re-rank (top {config.llm_k}, weight "
                 f"{config.llm_weight:g})"))
    if config.context_blank:
        rankers.append(RecommenderRanker(recommender, name="ctxrec, context blanked",
                                         blank_context=True))
    if config.ablations:
        base = recommender.recommend(_probe_context(split, catalog), k=1).weights
        rankers += list(ablations(recommender, base).values())
    results, per_user = [], {}
    for ranker in rankers:
        result = evaluate(ranker, split, k=config.k, target=config.target,
                          protocol=config.protocol, mask_history=config.mask_history,
                          n_negatives=config.n_negatives, sampling=config.sampling,
                          seed=config.seed, users=users,
                          progress=(lambda d, t, n=ranker.name: progress(n, d, t))
                          if progress else None)
        summary = result.summary()
        for metric in ("hr", "ndcg", "mrr"):
            low, high = bootstrap_ci(result.per_user[metric].to_numpy(), seed=config.seed)
            summary[f"{metric}_ci95"] = [low, high]
        per_user[ranker.name] = result.per_user
        results.append(summary)
    first = rankers[0].name
    for summary in results[1:]:
        summary[f"p_ndcg_vs_{first}"] = paired_test(per_user[summary["model"]]["ndcg"],
                                                    per_user[first]["ndcg"], seed=config.seed)
    return {"dataset": Path(config.data).name, "split": results[0]["split"],
            "protocol": results[0]["protocol"], "k": config.k, "config": asdict(config),
            "commit": _commit(), "created": datetime.now().isoformat(timespec="seconds"),
            "results": results,
            "per_user": {name: table["rank"].tolist() for name, table in per_user.items()}}


def _probe_context(split, catalog):
    """A typical user's context, to read which components the adaptive mode switches on."""
    from .context import Context, HistoryEntry

    user = next(iter(split.test))
    history = tuple(HistoryEntry(str(catalog.ids[i])) for i in split.histories[user][-5:])
    return Context(history=history)


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def results_table(run: dict) -> list[dict]:
    """Rows for a table: model and the three metrics with their intervals."""
    k = run["k"]
    return [{"model": r["model"], f"HR@{k}": r[f"HR@{k}"], f"NDCG@{k}": r[f"NDCG@{k}"],
             f"MRR@{k}": r[f"MRR@{k}"],
             "NDCG 95% CI": "{:.4f}–{:.4f}".format(*r["ndcg_ci95"]),
             "p (NDCG vs first)": next((v for key, v in r.items() if key.startswith("p_ndcg")),
                                       np.nan)}
            for r in run["results"]]
