"""Component scores: each turns (context, items) into one number per item, in a documented range.

Pure functions over arrays; the :class:`~ctxrec.rank.recommender.Recommender` decides which to compute,
caches them and fuses them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.catalog import COMPANIONS, DAYPARTS, DEVICES, MOODS, PLACES, Catalog
from ..data.context import SEASONS

__all__ = ["MOOD_PROTOTYPES", "StructuredAttributes", "history_attention", "mood_distribution",
           "mood_match", "season_closeness", "standardise", "top_in_order"]

# How each mood is put into words when the encoder places a person's intent among the moods.
MOOD_PROTOTYPES = {
    "calm": "calm, quiet, peaceful and relaxing, something slow to unwind",
    "cozy": "cozy and warm, comforting, snug on the sofa with a blanket",
    "cheerful": "cheerful, happy, bright and feel-good, lifts the spirits",
    "energetic": "energetic, intense, fast and pumped up, high energy",
    "romantic": "romantic, a date, love and intimacy for two",
    "thoughtful": "thoughtful, deep and reflective, makes you think and learn",
    "funny": "funny, hilarious, comedy that makes you laugh",
    "tense": "tense and thrilling, suspense, dark and gripping",
    "adventurous": "adventurous, exploring somewhere new, daring and bold",
    "melancholic": "melancholic, sad, wistful and bittersweet",
    "social": "social, lively, meeting people and sharing with a group",
    "focused": "focused and productive, concentration, getting things done",
}


def history_attention(sims: np.ndarray, signals: np.ndarray, temperature: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Target attention from each candidate over the history (source 003).

    a_ij = softmax_j(cos(c_i, h_j) / τ) and s_i = Σ_j a_ij · signal_j · cos(c_i, h_j). With unit
    vectors the usual 1/√d scaling would flatten the weights to nearly uniform, so the dot products are
    scaled by 1/τ instead.

    Args:
        sims: (N, H) cosines between N candidates and H ≥ 1 history items.
        signals: (H,) feedback in [-1, 1] (👍 +1, 👎 -1).
        temperature: τ > 0; smaller is sharper.

    Returns:
        scores (N,) in [-1, 1] and attention weights (N, H) whose rows sum to 1.
    """
    logits = sims / temperature
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    weights /= weights.sum(axis=1, keepdims=True)
    scores = (weights * sims * signals.astype(np.float32)).sum(axis=1)
    return scores.astype(np.float32), weights.astype(np.float32)


def mood_distribution(query: np.ndarray, prototypes: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(cos(query, mood_k) / τ) over the moods: (..., d) → (..., n_moods)."""
    logits = (query @ prototypes.T) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    probs = np.exp(logits)
    return (probs / probs.sum(axis=-1, keepdims=True)).astype(np.float32)


def mood_match(intent_moods: np.ndarray, item_moods: np.ndarray) -> np.ndarray:
    """Probability that the item's mood is the one the intent asks for, in [0, 1].

    Args:
        intent_moods: (n_moods,) distribution from :func:`mood_distribution`.
        item_moods: (N,) mood index per item where the catalog states moods (-1: none stated), or
            (N, n_moods) distributions inferred from the item text.
    """
    if item_moods.ndim == 1:  # one gather: -1 (none stated) picks the appended 0
        return np.append(intent_moods, 0.0).astype(np.float32)[item_moods]
    return (item_moods * intent_moods).sum(axis=1)


@dataclass
class StructuredAttributes:
    """The catalog's structured attributes as boolean matrices, for fast context matching.

    Each facet that the catalog lacks is ``None``; facets an item leaves empty are neutral for it.
    """

    n: int  # number of items
    dayparts: np.ndarray | None  # (N, 5)
    days: np.ndarray | None  # (N,) of "weekday" | "weekend" | "any"
    places: np.ndarray | None  # (N, 7)
    devices: np.ndarray | None  # (N, 5); an all-False row means "needs no device"
    companions: np.ndarray | None  # (N, 6)
    moods: np.ndarray | None  # (N,) index into MOODS, -1 where none is stated
    seasons: np.ndarray | None = None  # (N, 4), from season names among the tags (SEASONS order)

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> StructuredAttributes:
        items = catalog.items

        def multi_hot(column: str, vocab: tuple[str, ...]) -> np.ndarray | None:
            if column not in items.columns:
                return None
            index = {v: i for i, v in enumerate(vocab)}
            out = np.zeros((len(items), len(vocab)), dtype=bool)
            for row, values in enumerate(items[column]):
                for v in values or ():
                    out[row, index[v]] = True
            return out

        moods = None
        if "mood" in items.columns:
            index = {m: i for i, m in enumerate(MOODS)}
            # numpy's own index type: a gather with int8 indices converts them on every call
            moods = np.array([index.get(m, -1) for m in items["mood"]], dtype=np.intp)
        # through a Categorical, so every item refers to one of a few strings, not its own copy
        days = np.asarray(pd.Categorical(items["days"].fillna("any").replace("", "any")),
                          dtype=object) if "days" in items.columns else None
        seasons = None
        if "tags" in items.columns:
            seasons = np.array([[s in (tags or ()) for s in SEASONS] for tags in items["tags"]],
                               dtype=bool).reshape(len(items), len(SEASONS))
            seasons = seasons if seasons.any() else None
        return cls(n=len(items), dayparts=multi_hot("dayparts", DAYPARTS), days=days,
                   places=multi_hot("places", PLACES), devices=multi_hot("devices", DEVICES),
                   companions=multi_hot("companions", COMPANIONS), moods=moods,
                   seasons=seasons)

    @property
    def available(self) -> bool:
        return any(x is not None for x in (self.dayparts, self.days, self.places, self.devices,
                                           self.companions))

    def match(self, daypart: str, day_type: str, place: str, device: str,
              companions: tuple[str, ...], season: str | None = None
              ) -> tuple[np.ndarray, list[str]]:
        """Share of the applicable facets (daypart, day type, place, device, companions, season)
        that fit.

        The arguments are a :class:`~ctxrec.data.context.Context`'s derived fields of the same
        names. An item tagged with a season fits it fully, the seasons next to it by half and the
        opposite one not at all (in November an autumn fair fits, a winter fondue half, a spring
        blossom walk not at all).

        Returns:
            (N,) scores in [0, 1] and the names of the facets used.
        """
        facets: list[tuple[str, np.ndarray, np.ndarray]] = []  # name, fit, applies
        n = self.n
        everywhere = np.ones(n, dtype=bool)
        if self.dayparts is not None:
            fit = self.dayparts[:, DAYPARTS.index(daypart)]
            facets.append(("daypart", fit, self.dayparts.any(axis=1)))
        if self.days is not None:
            fit = (self.days == "any") | (self.days == day_type)
            facets.append(("day", fit, everywhere))
        if self.places is not None:
            facets.append(("place", self.places[:, PLACES.index(place)],
                           self.places.any(axis=1)))
        if self.devices is not None and device in DEVICES:
            facets.append(("device", self.devices[:, DEVICES.index(device)],
                           self.devices.any(axis=1)))
        if self.companions is not None and companions:
            cols = [COMPANIONS.index(c) for c in companions]
            fit = self.companions[:, cols].mean(axis=1)
            facets.append(("companions", fit, self.companions.any(axis=1)))
        if self.seasons is not None and season in SEASONS:
            now = SEASONS.index(season)
            fit = (self.seasons * season_closeness(now)).max(axis=1)
            facets.append(("season", fit, self.seasons.any(axis=1)))
        if not facets:
            return np.zeros(n, dtype=np.float32), []
        fits = np.stack([f.astype(np.float32) * a for _, f, a in facets])
        applies = np.stack([a for _, _, a in facets]).astype(np.float32)
        counted = applies.sum(axis=0)
        score = np.divide(fits.sum(axis=0), counted, out=np.full(n, 0.5, dtype=np.float32),
                          where=counted > 0)
        return score.astype(np.float32), [name for name, _, _ in facets]


def season_closeness(now: int) -> np.ndarray:
    """(4,) how well each season (``SEASONS`` order) fits season ``now``: itself 1, the seasons
    next to it 0.5, the opposite one 0."""
    return np.array([1.0 - min((i - now) % 4, (now - i) % 4) / 2 for i in range(len(SEASONS))],
                    dtype=np.float32)


def standardise(values: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """z = (v − mean) / std over all of ``values``: how the recommender puts components of
    different ranges on one scale before weighting them, and how the LLM re-ranker puts its
    judgement over the top K on the first stage's. With ``reference`` (a boolean mask or
    positions), the mean and std are those of ``values[reference]``: a sample standing for the
    whole catalog when only candidates were scored. All zeros when the values are (nearly) equal.
    Float32 in, float32 out; float64 stays float64."""
    values = np.asarray(values)
    dtype = np.result_type(values.dtype, np.float32)
    basis = values if reference is None else values[reference]
    std = float(basis.std())
    if std < 1e-8:
        return np.zeros(values.shape, dtype=dtype)
    return ((values - basis.mean()) / std).astype(dtype)


def top_in_order(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest ``scores``, highest first (ties keep position order)."""
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top], kind="stable")]
