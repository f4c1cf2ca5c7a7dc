import json
import subprocess
import sys

from conftest import ROOT


def _run(*args):
    return subprocess.run([sys.executable, "-m", "ctxrec", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_recommend_prints_a_table():
    out = _run("recommend", "--intent", "a board game for friends", "--when",
               "2026-11-21T20:00", "--with", "friends", "-k", "3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["rank", "item_id", "title"] and len(lines) == 4


def test_bad_catalog_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"name\nx\n")
    out = _run("recommend", "--catalog", str(bad))
    assert out.returncode == 2 and "error: Catalog rejected" in out.stderr
    assert "Traceback" not in out.stderr


def test_bench_recommend_prints_json():
    out = _run("bench", "recommend", "--sizes", "500", "--calls", "3")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    timings = result["results"]["500"]["new_intent"]
    assert 0 < timings["p50_ms"] <= timings["p95_ms"]
    assert 0 < result["encode"]["ratio"] and result["device"] in ("cpu", "cuda", "mps")


def test_train_then_evaluate_with_the_checkpoint(tiny_movielens, tmp_path):
    out_dir = tmp_path / "model"
    out = _run("train", "--data", str(tiny_movielens), "--item-repr", "id", "--max-len", "8",
               "--epochs", "4", "--out", str(out_dir))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    protocols = [r["protocol"] for r in report["results"]]
    assert protocols == ["full ranking", "full ranking (history masked)",
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
    ndcg = {r["model"]: r["NDCG@10"] for r in json.loads(results.read_text())["results"]}
    assert list(ndcg) == ["popularity", "SASRec (id, truncate, seed 0)",
                          "SASRec (id, truncate, seed 1)", "SASRec ensemble of 2"]
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
    assert [r["split"] for r in rows] == ["leave-last-out (by float32 time, as RecBole), test"] * 2
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
               "8", "--epochs", "2", "--out", str(tmp_path / "model"))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["results"][0]["users"] == 40
    assert any("no-such-movie" in note for note in report["data_notes"])
