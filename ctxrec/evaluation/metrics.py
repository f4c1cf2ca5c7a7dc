"""Ranking and beyond-accuracy metrics, vectorised over users.

Two shapes of accuracy metric, sharing one discount:

- one held-out item per user (the evaluation protocols): :func:`target_position` reads where the
  target stands among the scores, and :func:`single_target_metrics` turns that into HR, NDCG and
  MRR at K, with ties broken at random *in expectation* (not in the target's favour);
- several relevant items per user: ``hits``, a (U, K) boolean matrix, True where the item at that
  position of the user's top-K is relevant, and ``n_relevant``: (U,) how many relevant items each
  user has. Users with no relevant item get NaN for metrics that divide by it, so averages
  (``np.nanmean``) skip them rather than count them as zero.
"""

from __future__ import annotations

import numpy as np

__all__ = ["auc", "catalog_coverage", "graded_ndcg", "hit_matrix", "hit_rate",
           "intra_list_diversity", "map_at_k", "mrr", "ndcg", "novelty", "precision", "rank_of",
           "recall", "single_target_metrics", "target_position"]


def _discounts(k: int) -> np.ndarray:
    """1 / log2(position + 1) for positions 1 … k."""
    return 1.0 / np.log2(np.arange(2, k + 2))


def hit_matrix(topk: np.ndarray, relevant: list[set[int]]) -> np.ndarray:
    """(U, K) item indices and each user's relevant set → (U, K) booleans."""
    return np.array([[item in rel for item in row] for row, rel in zip(topk, relevant)],
                    dtype=bool).reshape(topk.shape)


def hit_rate(hits: np.ndarray) -> np.ndarray:
    """HR@K: 1 if any relevant item is in the top K."""
    return hits.any(axis=1).astype(float)


def precision(hits: np.ndarray) -> np.ndarray:
    """Precision@K: relevant items in the top K, divided by K."""
    return hits.sum(axis=1) / hits.shape[1]


def recall(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Recall@K: relevant items in the top K, divided by the user's relevant count (NaN if 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n_relevant > 0, hits.sum(axis=1) / n_relevant, np.nan)


def ndcg(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """NDCG@K with binary gains: DCG / ideal DCG, log2(position + 1) discounts (NaN if no
    relevant item)."""
    discounts = _discounts(hits.shape[1])
    dcg = (hits * discounts).sum(axis=1)
    ideal_counts = np.minimum(n_relevant, hits.shape[1]).astype(int)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[ideal_counts]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ideal > 0, dcg / ideal, np.nan)


def graded_ndcg(gains: np.ndarray, ideal_gains: list[np.ndarray]) -> np.ndarray:
    """NDCG@K with graded gains: ``gains`` (U, K) is the grade of the item at each position of
    each user's top K (0 when not relevant), ``ideal_gains`` each user's grades of all relevant
    items; the gain of a grade is the grade itself (NaN when a user has no relevant item)."""
    k = gains.shape[1]
    discounts = _discounts(k)
    dcg = (gains * discounts).sum(axis=1)
    ideal = np.array([(np.sort(g)[::-1][:k] * discounts[:min(k, len(g))]).sum()
                      for g in ideal_gains])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ideal > 0, dcg / ideal, np.nan)


def mrr(hits: np.ndarray) -> np.ndarray:
    """MRR@K: 1 / position of the first relevant item, 0 when none is in the top K."""
    first = hits.argmax(axis=1)
    return np.where(hits.any(axis=1), 1.0 / (first + 1), 0.0)


def map_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """MAP@K: mean of precision@i at each relevant position, over min(n_relevant, K)."""
    positions = np.arange(1, hits.shape[1] + 1)
    precision_at = np.cumsum(hits, axis=1) / positions
    denominator = np.minimum(n_relevant, hits.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, (precision_at * hits).sum(axis=1) / denominator, np.nan)


def target_position(scores: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each row's target stands: how many candidates score strictly higher (``better``) and
    how many other candidates score exactly the same (``tied``).

    A target whose score is NaN or infinite is a miss at any cut-off: ``better`` is infinite, so
    no ranker earns a hit from a broken score. Candidates scored ``-inf`` (masked) are not
    counted.

    Args:
        scores: (U, N), higher is better; ``-inf`` for items that must not be ranked.
        target: (U,) column index of each row's target.
    """
    scores = np.asarray(scores, dtype=np.float64)
    own = scores[np.arange(len(target)), target][:, None]
    broken = ~np.isfinite(own[:, 0])
    with np.errstate(invalid="ignore"):
        better = (scores > own).sum(axis=1)
        tied = (scores == own).sum(axis=1) - 1
    return np.where(broken, np.inf, better), np.where(broken, 0, tied)


def rank_of(scores: np.ndarray, target: np.ndarray) -> np.ndarray:
    """1-based expected rank of each row's target under a random order of tied items:
    1 + better + tied / 2 (see :func:`target_position`; a NaN or infinite target ranks ∞)."""
    better, tied = target_position(scores, target)
    return 1.0 + better + tied / 2.0


def single_target_metrics(better: np.ndarray, tied: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-user HR@k, NDCG@k and MRR@k of one held-out item, in expectation over a random order
    of the items tied with it.

    The target's position is uniform over ``better + 1 … better + tied + 1``; each metric is its
    mean over those positions (HR: the share of them inside the top k; NDCG: the mean of
    1 / log2(position + 1) over them, 0 for positions past k; MRR: the mean of 1 / position,
    likewise). So a target tied with the items at the cut-off counts in part, and a ranker that
    gives every item the same score gets exactly the random ranker's figures.

    Returns:
        ``{"rank": expected rank, "hr": …, "ndcg": …, "mrr": …}``, each (U,).
    """
    better = np.asarray(better, dtype=np.float64)
    tied = np.asarray(tied, dtype=np.float64)
    span = tied + 1
    gain = np.concatenate([[0.0], np.cumsum(_discounts(k))])
    reciprocal = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, k + 1))])
    first = np.minimum(better, k).astype(np.int64)  # positions up to here hold better items
    last = np.minimum(better + span, k).astype(np.int64)  # the target's top-k positions end here
    return {"rank": 1.0 + better + tied / 2.0, "hr": (last - first) / span,
            "ndcg": (gain[last] - gain[first]) / span,
            "mrr": (reciprocal[last] - reciprocal[first]) / span}


def auc(scores: np.ndarray, relevant: np.ndarray, candidates: np.ndarray | None = None
        ) -> np.ndarray:
    """Per-user AUC: the share of (relevant, non-relevant) pairs ordered correctly, ties ½.

    Args:
        scores: (U, N).
        relevant: (U, N) booleans.
        candidates: (U, N) booleans of the items that take part (default: all).

    Returns:
        (U,) AUC, NaN for users without both a relevant and a non-relevant candidate.
    """
    candidates = np.ones_like(relevant, dtype=bool) if candidates is None else candidates
    out = np.full(len(scores), np.nan)
    for u in range(len(scores)):
        pos = scores[u, relevant[u] & candidates[u]]
        neg = np.sort(scores[u, ~relevant[u] & candidates[u]])
        if len(pos) == 0 or len(neg) == 0:
            continue
        below = np.searchsorted(neg, pos, side="left")
        equal = np.searchsorted(neg, pos, side="right") - below
        out[u] = (below + 0.5 * equal).sum() / (len(pos) * len(neg))
    return out


def catalog_coverage(topk: np.ndarray, n_items: int) -> float:
    """Share of the catalog that appears in at least one user's top K."""
    return len(np.unique(topk[topk >= 0])) / n_items


def intra_list_diversity(topk: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Per list: mean pairwise (1 − cosine) between its items (unit ``vectors``)."""
    lists = vectors[topk]  # (U, K, d)
    sims = np.einsum("ukd,uld->ukl", lists, lists)
    k = topk.shape[1]
    return (k * k - sims.sum(axis=(1, 2))) / (k * (k - 1)) if k > 1 else np.zeros(len(topk))


def novelty(topk: np.ndarray, item_probability: np.ndarray) -> np.ndarray:
    """Per list: mean self-information −log2 p(i) of its items, p from training popularity."""
    p = np.clip(item_probability[topk], 1e-12, None)
    return (-np.log2(p)).mean(axis=1)
