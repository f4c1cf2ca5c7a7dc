"""The approximate vector index (faiss) and ranking through it, and the cost of each stage of a
ranking."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import datetime

import numpy as np
import pytest
from conftest import ROOT

from ctxrec import COMPONENTS, Context, HistoryEntry, Recommender, RecommenderConfig
from ctxrec.bench import synthetic_catalog
from ctxrec.rank.components import mood_match
from ctxrec.text.embed_cache import EmbeddingCache
from ctxrec.text.vector_index import VectorIndex, index_for, item_index

EVENING = Context(when=datetime(2026, 11, 21, 19, 30), place="home", device="tv",
                  companions=("family",))
INTENTS = ("something calm to read before bed", "a funny film with the kids, under 2 hours",
           "a podcast about space", "a day out in nature", "anything but horror tonight",
           "a board game for friends")


@pytest.fixture(scope="module")
def large(catalog, encoder, vectors):
    """20,000 items made from the built-in ones (vectors jittered), with an index over their
    vectors and retrieval features."""
    big, big_vectors = synthetic_catalog(catalog, vectors, 20_000, jitter=0.05)
    features = Recommender(big, encoder, big_vectors).retrieval
    index = VectorIndex.build(big_vectors, key="test", features=features)
    return big, big_vectors, index


def test_the_index_finds_what_exact_search_finds(large, encoder):
    _, big_vectors, index = large
    # it proposes candidates that are then scored exactly: the exact best 20 must be among its
    # best 200 (its own order of them is approximate: 4 bits per two dimensions)
    queries = encoder.encode(list(INTENTS))
    found = index.search(_vectors_alone(queries, index), 200)
    exact = np.argsort(-(big_vectors @ queries.T), axis=0)[:20].T
    recall = np.mean([len(set(f) & set(e)) / 20 for f, e in zip(found, exact)])
    assert recall >= 0.9
    assert index.memory_mb < big_vectors.nbytes / 2**20 / 8  # half a byte per two dimensions


def _vectors_alone(queries: np.ndarray, index: VectorIndex) -> np.ndarray:
    """Text queries with the features' side 0: a search by the cosine alone."""
    return np.hstack([queries, np.zeros((len(queries), index.dim - queries.shape[1]))])


def test_a_filtered_search_returns_only_allowed_items_and_their_best(large, encoder):
    _, big_vectors, index = large
    allowed = np.zeros(len(big_vectors), dtype=bool)
    allowed[::17] = True  # few allowed: the search must reach farther cells to find them
    query = encoder.encode(["a tense late-night thriller"])[0]
    found = index.search(_vectors_alone(query[None], index), 10, allowed=allowed)[0]
    assert (found >= 0).all() and allowed[found].all()
    scores = np.where(allowed, big_vectors @ query, -np.inf)
    assert int(np.argmax(scores)) in set(found)


def test_the_index_is_saved_beside_the_embeddings_and_checked_on_load(tmp_path, encoder, catalog,
                                                                      recommender):
    cache = EmbeddingCache(tmp_path)
    held = (encoder, catalog, recommender.vectors, recommender.retrieval)
    first = item_index(*held, cache)
    path = cache.path(encoder, catalog).with_suffix(".faiss")
    assert path.is_file() and first.build_s > 0
    assert first.dim == encoder.dim + recommender.retrieval.dim
    again = item_index(*held, cache)
    assert again.build_s == 0  # loaded, not rebuilt
    query = np.hstack([recommender.vectors[:3], np.ones((3, recommender.retrieval.dim))])
    np.testing.assert_array_equal(again.search(query, 5), first.search(query, 5))
    key, dim = first.key, first.dim
    assert key.startswith(cache.key(encoder, catalog))
    assert VectorIndex.load(path, "another key", len(catalog), dim) is None
    assert VectorIndex.load(path, key, len(catalog) + 1, dim) is None
    assert VectorIndex.load(path, key, len(catalog), encoder.dim) is None  # features missing
    # other popularity counts are other features: that index is rebuilt, not trusted
    counted = Recommender(catalog, encoder, recommender.vectors,
                          popularity=np.arange(len(catalog)) % 5)
    assert item_index(encoder, catalog, counted.vectors, counted.retrieval, cache).build_s > 0
    assert item_index(*held, cache).build_s > 0
    with open(path, "r+b") as handle:  # one flipped byte fails the checksum
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert VectorIndex.load(path, key, len(catalog), dim) is None
    rebuilt = item_index(*held, cache)
    assert rebuilt.build_s > 0 and rebuilt.size == len(catalog)
    assert index_for(*held, cache=cache) is None  # small: exact by default
    assert index_for(*held, use=True, cache=cache) is not None


def test_an_index_of_another_catalog_is_refused(catalog, encoder, vectors, large):
    with pytest.raises(ValueError, match="this catalog needs 312 of 426"):
        Recommender(catalog, encoder, vectors, index=large[2])
    plain = VectorIndex.build(vectors)  # the vectors alone: the features are missing
    with pytest.raises(ValueError, match="retrieval features"):
        Recommender(catalog, encoder, vectors, index=plain)


def test_through_the_index_a_small_catalog_ranks_as_exactly(catalog, encoder, vectors,
                                                             recommender):
    # the reference sample holds every item of a small catalog, so nothing is approximated
    indexed = Recommender(catalog, encoder, vectors)
    indexed.attach_index(VectorIndex.build(vectors, key="small", features=indexed.retrieval))
    history = (HistoryEntry("film-02", 1), HistoryEntry("book-05", -1))
    for intent in INTENTS:
        context = replace(EVENING, intent=intent, history=history)
        exact, approx = recommender.recommend(context, k=15), indexed.recommend(context, k=15)
        assert approx.candidates == len(catalog) and exact.candidates is None
        assert list(approx.table["item_id"]) == list(exact.table["item_id"])
        np.testing.assert_allclose(approx.table["score"], exact.table["score"], atol=1e-4)
        assert approx.notes == exact.notes


def test_through_the_index_a_large_catalog_keeps_the_exact_top_and_its_breakdown(
        large, encoder):
    big, big_vectors, index = large
    exact = Recommender(big, encoder, big_vectors)
    indexed = Recommender(big, encoder, big_vectors, index=index)
    history = tuple(HistoryEntry(i, s) for i, s in zip(big.ids[[3, 40, 77]], (1, 1, -1)))
    overlaps = []
    for intent in INTENTS:
        context = replace(EVENING, intent=intent, history=history)
        a = exact.recommend(context, k=10)
        b = indexed.recommend(context, k=10, diversity=0.3 if intent == INTENTS[0] else 0.0)
        overlaps.append(len(set(a.table["item_id"]) & set(b.table["item_id"])) / 10)
        assert b.candidates < len(big) / 3
        parts = b.table[list(COMPONENTS)].to_numpy().sum(axis=1)
        np.testing.assert_allclose(parts, b.table["score"], atol=1e-6)
        # the raw scores of what is shown are exact: the same as when every item is scored
        both = a.table.merge(b.table, on="item_id", suffixes=("_a", "_b"))
        for name in ("intent", "context", "history", "mood"):
            np.testing.assert_allclose(both[f"raw_{name}_a"], both[f"raw_{name}_b"], atol=2e-3)
        stages = [s.stage for s in b.costs.stages]
        assert "retrieve" in stages and stages.index("retrieve") < stages.index("components")
        if b.understood is not None and b.understood.constraints:
            assert not any(b.table["broken"])  # the limits filter the search itself
    assert np.mean(overlaps) >= 0.8, overlaps


def test_one_inner_product_holds_the_facets_mood_and_popularity(catalog, encoder, vectors):
    # through the index, the items' retrieval features times the request's side must be the
    # catalog's facet share, the mood match and popularity, each at its weight, for every item
    counts = (np.arange(len(catalog)) * 7919) % 50
    rec = Recommender(catalog, encoder, vectors, popularity=counts)
    features = rec.retrieval
    assert rec.attributes.seasons is not None  # the season block is exercised too
    rows = features.rows(np.arange(len(catalog)))
    assert rows.shape == (len(catalog), features.dim) == (len(catalog), 5 + 2 + 7 + 5 + 6 + 4 + 1
                                                          + 12 + 1)
    rng = np.random.default_rng(0)
    situations = [Context(when=datetime(2026, month, day, hour), place=place, device=device,
                          companions=companions)
                  for month, day, hour, place, device, companions in (
                      (11, 21, 19, "home", "tv", ("family",)),
                      (4, 6, 8, "commute", "phone", ("alone",)),
                      (7, 15, 13, "outdoors", "speaker", ("friends", "kids")),
                      (1, 3, 23, "travel", "laptop", ("partner",)))]
    for context in situations:
        intent_moods = rng.dirichlet(np.ones(12)).astype(np.float32)
        facets = (context.daypart, context.day_type, context.place, context.device,
                  context.companions, context.season)
        query = features.query(facets, 1.5, intent_moods, 0.7, 0.3)
        expected = 1.5 * rec.attributes.match(*facets)[0] + \
            0.7 * mood_match(intent_moods, rec._item_moods) + 0.3 * rec.popularity
        np.testing.assert_allclose(rows @ query, expected, atol=1e-5)
    # the same with one part weighed 0 leaves it out
    query = features.query(facets, 0.0, None, 0.0, 1.0)
    np.testing.assert_allclose(rows @ query, rec.popularity, atol=1e-6)


def test_items_lifted_by_what_no_vector_holds_are_found_through_the_index(large, encoder):
    # with few candidates, the exact best items (where the catalog's facets, mood and
    # preferences carry what the vectors do not) must still come out of the one search
    big, big_vectors, index = large
    exact = Recommender(big, encoder, big_vectors)
    few = Recommender(big, encoder, big_vectors, index=index,
                      config=RecommenderConfig(candidates=40))
    found = []
    for intent in (*INTENTS, "something with jazz, nothing sad"):
        context = replace(EVENING, intent=intent)
        best = set(exact.recommend(context, k=10).table["item_id"])
        top = set(few.recommend(context, k=10).table["item_id"])
        found.append(len(best & top) / 10)
    assert np.mean(found) >= 0.8, found


def test_a_situation_seen_before_ranks_as_on_a_fresh_recommender(large, encoder):
    # what is kept between calls (limits, preferences, encoded texts) must not carry one
    # situation into the next: a return to a situation ranks as if nothing were kept
    big, big_vectors, index = large
    warm = Recommender(big, encoder, big_vectors, index=index)
    morning = Context(when=datetime(2026, 11, 23, 7, 45), place="commute", device="phone")
    for context in (replace(EVENING, intent=INTENTS[1]), replace(morning, intent=INTENTS[2]),
                    replace(EVENING, intent="something with jazz, nothing sad")):
        ranked = warm.recommend(context, k=10)
    fresh = Recommender(big, encoder, big_vectors, index=index).recommend(context, k=10)
    assert list(ranked.table["item_id"]) == list(fresh.table["item_id"])
    np.testing.assert_allclose(ranked.table["score"], fresh.table["score"], atol=1e-6)
    assert ranked.candidates == fresh.candidates


def test_ranking_through_a_missing_index_says_so(recommender):
    with pytest.raises(ValueError, match="no vector index"):
        recommender.recommend(EVENING, exact=False)


def test_every_ranking_records_its_stages_and_they_make_up_the_call(recommender):
    context = replace(EVENING, intent="a quick vegetarian dinner for two",
                      history=(HistoryEntry("film-02", 1),))
    shares = []
    for n in range(5):
        ranking = recommender.recommend(replace(context, intent=f"{context.intent} ({n})"), k=10)
        costs = ranking.costs
        assert [s.stage for s in costs.stages] == ["read intent", "encode", "components",
                                                   "fusion and top-k"]
        assert all(s.ms >= 0 and s.device == "cpu" and s.memory_mb > 0 for s in costs.stages)
        assert costs.stages[1].dtype == "float32" and costs.stages[0].dtype == "-"
        assert costs.peak_rss_mb >= max(s.memory_mb for s in costs.stages) * 0.99
        shares.append(costs.accounted)
        as_json = costs.as_dict()
        assert as_json["total_ms"] == pytest.approx(costs.total_ms, abs=1e-3)
        assert [s["stage"] for s in as_json["stages"]] == [s.stage for s in costs.stages]
        assert costs.summary().split(": ", 1)[1].startswith("read intent ")
    assert 0.95 <= float(np.median(shares)) <= 1.0


def test_faiss_loads_only_where_an_index_is_built_or_read():
    # the library, its command line and the benchmarks import without it (a GPU image, say,
    # that lacks faiss still ranks every item exactly)
    code = ("import sys, ctxrec, ctxrec.cli, ctxrec.bench, ctxrec.rank.recommender; "
            "print('faiss' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         check=True)
    assert out.stdout.strip() == "False"


def test_the_positions_to_score_are_those_found_once_without_the_sample():
    from ctxrec.rank.recommender import _new_positions

    rng = np.random.default_rng(0)
    for _ in range(100):
        sample = np.sort(rng.choice(1000, rng.integers(0, 50), replace=False))
        found = [rng.integers(0, 1000, rng.integers(0, 300)) for _ in range(rng.integers(0, 3))]
        expected = np.setdiff1d(np.concatenate([sample[:0], *found]), sample)
        assert np.array_equal(_new_positions(found, sample), expected)
