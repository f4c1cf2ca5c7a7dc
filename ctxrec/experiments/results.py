"""Saving experiment results and reading them back as tables."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path

import numpy as np

from ..data.home import data_home

__all__ = ["code_version", "intents_table", "results_table", "save_results"]


def save_results(run: dict, folder: Path | None = None) -> Path:
    """Write a run's JSON under ``folder`` (default ``$CTXREC_HOME/results``) in a new file named
    by its time; two runs finishing in the same second get two files."""

    folder = Path(folder) if folder else data_home() / "results"
    folder.mkdir(parents=True, exist_ok=True)
    stem = datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 10_000):
        path = folder / (f"{stem}.json" if attempt == 1 else f"{stem}-{attempt}.json")
        try:
            with open(path, "x") as handle:
                handle.write(json.dumps(run, indent=2))
            return path
        except FileExistsError:
            continue
    raise OSError(f"no free results file name in {folder}")


def code_version() -> str:
    """The short git commit of this checkout, or 'unknown'."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def results_table(run: dict) -> list[dict]:
    """Rows for a table: model (and protocol, when the run has several) and the three metrics
    with their intervals."""
    k = run["k"]
    several = len(run.get("protocols", [run["protocol"]])) > 1
    return [{"model": r["model"], **({"protocol": r["protocol"]} if several else {}),
             f"HR@{k}": r[f"HR@{k}"], f"NDCG@{k}": r[f"NDCG@{k}"],
             f"MRR@{k}": r[f"MRR@{k}"],
             "NDCG 95% CI": "{:.4f}–{:.4f}".format(*r["ndcg_ci95"]),
             "p (NDCG vs first)": next((v for key, v in r.items() if key.startswith("p_ndcg")),
                                       np.nan)}
            for r in run["results"]]


def intents_table(run: dict) -> list[dict]:
    """Rows for a table of a judged-intents run: per constraint kind (and overall), each
    pipeline's graded NDCG and P@5."""
    k = run["k"]
    names = list(run["results"])
    kinds = ["all", *run["results"][names[0]]["by_constraint"]]
    rows = []
    for kind in kinds:
        row: dict = {"constraint": kind}
        for name in names:
            result = run["results"][name]
            part = result if kind == "all" else result["by_constraint"][kind]
            row["intents"] = run["intents"] if kind == "all" else part["intents"]
            row[f"NDCG@{k} {name}"] = part[f"NDCG@{k}"]
            row[f"P@5 {name}"] = part["P@5"]
        rows.append(row)
    return rows
