"""The context model: its schema, its inputs, what it learns from a log, and its commands."""

import json
from dataclasses import replace
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT

from ctxrec import read_catalog_csv
from ctxrec.data.context import Context
from ctxrec.data.context_fields import ContextSchema, context_fields, event_fields, key_fields
from ctxrec.data.context_log import ColumnMap, read_context_log
from ctxrec.evaluation.context_split import CONTEXT_PROTOCOLS, context_split, held_out_events
from ctxrec.evaluation.protocol import evaluate
from ctxrec.evaluation.statistics import paired_test
from ctxrec.sequence.config import SequenceConfig, TrainConfig
from ctxrec.sequence.context_train import (ContextRanker, context_input, log_data,
                                           train_context_model)
from ctxrec.sequence.train import load_checkpoint

N_ITEMS, WEATHERS = 40, ("rain", "sun", "snow", "fog")


def _catalog():
    # the titles say nothing of weather: only the log can teach it
    return read_catalog_csv(("id,title\n" + "".join(f"a{j},Item {j}\n" for j in range(N_ITEMS)))
                            .encode())


def _planted_log(path, n_users=150, events=12, seed=0):
    """Each weather has its own ten items; an event uses one of its weather's items, at random.
    The model is never told this rule: it sees weather as a column like any other, and a
    place column that carries no signal."""
    rng = np.random.default_rng(seed)
    rows = ["user\titem\tweather\tplace\tt"]
    for u in range(n_users):
        for step in range(events):
            weather = int(rng.integers(len(WEATHERS)))
            item = weather * 10 + int(rng.integers(10))
            place = ("home", "work")[int(rng.integers(2))]
            when = 1_700_000_000 + u * 10_000 + step * 600
            rows.append(f"u{u}\ta{item}\t{WEATHERS[weather]}\t{place}\t{when}")
    path.write_text("\n".join(rows) + "\n")
    return path


MAP = ColumnMap(user="user", item="item", place="place", timestamp="t",
                extra=(("weather", "weather"),))
SMALL = dict(item_repr="id", hidden=32, layers=1, heads=2, dropout=0.1, max_len=12)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("planted")
    catalog = _catalog()
    events = read_context_log(_planted_log(folder / "events.tsv"), MAP, catalog)
    return folder, catalog, events


@pytest.fixture(scope="module")
def trained(planted):
    _, catalog, events = planted
    data = log_data(events, catalog, "leave-last-out", seed=0)
    config = SequenceConfig(n_items=len(catalog), context="gate", **SMALL)
    return train_context_model(data, catalog, config,
                               TrainConfig(epochs=25, patience=25, lr=5e-3, batch_size=32,
                                           average=0.0, seed=0))


def test_event_fields_read_the_time_in_utc_and_a_column_wins_over_it():
    fields = event_fields("place=home|weekday=holiday|daypart=evening|day=weekend",
                          1_700_000_000.0)  # Tuesday 14 November 2023, 22:13 UTC
    assert fields["hour"] == "22" and fields["daypart"] == "night"  # the key's is replaced
    assert fields["weekday"] == "holiday"  # a mapped column beats the time field
    assert fields["season"] == "autumn" and fields["place"] == "home" and "day" not in fields
    assert event_fields("place=home", None) == {"place": "home"}
    edited = context_fields(Context(place="work", companions=("friends",),
                                    extra=(("weather", "rain"),)))
    assert edited["place"] == "work" and edited["companions"] == "friends"
    assert edited["weather"] == "rain" and edited["hour"].isdigit()


def test_schema_codes_unknown_and_unseen_values_as_zero():
    schema = ContextSchema.fit([{"weather": "rain", "place": "home"}, {"weather": "rain"},
                                {"weather": "sun", "place": ""}])
    assert schema.fields == ("place", "weather") and schema.sizes == (2, 3)
    assert schema.codes({"weather": "rain", "place": "home"}).tolist() == [1, 1]
    assert schema.codes({"weather": "hail"}).tolist() == [0, 0]
    assert schema.codes({"weather": "sun", "place": "home"}, blind=["place"]).tolist() == [0, 2]
    assert ContextSchema.from_dict(json.loads(json.dumps(schema.to_dict()))) == schema
    with pytest.raises(ValueError, match="damaged"):
        ContextSchema.from_dict({"fields": ["x"]})
    # a column named like a time field (STS codes its weekday as a number) is a column
    mixed = ContextSchema.fit([{"weekday": "3", "hour": "07"}], columns={"weekday"})
    assert mixed.from_time == ("hour",)
    assert ContextSchema.from_dict(mixed.to_dict()) == mixed


def test_training_leaves_out_every_event_evaluation_holds_out(planted):
    _, catalog, events = planted
    data = log_data(events, catalog, "leave-last-out", seed=0)
    trained_on = {int(i) - 1 for s in data.sequences.values() for i in s}
    assert data.validation.valid and data.held_out > 0
    for protocol in CONTEXT_PROTOCOLS:
        for user, (chosen, _) in held_out_events(events, catalog, protocol, 0, True).items():
            if chosen is None:
                continue
            assert chosen not in trained_on
            # no later use of the held-out item by that user is trained on either
            later = [i for i in trained_on if events.users[i] == user and
                     events.items[i] == events.items[chosen] and
                     events.timestamps[i] >= events.timestamps[chosen]]
            assert later == []
    with pytest.raises(ValueError, match="no timestamp column"):
        no_time = read_context_log(planted[0] / "events.tsv",
                                   ColumnMap(user="user", item="item", place="place"), catalog)
        log_data(no_time, catalog, "leave-last-out")


def test_a_planted_context_effect_is_learned(trained, planted):
    """Weather decides the item; the model with context must beat itself without it."""
    _, catalog, events = planted
    split = context_split(events, catalog, "repeat", seed=0, by_time=True)
    with_context = evaluate(ContextRanker(trained), split, k=10).per_user["ndcg"].to_numpy()
    unknown = evaluate(ContextRanker(trained, "all"), split, k=10).per_user["ndcg"].to_numpy()
    # ten of forty items fit the weather: knowing it should roughly double NDCG@10
    assert with_context.mean() > 1.5 * unknown.mean()
    assert paired_test(with_context, unknown) < 0.01
    # the signal is weather, not place: blinding place costs little, blinding weather a lot
    no_place = evaluate(ContextRanker(trained, ["place"]), split, k=10).per_user["ndcg"].mean()
    no_weather = evaluate(ContextRanker(trained, ["weather"]), split, k=10).per_user["ndcg"].mean()
    assert no_weather < no_place and no_place > 0.9 * with_context.mean()


def test_a_blinded_field_is_the_same_as_an_unknown_value(trained, planted):
    _, catalog, events = planted
    split = context_split(events, catalog, "repeat", seed=0, by_time=True)
    queries = split.queries("test")[:20]
    blinded = ContextRanker(trained, ["weather"]).scores(queries)
    # the same events, their weather replaced by a value the log never had, or left empty
    for value in ("hail", ""):
        unknown = [replace(q, key=_with_weather(q.key, value),
                           keys=np.array([_with_weather(k, value) for k in q.keys], dtype=object))
                   for q in queries]
        assert np.allclose(ContextRanker(trained).scores(unknown), blinded, atol=1e-5)
    assert not np.allclose(ContextRanker(trained).scores(queries), blinded, atol=1e-3)


def _with_weather(key: str, value: str) -> str:
    fields = {**key_fields(key), "weather": value}
    return "|".join(f"{k}={v}" for k, v in fields.items())


def test_the_schema_and_scores_survive_a_checkpoint(trained, planted, tmp_path):
    _, catalog, events = planted
    folder = trained.save(tmp_path / "model")
    loaded = load_checkpoint(folder)
    assert loaded.schema == trained.schema and loaded.config == trained.config
    split = context_split(events, catalog, "repeat", seed=0, by_time=True)
    queries = split.queries("test")[:10]
    assert np.allclose(ContextRanker(loaded).scores(queries),
                       ContextRanker(trained).scores(queries), atol=1e-5)
    meta = json.loads((folder / "config.json").read_text())
    meta["context_schema"]["vocabularies"]["weather"].append("hail")  # one code too many
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="schema does not match"):
        load_checkpoint(folder)


def test_repeat_scores_follow_counts_and_context(trained, planted):
    """The learned repeat score is non-zero only at an item's latest use, and reads the context:
    an item used twice in the rain counts more for a rainy event than for a sunny one, when the
    model learned that (it may not have); here we check the inputs it reads."""
    _, catalog, events = planted
    split = context_split(events, catalog, "repeat", seed=0, by_time=True)
    query = split.queries("test")[0]
    batch = context_input(trained, [query])
    features, latest = trained.model._repeat_features(batch)
    items = batch.items[0]
    last = features.shape[1] - 1
    used = {int(i) for i in items[items > 0]}
    assert int(latest[0, last].sum()) == len(used)  # one latest use per distinct item
    counts = features[0, last, :, 0][latest[0, last] > 0].expm1().round()
    assert counts.sum().item() == (items > 0).sum().item()


def test_gate_and_tokens_both_train_and_show_attention(planted):
    _, catalog, events = planted
    data = log_data(events, catalog, "random-event", seed=1)
    for entry in ("tokens", "gate"):
        config = SequenceConfig(n_items=len(catalog), context=entry, **SMALL)
        model = train_context_model(data, catalog, config,
                                    TrainConfig(epochs=1, patience=1, batch_size=64, seed=0))
        assert len(model.history) == 1 and np.isfinite(model.history[0].train_loss)
        split = context_split(events, catalog, "repeat", seed=1, by_time=False)
        batch = context_input(model, split.queries("test")[:3])
        _, weights = model.model.encode(batch, keep_weights=True)
        if entry == "tokens":  # the last layer reads the context fields, then the history
            assert weights[-1].shape[-1] == len(data.schema.fields) + SMALL["max_len"]
            assert torch.allclose(weights[-1].sum(-1), torch.ones(()), atol=1e-5)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "ctxrec", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)


def test_train_log_then_evaluate_context_with_the_checkpoint(planted, tmp_path):
    """The commands as the issue spells them, with the packaged text model (hybrid items)."""
    folder, catalog, _ = planted
    (tmp_path / "items.csv").write_text("id,title\n" + "".join(
        f"a{j},Item {j}\n" for j in range(N_ITEMS)))
    common = ["--catalog", str(tmp_path / "items.csv"), "--map", "user=user", "item=item",
              "timestamp=t", "place=place", "--context", "weather=weather"]
    out = _cli("train", "--log", str(folder / "events.tsv"), *common, "--split",
               "leave-last-out", "--seed", "0", "--out", str(tmp_path / "model"), "--epochs",
               "2", "--hidden", "32", "--max-len", "12")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["context_schema"]["fields"][:2] == ["daypart", "hour"]
    assert "weather" in report["context_schema"]["fields"]
    assert set(report["context_schema"]["from_time"]) == {"hour", "daypart", "weekday",
                                                          "weekend", "season"}
    assert "weather" not in report["context_schema"]["from_time"]
    assert set(report["tests"]) == {"repeat", "discovery"}
    assert json.loads((tmp_path / "model" / "config.json").read_text())["model"]["item_repr"] \
        == "hybrid"
    ev = _cli("evaluate-context", "--events", str(folder / "events.tsv"), *common,
              "--checkpoint", str(tmp_path / "model"), "--protocol", "repeat", "--seed", "0",
              "--out", str(tmp_path / "run.json"))
    assert ev.returncode == 0, ev.stderr
    run = json.loads(ev.stdout)
    names = [r["model"] for r in run["results"]]
    assert names[:2] == ["context model", "context model, every field unknown"]
    assert {"popularity", "the user's counts"} <= set(names)
    assert 0 < run["p_ndcg_model_context_vs_unknown"] <= 1
    for row in run["results"]:
        assert row["ndcg_ci95"][0] <= row["NDCG@10"] <= row["ndcg_ci95"][1]
    wrong = _cli("evaluate-context", "--events", str(folder / "events.tsv"), *common,
                 "--checkpoint", str(tmp_path / "model"), "--protocol", "repeat", "--seed", "3")
    assert wrong.returncode == 2 and "evaluate with --seed 0" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_train_on_movielens_with_time_as_context(tiny_movielens, tmp_path):
    out = _cli("train", "--data", str(tiny_movielens), "--context-entry", "tokens",
               "--item-repr", "id", "--epochs", "1", "--max-len", "8", "--hidden", "16",
               "--out", str(tmp_path / "ml"))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert set(report["context_schema"]["fields"]) >= {"hour", "weekday", "season"}
    rows = report["tests"]["leave-last-out"]["results"]
    assert {r["protocol"] for r in rows} == {"full ranking (history not masked)",
                                             "full ranking (history masked)"}
    assert {r["users"] for r in rows} == {40}


def test_the_recommender_shows_the_learned_context_effect(trained, encoder):
    """Attached to the recommender, the model's score splits into the sequence bar (context
    unknown) and the context bar (the learned effect); rain brings the rain items up."""
    from ctxrec import Recommender, item_embeddings
    from ctxrec.data.context import HistoryEntry
    from ctxrec.text.vector_index import VectorIndex

    catalog = _catalog()
    vectors = item_embeddings(encoder, catalog)
    recommender = Recommender(catalog, encoder, vectors)
    recommender.attach_index(VectorIndex.build(vectors, features=recommender.retrieval))
    recommender.attach_sequence_model(trained)
    history = tuple(HistoryEntry(f"a{j}", 0) for j in (3, 14, 25, 36, 7))
    ranked = {}
    for weather in ("rain", "snow"):
        context = Context(history=history, extra=(("weather", weather), ("place", "home")))
        ranking = recommender.recommend(context, k=10, exact=True)
        table = ranking.table
        assert ranking.weights["context"] == ranking.weights["sequence"] > 0
        with_context, unknown = recommender.learned_scores(
            tuple(catalog.position(h.item_id) for h in history), context)
        positions = [catalog.position(i) for i in table["item_id"]]
        assert np.allclose(table["raw_context"], (with_context - unknown)[positions], atol=1e-5)
        parts = table[["intent", "history", "sequence", "context", "mood", "popularity",
                       "constraints"]].sum(axis=1)
        assert np.allclose(parts, table["score"], atol=1e-4)
        ranked[weather] = [int(i[1:]) // 10 for i in table["item_id"]]
        # through a vector index (whose query weighs the hand-written context as the learned
        # model's prior), a catalog this small is ranked as exactly
        indexed = recommender.recommend(context, k=10, exact=False)
        assert list(indexed.table["item_id"]) == list(table["item_id"])
    assert ranked["rain"].count(0) >= 6 and ranked["snow"].count(2) >= 6


@pytest.fixture(scope="module")
def tokens_model(planted):
    _, catalog, events = planted
    data = log_data(events, catalog, "leave-last-out", seed=0)
    return train_context_model(data, catalog, SequenceConfig(n_items=len(catalog),
                                                             context="tokens", **SMALL),
                               TrainConfig(epochs=8, patience=8, lr=5e-3, batch_size=32,
                                           average=0.0, seed=0))


def test_field_effects_and_what_the_prediction_attends_to(tokens_model):
    from ctxrec.sequence.context_train import field_effects, prediction_attention

    model = tokens_model
    context = Context(extra=(("weather", "fog"), ("place", "work")))
    history = [5, 17, 22]
    fog = list(range(30, 40))
    scores = model.learned_scores(history, context)[0]
    assert set(np.argsort(-scores)[:10]) == set(fog)  # in fog the model ranks the fog items
    effects = field_effects(model, history, context, fog)
    assert list(effects.columns) == list(model.schema.fields)
    # with the weather hidden they fall; hiding the place, which carries no signal, moves less
    assert effects["weather"].mean() > 3
    assert effects["place"].abs().mean() < effects["weather"].mean()
    labels, weights, shown = prediction_attention(model, history, context)
    assert "weather=fog" in labels and "place=work" in labels and list(shown) == history
    assert len(weights) == len(labels) + len(history) and abs(weights.sum() - 1) < 1e-4


def test_the_pages_show_the_learned_fields_their_effects_and_the_attention(tokens_model,
                                                                          tmp_path):
    from streamlit.testing.v1 import AppTest

    from ui.state import SEQUENCE_KEY

    folder = tokens_model.save(tmp_path / "planted-tokens")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    at.session_state["catalog_source"] = "Upload CSV"  # as after uploading the log's catalog
    at.session_state["catalog_uploaded"] = _catalog()
    at.session_state[SEQUENCE_KEY] = str(folder)
    at.run()
    at.multiselect(key="ctx_liked").set_value(["a3", "a14", "a25"]).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="ctx_x_weather").options[0] == "(unknown)"
    assert set(at.selectbox(key="ctx_x_weather").options[1:]) == set(WEATHERS)
    at.selectbox(key="ctx_x_weather").set_value("snow").run()
    assert not at.exception, at.exception
    titles = [m.value.split("**")[1] for m in at.markdown if m.value.startswith("**") and
              ". Item " in m.value]
    assert sum(20 <= int(t.split("Item ")[1]) < 30 for t in titles[:10]) >= 6  # snow items
    assert any("With weather unknown" in c.value for c in at.caption)
    assert any("learned effect" in c.value for c in at.caption)  # the weights' reason
    at.switch_page("app_pages/attention.py").run()
    assert not at.exception, at.exception
    assert any("each field of the context you set" in c.value for c in at.caption)
    # its history self-attention: one layer (no layer slider), two heads
    assert at.slider(key="seq_head").max == SMALL["heads"] - 1
    at.switch_page("app_pages/recommend.py").run()
    assert at.selectbox(key="ctx_x_weather").value == "snow"  # kept across pages
    assert any("weather snow" in c.value for c in at.caption)  # in the situation sentence
    at.session_state[SEQUENCE_KEY] = None  # detached: the weather is no longer read
    at.run()
    assert not at.exception, at.exception
    assert not any("weather snow" in c.value for c in at.caption)


def test_the_plain_model_paths_read_a_context_model_as_one(trained, planted):
    """evaluate --checkpoint and the Attention page call the plain model's interfaces; with a
    context model they must rank with its context and show its own self-attention."""
    from ctxrec.sequence.train import SequenceRanker

    _, catalog, events = planted
    queries = context_split(events, catalog, "repeat", seed=0, by_time=True).queries("test")[:5]
    assert np.allclose(SequenceRanker(trained).scores(queries),
                       ContextRanker(trained).scores(queries))
    weights, shown = trained.self_attention(np.array([4, 15, 26]))
    assert weights.shape == (SMALL["layers"], SMALL["heads"], 3, 3) and shown == 3
    assert np.allclose(weights.sum(-1), 1, atol=1e-5) and np.allclose(np.triu(weights, 1), 0)
