import json
import subprocess
import sys
from datetime import datetime

import numpy as np
import pytest
from conftest import ROOT

from ctxrec import Context
from ctxrec.cli import _parser, main
from ctxrec.sequence.config import SequenceConfig, TrainConfig
from ctxrec.text.encoders import DEFAULT_ENCODER


def _run(*args):
    return subprocess.run([sys.executable, "-m", "ctxrec", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_recommend_prints_what_each_stage_cost(recommender):
    out = _run("recommend", "--intent", "a podcast about space", "--timings", "--index",
               "-k", "3")
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith(("timings:", "  "))]
    assert lines[0].startswith("timings: ") and "candidates through the index" in lines[0]
    stages = [line.split()[0] for line in lines[1:]]
    assert stages == ["read", "encode", "retrieve", "components", "fusion"]
    assert all("MiB (process RSS)" in line for line in lines[1:])
    exact = _run("recommend", "--intent", "a podcast about space", "--timings", "-k", "3")
    assert "every item scored" in exact.stderr and "retrieve" not in exact.stderr


def test_recommend_prints_the_librarys_ranking(recommender):
    out = _run("recommend", "--intent", "a board game for friends", "--when",
               "2026-11-21T20:00", "--with", "friends", "-k", "5")
    assert out.returncode == 0, out.stderr
    header, *lines = out.stdout.strip().splitlines()
    columns = ["score", "intent", "history", "context", "mood", "popularity", "constraints"]
    assert header.split() == ["rank", "item_id", "title", *columns]
    assert "understood from the intent: kind: game, with friends" in out.stderr
    # the CLI's defaults: no history, at home, on the phone
    context = Context(when=datetime(2026, 11, 21, 20, 0), place="home", device="phone",
                      companions=("friends",), intent="a board game for friends")
    expected = recommender.recommend(context, k=5).table
    assert len(lines) == len(expected) == 5
    for line, row in zip(lines, expected.itertuples()):
        words = line.split()
        n = len(columns)
        assert words[:2] == [str(row.rank), row.item_id] and " ".join(words[2:-n]) == row.title
        printed = np.array(words[-n:], dtype=float)
        np.testing.assert_allclose(printed, [getattr(row, c) for c in columns], atol=5.1e-4)


def test_bad_catalog_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"name\nx\n")
    out = _run("recommend", "--catalog", str(bad))
    assert out.returncode == 2 and "error: Catalog rejected" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("flags", [["--catalog", "missing.csv"], ["--model", "no-such-model"],
                                   ["--intent-model", "no-such-llm"]],
                         ids=["missing catalog", "missing model folder", "missing intent model"])
def test_bad_recommend_input_exits_2_with_one_line(tmp_path, capsys, flags):
    flags = [flags[0], str(tmp_path / flags[1])]
    assert main(["recommend", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(tmp_path) in err and "Traceback" not in err


def test_evaluate_takes_an_encoder_apart_from_its_models():
    args = _parser().parse_args(["evaluate", "--data", "x", "--model", "enc", "--models",
                                 "lm-history"])
    assert args.model == "enc" and args.models == ["lm-history"]
    assert _parser().parse_args(["evaluate", "--data", "x"]).model == DEFAULT_ENCODER


def test_train_defaults_are_the_config_defaults():
    args = _parser().parse_args(["train", "--data", "x"])
    model, train = SequenceConfig(n_items=1), TrainConfig()
    shared = {"item_repr": (model, "item_repr"), "memory": (model, "memory"),
              "max_len": (model, "max_len"), "hidden": (model, "hidden"),
              "layers": (model, "layers"), "heads": (model, "heads"),
              "dropout": (model, "dropout"), "epochs": (train, "epochs"),
              "batch_size": (train, "batch_size"), "lr": (train, "lr"),
              "patience": (train, "patience"), "stride": (train, "stride"),
              "average": (train, "average"), "loss": (train, "loss"),
              "negatives": (train, "n_negatives"), "seed": (train, "seed"),
              "device": (train, "device"), "time_budget": (train, "time_budget_s"),
              "context_dropout": (train, "context_dropout")}
    for flag, (config, field) in shared.items():
        assert getattr(args, flag) == getattr(config, field), flag
    assert (not args.fixed_windows) == train.shuffle_windows


def test_bench_recommend_reports_what_was_asked(encoder):
    out = _run("bench", "recommend", "--sizes", "300", "500", "--calls", "3")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert (result["benchmark"], result["calls"], result["k"]) == ("recommend", 3, 20)
    assert (result["encoder"], result["device"]) == (encoder.name, encoder.device)
    assert list(result["results"]) == ["300", "500"]
    for size in result["results"].values():
        stages = size.pop("new_intent_stages")
        assert set(size) == {"new_intent", "new_intent_reader_off", "new_intent_and_history"}
        for timings in size.values():
            assert 0 < timings["p50_ms"] <= timings["p95_ms"]
        # the cost panel of the same calls: the stages, as ranking records them
        assert list(stages["stages"]) == ["read intent", "encode", "components",
                                          "fusion and top-k"]
        assert 0.9 <= stages["accounted"] <= 1.0
        assert sum(s["p50_ms"] for s in stages["stages"].values()) <= \
            stages["total_p50_ms"] * 1.1
    assert result["results"]["300"]["new_intent"] != result["results"]["300"][
        "new_intent_and_history"]  # two cases, timed apart
    assert 0 < result["intent_reader"]["p50_ms"] <= result["intent_reader"]["p95_ms"]
    encode = result["encode"]
    assert encode["texts"] == 2000
    ours, plain = encode["ctxrec_texts_per_s"], encode["sentence_transformers_texts_per_s"]
    assert encode["ratio"] == pytest.approx(ours / plain, rel=0.01)  # all three are rounded


def test_train_then_evaluate_with_the_checkpoint(tiny_movielens, tmp_path):
    out_dir = tmp_path / "model"
    out = _run("train", "--data", str(tiny_movielens), "--item-repr", "id", "--max-len", "8",
               "--epochs", "4", "--out", str(out_dir))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    protocols = [r["protocol"] for r in report["results"]]
    assert protocols == ["full ranking (history not masked)", "full ranking (history masked)",
                         "100 sampled negatives (uniform)"]
    assert len(report["training"]["curve"]) == 4 and "valid NDCG@10" in out.stderr
    assert (out_dir / "model.safetensors").is_file() and (out_dir / "report.json").is_file()
    assert {b["model"] for b in report["baselines"]} == {"popularity", "item-kNN",
                                                         "LM text similarity"}

    second = tmp_path / "model-seed-1"
    out = _run("train", "--data", str(tiny_movielens), "--item-repr", "id", "--max-len", "8",
               "--epochs", "4", "--seed", "1", "--out", str(second))
    assert out.returncode == 0, out.stderr
    results = tmp_path / "results.json"
    ev = _run("evaluate", "--data", str(tiny_movielens), "--models", "popularity",
              "--checkpoint", str(out_dir), str(second), "--out", str(results))
    assert ev.returncode == 0, ev.stderr
    rows = json.loads(results.read_text())["results"]
    ndcg = {r["model"]: r["NDCG@10"] for r in rows
            if r["protocol"] == "full ranking (history not masked)"}
    assert list(ndcg) == ["popularity", f"SASRec (id, truncate, seed 0) [{out_dir.name}]",
                          f"SASRec (id, truncate, seed 1) [{second.name}]",
                          "SASRec ensemble of 2"]
    assert {r["protocol"] for r in rows} == {"full ranking (history not masked)",
                                             "full ranking (history masked)"}
    assert ndcg["SASRec ensemble of 2"] > ndcg["popularity"]  # the cycle is learnable

    other_order = _run("evaluate", "--data", str(tiny_movielens), "--models", "popularity",
                       "--time-order", "float32", "--checkpoint", str(out_dir))
    assert other_order.returncode == 2 and "Traceback" not in other_order.stderr
    assert "evaluate it with --time-order exact" in other_order.stderr


def test_train_and_evaluate_on_recboles_float32_time_order(tiny_movielens, tmp_path):
    out_dir = tmp_path / "model"
    out = _run("train", "--data", str(tiny_movielens), "--item-repr", "id", "--max-len", "8",
               "--epochs", "1", "--time-order", "float32", "--out", str(out_dir))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["split"] == "leave-last-out (by float32 time, as RecBole)"
    results = tmp_path / "results.json"
    ev = _run("evaluate", "--data", str(tiny_movielens), "--models", "popularity",
              "--time-order", "float32", "--checkpoint", str(out_dir), "--out", str(results))
    assert ev.returncode == 0, ev.stderr
    rows = json.loads(results.read_text())["results"]
    assert [r["split"] for r in rows] == ["leave-last-out (by float32 time, as RecBole), test"] * 4
    temporal = _run("evaluate", "--data", str(tiny_movielens), "--models", "popularity",
                    "--split", "temporal", "--time-order", "float32")
    assert temporal.returncode == 2 and "leave-last-out split only" in temporal.stderr


def test_train_with_bad_inputs_says_why(tmp_path, tiny_movielens):
    out = _run("train", "--log", str(tmp_path / "missing.csv"), "--item-repr", "id")
    assert out.returncode == 2 and "interaction log with its catalog" in out.stderr
    out = _run("train", "--data", str(tmp_path), "--item-repr", "id")
    assert out.returncode == 2 and "is not a MovieLens folder" in out.stderr
    assert "Traceback" not in out.stderr


def test_train_from_an_interaction_log_with_its_catalog(tiny_movielens, tmp_path):
    catalog = tmp_path / "items.csv"
    catalog.write_text((tiny_movielens / "movies.csv").read_text().replace("movieId,", "id,", 1))
    log = tmp_path / "events.csv"
    rows = (tiny_movielens / "ratings.csv").read_text().splitlines()
    log.write_text("\n".join(["uid,movie,stars,ts"] + rows[1:] + ["7,no-such-movie,4,1"]) + "\n")
    out = _run("train", "--log", str(log), "--catalog", str(catalog), "--map", "user=uid",
               "item=movie", "timestamp=ts", "rating=stars", "--item-repr", "id", "--max-len",
               "8", "--epochs", "2", "--out", str(tmp_path / "model"), "--context-entry", "none")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["results"][0]["users"] == 40
    assert any("no-such-movie" in note for note in report["data_notes"])


def test_bench_index_sets_the_index_beside_exact_scoring_in_one_run():
    out = _run("bench", "index", "--sizes", "3000", "--vector-sizes", "4000", "--calls", "3")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    ranked, bare = result["results"]["3000"], result["results"]["vectors-4000"]
    assert ranked["speedup_p50"] == pytest.approx(
        ranked["exact"]["p50_ms"] / ranked["index"]["p50_ms"], rel=0.02)
    assert 0.8 <= ranked["recall@20"] <= 1 and 0.8 <= bare["recall@20"] <= 1
    assert 0.7 <= ranked["recall@20_no_device_no_company"] <= 1
    assert ranked["candidates_p50"] < 3000 and ranked["index_build_s"] > 0
    assert "retrieve" in ranked["index_stages"]["stages"]
    assert "retrieve" not in ranked["exact_stages"]["stages"]
    assert bare["items"] == 4000 and bare["index_mb"] < bare["vectors_mb"]
