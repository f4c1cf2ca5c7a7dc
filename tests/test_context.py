from datetime import datetime

import pytest

from ctxrec import Context, HistoryEntry
from ctxrec.data.catalog import COMPANIONS, PLACES
from ctxrec.data.context import (COMPANION_WORDS, DEVICE_CHOICES, DEVICE_WORDS, PLACE_WORDS,
                                 daypart, season)


@pytest.mark.parametrize("hour, expected", [(4, "night"), (5, "morning"), (10, "morning"),
                                            (11, "midday"), (14, "afternoon"), (17, "evening"),
                                            (20, "evening"), (21, "night"), (0, "night")])
def test_daypart_boundaries(hour, expected):
    assert daypart(hour) == expected


def test_season_and_hemisphere():
    assert season(1) == "winter" and season(4) == "spring" and season(7) == "summer"
    assert season(10) == "autumn" and season(12) == "winter"
    assert season(7, southern=True) == "winter"
    sydney = Context(when=datetime(2026, 1, 10, 12), lat=-33.9, lon=151.2)
    assert sydney.season == "summer"


def test_weekday_and_weekend():
    assert Context(when=datetime(2026, 11, 23, 8)).day_type == "weekday"  # a Monday
    assert Context(when=datetime(2026, 11, 22, 8)).day_type == "weekend"  # a Sunday


def test_describe_puts_the_whole_context_into_words():
    ctx = Context(history=(HistoryEntry("a", 1), HistoryEntry("b", -1)),
                  when=datetime(2026, 11, 21, 19, 30), place="home", city="Porto", device="tv",
                  companions=("family", "kids"), intent="something funny")
    text = ctx.describe(titles={"a": "Alpha Film", "b": "Beta Book"})
    assert "Saturday evening (19:30) in autumn, on a weekend, at home in Porto" in text
    assert "in front of a TV, with family and with children." in text
    assert "Recently enjoyed: Alpha Film." in text and "Did not enjoy: Beta Book." in text
    assert text.endswith("Wants now: something funny")
    assert "Wants" not in ctx.describe_situation() and "Alpha" not in ctx.describe_situation()


def test_every_vocabulary_value_has_words():
    assert set(PLACE_WORDS) == set(PLACES) and set(COMPANION_WORDS) == set(COMPANIONS)
    assert set(DEVICE_WORDS) == set(DEVICE_CHOICES)


@pytest.mark.parametrize("kwargs, fragment", [({"place": "moon"}, "place"),
                                              ({"device": "fax"}, "device"),
                                              ({"companions": ("dog",)}, "companions"),
                                              ({"lat": 91.0}, "latitude"),
                                              ({"lon": -181.0}, "longitude")])
def test_invalid_fields_are_refused_with_the_reason(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        Context(**kwargs)


def test_history_signal_from_feedback_and_rating():
    assert HistoryEntry("x", 1).signal == 1.0 and HistoryEntry("x", -1).signal == -1.0
    assert HistoryEntry("x", 0).signal == 0.0
    assert HistoryEntry("x", rating=5).signal == 1.0 and HistoryEntry("x", rating=1).signal == -1.0
    assert HistoryEntry("x", rating=4).signal == 0.5 and HistoryEntry("x", rating=3).signal == 0.0


def test_with_feedback_replaces_an_earlier_judgement():
    ctx = Context(history=(HistoryEntry("a", 1), HistoryEntry("b", 1)))
    after = ctx.with_feedback("a", -1)
    assert [(h.item_id, h.feedback) for h in after.history] == [("b", 1), ("a", -1)]
    assert ctx.history[0].feedback == 1  # the original is unchanged


def test_query_parameters_round_trip():
    from ctxrec.data.context import context_from_params, context_to_params

    ctx = Context(history=(HistoryEntry("a", 1), HistoryEntry("b", -1)),
                  when=datetime(2026, 11, 21, 19, 30), place="city", city="Porto", device="tv",
                  companions=("friends",), intent="tapas & wine, then music")
    back, problems = context_from_params(context_to_params(ctx))
    assert back == ctx and problems == []


def test_bad_query_parameters_are_skipped_with_reasons():
    from ctxrec.data.context import context_from_params

    ctx, problems = context_from_params({"when": "yesterday-ish", "place": "moon",
                                         "with": "friends,dog", "device": "tv"})
    assert ctx.place == "home" and ctx.device == "tv" and ctx.companions == ("friends",)
    assert len(problems) == 3 and any("moon" in p for p in problems)
    assert any("yesterday-ish" in p for p in problems) and any("dog" in p for p in problems)


def test_fields_a_log_names_are_put_into_words_when_given():
    from ctxrec.data.context import Context

    text = Context(extra=(("weather", "snow"), ("place", ""))).describe_situation()
    assert text.endswith("; weather snow.") and "place" not in text.split(";")[1]
