import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, SHARED_DATA
from ctxrec import read_catalog_csv
from ctxrec.evaluate import (ItemKNN, Popularity, bootstrap_ci, evaluate, leave_last_out,
                             paired_test)
from ctxrec.experiment import ExperimentConfig, run_experiment

ML_SMALL = SHARED_DATA / "ml-latest-small"


def _catalog(n):
    return read_catalog_csv(("id,title\n" + "".join(f"i{j},Item {j}\n" for j in range(n)))
                            .encode())


def _log(rows):
    return pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])


def test_leave_last_out_orders_by_time_and_keeps_file_order_on_ties():
    log = _log([("a", "i0", 4, 10), ("a", "i2", 4, 30), ("a", "i1", 4, 20), ("a", "i3", 4, 30),
                ("b", "i0", 4, 1), ("b", "i1", 4, 2)])  # b has only 2 events: left out
    split = leave_last_out(log, _catalog(4))
    assert list(split.test) == ["a"]
    assert split.histories["a"].tolist() == [0, 1]
    assert split.valid["a"][0] == 2 and split.test["a"][0] == 3  # tie at t=30: file order
    assert split.train_counts.tolist() == [1, 1, 0, 0]


def test_float32_time_order_ties_events_seconds_apart_as_recbole_does():
    t = 1_500_000_000  # a multiple of 128, the float32 spacing here
    log = _log([("a", "i0", 4, t - 600), ("a", "i2", 4, t + 30), ("a", "i1", 4, t + 20),
                ("a", "i3", 4, t + 10)])
    exact = leave_last_out(log, _catalog(4))
    assert exact.histories["a"].tolist() == [0, 3]
    assert exact.valid["a"][0] == 1 and exact.test["a"][0] == 2
    rounded = leave_last_out(log, _catalog(4), time_order="float32")
    # i2, i1, i3 all round to t, so they tie and keep file order
    assert rounded.histories["a"].tolist() == [0, 2]
    assert rounded.valid["a"][0] == 1 and rounded.test["a"][0] == 3
    assert rounded.test["a"][1] == t + 10  # the targets keep their exact times
    assert "float32" in rounded.name
    with pytest.raises(ValueError, match="time order"):
        leave_last_out(log, _catalog(4), time_order="float16")


def _clusters():
    """Two item clusters (0–4, 5–9); each user stays in one; the held-out item is in it."""
    rows, t = [], 0
    for u in range(20):
        base = 0 if u % 2 == 0 else 5
        order = [(base + (u + j) % 5) for j in range(5)]
        for item in order:
            rows.append((f"u{u}", f"i{item}", 4.0, t))
            t += 1
    return _log(rows), _catalog(10)


def test_item_knn_finds_the_cluster_and_popularity_does_not():
    log, catalog = _clusters()
    split = leave_last_out(log, catalog)
    knn = evaluate(ItemKNN(), split, k=2, mask_history=True).per_user
    assert knn["hr"].mean() == 1.0  # only 2 unseen items in the user's cluster
    pop = evaluate(Popularity(), split, k=2, mask_history=True).per_user
    assert pop["hr"].mean() < 1.0
    assert np.allclose(knn["ndcg"], np.where(knn["rank"] <= 2, 1 / np.log2(knn["rank"] + 1), 0))


def test_sampled_protocol_ranks_among_the_negatives_only():
    log, catalog = _clusters()
    split = leave_last_out(log, catalog)
    result = evaluate(Popularity(), split, k=10, protocol="sampled", n_negatives=3)
    assert result.per_user["rank"].max() <= 4
    assert "3 sampled negatives (uniform)" in result.summary()["protocol"]


def test_bootstrap_and_paired_test():
    rng = np.random.default_rng(1)
    a = rng.random(300)
    low, high = bootstrap_ci(a)
    assert low < a.mean() < high and high - low < 0.1
    assert paired_test(a, a + 0.2) < 0.01
    assert paired_test(a, a) == 1.0


def _write_movielens(folder, log):
    folder.mkdir()
    items = sorted(set(log["item"]))
    pd.DataFrame({"movieId": [i[1:] for i in items],
                  "title": [f"Film {i} (1999)" for i in items],
                  "genres": ["Comedy|Drama"] * len(items)}).to_csv(folder / "movies.csv",
                                                                  index=False)
    pd.DataFrame({"userId": log["user"].str[1:], "movieId": log["item"].str[1:],
                  "rating": log["rating"], "timestamp": log["timestamp"]}).to_csv(
        folder / "ratings.csv", index=False)


def test_cli_and_library_give_the_same_numbers(tmp_path):
    log, _ = _clusters()
    _write_movielens(tmp_path / "ml-tiny", log)
    config = ExperimentConfig(data=str(tmp_path / "ml-tiny"), models=("popularity", "item-knn"),
                              mask_history=True, k=3)
    direct = run_experiment(config)
    out = tmp_path / "r.json"
    subprocess.run([sys.executable, "-m", "ctxrec", "evaluate", "--data", config.data,
                    "--models", "popularity", "item-knn", "--mask-history", "-k", "3",
                    "--out", str(out)], cwd=ROOT, check=True, capture_output=True)
    via_cli = json.loads(out.read_text())
    assert via_cli["results"] == direct["results"] and via_cli["per_user"] == direct["per_user"]
    assert via_cli["protocol"] == "full ranking (history masked)" and via_cli["k"] == 3


@pytest.mark.skipif(not ML_SMALL.is_dir(), reason="../shared/data/ml-latest-small is absent")
def test_baselines_on_ml_latest_small_match_the_reference():
    config = ExperimentConfig(data=str(ML_SMALL), models=("popularity", "item-knn"))
    run = run_experiment(config)
    by_model = {r["model"]: r for r in run["results"]}
    assert by_model["popularity"]["NDCG@10"] == pytest.approx(0.0092, abs=0.0005)
    assert by_model["item-kNN"]["NDCG@10"] == pytest.approx(0.0081, abs=0.0005)
    assert by_model["popularity"]["users"] == 610


def test_the_evaluate_page_gives_the_cli_numbers(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CTXREC_HOME", str(tmp_path / "home"))
    log, _ = _clusters()
    _write_movielens(tmp_path / "ml-tiny", log)
    config = ExperimentConfig(data=str(tmp_path / "ml-tiny"), models=("popularity", "item-knn"),
                              mask_history=True, k=3)
    direct = run_experiment(config)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    at.run()
    at.switch_page("app_pages/evaluate.py").run()
    at.text_input(key="ev_data").input(config.data)
    at.multiselect(key="ev_models").set_value(["popularity", "item-knn"])
    at.checkbox(key="ev_mask").check()
    at.slider(key="ev_k").set_value(3)
    at.button(key="ev_run").click().run()
    assert not at.exception
    shown = at.session_state["ev_result"]
    assert shown["results"] == direct["results"]
    assert any("full ranking (history masked)" in h.value for h in at.subheader)
    at.text_input(key="ev_data").input(str(tmp_path / "nowhere")).run()
    at.button(key="ev_run").click().run()
    assert not at.exception and any("not a MovieLens folder" in e.value for e in at.error)


def test_temporal_and_random_splits():
    from ctxrec.evaluate import random_split, temporal_split

    log = _log([("a", f"i{j}", 4, t) for j, t in enumerate([1, 2, 3, 4, 50, 60])]
               + [("b", "i0", 4, 1), ("b", "i1", 4, 2), ("b", "i2", 4, 3)])
    catalog = _catalog(6)
    temporal = temporal_split(log, catalog, quantile=0.8)  # the cut falls between t=4 and t=50
    assert list(temporal.test) == ["a"]  # b has nothing after the cut
    assert temporal.test["a"][0] == 4 and temporal.valid["a"][0] == 3
    assert temporal.histories["a"].tolist() == [0, 1, 2]
    rnd = random_split(log, catalog, seed=3)
    for user in ("a", "b"):
        held = {rnd.valid[user][0], rnd.test[user][0]}
        assert len(held) == 2 and not held & set(rnd.histories[user].tolist())
        assert len(rnd.histories[user]) == (6 if user == "a" else 3) - 2
