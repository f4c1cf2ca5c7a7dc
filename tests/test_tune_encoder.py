"""Tuning the packaged encoder on a log: pairs from the training split only, the
sentence-transformers trainer, a folder every --model option loads, and the CLI's comparison."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from conftest import ROOT

from ctxrec.cli import main
from ctxrec.data.movielens import load_movielens
from ctxrec.evaluation.split import leave_last_out
from ctxrec.experiments.tune_encoder import training_pairs
from ctxrec.sequence.run import hold_out_items
from ctxrec.text.encoders import load_encoder
from ctxrec.evaluation.baselines import TextSimilarity
from ctxrec.evaluation.history_text import (PROFILE_WEIGHTS, HistoryTextRanker, history_text,
                                          validated_history_ranker)
from ctxrec.evaluation.protocol import Protocol, evaluate_protocols
from ctxrec.tune.encoder import (TUNING_FILE, encoders_dir, log_pairs, read_tuning, tune_encoder,
                                tuned_encoders)


@pytest.fixture(scope="module")
def movielens_split(tiny_movielens):
    catalog, interactions = load_movielens(tiny_movielens)
    return catalog, leave_last_out(interactions, catalog, "exact")


def test_the_history_text_names_the_recent_titles_and_the_time():
    saturday = datetime(2026, 11, 21, 20, 30, tzinfo=timezone.utc).timestamp()
    assert history_text(["Alien", "  Heat "], saturday) == \
        "Recently: Alien; Heat. Now: Saturday evening."
    assert history_text([], None) == "Nothing yet."


def test_the_item_mean_adds_to_the_history_text_at_the_weight_validation_chose(movielens_split):
    catalog, split = movielens_split
    encoder = load_encoder()
    vectors = encoder.encode(catalog.texts())
    queries = split.queries("valid")[:5]
    text = HistoryTextRanker(encoder, catalog, vectors).scores(queries)
    mean = TextSimilarity(vectors).scores(queries)
    blend = HistoryTextRanker(encoder, catalog, vectors, profile_weight=0.5)
    np.testing.assert_allclose(blend.scores(queries), text + 0.5 * mean, atol=1e-5)
    assert "0.5 × item mean" in blend.name

    chosen = validated_history_ranker(encoder, catalog, vectors, split)
    assert set(chosen.validation) == set(PROFILE_WEIGHTS)
    assert chosen.validation[chosen.profile_weight] == max(chosen.validation.values())
    # what it found is what the validation events give at that weight
    again = HistoryTextRanker(encoder, catalog, vectors, profile_weight=chosen.profile_weight)
    result = evaluate_protocols(again, split, [Protocol("full")], target="valid")[0]
    assert np.isclose(result.per_user["ndcg"].mean(), chosen.validation[chosen.profile_weight])


def test_pairs_come_from_the_training_histories_only(movielens_split):
    catalog, split = movielens_split
    texts = catalog.texts()
    every = log_pairs(split, catalog, per_user=10_000)
    assert len(every["anchor"]) == sum(len(h) - 1 for h in split.histories.values())
    # user by user, the positives are exactly the training items after the first: the held-out
    # validation and test events are never predicted
    start = 0
    for user in sorted(split.histories):
        history = split.histories[user]
        assert every["positive"][start:start + len(history) - 1] == [texts[i] for i in history[1:]]
        start += len(history) - 1
    few = log_pairs(split, catalog, per_user=3, seed=1)
    assert len(few["anchor"]) == 3 * len(split.histories)
    assert few == log_pairs(split, catalog, per_user=3, seed=1)  # the seed fixes the draw
    user = sorted(split.histories)[0]
    first = split.histories[user]
    assert every["anchor"][0].startswith(f"Recently: {catalog.items['title'].iloc[first[0]]}.")
    assert every["positive"][0] == texts[first[1]]


def test_with_cold_start_the_items_train_holds_out_are_never_in_the_pairs(movielens_split):
    catalog, split = movielens_split
    pairs, held_out = training_pairs(split, catalog, per_user=50, seed=3, cold_start=0.25)
    assert np.array_equal(held_out, hold_out_items(split, 0.25, 3)[1])  # train's own choice
    texts, titles = catalog.texts(), catalog.items["title"].astype(str)
    assert held_out.size and not {texts[i] for i in held_out} & set(pairs["positive"])
    named = {t for anchor in pairs["anchor"]
             for t in anchor.removeprefix("Recently: ").split(". Now:")[0].split("; ")}
    assert named and not named & {titles[i] for i in held_out}
    everything, none = training_pairs(split, catalog, per_user=50, seed=3)
    assert none is None and {texts[i] for i in held_out} & set(everything["positive"])


def test_a_tuned_encoder_is_saved_loads_and_has_moved(movielens_split, tmp_path):
    catalog, split = movielens_split
    pairs = log_pairs(split, catalog, per_user=2)
    encoder = load_encoder()  # its own copy: tuning changes it in place
    probe = history_text(["Movie number 3"], None)
    before = encoder.encode_one(probe)
    steps = []
    info = tune_encoder(encoder, pairs, tmp_path / "tuned", batch_size=16,
                        progress=lambda step, total, loss: steps.append((step, total, loss)))
    assert info["pairs"] == len(pairs["anchor"]) and info["seconds"] > 0
    assert steps and steps[-1][0] == steps[-1][1] == info["steps"]
    assert json.loads((tmp_path / "tuned" / TUNING_FILE).read_text())["base"] == encoder.name
    tuned = load_encoder(str(tmp_path / "tuned"))
    after = tuned.encode_one(probe)
    assert np.isclose(np.linalg.norm(after), 1, atol=1e-4)
    assert not np.allclose(before, after, atol=1e-3)
    np.testing.assert_allclose(after, encoder.encode_one(probe), atol=1e-5)  # the saved weights
    ranker = HistoryTextRanker(tuned, catalog, tuned.encode(catalog.texts()))
    scores = ranker.scores(split.queries("valid")[:3])
    assert scores.shape == (3, len(catalog)) and np.isfinite(scores).all()


def test_an_encoder_reading_in_half_precision_is_tuned_in_float32_and_read_as_before(
        movielens_split, tmp_path):
    # as on a GPU, where the encoder reads in float16 and trains with bf16 autocast: float16
    # weights would lose updates this small, so training runs on float32 weights and the saved
    # folder holds them
    catalog, split = movielens_split
    pairs = log_pairs(split, catalog, per_user=2)
    encoder = load_encoder()
    encoder.model.half()
    before = {n: p.detach().float().clone() for n, p in encoder.model.named_parameters()}
    tune_encoder(encoder, pairs, tmp_path / "tuned", batch_size=16, bf16=True)
    assert {p.dtype for p in encoder.model.parameters()} == {torch.float16}
    # and it reads as the folder it saved does: the trainer's bf16 autocast is gone
    saved_encoder = load_encoder(str(tmp_path / "tuned"))
    saved_encoder.model.half()
    probe = history_text(["Movie number 3"], None)
    np.testing.assert_array_equal(encoder.encode_one(probe), saved_encoder.encode_one(probe))
    saved = load_file(next((tmp_path / "tuned").rglob("model.safetensors")))
    assert {t.dtype for t in saved.values()} == {torch.float32}
    # the updates landed: a float16 optimiser step of about 5e-5 would leave most weights as
    # they were
    moved = [n for n, p in encoder.model.named_parameters() if "encoder.layer" in n and
             not torch.equal(p.detach().float(), before[n])]
    assert len(moved) > 0.9 * sum("encoder.layer" in n for n in before)


def test_the_command_tunes_compares_and_the_sidebar_offers_the_result(tiny_movielens, tmp_path,
                                                                       capsys, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CTXREC_HOME", str(tmp_path / "home"))
    code = main(["tune-encoder", "--data", str(tiny_movielens), "--pairs-per-user", "2",
                 "--batch-size", "16", "--results", str(tmp_path / "run.json")])
    assert code == 0
    run = json.loads(capsys.readouterr().out)
    assert run["kind"] == "tune-encoder" and run["tuning"]["pairs"] == 80
    for side in ("frozen", "tuned"):
        assert 0 <= run[side]["valid_ndcg@10"] <= 1 and 0 < run[side]["intents_ndcg@10"] <= 1
    assert run["keeps_general_retrieval"] == (run["intents_change"] >= -0.02)
    folder = encoders_dir() / tiny_movielens.name  # the default --out
    assert tuned_encoders() == [folder]
    assert read_tuning(folder)["validated"]["tuned"] == run["tuned"]

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    choice = at.sidebar.selectbox(key="model_choice")
    assert str(folder) in choice.options
    choice.select(str(folder)).run()
    at.sidebar.button(key="model_load").click().run()
    assert not at.exception
    said = " ".join(c.value for c in at.sidebar.caption)
    assert f"In use: **{folder}**" in said or f"In use: **{folder.name}" in said
    assert "validation events" in said and f"{run['tuned']['valid_ndcg@10']:.4f}" in said

    saved = tmp_path / "home" / "results" / "tuned.json"  # where the Evaluate page looks
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text((tmp_path / "run.json").read_text())
    at.switch_page("app_pages/evaluate.py").run()
    at.selectbox(key="ev_file").set_value(saved).run()
    at.button(key="ev_load").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(h.value == f"Encoder tuned on {tiny_movielens.name}" for h in at.subheader)
    shown = at.dataframe[0].value
    assert list(shown["encoder"]) == ["frozen", "tuned"]
    assert shown["valid_ndcg@10"].tolist() == [run["frozen"]["valid_ndcg@10"],
                                               run["tuned"]["valid_ndcg@10"]]
    assert main(["tune-encoder", "--data", str(tiny_movielens), "--out", str(tmp_path / "x"),
                 "--epochs", "0"]) == 2
    assert "--epochs must be at least 1" in capsys.readouterr().err


def test_the_tuning_bench_reports_its_time_against_encoding_the_same_pairs(tiny_movielens,
                                                                          capsys):
    assert main(["bench", "tune-encoder", "--data", str(tiny_movielens)]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["benchmark"] == "tune-encoder" and run["pairs"] == 320
    assert run["seconds_per_1000_pairs"] > run["encode_only_seconds_per_1000_pairs"] > 0
    assert run["ratio_to_encoding"] > 1  # a training step also runs backward and the optimiser
