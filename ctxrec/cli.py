"""Command line: ``python -m ctxrec {recommend, embed, bench}``."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime

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

    bench = sub.add_parser("bench", help="benchmarks; JSON on stdout")
    bench.add_argument("what", choices=["recommend", "attention"])
    bench.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    bench.add_argument("--calls", type=int, default=50)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .encoders import DEFAULT_ENCODER, ModelLoadError, load_encoder

    try:
        if args.command == "bench":
            from .bench import bench_attention, bench_recommend

            result = bench_recommend(sizes=args.sizes, calls=args.calls) \
                if args.what == "recommend" else bench_attention(calls=args.calls)
            print(json.dumps(result, indent=2))
            return 0
        catalog = read_catalog_csv(args.catalog) if args.catalog else builtin_catalog()
        for problem in catalog.problems:
            print(f"skipped: {problem}", file=sys.stderr)
        encoder = load_encoder(args.model or DEFAULT_ENCODER)
    except (CatalogError, ModelLoadError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from .embed_cache import item_embeddings

    vectors = item_embeddings(encoder, catalog, progress=_print_progress)
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


def _print_progress(done: int, total: int) -> None:
    print(f"\rencoding {done}/{total}", end="\n" if done == total else "", file=sys.stderr)
