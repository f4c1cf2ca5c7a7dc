"""What no item vector holds, as extra dimensions of the vectors a vector index searches.

Through an index the recommender scores only the candidates the index proposes, so the index must
find the items with the best fused score, not only the best cosine. Apart from the history's
attention and the preferences read from the intent, every part of that score is linear in a few
numbers per item:

* the catalog's facets: share = Σ_f fit_f(situation's value) · applies_f / counted, and for each
  facet and each value v an item holds fit_f(v) · applies_f / counted, so the situation's values
  pick the share out (the season's "fit" is already the closeness of the item's seasons to v);
* the mood: P(item's mood | intent) = Σ_m P(m | intent) · [the item's mood is m] (or the item's
  inferred mood distribution);
* popularity: one number per item.

The index holds each item as [text vector, features] and a request becomes [the weighed query
vector, the weighed situation, mood and popularity]: one inner product is then the fused score
of those parts up to a constant, and one search finds the best items for all of them at once.

The share divides by the facets that apply to an item *and* to the situation. The features
divide by those of the catalog, so the product is exact when the situation states a device and
companions (every situation has a daypart, day type, place and season); otherwise an item's
share is proposed slightly off and the candidates' exact scoring corrects it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ..data.catalog import COMPANIONS, DAYPARTS, DEVICES, MOODS, PLACES
from ..data.context import SEASONS
from .components import StructuredAttributes, season_closeness

__all__ = ["RetrievalFeatures"]

# the features are stored this much smaller and the request's weights this much larger: an item's
# features (norm about 0.6 in the built-in catalog) then count a little less than its unit text
# vector when k-means draws the index's cells
_SCALE = 0.5
_DAYS = ("weekday", "weekend")
_FORMAT = "facets-mood-popularity-v1"


@dataclass(frozen=True)
class RetrievalFeatures:
    """Per-item features that make the facets, the mood and popularity part of the index's
    inner product, and the request side of that product.

    Attributes:
        attributes: the catalog's facets (``None`` where it has none).
        moods: (N,) mood index (-1: none stated) or (N, n_moods) inferred distributions.
        popularity: (N,) prior in [0, 1], or ``None``.
    """

    attributes: StructuredAttributes | None
    moods: np.ndarray
    popularity: np.ndarray | None

    @property
    def facets(self) -> list[tuple[str, int]]:
        """The facet blocks held, with their sizes, in the order they are laid out."""
        a = self.attributes
        if a is None or not a.available:
            return []
        present = [("daypart", a.dayparts, len(DAYPARTS)), ("day", a.days, len(_DAYS)),
                   ("place", a.places, len(PLACES)), ("device", a.devices, len(DEVICES)),
                   ("companions", a.companions, len(COMPANIONS)),
                   ("season", a.seasons, len(SEASONS))]
        return [(name, size) for name, values, size in present if values is not None]

    @property
    def dim(self) -> int:
        facets = sum(size for _, size in self.facets)
        return (facets + 1 if facets else 0) + len(MOODS) + (self.popularity is not None)

    def digest(self) -> str:
        """What the features are made of beyond the catalog's content and the item vectors
        (which the index's key already covers): their layout and the popularity prior."""
        raw = hashlib.sha256(f"{_FORMAT}|{self.facets}|{self.moods.ndim}".encode())
        if self.popularity is not None:
            raw.update(np.ascontiguousarray(self.popularity).tobytes())
        return raw.hexdigest()[:16]

    def rows(self, positions: np.ndarray | slice) -> np.ndarray:
        """(n, dim) float32 features of the items at ``positions``, as the index stores them."""
        blocks = []
        if self.facets:
            blocks.extend(self._facet_rows(positions))
        moods = self.moods[positions]
        if moods.ndim == 1:  # stated: one-hot, none stated (-1) all zeros
            moods = np.eye(len(MOODS) + 1, len(MOODS), dtype=np.float32)[moods]
        blocks.append(np.asarray(moods, dtype=np.float32))
        if self.popularity is not None:
            blocks.append(self.popularity[positions][:, None])
        return np.hstack(blocks).astype(np.float32) * _SCALE

    def query(self, situation: tuple | None, facets_weight: float, intent_moods: np.ndarray | None,
              mood_weight: float, popularity_weight: float) -> np.ndarray:
        """(dim,) the request side: each part's weight divided by its spread (as standardising
        does), the situation's values ((daypart, day type, place, device, companions, season), as
        :meth:`StructuredAttributes.match` takes them) and the intent's moods."""
        out = []
        if self.facets:
            part = np.zeros(sum(size for _, size in self.facets) + 1, dtype=np.float32)
            if situation is not None and facets_weight:
                daypart, day_type, place, device, companions, season = situation
                chosen = {"daypart": {DAYPARTS.index(daypart): 1.0},
                          "day": {_DAYS.index(day_type): 1.0} if day_type in _DAYS else {},
                          "place": {PLACES.index(place): 1.0},
                          "device": {DEVICES.index(device): 1.0} if device in DEVICES else {},
                          "companions": {COMPANIONS.index(c): 1 / len(companions)
                                         for c in companions},
                          "season": {SEASONS.index(season): 1.0} if season in SEASONS else {}}
                start = 0
                for name, size in self.facets:
                    for offset, value in chosen[name].items():
                        part[start + offset] = value
                    start += size
                part[-1] = 1.0  # the share of an item that lists no facet at all
                part *= facets_weight
            out.append(part)
        out.append(np.zeros(len(MOODS), np.float32) if intent_moods is None else
                   mood_weight * np.asarray(intent_moods, dtype=np.float32))
        if self.popularity is not None:
            out.append(np.array([popularity_weight], dtype=np.float32))
        return np.concatenate(out) / _SCALE

    def _facet_rows(self, positions: np.ndarray | slice) -> list[np.ndarray]:
        a = self.attributes
        fits, applies = [], []
        if a.dayparts is not None:
            fits.append(a.dayparts[positions])
        if a.days is not None:
            days = a.days[positions]
            fits.append(np.stack([(days == "any") | (days == d) for d in _DAYS], axis=1))
        if a.places is not None:
            fits.append(a.places[positions])
        if a.devices is not None:
            fits.append(a.devices[positions])
        if a.companions is not None:
            fits.append(a.companions[positions])
        if a.seasons is not None:
            seasons = a.seasons[positions].astype(np.float32)
            closeness = np.stack([season_closeness(now) for now in range(len(SEASONS))])
            # an item's fit in each season is its closest season's closeness to it
            fits.append((seasons[:, None, :] * closeness[None, :, :]).max(axis=2))
        for (name, _), fit in zip(self.facets, fits):
            # the day type applies to every item; the others where the item lists a value
            applies.append(np.ones(len(fit), bool) if name == "day" else fit.any(axis=1))
        counted = np.sum(applies, axis=0).astype(np.float32)
        share = np.divide(1.0, counted, out=np.zeros_like(counted), where=counted > 0)
        blocks = [fit.astype(np.float32) * share[:, None] for fit in fits]
        blocks.append(np.where(counted > 0, 0.0, 0.5).astype(np.float32)[:, None])
        return blocks

