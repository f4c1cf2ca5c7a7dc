"""Command line: ``python -m ctxrec {recommend, embed, bench}``."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from .catalog import COMPANIONS, PLACES, CatalogError, builtin_catalog, read_catalog_csv
from .context import DEVICE_CHOICES, Context, HistoryEntry

__all__ = ["main"]

TIME_ORDERS = ("exact", "float32")  # as ctxrec.evaluate.TIME_ORDERS, which imports torch
TIME_ORDER_HELP = ("how leave-last-out orders events: exact timestamps, or rounded to float32 "
                   "as RecBole does (events seconds apart tie and keep file order); use float32 "
                   "to compare with RecBole's figures")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ctxrec", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

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
    rec.add_argument("--catalog", help="catalog CSV (default: the built-in catalog)")
    rec.add_argument("--model", default=None, help="encoder id or folder")

    emb = sub.add_parser("embed", help="encode a catalog into the embedding cache")
    emb.add_argument("--catalog")
    emb.add_argument("--model", default=None)

    ev = sub.add_parser("evaluate", help="offline evaluation on a MovieLens folder; JSON results")
    ev.add_argument("--data", required=True, help="MovieLens folder, e.g. ml-latest-small")
    ev.add_argument("--models", nargs="+", default=["popularity", "item-knn", "lm-text", "ctxrec"])
    ev.add_argument("--split", choices=["leave-last-out", "temporal", "random"],
                    default="leave-last-out")
    ev.add_argument("--time-order", choices=TIME_ORDERS, default="exact", help=TIME_ORDER_HELP)
    ev.add_argument("--protocol", choices=["full", "sampled"], default="full")
    ev.add_argument("--masking", choices=["both", "unmasked", "masked"], default="both",
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
    ev.add_argument("--llm-weight", type=float, default=1.0)
    ev.add_argument("--out", help="results JSON (default: $CTXREC_HOME/results/<time>.json)")

    cx = sub.add_parser("evaluate-context",
                        help="ctxrec (context-aware and blanked) and the trivial baselines on a "
                             "log whose events carry context, under the repeat or discovery "
                             "protocol; JSON results")
    cx.add_argument("--events", required=True, help="events file, comma- or tab-separated")
    cx.add_argument("--catalog", help="catalog CSV (default: the built-in catalog)")
    cx.add_argument("--map", nargs="+", default=[], metavar="FIELD=COLUMN",
                    help="e.g. user=uid item=item_id daytime=Daytime weekend=DayType "
                         "place=Location (fields: user item timestamp daytime weekday weekend "
                         "place city companions)")
    cx.add_argument("--context", nargs="+", default=[], metavar="NAME=COLUMN",
                    help="other categorical context columns, e.g. weather=Weather")
    cx.add_argument("--protocol", choices=["repeat", "discovery"], default="repeat",
                    help="repeat: one held-out event per user, nothing masked; discovery: an "
                         "item new to the user, every item used before masked")
    cx.add_argument("--seed", type=int, default=0,
                    help="picks the held-out event in logs without timestamps")
    cx.add_argument("-k", type=int, default=10)
    cx.add_argument("--model", default=None)
    cx.add_argument("--out", help="results JSON (default: $CTXREC_HOME/results/<time>.json)")

    tr = sub.add_parser("train", help="train the self-attentive sequence model; JSON results")
    source = tr.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="MovieLens folder (ml-latest-small, ml-1m, ml-25m)")
    source.add_argument("--log", help="interaction log CSV (with --catalog and --map)")
    tr.add_argument("--catalog", help="catalog CSV for --log")
    tr.add_argument("--map", nargs="+", default=[], metavar="FIELD=COLUMN",
                    help="log columns, e.g. user=uid item=movie timestamp=ts rating=stars")
    tr.add_argument("--time-order", choices=TIME_ORDERS, default="exact", help=TIME_ORDER_HELP)
    tr.add_argument("--item-repr", choices=["id", "text", "hybrid"], default="hybrid")
    tr.add_argument("--memory", choices=["truncate", "xl", "hierarchical"], default="truncate",
                    help="how histories longer than --max-len are read")
    tr.add_argument("--max-len", type=int, default=50)
    tr.add_argument("--hidden", type=int, default=128)
    tr.add_argument("--layers", type=int, default=2)
    tr.add_argument("--heads", type=int, default=2)
    tr.add_argument("--dropout", type=float, default=0.3)
    tr.add_argument("--epochs", type=int, default=200)
    tr.add_argument("--batch-size", type=int, default=16, help="windows per batch")
    tr.add_argument("--lr", type=float, default=3e-3)
    tr.add_argument("--patience", type=int, default=5)
    tr.add_argument("--stride", type=int, default=None,
                    help="overlapping training windows every STRIDE items (default: --max-len)")
    tr.add_argument("--fixed-windows", action="store_true",
                    help="cut training windows at the same places every epoch")
    tr.add_argument("--average", type=float, default=0.995, metavar="DECAY",
                    help="validate and keep a moving average of the weights (0: off)")
    tr.add_argument("--loss", choices=["full", "sampled"], default="full")
    tr.add_argument("--negatives", type=int, default=1024, help="for --loss sampled")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--device", default=None, help="cpu or cuda (default: best available)")
    tr.add_argument("--time-budget", type=float, default=None, help="seconds")
    tr.add_argument("--cold-start", type=float, default=None, metavar="SHARE",
                    help="hold this share of items out of training and report cold-start HR")
    tr.add_argument("--model", default=None, help="text encoder for --item-repr text/hybrid")
    tr.add_argument("--out", help="checkpoint folder (default: $CTXREC_HOME/models/<name>)")

    bench = sub.add_parser("bench", help="benchmarks; JSON on stdout")
    bench.add_argument("what", nargs="?", default="all",
                       choices=["all", "recommend", "attention", "training", "rerank"])
    bench.add_argument("--data", default=None, help="MovieLens folder for 'training'")
    bench.add_argument("--sizes", type=int, nargs="+", default=None,
                       help="catalog sizes (default 1k 10k 100k, and 1M for 'all')")
    bench.add_argument("--calls", type=int, default=50)

    from .download import BASE_URL, DATASETS

    data = sub.add_parser("data", help="data sets: download MovieLens (needs the network)")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    dl = data_sub.add_parser("download", help="download, check and unpack into $CTXREC_HOME/data")
    dl.add_argument("name", choices=DATASETS)
    dl.add_argument("--base-url", default=BASE_URL, help="folder URL holding <name>.zip")
    dl.add_argument("--force", action="store_true", help="download again even if present")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "data":
        from .download import download_command

        return download_command(args.name, base_url=args.base_url, force=args.force)
    from .encoders import DEFAULT_ENCODER, ModelLoadError, load_encoder

    try:
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "train":
            return _train(args)
        if args.command == "bench":
            from .bench import (bench_all, bench_attention, bench_recommend, bench_rerank,
                                bench_training)

            if args.what == "all":
                result = bench_all(sizes=args.sizes or (1_000, 10_000, 100_000, 1_000_000),
                                   calls=args.calls)
            elif args.what == "recommend":
                result = bench_recommend(sizes=args.sizes or (1_000, 10_000, 100_000),
                                         calls=args.calls)
            elif args.what == "rerank":
                result = bench_rerank(calls=min(args.calls, 10))
            elif args.what == "training":
                result = bench_training(data=args.data)
            else:
                result = bench_attention(calls=args.calls)
            print(json.dumps(result, indent=2))
            return 0
        catalog = read_catalog_csv(args.catalog) if args.catalog else builtin_catalog()
        for problem in catalog.problems:
            print(f"skipped: {problem}", file=sys.stderr)
        encoder = load_encoder(args.model or DEFAULT_ENCODER)
    except (CatalogError, ModelLoadError, OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from .embed_cache import item_embeddings

    vectors = item_embeddings(encoder, catalog, progress=_print_progress)
    if args.command == "evaluate-context":
        return _evaluate_context(args, catalog, encoder, vectors)
    if args.command == "embed":
        print(f"{len(catalog)} items encoded with {encoder.name} on {encoder.device}")
        return 0
    from .recommender import Recommender

    history = tuple([HistoryEntry(i, 1) for i in args.liked] +
                    [HistoryEntry(i, -1) for i in args.disliked])
    context = Context(history=history, when=args.when or datetime.now(), place=args.place,
                      device=args.device, companions=tuple(args.companions), intent=args.intent)
    ranking = Recommender(catalog, encoder, vectors).recommend(context, k=args.k)
    for line in ranking.notes + list(ranking.weights.reasons):
        print(f"note: {line}", file=sys.stderr)
    columns = ["rank", "item_id", "title", "score", "intent", "history", "context", "mood",
               "popularity"]
    print(ranking.table[columns].to_string(index=False, float_format=lambda v: f"{v:+.3f}"))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .experiment import ExperimentConfig, run_experiment

    config = ExperimentConfig(data=args.data, models=tuple(args.models), split=args.split,
                              time_order=args.time_order, protocol=args.protocol,
                              masking="masked" if args.mask_history else args.masking,
                              n_negatives=args.negatives,
                              sampling=args.sampling, k=args.k, target=args.target,
                              ablations=args.ablations, context_blank=args.context_blank,
                              max_users=args.max_users, checkpoint=args.checkpoint,
                              llm_rerank=args.llm_rerank, llm=args.llm, llm_k=args.llm_k,
                              llm_weight=args.llm_weight)
    run = run_experiment(config, progress=_print_stage)
    _write_results(run, args.out)
    return 0


def _write_results(run: dict, out: str | None) -> None:
    """Save the run (a new file under $CTXREC_HOME/results unless ``out`` is given) and print it
    without its per-user ranks."""
    from .experiment import save_results

    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(run, indent=2))
    else:
        path = save_results(run)
    print(json.dumps({k: v for k, v in run.items() if k != "per_user"}, indent=2))
    print(f"results written to {path}", file=sys.stderr)


def _print_stage(stage: str, done: int, total: int) -> None:
    print(f"\r{stage}: {done}/{total}", end="\n" if done == total else "", file=sys.stderr)


def _train(args: argparse.Namespace) -> int:
    from .embed_cache import data_home
    from .sequence_experiment import TrainingRun, train_and_report
    from .sequence_model import SequenceConfig
    from .sequence_train import TrainConfig

    from .interaction_log import mapping_from_pairs

    mapping = mapping_from_pairs(args.map) if args.map else {}
    run = TrainingRun(
        data=args.data, log=args.log, catalog=args.catalog, mapping=mapping,
        encoder=args.model, cold_start=args.cold_start, time_order=args.time_order,
        model=SequenceConfig(n_items=1, max_len=args.max_len, hidden=args.hidden,
                             layers=args.layers, heads=args.heads, dropout=args.dropout,
                             item_repr=args.item_repr, text_dim=1, memory=args.memory),
        train=TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                          loss=args.loss, n_negatives=args.negatives, patience=args.patience,
                          stride=args.stride, shuffle_windows=not args.fixed_windows,
                          average=args.average,
                          seed=args.seed, device=args.device, time_budget_s=args.time_budget))
    name = Path(args.data or args.log).stem + f"-{args.item_repr}-{args.memory}"
    out = Path(args.out) if args.out else data_home() / "models" / name

    def on_batch(epoch: int, batch: int, batches: int, loss: float) -> None:
        filled = int(30 * batch / batches)
        print(f"\repoch {epoch} [{'#' * filled}{'.' * (30 - filled)}] {batch}/{batches} "
              f"loss {loss:.4f}", end="", file=sys.stderr)

    def on_epoch(log) -> None:
        print(f"\repoch {log.epoch}: loss {log.train_loss:.4f}, valid NDCG@10 "
              f"{log.valid_ndcg:.4f}, HR@10 {log.valid_hr:.4f}, {log.elapsed_s:.0f} s"
              + " " * 20, file=sys.stderr)

    report = train_and_report(run, out, on_batch=on_batch, on_epoch=on_epoch,
                              on_stage=lambda text: print(text, file=sys.stderr))
    print(json.dumps(report, indent=2))
    print(f"checkpoint and results written to {out}", file=sys.stderr)
    return 0


def _evaluate_context(args: argparse.Namespace, catalog, encoder, vectors) -> int:
    from .context_log import ColumnMap, evaluate_context, read_context_log
    from .recommender import Recommender

    try:
        mapping = ColumnMap.from_pairs(args.map, args.context)
        events = read_context_log(args.events, mapping, catalog)
        run = evaluate_context(Recommender(catalog, encoder, vectors), events, args.protocol,
                               k=args.k, seed=args.seed, progress=_print_stage)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    _write_results(run, args.out)
    return 0


def _print_progress(done: int, total: int) -> None:
    print(f"\rencoding {done}/{total}", end="\n" if done == total else "", file=sys.stderr)
