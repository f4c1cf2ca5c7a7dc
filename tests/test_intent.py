"""The intent reader: limits, exclusions and soft text, and how the ranking uses them."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from ctxrec import Context
from ctxrec.data.judged_intents import load_judged_intents
from ctxrec.data.scenarios import load_presets
from ctxrec.experiments.intents import evaluate_intents
from ctxrec.rank.intent import IntentReader

ROOT = Path(__file__).resolve().parent.parent

# rankings weigh the situation, which the time of day changes: each test fixes its own
SATURDAY_EVENING = datetime(2026, 11, 21, 19, 30)


@pytest.fixture(scope="module")
def reader(catalog, encoder):
    return IntentReader(catalog, encoder.tokenizer.vocab)


def labels(reading) -> list[str]:
    return [c.label for c in reading.constraints]


def test_negation_excludes_and_leaves_the_excluded_out_of_the_soft_text(reader):
    horror = reader.read("anything but horror, we want a film tonight")
    assert "not: horror" in labels(horror) and "kind: film" in labels(horror)
    assert "horror" not in horror.soft_text and "film" in horror.soft_text
    sad = reader.read("nothing sad please, just something light to watch after work")
    assert "not: melancholic" in labels(sad)
    assert "sad" not in sad.soft_text
    dinner = reader.read("not a restaurant dinner")
    assert labels(dinner) == ["not: restaurant"]  # dinner recipes stay welcome
    weekend = reader.read("no kids this weekend!! a grown-up night out")
    assert "not: kids" in labels(weekend) and "not: weekend" not in labels(weekend)


@pytest.mark.parametrize("text, expected", [
    ("something under 20 minutes", "≤ 20 min"),
    ("nothing longer than an hour", "≤ 1 h"),
    ("happy to spend 3+ hours on one thing", "≥ 3 h"),
    ("at least 90 min please", "≥ 90 min"),
    ("screen-free please", "no screen"),
    ("anything but a screen tonight", "no screen"),
    ("something for the kids that isn't a screen", "no screen"),
    ("a recipe, nothing that takes over an hour", "≤ 1 h"),
    ("something to listen to while cooking", "kind: music or podcast"),
    ("something free to do", "free"),
    ("cheap date night", "cheap"),
    ("indoors on a rainy afternoon", "indoors"),
    ("a series", "kind: series"),
    ("a podcast", "kind: podcast"),
    ("something to read", "kind: book or longread"),
    ("a café on my way to the office", "kind: cafe"),
    ("quick healthy lunch I can pack for work", "kind: recipe"),
    ("free things to do in the city", "out"),
    ("a night in town", "out"),
    ("cheap breakfast out with the kids", "out"),
    ("cheap food nearby?", "out"),
    ("lunch with colleagues somewhere not too pricey", "cheap"),
    ("with the kids", "with kids"),
    ("something to get me going, 20 min tops", "≤ 20 min"),
    ("got 10 minutes before I leave the house", "≤ 10 min"),
    ("a lunch break that doesn't involve a screen", "no screen"),
    ("a short read for the bus", "kind: book or longread"),
    ("a short read for the bus", "on the way"),
    ("something on my phone", "on phone"),
    ("a long movie, I have all evening", "≥ 2 h"),
    ("game night, there'll be 6 of us", "with friends"),
    ("game night, there'll be 6 of us", "kind: game"),
    ("a grown-up night out", "out"),
    ("something for the plane", "on board"),
    ("something for the plane", "not: places to go"),
    ("stuck in a hotel for work", "travelling"),
    ("on a train with my 5yo", "with kids"),
    ("a book for my 10 year old", "with kids"),
    ("a film with my 15-year-old", "with teens"),
    ("need to get them out of the house", "out"),
    ("something the whole family can watch", "kind: film or series"),
    ("bedtime for the little one", "at home"),
    ("a quick vegetarian dinner", "vegetarian"),
    ("dinner idea, nothing with meat", "vegetarian"),
    ("something on my phone for the bus, no sound", "no sound"),
    ("forgot my headphones", "no sound"),
    ("something to do with my teenage son", "with teens"),
    ("4 friends coming over", "at home"),
    ("screen-free wind-down before bed", "at home"),
    ("a quick bite near the office, under 15 euros", "cheap"),
    ("dinner for two, £20 or less", "cheap"),
    ("a date idea that doesn't cost anything", "free"),
    ("something I can read in one sitting", "kind: book or longread"),
    ("what can I cook with leftover rice", "kind: recipe"),
    ("an hour to kill at the airport", "≤ 1 h"),
    ("a movie, nothing scary for the little one", "with kids"),
    ("something outdoorsy but not too strenuous", "outdoors"),
    ("what should we watch, my wife hates horror", "not: horror"),
    ("what should we watch, my wife hates horror", "kind: film or series"),
    ("something healthy for lunch that I can make in 10 minutes", "≤ 10 min"),
    ("a light read for the beach", "kind: book or longread"),
    ("I have two hours before my train", "≤ 2 h"),
    ("too tired to go out", "at home"),
    ("we don't want to go out tonight", "at home"),
    ("I don't want to spend more than 10 pounds", "cheap"),
])
def test_limits_are_read(reader, text, expected):
    assert expected in labels(reader.read(text))


def test_no_sound_rules_out_what_needs_it_and_a_teenager_is_not_a_toddler(reader, catalog):
    silent = next(c for c in reader.read("no sound please").constraints if c.key == "no-sound")
    broken = silent.breaks(catalog)
    audible = catalog.items["category"].isin(["music", "podcast", "film", "series"]).to_numpy()
    assert broken.any() and (broken == audible).all()
    teen = labels(reader.read("a film with my teenage son"))
    assert "with teens" in teen and "with kids" not in teen
    teens = next(c for c in reader.read("with my teenage son").constraints)
    kept = ~teens.breaks(catalog)
    companions = catalog.items["companions"]
    assert all({"family", "friends"} & set(companions.iloc[i]) for i in np.flatnonzero(kept)
               if len(companions.iloc[i]))


def test_on_board_rules_out_the_places_one_travels_to_but_a_hotel_does_not(reader, catalog):
    board = next(c for c in reader.read("on a train with my 5yo").constraints
                 if c.key == "on-board-kinds")
    broken = board.breaks(catalog)
    away = catalog.items["category"].isin(["daytrip", "event", "restaurant", "fitness",
                                           "cafe"]).to_numpy()
    assert broken.any() and (broken == away).all()
    assert all(c.key != "on-board-kinds" for c in reader.read("stuck in a hotel").constraints)
    assert "with kids" not in labels(reader.read("with my mum, she's 75"))
    # a night out is in town or outdoors, not something used while travelling
    out = next(c for c in reader.read("date night out").constraints if c.key == "out")
    places = catalog.items["places"]
    assert all(out.breaks(catalog)[i] == (not {"city", "outdoors"} & set(p))
               for i, p in enumerate(places) if p)


def test_a_device_asked_for_rules_out_items_used_on_no_device(reader, catalog):
    phone = next(c for c in reader.read("something on my phone").constraints
                 if c.kind == "device")
    broken = phone.breaks(catalog)
    devices = catalog.items["devices"]
    for position, listed in enumerate(devices):
        assert broken[position] == ("phone" not in listed)  # a café or a walk has no device
    assert (devices.map(len) == 0).sum() > 0  # the built-in catalog has such items


def test_the_longest_phrase_names_the_kind_and_hints_are_activities(reader):
    assert labels(reader.read("late drinks and live music")) == ["kind: event"]
    # wanting to learn points at podcasts, articles and books; food is then a topic, not a meal
    learning = "kind: book or longread or podcast"
    assert labels(reader.read("teach me something about food")) == [learning]
    assert labels(reader.read("I want to learn something over lunch")) == [learning, "midday"]
    assert labels(reader.read("something about food")) == []
    assert "kind: cafe or recipe or restaurant" in labels(reader.read("a quick lunch"))


def test_tags_and_moods_asked_for_are_preferences_but_not_when_negated(reader):
    reading = reader.read("a comedy with some jazz, nothing scary")
    liked = {c.label for c in reading.preferences}
    assert {"likes: comedy", "likes: jazz", "likes: funny"} <= liked
    assert "not: tense" in labels(reading) and "likes: tense" not in liked
    assert reader.read("something uplifting").preferences[0].label == "likes: cheerful"
    assert "likes: calm" in {c.label for c in reader.read("a mellow evening").preferences}
    assert "likes: cheerful" in {c.label for c in reader.read("feeling down, cheer me up").preferences}
    assert "likes: horror" not in {c.label for c in reader.read("my wife hates horror").preferences}
    assert "likes: calm" in {c.label for c in reader.read("something calming").preferences}
    # a tag that names a kind or a situation is read as that limit, not again as a preference
    assert reader.read("a podcast for the morning").preferences == ()
    assert reading.without(["like-tag-jazz"]).preferences == tuple(
        c for c in reading.preferences if c.key != "like-tag-jazz")


def test_a_degree_is_neither_an_exclusion_nor_a_preference(reader):
    spooky = reader.read("something spooky but not too scary")
    assert labels(spooky) == [] and "likes: spooky" in {c.label for c in spooky.preferences}
    assert "not: tense" in labels(reader.read("nothing scary"))
    assert labels(reader.read("not that keen on horror")) == ["not: horror"]
    assert labels(reader.read("somewhere quiet at home")) == ["at home"]  # not also out
    assert "out" not in labels(reader.read("a podcast about somewhere far away"))
    assert "not: melancholic" in labels(reader.read("nothing that feels sad"))
    assert "likes: cheerful" not in {c.label for c in
                                     reader.read("happy to spend 3+ hours on it").preferences}


def test_a_negated_sort_of_thing_rules_out_that_sort_not_the_whole_kind(reader):
    assert labels(reader.read("not another cooking show")) == ["not: cooking"]
    horror = labels(reader.read("anything but a horror film"))
    assert "not: horror" in horror and "kind: film" in horror and "not: film" not in horror
    assert labels(reader.read("no more films")) == ["not: film"]
    # a horror-comedy and folk horror are horror too
    assert {"horror", "horror-comedy", "folk-horror"} <= set(
        reader.read("anything but horror").constraints[0].values)
    assert labels(reader.read("not a restaurant dinner")) == ["not: restaurant"]
    assert labels(reader.read("I don't want another true crime podcast")) == [
        "not: true-crime", "kind: podcast"]
    assert labels(reader.read("a playlist but no songs with lyrics")) == ["kind: music"]
    assert labels(reader.read("not in the mood for horror")) == ["not: horror"]
    # a ruled-out kind in one clause leaves the tags of the next one read
    assert labels(reader.read("no films, nothing with dragons")) == ["not: film", "not: dragons"]


def test_what_a_cafe_sells_is_a_preference_and_plurals_name_their_tag(reader):
    coffee = reader.read("sunday reset: slow morning, coffee, nothing planned")
    assert all(c.kind != "kind" for c in coffee.constraints)
    assert "likes: cafe" in {c.label for c in coffee.preferences}
    liked = {c.label for c in reader.read("nature documentaries").preferences}
    assert {"likes: nature", "likes: documentary"} <= liked
    assert "likes: news" not in {c.label for c in reader.read("something new").preferences}


def test_a_teenager_gets_no_toddler_songs(recommender, catalog):
    ranking = recommender.recommend(Context(intent="something to do with my teenage son",
                                            place="home", companions=("family",),
                                            when=SATURDAY_EVENING), k=10)
    assert "not: for young kids" in labels(ranking.understood)
    for item in ranking.table["item_id"]:
        assert not {"kids", "toddlers", "preschool"} & set(catalog.record(item)["tags"])


def test_a_diet_limits_food_only_and_an_untagged_dish_is_not_known_to_be_meat_free(reader,
                                                                                   catalog):
    reading = reader.read("a quick vegetarian dinner to cook tonight")
    diet = next(c for c in reading.constraints if c.kind == "diet")
    assert "likes: vegetarian" not in {c.label for c in reading.preferences}
    broken = diet.breaks(catalog)
    for position, row in enumerate(catalog.items.itertuples()):
        food = row.category in ("recipe", "restaurant", "cafe")
        assert broken[position] == (food and not {"vegetarian", "vegan"} & set(row.tags))


def test_a_preference_lifts_the_items_that_carry_it_and_the_card_says_so(recommender, catalog):
    from ctxrec.rank.explain import limits_note

    # a fixed evening: the default time is now, and at night other items fit the situation
    context = Context(intent="something with jazz for the evening",
                      when=datetime(2026, 11, 20, 19, 30))
    ranking = recommender.recommend(context, k=10)
    jazz = [i for i in catalog.items["id"] if "jazz" in catalog.record(i)["tags"]]
    plain = recommender.recommend(context, k=10, dropped=["like-tag-jazz"])
    assert sum(i in jazz for i in ranking.table["item_id"]) > \
        sum(i in jazz for i in plain.table["item_id"])
    first = next(r for r, i in enumerate(ranking.table["item_id"]) if i in jazz)
    assert ranking.table["liked"].iloc[first] == ("likes: jazz",)
    assert ":blue[Matches:] jazz" in limits_note(ranking, first)
    assert "liked" not in plain.table


@pytest.mark.parametrize("text, unexpected", [
    ("a restaurant, under 80 euros for the two of us", "cheap"),  # a ceiling that is not cheap
    ("rainy day, need ideas for two toddlers", "with partner"),
    ("a walk for two hours", "with partner"),
    ("something under 20 minutes", "cheap"),
    ("we've got the whole day free, the kids are 7 and 9", "free"),
    ("I'm free tonight, what's on?", "free"),
    ("too tired to go out", "out"),
])
def test_what_only_looks_like_a_limit_is_not_read_as_one(reader, text, unexpected):
    assert unexpected not in labels(reader.read(text))


def test_free_time_and_gluten_free_are_not_a_price(reader):
    assert labels(reader.read("a free afternoon and a gluten-free cake")) == []
    rain = reader.read("comfort food, it's pouring outside")
    assert "indoors" in labels(rain) and "outdoors" not in labels(rain)


def test_slips_are_read_as_the_words_meant_only_when_the_vocabulary_lacks_them(catalog, reader):
    assert "kind: music or podcast" in labels(reader.read("somthing calm to lisen to"))
    assert labels(IntentReader(catalog).read("somthing calm to lisen to")) == []  # no vocabulary
    assert reader.read("a serious documentary").soft_text == "a serious documentary"
    # the plural-optional words of the rules and the catalog's own tags are spellings too
    assert {"kind: podcast", "on the way"} <= set(labels(reader.read("podcats for my comute")))
    assert "not: horror" in labels(reader.read("no horor pls"))
    assert "kind: series" in labels(reader.read("an epsiode of something funny"))
    # two letters swapped, and the shorthand of chat
    assert {"kind: film", "with kids", "evening or night"} <= set(
        labels(reader.read("a moive for tonite, with the kidz pls")))
    assert "no screen" in labels(reader.read("smth 2nite w/o screens"))


@pytest.mark.parametrize("text", ["x" * 20_000, "¿algo para ver esta noche? 🎬🍿", "", "   ",
                                  "NOT NOT NOT", "under 0 minutes", "no", "!!!"])
def test_any_text_gives_a_reading(reader, text):
    reading = reader.read(text)
    assert isinstance(reading.soft_text, str)
    if len(text) > 2_000:
        assert reading.notes


def test_a_broken_limit_ranks_below_every_kept_one_and_the_breakdown_still_sums(recommender,
                                                                               catalog):
    context = Context(intent="something for the kids under 60 minutes", device="tv",
                      when=SATURDAY_EVENING)
    ranking = recommender.recommend(context, k=len(catalog), exclude_seen=False)
    table = ranking.table
    minutes = table["item_id"].map(lambda i: catalog.record(i)["duration_min"])
    broken = table["broken"].map(len) > 0
    assert broken.any() and (~broken).any()
    assert broken.to_numpy().argmax() == (~broken).sum()  # all kept ones come first
    assert (minutes[~broken] <= 60).all()
    parts = table[[c for c in ("intent", "history", "sequence", "context", "mood", "popularity",
                               "constraints")]].sum(axis=1)
    np.testing.assert_allclose(parts, table["score"], rtol=1e-5, atol=1e-4)
    assert any("break a limit" in note for note in ranking.notes)


def test_breaking_what_the_person_named_costs_more_than_breaking_a_listed_situation(
        recommender, catalog):
    # a series not listed for lunch ranks above music, and both below every item that fits
    context = Context(intent="something to watch on my phone during lunch",
                      when=datetime(2026, 11, 24, 12, 30))
    table = recommender.recommend(context, k=len(catalog), exclude_seen=False).table
    kind_only = [r for r, b in enumerate(table["broken"]) if b == ("kind: film or series",)]
    time_only = [r for r, b in enumerate(table["broken"]) if b == ("midday",)]
    kept = [r for r, b in enumerate(table["broken"]) if not b]
    assert kind_only and time_only and kept
    assert max(kept) < min(time_only) and max(time_only) < min(kind_only)
    np.testing.assert_array_equal(table["raw_constraints"].iloc[time_only], -0.5)


def test_a_dropped_limit_lets_its_items_back(recommender):
    context = Context(intent="a podcast under 30 minutes", when=datetime(2026, 11, 24, 8, 0))
    strict = recommender.recommend(context, k=5)  # the catalog has six such podcasts
    assert all(not b for b in strict.table["broken"])
    key = next(c.key for c in strict.understood.constraints if c.kind == "duration")
    loose = recommender.recommend(context, k=5, dropped=[key])
    assert [c.key for c in loose.understood.constraints if c.kind == "duration"] == []
    assert list(loose.table["item_id"]) != list(strict.table["item_id"])
    off = recommender.recommend(context, k=5, read_intent=False)
    assert off.understood is None and "broken" not in off.table


def test_every_preset_top_five_keeps_its_stated_limits(recommender):
    for scenario in load_presets():
        ranking = recommender.recommend(scenario.context, k=5)
        if ranking.understood is None:
            continue
        assert all(not b for b in ranking.table["broken"]), (scenario.name,
                                                            list(ranking.table["broken"]))


def test_judged_intents_load_and_a_run_reports_both_pipelines(recommender, catalog):
    judged = load_judged_intents(catalog=catalog)
    assert len(judged) >= 100
    assert all(j.relevant and max(j.relevant.values()) == 2 for j in judged)
    run = evaluate_intents(recommender, judged[:12], k=10)
    assert set(run["results"]) == {"with the intent reader", "without the intent reader"}
    for result in run["results"].values():
        assert 0 <= result["NDCG@10"] <= 1 and 0 <= result["P@5"] <= 1
        assert result["by_constraint"]
    assert 0 < run["p_ndcg_reader_vs_none"] <= 1


def test_a_bad_judged_file_names_its_line(tmp_path, catalog):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "intent": "x", "relevant": {"film-01": 2}}\n'
                    '{"id": "b", "intent": "y", "relevant": {"no-such-item": 2}}\n')
    with pytest.raises(ValueError, match="line 2.*no-such-item"):
        load_judged_intents(path, catalog)


def test_evaluate_intents_command_prints_json(tmp_path):
    path = tmp_path / "three.jsonl"
    lines = (ROOT / "assets" / "intents.jsonl").read_text().splitlines()[:3]
    path.write_text("\n".join(lines) + "\n")
    out = subprocess.run([sys.executable, "-m", "ctxrec", "evaluate-intents", "--intents",
                          str(path), "--out", str(tmp_path / "run.json")],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr
    printed = json.loads(out.stdout)
    assert printed["intents"] == 3 and "per_intent" not in printed
    assert "per_intent" in json.loads((tmp_path / "run.json").read_text())


def test_recommend_page_shows_chips_and_a_dropped_chip_reranks():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.text_area(key="ctx_intent").input("a podcast under 30 minutes").run()
    assert not at.exception
    chips = next(g for g in at.button_group if (g.key or "").startswith("rec_chips_"))
    assert set(chips.value) == {"kind-podcast", "duration<=30"}
    notes = [m.value for m in at.markdown if "Keeps:" in m.value or "Breaks:" in m.value]
    breaks = ["Breaks:" in n for n in notes]
    assert notes and not breaks[0] and breaks == sorted(breaks)  # the six kept ones come first
    cards = [m.value for m in at.markdown if m.value.startswith("**")]
    assert all("podcast" in c for c in cards[:6])
    chips.unselect("kind-podcast").run()
    assert not at.exception
    chips = next(g for g in at.button_group if (g.key or "").startswith("rec_chips_"))
    assert set(chips.value) == {"duration<=30"}
    cards = [m.value for m in at.markdown if m.value.startswith("**")]
    assert any("podcast" not in c for c in cards)  # other kinds under 30 minutes come in
    assert not any("Breaks:" in m.value for m in at.markdown)


def test_the_evaluate_page_loads_intent_results_and_refuses_other_shapes(tmp_path, monkeypatch,
                                                                          recommender, catalog):
    from streamlit.testing.v1 import AppTest

    from ctxrec.experiments.results import save_results

    monkeypatch.setenv("CTXREC_HOME", str(tmp_path / "home"))
    results = tmp_path / "home" / "results"
    intents = save_results(evaluate_intents(recommender, load_judged_intents(catalog=catalog)[:4]),
                           results)
    odd = results / "odd.json"
    odd.write_text(json.dumps({"k": 10, "results": "not a list"}))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.switch_page("app_pages/evaluate.py").run()
    at.selectbox(key="ev_file").set_value(intents).run()
    at.button(key="ev_load").click().run()
    assert not at.exception
    assert any(h.value.startswith("Judged intents · 4 intents") for h in at.subheader)
    at.selectbox(key="ev_file").set_value(odd).run()
    at.button(key="ev_load").click().run()
    assert not at.exception
    assert any("not a ctxrec results file" in e.value for e in at.error)


def test_column_values_index_every_way_a_catalog_writes_a_cell():
    import pandas as pd

    from ctxrec.data.catalog import Catalog
    from ctxrec.rank.intent import ColumnValues

    cells = [("jazz", "calm"), "jazz", "", None, (), ["calm", "calm", "loud", 7],
             float("nan"), ("loud", "7")]
    items = pd.DataFrame({"id": [str(i) for i in range(len(cells))], "title": "t",
                          "tags": pd.Series(cells, dtype=object)})
    items.index = range(10, 18)  # positions, not labels, are what the index holds
    values = ColumnValues(Catalog(items=items, name="cells"))
    held = values("tags")
    assert sorted(held) == ["7", "calm", "jazz", "loud"]
    assert held["jazz"].tolist() == [0, 1] and held["loud"].tolist() == [5, 7]
    assert held["7"].tolist() == [5, 7]  # a number and its text are one value
    assert values.stated("tags").tolist() == [True, True, False, False, False, True, False, True]
    assert values.holding("tags", ("calm", "absent")).tolist() == \
        [True, False, False, False, False, True, False, False]
    assert not values.holding("mood", ("calm",)).any() and not values.stated("mood").any()
