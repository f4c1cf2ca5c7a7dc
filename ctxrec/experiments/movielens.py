"""One evaluation run from a config, shared by ``python -m ctxrec evaluate`` and the Evaluate page so
both give the same numbers for the same config."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from ..evaluation.baselines import ItemKNN, Popularity, TextSimilarity
from ..evaluation.history_text import HistoryTextRanker, validated_history_ranker
from ..evaluation.protocol import Protocol, evaluate_protocols
from ..evaluation.split import SPLITS, TimeOrder, leave_last_out
from ..evaluation.statistics import summarise
from ..rank.ranker import RecommenderRanker, ablations
from ..text.encoders import DEFAULT_ENCODER
from .results import code_version

__all__ = ["MASKINGS", "MODELS", "ExperimentConfig", "load_checked_checkpoint", "load_split",
           "run_experiment"]

# lm-history-mean: the history text plus the mean of its item vectors, weighed on validation
MODELS = ("popularity", "item-knn", "lm-text", "lm-history", "lm-history-mean", "ctxrec")
MASKINGS = ("both", "unmasked", "masked")
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
        masking: (full) ``both`` reports every model with the items the user used before the
            held-out event left in the candidates and taken out; ``unmasked`` or ``masked`` one.
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
        llm_adapter: a re-ranker tuned with ``tune-llm``: its base model, scoring way and (when
            ``llm_weight`` is None) validated weight replace ``llm``'s.
    """

    data: str
    models: tuple[str, ...] = MODELS
    split: Literal["leave-last-out", "temporal", "random"] = "leave-last-out"
    time_order: TimeOrder = "exact"
    protocol: Literal["full", "sampled"] = "full"
    masking: Literal["both", "unmasked", "masked"] = "both"
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
    llm_weight: float | None = None  # None: the adapter's validated weight, else 1
    llm_scoring: str = "pointwise"  # an untuned model's way; an adapter keeps the one it learned
    llm_adapter: str | None = None
    llm_dtype: str | None = None  # None: float32 on a CPU, bfloat16 on CUDA


def run_experiment(config: ExperimentConfig, progress: Progress | None = None) -> dict:
    """Run every requested model under one protocol (full ranking both masked and unmasked by
    default); JSON-ready results with 95 % bootstrap intervals, paired p-values against the first
    model under the same protocol, and per-user ranks."""
    unknown = [m for m in config.models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown models {unknown}; choose from {', '.join(MODELS)}")
    if config.masking not in MASKINGS:
        raise ValueError(f"unknown masking '{config.masking}'; choose from {', '.join(MASKINGS)}")
    catalog, split = load_split(config)
    users = sorted(split.test, key=str)[: config.max_users] if config.max_users else None
    rankers = _rankers(config, catalog, split, progress)
    _name_uniquely(rankers)
    protocols = _protocols(config)
    evaluated = []
    for ranker in rankers:
        evaluated += evaluate_protocols(
            ranker, split, protocols, k=config.k, target=config.target, users=users,
            progress=(lambda d, t, n=ranker.name: progress(n, d, t)) if progress else None)
    results, per_user = summarise(evaluated, seed=config.seed, against={
        r.name: r.base.name for r in rankers if _is_rerank(r)} if config.llm_rerank else None)
    return {"dataset": Path(config.data).name, "split": results[0]["split"],
            "protocol": " and ".join(p.label for p in protocols),
            "protocols": [p.label for p in protocols], "k": config.k, "config": asdict(config),
            "commit": code_version(), "created": datetime.now().isoformat(timespec="seconds"),
            "results": results,
            # what a model chose on the validation events before the test (its NDCG@10 per
            # setting tried)
            "validated": {r.name: r.validation for r in rankers
                          if getattr(r, "validation", None)},
            "per_user": {name: table["rank"].tolist() for name, table in per_user.items()}}


def _is_rerank(ranker) -> bool:
    from ..llm.ranker import LLMRerankRanker

    return isinstance(ranker, LLMRerankRanker)


def _protocols(config: ExperimentConfig) -> list[Protocol]:
    if config.protocol == "sampled":
        return [Protocol("sampled", n_negatives=config.n_negatives, sampling=config.sampling,
                         seed=config.seed)]
    masks = {"both": (False, True), "masked": (True,), "unmasked": (False,)}[config.masking]
    return [Protocol("full", mask_history=m) for m in masks]


def load_split(config: ExperimentConfig):
    """The catalog and the split ``config`` asks for, from its MovieLens folder."""
    from ..data.movielens import load_movielens

    catalog, interactions = load_movielens(config.data)
    if config.split not in SPLITS:
        raise ValueError(f"unknown split '{config.split}'; choose from {', '.join(SPLITS)}")
    if config.split == "leave-last-out":
        return catalog, leave_last_out(interactions, catalog, config.time_order)
    if config.time_order != "exact":
        raise ValueError("--time-order applies to the leave-last-out split only")
    return catalog, SPLITS[config.split](interactions, catalog)


def _rankers(config: ExperimentConfig, catalog, split, progress: Progress | None) -> list:
    """The models to compare, in the order asked for, then sequence models, the LLM re-ranker,
    the blanked context and the ablations."""
    recommender = vectors = None
    if {"lm-text", "lm-history", "lm-history-mean", "ctxrec"} & set(config.models) or \
            config.ablations or config.context_blank or config.llm_rerank:
        recommender, vectors = _recommender(config, catalog, split, progress)
    build = {"popularity": lambda: Popularity(split.train_counts),
             "item-knn": lambda: ItemKNN(split),
             "lm-text": lambda: TextSimilarity(vectors),
             "lm-history": lambda: HistoryTextRanker(recommender.encoder, catalog, vectors),
             "lm-history-mean": lambda: validated_history_ranker(recommender.encoder, catalog,
                                                                 vectors, split),
             "ctxrec": lambda: RecommenderRanker(recommender)}
    rankers = [build[name]() for name in config.models]
    if config.checkpoint:
        rankers += _sequence_rankers(config, catalog)
    if config.llm_rerank:
        # the stronger first stage when there is one: re-ranking can only reorder what it is given
        first = rankers[-1] if config.checkpoint else RecommenderRanker(recommender)
        rankers.append(_llm_ranker(config, first, catalog))
    if config.context_blank:
        rankers.append(RecommenderRanker(recommender, name="ctxrec, context blanked",
                                         blank_context=True))
    if config.ablations:
        base = recommender.recommend(_probe_context(split, catalog), k=1).weights
        rankers += list(ablations(recommender, base).values())
    return rankers


def _recommender(config: ExperimentConfig, catalog, split, progress: Progress | None):
    from ..rank.recommender import Recommender
    from ..text.embed_cache import item_embeddings
    from ..text.encoders import load_encoder

    encoder = load_encoder(config.encoder)
    vectors = item_embeddings(encoder, catalog, progress=(
        lambda d, t: progress("encoding items", d, t)) if progress else None)
    return Recommender(catalog, encoder, vectors, popularity=split.train_counts), vectors


def load_checked_checkpoint(folder: str, catalog, config: ExperimentConfig):
    """A sequence checkpoint, refused unless it was trained on ``catalog`` under the time order
    ``config`` evaluates (the other order holds out different events)."""
    from ..sequence.train import load_checkpoint

    trained = load_checkpoint(folder)
    if not trained.matches(catalog):
        raise ValueError(f"{folder} was trained on another catalog than {config.data}")
    trained_order = trained.extra.get("time_order", "exact")
    if trained_order != config.time_order:
        raise ValueError(f"{folder} was trained on the {trained_order} time order; "
                         f"evaluate it with --time-order {trained_order}, since the "
                         f"other order holds out different events")
    return trained


def _sequence_rankers(config: ExperimentConfig, catalog) -> list:
    from ..sequence.train import SequenceEnsemble, SequenceRanker

    if config.split != "leave-last-out":
        raise ValueError("sequence models are trained on the leave-last-out split; other "
                         "splits would put test events in their training data")
    folders = [config.checkpoint] if isinstance(config.checkpoint, str) else \
        list(config.checkpoint)
    members, rankers = [], []
    for folder in folders:
        trained = load_checked_checkpoint(folder, catalog, config)
        c = trained.config
        members.append(trained)
        rankers.append(SequenceRanker(
            trained, name=f"SASRec ({c.item_repr}, {c.memory}, seed {trained.train.seed}) "
                          f"[{Path(folder).name}]"))
    if len(members) > 1:
        rankers.append(SequenceEnsemble(members))
    return rankers


def _llm_ranker(config: ExperimentConfig, first, catalog):
    from ..llm.adapters import load_tuned_reranker, read_adapter
    from ..llm.models import DEFAULT_LLM, load_llm
    from ..llm.ranker import LLMRerankRanker
    from ..llm.rerank import LLMReranker

    weight = config.llm_weight
    if config.llm_adapter:
        reranker = load_tuned_reranker(config.llm_adapter, dtype=config.llm_dtype)
        weight = read_adapter(config.llm_adapter)["weight"] if weight is None else weight
    else:
        reranker = LLMReranker(load_llm(config.llm or DEFAULT_LLM, dtype=config.llm_dtype),
                               scoring=config.llm_scoring)
    weight = 1.0 if weight is None else weight
    return LLMRerankRanker(
        first, reranker, catalog, weight=weight, top_k=config.llm_k,
        name=f"{first.name} + {reranker.name} re-rank ({reranker.scoring}, top {config.llm_k}, "
             f"weight {weight:g})")


def _name_uniquely(rankers: list) -> None:
    """Give rankers that share a name (two checkpoints of the same kind and seed in folders of
    the same name) distinct names, so each result row and paired test refers to one model."""
    seen: dict[str, int] = {}
    for ranker in rankers:
        count = seen.get(ranker.name, 0) + 1
        seen[ranker.name] = count
        if count > 1:
            ranker.name = f"{ranker.name} #{count}"


def _probe_context(split, catalog):
    """A typical user's context, to read which components the adaptive mode switches on."""
    from ..data.context import Context, HistoryEntry

    user = next(iter(split.test))
    history = tuple(HistoryEntry(str(catalog.ids[i])) for i in split.histories[user][-5:])
    return Context(history=history)
