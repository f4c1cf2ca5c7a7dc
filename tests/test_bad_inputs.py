"""The catalogue of bad inputs: each gets a clear message, and nothing crashes."""

import json
from dataclasses import replace
from datetime import datetime

import numpy as np
import pytest

from ctxrec import (CatalogError, Context, HistoryEntry, ModelLoadError, load_encoder,
                    read_catalog_csv)
from ctxrec.data.context import context_from_params
from ctxrec.data.scenarios import ScenarioError, scenarios_from_json

HEADER = b"id,title,mood,duration_min\n"

CATALOGS = {
    "empty file": (b"", "empty"),
    "not UTF-8": ("id,title\n1,Caf\xe9 cr\xe8me\n".encode("cp1252"), "not UTF-8"),
    "missing title column": (b"id,label\n1,x\n", "'title': column is missing"),
    "header only": (b"id,title\n", "no item rows"),
    "200 MB": (b"id,title\n" + b"x" * (200 * 2**20), "limit is 50 MB"),
    "a million rows": (b"id,title\n" + b"i,t\n" * 1_000_000, "more than 200,000 rows"),
    "all rows broken": (HEADER + b"1,,calm,10\n2,B,sleepy,10\n", "field 'title': is empty"),
}


@pytest.mark.parametrize("raw, message", CATALOGS.values(), ids=CATALOGS.keys())
def test_unusable_catalogs(raw, message):
    with pytest.raises(CatalogError, match=message):
        read_catalog_csv(raw)


ROWS = {
    "duplicate ids": (b"1,A,calm,10\n1,B,calm,10\n", (3, "id")),
    "unknown mood": (b"1,A,calm,10\n2,B,sleepy,10\n", (3, "mood")),
    "negative duration": (b"1,A,calm,10\n2,B,calm,-5\n", (3, "duration_min")),
    "too few cells": (b"1,A,calm,10\n2,B\n", (3, "row")),
}


@pytest.mark.parametrize("rows, where", ROWS.values(), ids=ROWS.keys())
def test_bad_rows_are_skipped_and_named(rows, where):
    catalog = read_catalog_csv(HEADER + rows)
    assert len(catalog) == 1 and [(p.line, p.field) for p in catalog.problems] == [where]


def _scenario(**context) -> str:
    base = {"when": "2026-11-21T19:30", "place": "home", "device": "tv"}
    return json.dumps({"scenarios": [{"name": "s", "story": "", "context": {**base, **context}}]})


SCENARIOS = {
    "not JSON": ("{name: s", "not valid JSON"),
    "wrong top level": ("[1, 2]", "expected an object"),
    "name is a number": ('{"scenarios": [{"name": 5, "context": {}}]}', "name: expected text"),
    "context is a list": ('{"scenarios": [{"name": "s", "context": []}]}', "'context' must be"),
    "when is a number": (_scenario(when=1700000000), "expected a date and time"),
    "when is not a date": (_scenario(when="next friday"), "not a date and time"),
    "absurd date": (_scenario(when="3026-01-01T10:00"), "outside 1900–2100"),
    "latitude out of range": (_scenario(lat=123.0), "lat: 123.0 is outside"),
    "longitude out of range": (_scenario(lon=-200), "lon: -200 is outside"),
    "latitude as text": (_scenario(lat="north"), "lat: expected a number"),
    "unknown place": (_scenario(place="moon"), "'moon' is not one of"),
    "companions not a list": (_scenario(companions="friends"), "expected a list"),
    "feedback out of range": (_scenario(history=[{"item_id": "film-01", "feedback": 3}]),
                              "expected -1, 0 or 1"),
    "history item without id": (_scenario(history=[{"feedback": 1}]), "text 'item_id'"),
}


@pytest.mark.parametrize("raw, message", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_bad_scenario_files(raw, message):
    with pytest.raises(ScenarioError, match=message):
        scenarios_from_json(raw)


def test_scenario_files_that_are_too_big_or_not_text():
    with pytest.raises(ScenarioError, match="at most 2 MB"):
        scenarios_from_json(b" " * (3 * 2**20))
    with pytest.raises(ScenarioError, match="not UTF-8"):
        scenarios_from_json(b"\xff\xfe\x00{")


def test_unknown_items_in_a_scenario_are_reported_not_fatal(catalog, recommender):
    scenario = scenarios_from_json(_scenario(history=["film-01", "no-such-item"]))[0]
    assert scenario.unknown_items(catalog) == ["no-such-item"]
    ranking = recommender.recommend(scenario.context, k=5)
    assert len(ranking.table) == 5 and "no-such-item" in " ".join(ranking.notes)


INTENTS = {
    "only emoji": "🍕🎬🎉🍿",
    "mixed scripts": "something cozy 映画 ужин لطيف ce soir",
    "100k characters": "a quiet film by the sea " * 4200,
    "whitespace only": " \n\t  ",
    "control characters": "funny\x00film\x07\x1b[31m for kids",
    "markup": "<script>alert(1)</script> **bold** | table |",
}


@pytest.mark.parametrize("intent", INTENTS.values(), ids=INTENTS.keys())
def test_odd_intents_still_rank(recommender, intent):
    ctx = Context(when=datetime(2026, 11, 21, 19, 30), intent=intent,
                  history=(HistoryEntry("film-01", 1),))
    ranking = recommender.recommend(ctx, k=5)
    assert len(ranking.table) == 5 and np.isfinite(ranking.table["score"]).all()
    if len(intent) > 50_000:
        assert any("tokens long" in n for n in ranking.notes)
    if intent.strip():  # the intent is read: it scores and weighs
        assert ranking.weights["intent"] > 0 and np.isfinite(ranking.table["raw_intent"]).all()
    else:  # blank is no intent at all: the same ranking as an empty box
        blank = recommender.recommend(replace(ctx, intent=""), k=5)
        assert ranking.weights["intent"] == 0
        assert ranking.table["item_id"].tolist() == blank.table["item_id"].tolist()


def test_bad_link_parameters_are_named():
    _, problems = context_from_params({"when": "soon", "device": "toaster"})
    assert len(problems) == 2 and "toaster" in problems[1]


def test_a_model_that_needs_remote_code_is_refused_without_running_it(tmp_path, no_network):
    marker = tmp_path / "ran.txt"
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "sneaky", "architectures": ["SneakyModel"],
        "auto_map": {"AutoConfig": "configuration_sneaky.SneakyConfig",
                     "AutoModel": "modeling_sneaky.SneakyModel"}}))
    code = f"open({str(marker)!r}, 'w').write('ran')\n"
    (tmp_path / "configuration_sneaky.py").write_text(code)
    (tmp_path / "modeling_sneaky.py").write_text(code)
    with pytest.raises(ModelLoadError, match="needs to run its own code"):
        load_encoder(str(tmp_path))
    assert not marker.exists()


class _Payload:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_weights_are_never_unpickled(tmp_path, encoder, no_network):
    import pickle

    from transformers import BertConfig

    BertConfig(vocab_size=encoder.tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
               num_attention_heads=2, intermediate_size=64).save_pretrained(tmp_path)
    encoder.tokenizer.save_pretrained(tmp_path)
    marker = tmp_path / "unpickled.txt"
    # protocol 2, the one torch.load's safe unpickler reads, so the payload itself is refused
    (tmp_path / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(str(marker)), protocol=2))
    with pytest.raises(ModelLoadError, match="UnpicklingError: Weights only load failed") as caught:
        load_encoder(str(tmp_path))
    assert "io.open was not an allowed global" in str(caught.value.__cause__)
    assert not marker.exists()
