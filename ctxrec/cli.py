"""Command line: ``python -m ctxrec <command>``.

commands:
  recommend         rank the catalog for a context and print the table
  embed             encode a catalog into the embedding cache
  evaluate          offline evaluation on a MovieLens folder; JSON results
  evaluate-context  ctxrec and the trivial baselines on a log whose events carry context
  evaluate-intents  the recommender with and without the intent reader on judged intents
  train             train the self-attentive sequence model; JSON results
  tune-encoder      tune the sentence encoder on a MovieLens log; JSON: frozen against tuned
  tune-llm          tune the LLM re-ranker (LoRA) on a MovieLens log behind a sequence model
  bench             benchmarks; JSON on stdout
  data download     download, check and unpack a MovieLens data set (needs the network)

A bad input (catalog, model, file or value) prints one line, ``error: ...``, and exits with 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import fields, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .data.catalog import (COMPANIONS, PLACES, Catalog, CatalogError, builtin_catalog,
                           read_catalog_csv)
from .data.context import DEVICE_CHOICES, Context, HistoryEntry
from .data.download import BASE_URL, DATASETS
from .evaluation.context_split import CONTEXT_PROTOCOLS
from .evaluation.split import SPLITS, TIME_ORDERS
from .experiments.movielens import MASKINGS, MODELS
from .llm.models import LLM_DTYPES
from .sequence.config import (CONTEXT_ENTRIES, ITEM_REPRS, LOG_CONTEXT_ENTRY, LOG_SPLITS,
                              MEMORY_MODES, SequenceConfig, TrainConfig)
from .text.embed_cache import item_embeddings
from .text.encoders import DEFAULT_ENCODER, ModelLoadError, TextEncoder, load_encoder

if TYPE_CHECKING:  # the LLM stack loads only for the commands that use it
    from .llm.models import CausalLM

__all__ = ["main"]

# What a bad input raises (NonFiniteScores is a ValueError); main turns these into one line.
_EXPECTED_ERRORS = (CatalogError, ModelLoadError, OSError, ValueError)
TIME_ORDER_HELP = ("how leave-last-out orders events: exact timestamps, or rounded to float32 "
                   "as RecBole does (events seconds apart tie and keep file order); use float32 "
                   "to compare with RecBole's figures")
_RESULTS_HELP = "results JSON (default: $CTXREC_HOME/results/<time>.json)"
_CATALOG_HELP = "catalog CSV (default: the built-in catalog)"
_Sub = argparse._SubParsersAction  # what add_subparsers returns
_LLM_DTYPE_HELP = ("the LLM's weights and arithmetic (default: bfloat16 on CUDA and on a CPU "
                   "with AVX512-BF16 or AMX, where it is about 1.5x faster; float32 elsewhere)")


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code (2 for a bad input, with ``error: ...`` on stderr)."""
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except _EXPECTED_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ctxrec", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_recommend, _add_embed, _add_evaluate, _add_evaluate_context,
                _add_evaluate_intents, _add_train, _add_tune_encoder, _add_tune_llm, _add_bench,
                _add_data):
        add(sub)
    return parser


def _default(cls: type, name: str):
    """The default of the dataclass field ``name``: the one place the train flags read it from."""
    return next(field.default for field in fields(cls) if field.name == name)


# recommend and embed

def _add_recommend(sub: _Sub) -> None:
    rec = sub.add_parser("recommend", help="rank the catalog for a context and print the table")
    rec.add_argument("--intent", default="")
    rec.add_argument("--when", type=datetime.fromisoformat, default=None,
                     help="ISO date and time, e.g. 2026-11-21T19:30 (default: now)")
    rec.add_argument("--place", choices=PLACES, default="home")
    rec.add_argument("--device", choices=DEVICE_CHOICES, default="phone")
    rec.add_argument("--with", dest="companions", choices=COMPANIONS, nargs="*", default=[])
    rec.add_argument("--liked", nargs="*", default=[], help="item ids")
    rec.add_argument("--disliked", nargs="*", default=[], help="item ids")
    rec.add_argument("-k", type=int, default=10)
    rec.add_argument("--catalog", help=_CATALOG_HELP)
    rec.add_argument("--model", default=None, help="encoder id or folder")
    rec.add_argument("--llm-rerank", action="store_true",
                     help="re-rank the top --llm-k with the generative LLM (packaged, or --llm)")
    rec.add_argument("--llm", default=None, help="causal LM id or folder for --llm-rerank")
    rec.add_argument("--llm-adapter", default=None, metavar="DIR",
                     help="a re-ranker tuned with tune-llm, at its validated weight unless "
                          "--llm-weight says otherwise (implies --llm-rerank)")
    rec.add_argument("--llm-k", type=int, default=20)
    rec.add_argument("--llm-dtype", choices=LLM_DTYPES, default=None, help=_LLM_DTYPE_HELP)
    rec.add_argument("--llm-weight", type=float, default=None)
    route = rec.add_mutually_exclusive_group()
    route.add_argument("--index", dest="use_index", action="store_const", const=True,
                       default=None, help="rank through the approximate vector index (faiss), "
                       "built once and cached; the default from 200,000 items")
    route.add_argument("--exact", dest="use_index", action="store_const", const=False,
                       help="score every item, however large the catalog")
    rec.add_argument("--timings", action="store_true",
                     help="print what each stage took (time, device, dtype, memory) to stderr")
    _add_intent_model(rec)


def _add_intent_model(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--intent-model", default=None, metavar="LLM",
                        help="also ask this causal LM (Hugging Face id, folder, or 'packaged' "
                             "for SmolLM2-135M) which kind a request wants when the rules name "
                             "none; a confident answer is a preference. Off by default: the "
                             "packaged model guesses badly (see the README)")


def _intent_model(name: str | None) -> CausalLM | None:
    """The causal LM for ``--intent-model``, loaded before the encoder so a bad name fails
    first."""
    if not name:
        return None
    from .llm.models import DEFAULT_LLM, load_llm

    return load_llm(DEFAULT_LLM if name == "packaged" else name)


def _attach_intent_model(recommender, llm) -> None:
    if llm is not None:
        from .llm.kinds import KindReader

        recommender.attach_kind_reader(KindReader(llm, recommender.reader.kinds))


def _run_recommend(args: argparse.Namespace) -> int:
    from .rank.recommender import Recommender
    from .text.vector_index import index_for

    llm = _intent_model(args.intent_model)
    catalog, encoder, vectors = _catalog_and_vectors(args.catalog, args.model)
    history = tuple([HistoryEntry(i, 1) for i in args.liked] +
                    [HistoryEntry(i, -1) for i in args.disliked])
    context = Context(history=history, when=args.when or datetime.now(), place=args.place,
                      device=args.device, companions=tuple(args.companions), intent=args.intent)
    recommender = Recommender(catalog, encoder, vectors)
    recommender.attach_index(index_for(encoder, catalog, vectors, recommender.retrieval,
                                       args.use_index))
    _attach_intent_model(recommender, llm)
    ranking = recommender.recommend(context, k=max(args.k, args.llm_k))
    if args.llm_rerank or args.llm_adapter:
        reranker, weight = _reranker(args)
        ranking = reranker.rerank(ranking, catalog, context, weight, top_k=args.llm_k)
    ranking = replace(ranking, table=ranking.table.head(args.k))
    for line in ranking.notes + list(ranking.weights.reasons):
        print(f"note: {line}", file=sys.stderr)
    if ranking.understood is not None and ranking.understood.understood:
        print("note: understood from the intent: " +
              ", ".join(c.label for c in ranking.understood.understood), file=sys.stderr)
    columns = ["rank", "item_id", "title", "score", "intent", "history", "context", "mood",
               "popularity"] + [c for c in ("constraints", "llm") if c in ranking.table]
    print(ranking.table[columns].to_string(index=False, float_format=lambda v: f"{v:+.3f}"))
    if args.timings:
        _print_costs(ranking)
    return 0


def _print_costs(ranking) -> None:
    costs = ranking.costs
    scored = f"{ranking.candidates:,} candidates through the index" \
        if ranking.candidates is not None else "every item scored"
    print(f"timings: {costs.summary()} ({scored}; the stages account for "
          f"{costs.accounted:.0%} of the call)", file=sys.stderr)
    for s in costs.stages:
        print(f"  {s.stage:<18} {s.ms:9.2f} ms  {s.device:<7} {s.dtype:<8} "
              f"{s.memory_mb:9.1f} MiB ({s.memory})", file=sys.stderr)


def _reranker(args: argparse.Namespace):
    """The LLM re-ranker the options ask for, and its weight."""
    from .llm.adapters import load_tuned_reranker, read_adapter
    from .llm.models import DEFAULT_LLM, load_llm
    from .llm.rerank import LLMReranker

    if args.llm_adapter:
        weight = read_adapter(args.llm_adapter)["weight"] if args.llm_weight is None \
            else args.llm_weight
        return load_tuned_reranker(args.llm_adapter, dtype=args.llm_dtype), weight
    return LLMReranker(load_llm(args.llm or DEFAULT_LLM, dtype=args.llm_dtype)), \
        1.0 if args.llm_weight is None else args.llm_weight


def _add_embed(sub: _Sub) -> None:
    emb = sub.add_parser("embed", help="encode a catalog into the embedding cache")
    emb.add_argument("--catalog")
    emb.add_argument("--model", default=None)
    emb.add_argument("--ray", action="store_true",
                     help="encode with a pool of encoder processes through Ray Data: a local "
                          "single-node Ray started for the call, or the cluster RAY_ADDRESS "
                          "names; the vectors go into the same cache")
    emb.add_argument("--workers", type=int, default=2,
                     help="--ray: encoder processes (one per GPU, or per group of CPU cores)")
    emb.add_argument("--threads", type=int, default=None,
                     help="--ray: CPU threads per worker (default: the cores shared out)")


def _run_embed(args: argparse.Namespace) -> int:
    if not args.ray:
        catalog, encoder, _ = _catalog_and_vectors(args.catalog, args.model)
        print(f"{len(catalog)} items encoded with {encoder.name} on {encoder.device}")
        return 0
    from .text.ray_encode import ray_item_embeddings

    catalog, encoder = _catalog_and_encoder(args.catalog, args.model)
    _, run = ray_item_embeddings(encoder, catalog, workers=args.workers, threads=args.threads)
    if run is None:
        print(f"{len(catalog)} items: already in the cache for {encoder.name}")
    else:
        print(f"{run.items} items encoded with {encoder.name} by {run.workers} Ray workers "
              f"({run.device}, {run.threads} threads each) on {run.cluster}: "
              f"{run.seconds:.1f} s, {run.items_per_s:.0f} items/s"
              + (f" ({run.resumed} more from an earlier run's shards)" if run.resumed else ""))
    return 0


def _catalog_and_vectors(path: str | None,
                         model: str | None) -> tuple[Catalog, TextEncoder, np.ndarray]:
    """The catalog (skipped rows reported on stderr), the encoder and the item vectors."""
    catalog, encoder = _catalog_and_encoder(path, model)
    return catalog, encoder, item_embeddings(encoder, catalog, progress=_print_progress)


def _catalog_and_encoder(path: str | None, model: str | None) -> tuple[Catalog, TextEncoder]:
    catalog = read_catalog_csv(path) if path else builtin_catalog()
    for problem in catalog.problems:
        print(f"skipped: {problem}", file=sys.stderr)
    return catalog, load_encoder(model or DEFAULT_ENCODER)


# evaluate and evaluate-context

def _add_evaluate(sub: _Sub) -> None:
    ev = sub.add_parser("evaluate", help="offline evaluation on a MovieLens folder; JSON results")
    ev.add_argument("--data", required=True, help="MovieLens folder, e.g. ml-latest-small")
    ev.add_argument("--models", nargs="+", default=list(MODELS))
    ev.add_argument("--split", choices=list(SPLITS), default="leave-last-out")
    ev.add_argument("--time-order", choices=TIME_ORDERS, default="exact", help=TIME_ORDER_HELP)
    ev.add_argument("--protocol", choices=["full", "sampled"], default="full")
    ev.add_argument("--masking", choices=MASKINGS, default="both",
                    help="full ranking: report every model with the user's earlier items left "
                         "in the candidates, taken out, or both (default)")
    ev.add_argument("--mask-history", action="store_true", help="the same as --masking masked")
    ev.add_argument("--negatives", type=int, default=100)
    ev.add_argument("--sampling", choices=["uniform", "popularity"], default="uniform")
    ev.add_argument("-k", type=int, default=10)
    ev.add_argument("--target", choices=["test", "valid"], default="test")
    ev.add_argument("--ablations", action="store_true")
    ev.add_argument("--context-blank", action="store_true",
                    help="also run ctxrec with the context blanked, on the same events")
    ev.add_argument("--max-users", type=int, default=None)
    ev.add_argument("--checkpoint", nargs="+", default=None, metavar="FOLDER",
                    help="also rank with trained sequence models (train); with several, also "
                         "with their ensemble")
    ev.add_argument("--llm-rerank", action="store_true",
                    help="also run ctxrec with the generative LLM re-ranking its top K")
    ev.add_argument("--llm", default=None, help="causal LM id or folder (default: packaged)")
    ev.add_argument("--llm-k", type=int, default=20)
    ev.add_argument("--llm-weight", type=float, default=None,
                    help="weight of the LLM's standardised score (default: the adapter's "
                         "validated weight with --llm-adapter, else 1)")
    ev.add_argument("--llm-scoring", choices=["pointwise", "listwise"], default="pointwise",
                    help="how an untuned --llm reads the top K (a tuned adapter keeps its own)")
    ev.add_argument("--llm-adapter", default=None, metavar="DIR",
                    help="a re-ranker tuned with tune-llm: its base model, scoring way and "
                         "validated weight (implies --llm-rerank)")
    ev.add_argument("--llm-dtype", choices=LLM_DTYPES, default=None, help=_LLM_DTYPE_HELP)
    ev.add_argument("--out", help=_RESULTS_HELP)
    ev.add_argument("--model", default=DEFAULT_ENCODER,
                    help="encoder id or folder for lm-text, lm-history, lm-history-mean and "
                         "ctxrec (e.g. one tune-encoder saved)")


def _run_evaluate(args: argparse.Namespace) -> int:
    from .experiments.movielens import ExperimentConfig, run_experiment

    config = ExperimentConfig(data=args.data, models=tuple(args.models), split=args.split,
                              time_order=args.time_order, protocol=args.protocol,
                              masking="masked" if args.mask_history else args.masking,
                              n_negatives=args.negatives,
                              sampling=args.sampling, k=args.k, target=args.target,
                              ablations=args.ablations, context_blank=args.context_blank,
                              max_users=args.max_users, checkpoint=args.checkpoint,
                              llm_rerank=args.llm_rerank or args.llm_adapter is not None,
                              llm=args.llm, llm_k=args.llm_k, llm_weight=args.llm_weight,
                              llm_scoring=args.llm_scoring, llm_adapter=args.llm_adapter,
                              llm_dtype=args.llm_dtype,
                              encoder=args.model)
    _write_results(run_experiment(config, progress=_print_stage), args.out)
    return 0


def _add_evaluate_context(sub: _Sub) -> None:
    cx = sub.add_parser("evaluate-context",
                        help="ctxrec (context-aware and blanked) and the trivial baselines on a "
                             "log whose events carry context, under the repeat or discovery "
                             "protocol; JSON results")
    cx.add_argument("--events", required=True, help="events file, comma- or tab-separated")
    cx.add_argument("--catalog", help=_CATALOG_HELP)
    _add_log_columns(cx, "e.g. user=uid item=item_id daytime=Daytime weekend=DayType "
                         "place=Location (fields: user item timestamp count daytime weekday "
                         "weekend place city companions device)")
    cx.add_argument("--protocol", choices=CONTEXT_PROTOCOLS, default="repeat",
                    help="repeat: one held-out event per user, nothing masked; discovery: an "
                         "item new to the user, every item used before masked")
    cx.add_argument("--seed", type=int, default=0,
                    help="picks the held-out event in logs without timestamps")
    cx.add_argument("-k", type=int, default=10)
    cx.add_argument("--model", default=None)
    cx.add_argument("--checkpoint", default=None, metavar="DIR",
                    help="also rank with a context model trained by train --log (with its "
                         "context, and with every field unknown)")
    cx.add_argument("--out", help=_RESULTS_HELP)


def _add_log_columns(parser: argparse.ArgumentParser, map_help: str) -> None:
    """``--map FIELD=COLUMN …`` and ``--context NAME=COLUMN …``, as train and evaluate-context
    both spell them."""
    parser.add_argument("--map", nargs="+", default=[], metavar="FIELD=COLUMN", help=map_help)
    parser.add_argument("--context", nargs="+", default=[], metavar="NAME=COLUMN",
                        help="other categorical context columns, e.g. weather=Weather")


def _run_evaluate_context(args: argparse.Namespace) -> int:
    from .data.context_log import ColumnMap, read_context_log
    from .experiments.context_log import evaluate_context
    from .rank.recommender import Recommender

    catalog, encoder, vectors = _catalog_and_vectors(args.catalog, args.model)
    events = read_context_log(args.events, ColumnMap.from_pairs(args.map, args.context), catalog)
    model = None
    if args.checkpoint:
        from .sequence.train import load_checkpoint

        model = load_checkpoint(args.checkpoint)
    run = evaluate_context(Recommender(catalog, encoder, vectors), events, args.protocol,
                           k=args.k, seed=args.seed, progress=_print_stage, model=model)
    _write_results(run, args.out)
    return 0


def _add_evaluate_intents(sub: _Sub) -> None:
    it = sub.add_parser("evaluate-intents",
                        help="the recommender with and without the intent reader on judged "
                             "intents: graded NDCG, P@5, per constraint kind; JSON results")
    it.add_argument("--intents", default=None,
                    help="judged intents JSONL (default: assets/intents.jsonl, for the built-in "
                         "catalog)")
    it.add_argument("--catalog", help=_CATALOG_HELP)
    it.add_argument("-k", type=int, default=10)
    it.add_argument("--model", default=None)
    it.add_argument("--out", help=_RESULTS_HELP)
    _add_intent_model(it)


def _run_evaluate_intents(args: argparse.Namespace) -> int:
    from .data.judged_intents import JUDGED_PATH, load_judged_intents
    from .experiments.intents import evaluate_intents
    from .rank.recommender import Recommender

    llm = _intent_model(args.intent_model)
    catalog, encoder, vectors = _catalog_and_vectors(args.catalog, args.model)
    judged = load_judged_intents(args.intents or JUDGED_PATH, catalog)
    recommender = Recommender(catalog, encoder, vectors)
    _attach_intent_model(recommender, llm)
    run = evaluate_intents(recommender, judged, k=args.k, progress=_print_stage)
    _write_results(run, args.out)
    return 0


def _write_results(run: dict, out: str | None) -> None:
    """Save the run (a new file under $CTXREC_HOME/results unless ``out`` is given) and print it
    without its per-user (or per-intent) rows."""
    from .experiments.results import save_results

    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(run, indent=2))
    else:
        path = save_results(run)
    print(json.dumps({k: v for k, v in run.items() if k not in ("per_user", "per_intent")},
                     indent=2))
    print(f"results written to {path}", file=sys.stderr)


# train

def _add_tune_encoder(sub: _Sub) -> None:
    te = sub.add_parser("tune-encoder",
                        help="tune the sentence encoder on a MovieLens log (history text → next "
                             "item text) and compare it with the frozen one; JSON results")
    te.add_argument("--data", required=True, help="MovieLens folder, e.g. ml-latest-small")
    te.add_argument("--out", default=None,
                    help="folder for the tuned sentence-transformers model (default: "
                         "$CTXREC_HOME/encoders/<data folder name>, which the sidebar lists); "
                         "load it anywhere with --model")
    te.add_argument("--model", default=DEFAULT_ENCODER, help="encoder to start from")
    te.add_argument("--pairs-per-user", type=int, default=80,
                    help="training pairs drawn from each user's training history (on "
                         "ml-latest-small 80 gave 2.6× the frozen encoder's NDCG@10 in about 50 "
                         "min on 2 CPU cores, 20 gave 1.7× in 16 min)")
    te.add_argument("--epochs", type=int, default=1)
    te.add_argument("--batch-size", type=int, default=32,
                    help="pairs per batch; the others in a batch are each pair's negatives")
    te.add_argument("--learning-rate", type=float, default=5e-5)
    te.add_argument("--seed", type=int, default=0)
    te.add_argument("--cold-start", type=float, default=None, metavar="SHARE",
                    help="leave out of the pairs the items that `train --cold-start SHARE` with "
                         "the same --seed holds out, for a fair cold-start comparison")
    te.add_argument("--results", default=None, help=_RESULTS_HELP)


def _run_tune_encoder(args: argparse.Namespace) -> int:
    from .experiments.tune_encoder import run_tune_encoder

    for name in ("pairs_per_user", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    from .tune.encoder import encoders_dir

    out = args.out or str(encoders_dir() / Path(args.data).resolve().name)
    run = run_tune_encoder(args.data, out, base=args.model, per_user=args.pairs_per_user,
                           epochs=args.epochs, batch_size=args.batch_size,
                           learning_rate=args.learning_rate, seed=args.seed,
                           progress=_print_stage, cold_start=args.cold_start)
    _write_results(run, args.results)
    return 0


def _add_tune_llm(sub: _Sub) -> None:
    tl = sub.add_parser("tune-llm",
                        help="tune the generative re-ranker with LoRA on a MovieLens log, behind a "
                             "trained sequence model; JSON: validation NDCG@10 of the first stage, "
                             "zero-shot and tuned re-ranking")
    tl.add_argument("--data", required=True, help="MovieLens folder, e.g. ml-latest-small")
    tl.add_argument("--checkpoint", required=True, metavar="FOLDER",
                    help="the first stage: a sequence model trained on --data (train)")
    tl.add_argument("--out", default=None,
                    help="folder for the adapter (default: $CTXREC_HOME/rerankers/<data>-"
                         "<scoring>, which the LLM re-rank page lists); load it anywhere with "
                         "--llm-adapter")
    tl.add_argument("--model", default=None, help="causal LM id or folder (default: packaged)")
    tl.add_argument("--scoring", choices=["listwise", "pointwise"], default="listwise",
                    help="one prompt with the K candidates lettered, or a Yes/No per candidate")
    tl.add_argument("--examples-per-user", type=int, default=4,
                    help="moments drawn from each user's training history; those whose next "
                         "item is in the first stage's top K are kept")
    tl.add_argument("--cross-fit", type=int, default=0, metavar="N",
                    help="cross-fitted lists: each user's last N training events, ranked by a "
                         "copy of the first stage trained without them, so the lists are as hard "
                         "as the ones re-ranked later (replaces --examples-per-user; 0: off)")
    tl.add_argument("--negatives", type=int, default=3,
                    help="pointwise: hard negatives per moment, from the same top K")
    tl.add_argument("--top-k", type=int, default=20, help="candidates re-ranked (listwise ≤ 26)")
    tl.add_argument("--epochs", type=int, default=1)
    tl.add_argument("--batch-size", type=int, default=4)
    tl.add_argument("--learning-rate", type=float, default=2e-4)
    tl.add_argument("--lora-rank", type=int, default=16)
    tl.add_argument("--eval-every", type=int, default=100,
                    help="steps between validation checks (early stopping)")
    tl.add_argument("--patience", type=int, default=2,
                    help="checks without improvement before stopping")
    tl.add_argument("--seed", type=int, default=0)
    tl.add_argument("--results", default=None, help=_RESULTS_HELP)


def _run_tune_llm(args: argparse.Namespace) -> int:
    from .experiments.tune_llm import run_tune_llm
    from .llm.adapters import rerankers_dir
    from .llm.models import DEFAULT_LLM
    from .llm.rerank import LABELS

    for name in ("examples_per_user", "epochs", "batch_size", "lora_rank", "eval_every",
                 "patience"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    if args.cross_fit < 0:
        raise ValueError("--cross-fit must be 0 (off) or more")
    if not 2 <= args.top_k <= (len(LABELS) if args.scoring == "listwise" else 1000):
        raise ValueError(f"--top-k must be between 2 and {len(LABELS)} for listwise scoring"
                         if args.scoring == "listwise" else "--top-k must be at least 2")
    out = args.out or str(rerankers_dir() / f"{Path(args.data).resolve().name}-{args.scoring}")

    def progress(kind: str, figures: dict) -> None:
        if kind == "check":
            print(f"step {figures['step']}: valid NDCG@10 {figures['valid_ndcg@10']:.4f} at "
                  f"weight {figures['weight']:g}", file=sys.stderr)
        elif kind != "step":
            print(kind, file=sys.stderr)
        else:
            print(f"\rstep {figures['step']}/{figures['steps']} loss {figures['loss']:.4f}",
                  end="", file=sys.stderr)

    run = run_tune_llm(args.data, args.checkpoint, out, model=args.model or DEFAULT_LLM,
                       scoring=args.scoring, per_user=args.examples_per_user,
                       negatives=args.negatives, top_k=args.top_k, epochs=args.epochs,
                       batch_size=args.batch_size, learning_rate=args.learning_rate,
                       lora_rank=args.lora_rank, eval_every=args.eval_every,
                       patience=args.patience, seed=args.seed, cross_fit=args.cross_fit,
                       progress=progress)
    _write_results(run, args.results)
    return 0


def _add_train(sub: _Sub) -> None:
    tr = sub.add_parser("train", help="train the self-attentive sequence model; JSON results")
    source = tr.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="MovieLens folder (ml-latest-small, ml-1m, ml-25m)")
    source.add_argument("--log", help="events CSV or TSV (with --catalog and --map); trains the "
                                      "context model unless --context-entry none")
    tr.add_argument("--catalog", help="catalog CSV for --log")
    _add_log_columns(tr, "log columns, e.g. user=uid item=app timestamp=ts count=n place=Where "
                         "(context model fields: user item timestamp count daytime weekday "
                         "weekend place city companions device; plain model: user item "
                         "timestamp rating count)")
    tr.add_argument("--split", choices=LOG_SPLITS, default="leave-last-out",
                    help="--log with the context model: hold out each user's last events by time, "
                         "or random ones (drawn with --seed; logs without timestamps). The "
                         "events evaluate-context holds out under either protocol are left out")
    tr.add_argument("--time-order", choices=TIME_ORDERS, default="exact", help=TIME_ORDER_HELP)
    _add_model_flags(tr)
    _add_training_flags(tr)
    tr.add_argument("--cold-start", type=float, default=None, metavar="SHARE",
                    help="hold this share of items out of training and report cold-start HR")
    tr.add_argument("--model", default=None, help="text encoder for --item-repr text/hybrid")
    tr.add_argument("--out", help="checkpoint folder (default: $CTXREC_HOME/models/<name>)")
    tr.add_argument("--distributed", action="store_true",
                    help="one of several processes started by torchrun (DDP: gloo on CPU, NCCL "
                         "on CUDA); --batch-size is the global batch, split between them, and "
                         "rank 0 alone validates, saves and prints. Start it as: torchrun "
                         "--standalone --nproc_per_node 2 -m ctxrec train --distributed --data …")


def _add_model_flags(tr: argparse.ArgumentParser) -> None:
    """The architecture: one flag per SequenceConfig field, defaults from the dataclass."""
    tr.add_argument("--item-repr", choices=ITEM_REPRS,
                    default=_default(SequenceConfig, "item_repr"))
    tr.add_argument("--memory", choices=MEMORY_MODES, default=_default(SequenceConfig, "memory"),
                    help="how histories longer than --max-len are read")
    tr.add_argument("--max-len", type=int, default=_default(SequenceConfig, "max_len"))
    tr.add_argument("--hidden", type=int, default=_default(SequenceConfig, "hidden"))
    tr.add_argument("--layers", type=int, default=_default(SequenceConfig, "layers"))
    tr.add_argument("--heads", type=int, default=_default(SequenceConfig, "heads"))
    tr.add_argument("--dropout", type=float, default=_default(SequenceConfig, "dropout"))
    tr.add_argument("--id-dropout", type=float, default=_default(SequenceConfig, "id_dropout"),
                    help="hybrid: share of items scored on their text alone in each training "
                         "batch, for items never trained on (cold start)")
    tr.add_argument("--context-entry", choices=CONTEXT_ENTRIES, default=None,
                    help="how the predicted event's context enters the model: attended tokens, "
                         f"a gate, or none (default: {LOG_CONTEXT_ENTRY} for --log, none for "
                         "--data, where the context is each rating's time)")

def _add_training_flags(tr: argparse.ArgumentParser) -> None:
    """How to train: one flag per TrainConfig field, defaults from the dataclass."""
    tr.add_argument("--epochs", type=int, default=_default(TrainConfig, "epochs"))
    tr.add_argument("--batch-size", type=int, default=_default(TrainConfig, "batch_size"),
                    help="windows per batch")
    tr.add_argument("--lr", type=float, default=_default(TrainConfig, "lr"))
    tr.add_argument("--patience", type=int, default=_default(TrainConfig, "patience"))
    tr.add_argument("--stride", type=int, default=_default(TrainConfig, "stride"),
                    help="overlapping training windows every STRIDE items (default: --max-len)")
    tr.add_argument("--fixed-windows", action="store_true",  # shuffle_windows=False
                    help="cut training windows at the same places every epoch")
    tr.add_argument("--average", type=float, default=_default(TrainConfig, "average"),
                    metavar="DECAY",
                    help="validate and keep a moving average of the weights (0: off)")
    tr.add_argument("--loss", choices=["full", "sampled"], default=_default(TrainConfig, "loss"))
    tr.add_argument("--negatives", type=int, default=_default(TrainConfig, "n_negatives"),
                    help="for --loss sampled")
    tr.add_argument("--seed", type=int, default=_default(TrainConfig, "seed"))
    tr.add_argument("--device", default=_default(TrainConfig, "device"),
                    help="cpu or cuda (default: best available)")
    tr.add_argument("--time-budget", type=float, default=_default(TrainConfig, "time_budget_s"),
                    help="seconds")
    tr.add_argument("--context-dropout", type=float,
                    default=_default(TrainConfig, "context_dropout"),
                    help="context models: the chance each field is hidden in training")


def _run_train(args: argparse.Namespace) -> int:
    from .data.context_log import ColumnMap
    from .data.interaction_log import mapping_from_pairs
    from .sequence.job import models_home
    from .sequence.run import TrainingRun, train_and_report

    entry = args.context_entry or (LOG_CONTEXT_ENTRY if args.log else "none")
    if entry != "none" and args.cold_start:
        raise ValueError("--cold-start is for the plain model (--context-entry none)")
    if args.context and not (args.log and entry != "none"):
        raise ValueError("--context is for --log with the context model")
    with_context = bool(args.log) and entry != "none"
    run = TrainingRun(
        data=args.data, log=args.log, catalog=args.catalog,
        mapping=mapping_from_pairs(args.map) if args.map and not with_context else {},
        columns=ColumnMap.from_pairs(args.map, args.context) if with_context else None,
        split=args.split,
        encoder=args.model, cold_start=args.cold_start, time_order=args.time_order,
        model=SequenceConfig(n_items=1, max_len=args.max_len, hidden=args.hidden,
                             layers=args.layers, heads=args.heads, dropout=args.dropout,
                             item_repr=args.item_repr, memory=args.memory, context=entry,
                             id_dropout=args.id_dropout),
        train=TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                          loss=args.loss, n_negatives=args.negatives, patience=args.patience,
                          stride=args.stride, shuffle_windows=not args.fixed_windows,
                          average=args.average, seed=args.seed, device=args.device,
                          time_budget_s=args.time_budget, context_dropout=args.context_dropout))
    name = Path(args.data or args.log).stem + f"-{args.item_repr}-" + \
        (args.memory if entry == "none" else f"context-{entry}")
    out = Path(args.out) if args.out else models_home() / name
    from .sequence import distributed

    group = distributed.start(args.device) if args.distributed else distributed.Ranks()
    try:
        report = train_and_report(run, out, on_batch=_print_batch, on_epoch=_print_epoch,
                                  on_stage=(lambda text: print(text, file=sys.stderr))
                                  if group.main else None)
    finally:
        distributed.stop()
    if group.main:  # under torchrun, rank 0 alone reports
        if args.distributed:
            report["training"]["processes"] = group.world
        print(json.dumps(report, indent=2))
        print(f"checkpoint and results written to {out}", file=sys.stderr)
    return 0


# bench and data

def _add_bench(sub: _Sub) -> None:
    bench = sub.add_parser("bench", help="benchmarks; JSON on stdout")
    bench.add_argument("what", nargs="?", default="all",
                       choices=["all", "recommend", "attention", "training", "rerank",
                                "context", "tune-encoder", "tune-llm", "index", "ray",
                                "encode"])
    bench.add_argument("--data", default=None,
                       help="MovieLens folder for 'training', 'tune-encoder' and 'tune-llm'")
    bench.add_argument("--sizes", type=int, nargs="+", default=None,
                       help="catalog sizes (default 1k 10k 100k, and 1M for 'all'; 100k 1M "
                            "for 'index'); for 'ray' and 'encode', how many texts")
    bench.add_argument("--vector-sizes", type=int, nargs="+", default=None,
                       help="index: also time the index on this many bare vectors (float16, "
                            "no catalog table), e.g. 10000000")
    bench.add_argument("--jitter", type=float, default=0.05,
                       help="index: how far the synthetic copies spread from their originals")
    bench.add_argument("--calls", type=int, default=50)
    bench.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                       help="ray: the encoder pool sizes to time (--sizes: how many texts)")
    bench.add_argument("--threads", type=int, default=None,
                       help="ray: CPU threads per worker (default: the cores shared out)")
    bench.add_argument("--batch-sizes", type=int, nargs="+", default=[64],
                       help="encode: the batch sizes to time (a GPU wants larger ones)")
    bench.add_argument("--with-context", action="store_true",
                       help="training: also time the context models (time as context) and give "
                            "their ratio to the plain model's epoch")


def _run_bench(args: argparse.Namespace) -> int:
    from . import bench

    runs: dict[str, Callable[[], dict]] = {
        "all": lambda: bench.bench_all(sizes=args.sizes or (1_000, 10_000, 100_000, 1_000_000),
                                       calls=args.calls),
        "recommend": lambda: bench.bench_recommend(sizes=args.sizes or (1_000, 10_000, 100_000),
                                                   calls=args.calls),
        "attention": lambda: bench.bench_attention(calls=args.calls),
        "training": lambda: bench.bench_training(data=args.data, context=args.with_context),
        "context": lambda: bench.bench_context(sizes=args.sizes or (10_000,), calls=args.calls),
        "rerank": lambda: bench.bench_rerank(calls=min(args.calls, 10)),
        "index": lambda: bench.bench_index(sizes=args.sizes or (100_000, 1_000_000),
                                           vector_sizes=args.vector_sizes or (),
                                           calls=args.calls, jitter=args.jitter),
        "ray": lambda: bench.bench_ray(n_texts=(args.sizes or [20_000])[0], workers=args.workers,
                                       threads=args.threads),
        "encode": lambda: bench.bench_encode(bench.load_encoder(), builtin_catalog(),
                                             n_texts=(args.sizes or [2_000])[0],
                                             batch_sizes=args.batch_sizes),
        "tune-encoder": lambda: bench.bench_tune_encoder(data=args.data),
        "tune-llm": lambda: bench.bench_tune_llm(data=args.data, examples=min(args.calls, 32)),
    }
    print(json.dumps(runs[args.what](), indent=2))
    return 0


def _add_data(sub: _Sub) -> None:
    data = sub.add_parser("data", help="data sets: download MovieLens (needs the network)")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    dl = data_sub.add_parser("download", help="download, check and unpack into $CTXREC_HOME/data")
    dl.add_argument("name", choices=DATASETS)
    dl.add_argument("--base-url", default=BASE_URL, help="folder URL holding <name>.zip")
    dl.add_argument("--force", action="store_true", help="download again even if present")


def _run_data(args: argparse.Namespace) -> int:
    """``data download``: its own exit code (it reports its own errors)."""
    from .data.download import download_command

    return download_command(args.name, base_url=args.base_url, force=args.force)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "recommend": _run_recommend,
    "embed": _run_embed,
    "evaluate": _run_evaluate,
    "evaluate-context": _run_evaluate_context,
    "evaluate-intents": _run_evaluate_intents,
    "tune-llm": _run_tune_llm,
    "train": _run_train,
    "tune-encoder": _run_tune_encoder,
    "bench": _run_bench,
    "data": _run_data,
}


# progress on stderr

def _print_progress(done: int, total: int) -> None:
    print(f"\rencoding {done}/{total}", end="\n" if done == total else "", file=sys.stderr)


def _print_stage(stage: str, done: int, total: int) -> None:
    print(f"\r{stage}: {done}/{total}", end="\n" if done == total else "", file=sys.stderr)


def _print_batch(epoch: int, batch: int, batches: int, loss: float) -> None:
    filled = int(30 * batch / batches)
    print(f"\repoch {epoch} [{'#' * filled}{'.' * (30 - filled)}] {batch}/{batches} "
          f"loss {loss:.4f}", end="", file=sys.stderr)


def _print_epoch(log) -> None:
    print(f"\repoch {log.epoch}: loss {log.train_loss:.4f}, valid NDCG@10 "
          f"{log.valid_ndcg:.4f}, HR@10 {log.valid_hr:.4f}, {log.elapsed_s:.0f} s"
          + " " * 20, file=sys.stderr)
