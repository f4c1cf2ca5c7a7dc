"""Uncertainty of evaluation figures: bootstrap intervals and paired tests over users."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .protocol import EvalResult

__all__ = ["bootstrap_ci", "paired_test", "summarise"]


def summarise(results: Sequence[EvalResult], seed: int = 0,
              against: Mapping[str, str] | None = None
              ) -> tuple[list[dict], dict[str, pd.DataFrame]]:
    """JSON-ready rows with 95 % bootstrap intervals of HR, NDCG and MRR and, under each
    protocol, the paired p-value of every model's NDCG against the first model's; and each
    result's per-user table, keyed by model (and protocol, when there are several).

    ``against`` maps a model to the one it builds on (a re-ranker to its first stage): its rows
    also get ``vs_reference``, the NDCG ratio, the 95 % interval of the paired per-user
    difference and its p-value, under the same protocol."""
    protocols = list(dict.fromkeys(r.protocol for r in results))
    rows, per_user = [], {}
    for result in results:
        row = result.summary()
        for metric in ("hr", "ndcg", "mrr"):
            row[f"{metric}_ci95"] = list(bootstrap_ci(result.per_user[metric].to_numpy(),
                                                      seed=seed))
        key = result.model if len(protocols) == 1 else f"{result.model} · {result.protocol}"
        if key in per_user:
            raise ValueError(f"two results are named '{key}'; give the models distinct names")
        per_user[key] = result.per_user
        rows.append(row)
    for protocol in protocols:
        same = [i for i, r in enumerate(results) if r.protocol == protocol]
        first = results[same[0]]
        for i in same[1:]:
            rows[i][f"p_ndcg_vs_{first.model}"] = paired_test(
                results[i].per_user["ndcg"].to_numpy(), first.per_user["ndcg"].to_numpy(),
                seed=seed)
        for i in same:
            reference = next((results[j] for j in same if (against or {}).get(
                results[i].model) == results[j].model), None)
            if reference is not None:
                rows[i]["vs_reference"] = _paired(results[i], reference, seed)
    return rows, per_user


def _paired(result: EvalResult, reference: EvalResult, seed: int) -> dict:
    mine = result.per_user["ndcg"].to_numpy(dtype=float)
    theirs = reference.per_user["ndcg"].to_numpy(dtype=float)
    return {"model": reference.model, "ndcg_ratio": float(mine.mean() / max(theirs.mean(), 1e-12)),
            "ndcg_difference": float((mine - theirs).mean()),
            "ndcg_difference_ci95": list(bootstrap_ci(mine - theirs, seed=seed)),
            "p_ndcg": paired_test(mine, theirs, seed=seed)}


def bootstrap_ci(values: np.ndarray, n: int = 2000, level: float = 0.95, seed: int = 0
                 ) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over users."""
    rng = np.random.default_rng(seed)
    values = np.asarray(values, dtype=float)
    means = values[rng.integers(0, len(values), (n, len(values)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def paired_test(a: np.ndarray, b: np.ndarray, n: int = 10_000, seed: int = 0) -> float:
    """Two-sided p-value that per-user metrics ``a`` and ``b`` have the same mean (sign-flip
    randomisation test on the paired differences)."""
    rng = np.random.default_rng(seed)
    diff = np.asarray(a, float) - np.asarray(b, float)
    observed = abs(diff.mean())
    flips = rng.choice([-1.0, 1.0], size=(n, len(diff)))
    return float(((np.abs((flips * diff).mean(axis=1)) >= observed - 1e-12).sum() + 1) / (n + 1))
