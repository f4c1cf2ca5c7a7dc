"""Test NDCG@10 of two sequence-model checkpoints on the same split, with the paired 95 % interval
of their per-user difference (the second against the first), unmasked and masked; JSON out.

    .venv/bin/python scripts/paired_checkpoints.py --data ml-latest-small ONE TWO
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ctxrec.data.movielens import load_movielens
from ctxrec.evaluation.protocol import FULL_BOTH_WAYS, evaluate_protocols
from ctxrec.evaluation.split import leave_last_out
from ctxrec.evaluation.statistics import summarise
from ctxrec.sequence.train import SequenceRanker, load_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="MovieLens folder")
    parser.add_argument("first")
    parser.add_argument("second")
    args = parser.parse_args()
    catalog, interactions = load_movielens(args.data)
    trained = [load_checkpoint(path) for path in (args.first, args.second)]
    order = trained[0].extra.get("time_order", "exact")
    split = leave_last_out(interactions, catalog, order)
    names = [Path(p).name for p in (args.first, args.second)]
    if names[0] == names[1]:
        names = [f"{names[0]} (first)", f"{names[1]} (second)"]
    results = [r for model, name in zip(trained, names)
               for r in evaluate_protocols(SequenceRanker(model, name=name), split,
                                           FULL_BOTH_WAYS, k=10)]
    rows, _ = summarise(results, against={names[1]: names[0]})
    print(json.dumps([{k: row[k] for k in ("model", "protocol", "NDCG@10", "ndcg_ci95",
                                           "vs_reference") if k in row} for row in rows],
                     indent=1))


if __name__ == "__main__":
    main()
