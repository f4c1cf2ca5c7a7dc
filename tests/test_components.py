import numpy as np

from ctxrec import read_catalog_csv
from ctxrec.data.catalog import MOODS
from ctxrec.rank.components import (StructuredAttributes, history_attention, mood_distribution,
                                    mood_match)


def test_history_attention_matches_the_formula_by_hand():
    sims = np.array([[0.9, 0.1], [0.2, 0.4]], dtype=np.float32)
    signals = np.array([1.0, -1.0], dtype=np.float32)
    scores, weights = history_attention(sims, signals, temperature=0.5)
    a = np.exp(np.array([1.8, 0.2])) / np.exp(np.array([1.8, 0.2])).sum()
    np.testing.assert_allclose(weights[0], a, rtol=1e-6)
    np.testing.assert_allclose(scores[0], a[0] * 0.9 - a[1] * 0.1, rtol=1e-6)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)
    assert scores[1] < 0  # closer to the disliked item


def test_history_attention_is_stable_for_sharp_temperatures():
    sims = np.array([[1.0, -1.0, 0.99]], dtype=np.float32)
    scores, weights = history_attention(sims, np.ones(3, np.float32), temperature=1e-3)
    # logits 1000, -1000 and 990: exp(1000) overflows unless the row maximum is taken out first
    expected = np.array([1.0, 0.0, np.exp(-10.0)]) / (1 + np.exp(-10.0))
    np.testing.assert_allclose(weights[0], expected, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(scores[0], expected @ sims[0], rtol=1e-6)


def test_mood_distribution_and_match():
    prototypes = np.eye(3, dtype=np.float32)
    probs = mood_distribution(np.array([1.0, 0.0, 0.0], np.float32), prototypes, 0.1)
    assert abs(probs.sum() - 1) < 1e-6 and probs.argmax() == 0
    index_scores = mood_match(probs, np.array([0, 2, -1]))
    np.testing.assert_allclose(index_scores, [probs[0], probs[2], 0.0])
    dist_scores = mood_match(probs, np.eye(3, dtype=np.float32)[[0, 2]])
    np.testing.assert_allclose(dist_scores, [probs[0], probs[2]], rtol=1e-6)


def test_structured_match_counts_only_facets_that_apply():
    csv = ("id,title,mood,dayparts,days,places,devices,companions\n"
           "1,Breakfast,calm,morning,weekday,home;work,,alone\n"
           "2,Late Show,tense,night,weekend,home,tv,partner;friends\n"
           "3,Anything,cozy,,any,,,\n").encode()
    attributes = StructuredAttributes.from_catalog(read_catalog_csv(csv))
    assert attributes.moods.tolist() == [MOODS.index("calm"), MOODS.index("tense"),
                                         MOODS.index("cozy")]
    score, facets = attributes.match("morning", "weekday", "work", "tv", ("alone",))
    assert facets == ["daypart", "day", "place", "device", "companions"]
    # item 1: daypart, day, place and companions fit; it needs no device: 4 of 4 facets
    # item 2: only the device fits: 1 of 5; item 3: only "day" (any) applies, and it fits
    np.testing.assert_allclose(score, [1.0, 0.2, 1.0])
    late, _ = attributes.match("night", "weekend", "home", "tv", ("partner", "friends"))
    np.testing.assert_allclose(late, [0.25, 1.0, 1.0])


def test_a_season_named_in_the_tags_fits_its_season_and_half_its_neighbours():
    csv = ("id,title,tags,places\n"
           "1,Lake swim,lake;summer,outdoors\n"
           "2,Fondue,cheese;winter,city\n"
           "3,Pub quiz,quiz,city\n"
           "4,Harvest fair,autumn;summer,outdoors\n").encode()
    attributes = StructuredAttributes.from_catalog(read_catalog_csv(csv))
    november, facets = attributes.match("evening", "weekday", "city", "none", (), "autumn")
    assert facets == ["place", "season"]  # the catalog states no other facet
    # place: 2 and 3 fit; season: summer (1) and winter (2) are autumn's neighbours (0.5), 4 is
    # in season (1), and 3 names no season, so only its place counts
    np.testing.assert_allclose(november, [0.5 / 2, 1.5 / 2, 1 / 1, 1 / 2])
    july, _ = attributes.match("evening", "weekday", "city", "none", (), "summer")
    assert july[0] > november[0] and july[1] < november[1]  # winter is summer's opposite
    untagged = read_catalog_csv(b"id,title,tags\n1,A,quiz\n")
    assert StructuredAttributes.from_catalog(untagged).seasons is None
