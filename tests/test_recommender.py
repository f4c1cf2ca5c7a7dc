from dataclasses import replace
from datetime import datetime

import numpy as np
import pytest

from ctxrec import (COMPONENTS, Context, HistoryEntry, Recommender, RecommenderConfig, Weights,
                    adaptive_weights, read_catalog_csv, why)
from ctxrec.rank.components import history_attention
from ctxrec.rank.weights import INTENT_CONTEXT_WEIGHT

EVENING = Context(when=datetime(2026, 11, 21, 20, 0), place="home", device="tv",
                  companions=("partner",))


def _pairwise_similarity(recommender, ids):
    vectors = recommender.vectors[[recommender.catalog.position(i) for i in ids]]
    sims = vectors @ vectors.T
    return (sims.sum() - np.trace(sims)) / (len(ids) * (len(ids) - 1))


THRILLER = replace(EVENING, intent="a tense thriller", history=(HistoryEntry("film-02", 1),
                                                                 HistoryEntry("recipe-01", -1)))


@pytest.mark.parametrize("weights", [None, Weights.manual({"intent": 0.7, "context": 1.3,
                                                           "mood": 0.4, "history": 2.0})])
@pytest.mark.parametrize("diversity", [0.0, 0.6])
def test_the_tables_score_is_the_one_evaluation_ranks_by(recommender, weights, diversity):
    """The table's score (built from its contribution columns) equals ``fused_scores``, which the
    evaluation uses. MMR changes which items are shown and in what order, never their scores, so
    the two must agree with diversity on as well; without it the table is fused_scores's top k."""
    table = recommender.recommend(THRILLER, k=15, weights=weights, diversity=diversity).table
    assert len(table) == 15 and table["item_id"].is_unique
    everything = recommender.fused_scores(THRILLER, weights)
    positions = [recommender.catalog.position(i) for i in table["item_id"]]
    np.testing.assert_allclose(table["score"], everything[positions], atol=1e-5)
    assert table[["intent", "history", "context", "mood"]].abs().gt(0).all().all()
    if diversity == 0:
        unseen = everything.copy()
        unseen[[recommender.catalog.position(h.item_id) for h in THRILLER.history]] = -np.inf
        assert positions == np.argsort(-unseen, kind="stable")[:15].tolist()


def test_contributions_are_weight_times_the_standardised_component(recommender):
    """Each column is w_c · (r_c − mean) / std over the whole catalog (the module's formula), with
    r_c recomputed from the component methods, not read back from the table."""
    ranking = recommender.recommend(THRILLER, k=15)
    table, weights = ranking.table, ranking.weights
    positions = [recommender.catalog.position(h.item_id) for h in THRILLER.history]
    signals = tuple(h.signal for h in THRILLER.history)
    reading = recommender.read_intent(THRILLER.intent)  # "likes: tense, thriller"
    assert reading.preferences and reading.soft_text == THRILLER.intent
    raw = {"intent": recommender.intent_scores(THRILLER.intent, reading.preferences),
           "mood": recommender.mood_scores(THRILLER.intent),
           "context": recommender.context_scores(THRILLER),
           "history": recommender.history_scores(tuple(positions), signals)[0]}
    assert {c for c in COMPONENTS if weights[c]} == set(raw)
    shown = [recommender.catalog.position(i) for i in table["item_id"]]
    for name, values in raw.items():
        values = values.astype(np.float64)
        expected = weights[name] * (values - values.mean()) / values.std()
        np.testing.assert_allclose(table[name], expected[shown], atol=1e-5, err_msg=name)
        np.testing.assert_allclose(table[f"raw_{name}"], values[shown], atol=1e-6, err_msg=name)


def test_scores_descend_without_diversity(recommender):
    table = recommender.recommend(replace(EVENING, intent="something to cook"), k=20).table
    assert table["score"].is_monotonic_decreasing
    assert table["rank"].tolist() == list(range(1, 21))


@pytest.mark.parametrize("intent, category", [
    ("a recipe I can cook for dinner tonight", "recipe"),
    ("a podcast episode to listen to", "podcast"),
    ("a workout to get fit and strong", "fitness"),
    ("a video game to play", "game"),
    ("a day trip out of the city to the countryside", "daytrip"),
    ("a restaurant to have dinner out", "restaurant"),
    ("an album of music to put on", "music"),
    ("a novel, a book to read", "book"),
])
def test_an_intent_about_one_category_ranks_it_first(recommender, intent, category):
    table = recommender.recommend(replace(EVENING, intent=intent), k=5).table
    assert table["category"].iloc[0] == category
    assert (table["category"] == category).sum() >= 3


def test_time_of_day_moves_the_ranking_without_an_intent(recommender):
    morning = Context(when=datetime(2026, 11, 23, 7, 30), place="home", device="phone")
    night = replace(morning, when=datetime(2026, 11, 23, 23, 30))
    fits = []
    for ctx, part in ((morning, "morning"), (night, "night")):
        table = recommender.recommend(ctx, k=10).table
        dayparts = [recommender.catalog.record(i)["dayparts"] for i in table["item_id"]]
        fits.append(sum(part in d for d in dayparts))
    assert fits[0] >= 8 and fits[1] >= 8


def test_excluding_seen_items(recommender):
    top = recommender.recommend(replace(EVENING, intent="a cozy film"), k=3).table["item_id"]
    history = tuple(HistoryEntry(i, 1) for i in top)
    ctx = replace(EVENING, intent="a cozy film", history=history)
    assert not set(recommender.recommend(ctx, k=10).table["item_id"]) & set(top)
    kept = recommender.recommend(ctx, k=10, exclude_seen=False).table["item_id"]
    assert set(top) <= set(kept)


def test_mmr_diversifies_the_list(recommender):
    ctx = replace(EVENING, intent="a scary horror story")
    plain = recommender.recommend(ctx, k=10).table
    diverse = recommender.recommend(ctx, k=10, diversity=0.7).table
    assert diverse["item_id"].iloc[0] == plain["item_id"].iloc[0]
    assert diverse["item_id"].is_unique
    assert _pairwise_similarity(recommender, diverse["item_id"]) < \
        _pairwise_similarity(recommender, plain["item_id"]) - 0.02


def test_a_dislike_pushes_similar_items_down(recommender):
    ctx = replace(EVENING, intent="something to watch")
    liked = recommender.recommend(replace(ctx, history=(HistoryEntry("film-02", 1),)), k=300)
    disliked = recommender.recommend(replace(ctx, history=(HistoryEntry("film-02", -1),)), k=300)
    neighbour = liked.table.sort_values("raw_history")["item_id"].iloc[-1]  # closest to film-02
    rank_liked = liked.table.set_index("item_id").loc[neighbour, "rank"]
    rank_disliked = disliked.table.set_index("item_id").loc[neighbour, "rank"]
    assert rank_disliked > rank_liked + 10
    assert disliked.table.set_index("item_id").loc[neighbour, "history"] < 0


def test_history_weights_in_the_ranking_are_the_ones_used(recommender):
    history = (HistoryEntry("film-02", 1), HistoryEntry("music-05", -1), HistoryEntry("cafe-03", 1))
    ranking = recommender.recommend(replace(EVENING, history=history), k=8)
    positions = [recommender.catalog.position(i) for i in ranking.table["item_id"]]
    sims = recommender.vectors[positions] @ recommender.vectors[
        [recommender.catalog.position(h.item_id) for h in history]].T
    scores, weights = history_attention(sims, np.array([1, -1, 1], np.float32),
                                        recommender.config.history_temperature)
    np.testing.assert_allclose(ranking.history_attention, weights, atol=1e-5)
    np.testing.assert_allclose(ranking.table["raw_history"], scores, atol=1e-5)
    assert ranking.history_ids == ["film-02", "music-05", "cafe-03"]
    assert "attends to" in why(ranking, 0, recommender.catalog.title)


def test_manual_weights_with_one_component_rank_by_it(recommender):
    ranking = recommender.recommend(replace(EVENING, intent="a walk in the hills"), k=10,
                                    weights=Weights.manual({"intent": 1.0}))
    table = ranking.table
    liked = recommender.read_intent("a walk in the hills").preferences  # "likes: hills"
    best = np.argsort(-recommender.intent_scores("a walk in the hills", liked),
                      kind="stable")[:10]
    assert table["item_id"].tolist() == [recommender.catalog.ids[p] for p in best]
    assert (table[["history", "context", "mood", "popularity"]] == 0).all().all()
    with pytest.raises(ValueError, match="unknown components"):
        Weights.manual({"vibes": 1.0})


def test_adaptive_weights_follow_the_context():
    full = adaptive_weights(True, True, True, True, has_sequence=True, has_limits=True)
    assert all(full[c] > 0 for c in COMPONENTS)
    assert adaptive_weights(True, True, True, True)["sequence"] == 0
    assert adaptive_weights(True, True, True, True)["constraints"] == 0
    no_intent = adaptive_weights(False, True, False, True)
    assert no_intent["intent"] == no_intent["mood"] == 0 and no_intent["history"] == 1.0
    assert no_intent["popularity"] == 0
    cold = adaptive_weights(False, False, True, True)
    assert cold["history"] == 0 and cold["context"] == 1.0 and cold["popularity"] == 0.4
    assert any("Cold start" in r for r in cold.reasons) and cold.mode == "adaptive"
    # a request read in a situation the catalog can match: the context weighs more
    assert adaptive_weights(True, True, True, True)["context"] == INTENT_CONTEXT_WEIGHT > \
        adaptive_weights(True, True, True, False)["context"]


def test_unknown_history_ids_are_ignored_and_reported(recommender):
    ctx = replace(EVENING, history=(HistoryEntry("no-such-item", 1), HistoryEntry("film-02", 1)))
    ranking = recommender.recommend(ctx, k=5)
    assert ranking.history_ids == ["film-02"]
    assert any("no-such-item" in note for note in ranking.notes)


def test_a_very_long_intent_is_truncated_and_said_so(recommender):
    ctx = replace(EVENING, intent="I want a calm film about the sea. " * 600)  # 20,400 chars
    ranking = recommender.recommend(ctx, k=5)
    assert len(ranking.table) == 5
    assert any("tokens long" in note and "first 256" in note for note in ranking.notes)


def test_empty_intent_and_history_is_a_cold_start(recommender):
    ranking = recommender.recommend(Context(when=datetime(2026, 11, 23, 7, 30)), k=5)
    assert len(ranking.table) == 5 and ranking.weights["context"] == 1.0
    assert np.isnan(ranking.table["raw_intent"]).all()


@pytest.fixture(scope="module")
def small(encoder):
    csv = (b"id,title,description,popularity\n1,Dawn Loaf,A bakery at six.,120\n"
           b"2,Night Bus,Neon and rain after midnight.,3\n3,Sea Walk,Wind on the pier.,0\n")
    catalog = read_catalog_csv(csv)
    return Recommender(catalog, encoder, encoder.encode(catalog.texts()))


def test_every_item_excluded_gives_an_empty_ranking_and_a_note(small):
    ctx = Context(history=tuple(HistoryEntry(i, 1) for i in "123"))
    ranking = small.recommend(ctx, k=5)
    assert ranking.table.empty and any("Every item" in n for n in ranking.notes)


def test_popularity_column_feeds_the_prior(small):
    ranking = small.recommend(Context(), k=3)
    assert ranking.weights["popularity"] > 0
    assert ranking.table.set_index("item_id")["raw_popularity"].to_dict() == \
        pytest.approx({"1": 1.0, "2": np.log1p(3) / np.log1p(120), "3": 0.0})


@pytest.mark.parametrize("diversity", [0.0, 0.6])
def test_half_precision_scoring_agrees_with_float32(catalog, encoder, vectors, recommender,
                                                    diversity):
    half = Recommender(catalog, encoder, vectors, config=RecommenderConfig(half_precision_from=1))
    # one copy of the vectors, in float16, which the product matrix shares
    assert half.vectors.dtype == np.float16 and recommender.vectors.dtype == np.float32
    assert half._matrix.data_ptr() == half.vectors.ctypes.data
    ctx = replace(EVENING, intent="a sunny bike ride", history=(HistoryEntry("film-02", 1),))
    a = recommender.recommend(ctx, k=20, diversity=diversity).table
    b = half.recommend(ctx, k=20, diversity=diversity).table
    np.testing.assert_allclose(a["score"], b["score"], atol=5e-3)
    assert a["item_id"].iloc[0] == b["item_id"].iloc[0]
    assert len(set(a["item_id"]) & set(b["item_id"])) >= 18
    np.testing.assert_allclose(b[list(COMPONENTS)].sum(axis=1), b["score"], atol=1e-5)
    assert b["title"].tolist() == [catalog.title(i) for i in b["item_id"]]
