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
    ev.add_argument("--protocol", choices=["full", "sampled"], default="full")
    ev.add_argument("--mask-history", action="store_true")
    ev.add_argument("--negatives", type=int, default=100)
    ev.add_argument("--sampling", choices=["uniform", "popularity"], default="uniform")
    ev.add_argument("-k", type=int, default=10)
    ev.add_argument("--target", choices=["test", "valid"], default="test")
    ev.add_argument("--ablations", action="store_true")
    ev.add_argument("--context-blank", action="store_true",
                    help="also run ctxrec with the context blanked, on the same events")
    ev.add_argument("--max-users", type=int, default=None)
    ev.add_argument("--out", help="results JSON (default: $CTXREC_HOME/results/<time>.json)")

    cx = sub.add_parser("evaluate-context",
                        help="context-aware vs context blanked on a log whose events carry context")
    cx.add_argument("--events", required=True, help="events file, comma- or tab-separated")
    cx.add_argument("--catalog", help="catalog CSV (default: the built-in catalog)")
    cx.add_argument("--map", nargs="+", default=[], metavar="FIELD=COLUMN",
                    help="e.g. user=uid item=item_id daytime=Daytime weekend=DayType "
                         "place=Location (fields: user item timestamp daytime weekday weekend "
                         "place city companions)")
    cx.add_argument("-k", type=int, default=10)
    cx.add_argument("--model", default=None)

    bench = sub.add_parser("bench", help="benchmarks; JSON on stdout")
    bench.add_argument("what", nargs="?", default="all", choices=["all", "recommend", "attention"])
    bench.add_argument("--sizes", type=int, nargs="+", default=None,
                       help="catalog sizes (default 1k 10k 100k, and 1M for 'all')")
    bench.add_argument("--calls", type=int, default=50)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .encoders import DEFAULT_ENCODER, ModelLoadError, load_encoder

    try:
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "bench":
            from .bench import bench_all, bench_attention, bench_recommend

            if args.what == "all":
                result = bench_all(sizes=args.sizes or (1_000, 10_000, 100_000, 1_000_000),
                                   calls=args.calls)
            elif args.what == "recommend":
                result = bench_recommend(sizes=args.sizes or (1_000, 10_000, 100_000),
                                         calls=args.calls)
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
    from .embed_cache import data_home
    from .experiment import ExperimentConfig, run_experiment

    config = ExperimentConfig(data=args.data, models=tuple(args.models), split=args.split,
                              protocol=args.protocol,
                              mask_history=args.mask_history, n_negatives=args.negatives,
                              sampling=args.sampling, k=args.k, target=args.target,
                              ablations=args.ablations, context_blank=args.context_blank,
                              max_users=args.max_users)
    run = run_experiment(config, progress=lambda stage, done, total: print(
        f"\r{stage}: {done}/{total}", end="\n" if done == total else "", file=sys.stderr))
    out = Path(args.out) if args.out else \
        data_home() / "results" / f"{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(run, indent=2))
    print(json.dumps({k: v for k, v in run.items() if k != "per_user"}, indent=2))
    print(f"results written to {out}", file=sys.stderr)
    return 0


def _evaluate_context(args: argparse.Namespace, catalog, encoder, vectors) -> int:
    from .context_log import ColumnMap, compare_with_blank_context, read_context_log
    from .recommender import Recommender

    fields = dict(pair.split("=", 1) for pair in args.map if "=" in pair)
    try:
        mapping = ColumnMap(**fields)
        events = read_context_log(args.events, mapping, catalog)
    except (TypeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result = compare_with_blank_context(Recommender(catalog, encoder, vectors), events, k=args.k)
    print(json.dumps(result, indent=2))
    return 0


def _print_progress(done: int, total: int) -> None:
    print(f"\rencoding {done}/{total}", end="\n" if done == total else "", file=sys.stderr)
