import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT, SHARED_DATA

from ctxrec import read_catalog_csv
from ctxrec.evaluation.baselines import ItemKNN, Popularity
from ctxrec.evaluation.protocol import evaluate
from ctxrec.evaluation.split import leave_last_out
from ctxrec.evaluation.statistics import bootstrap_ci, paired_test
from ctxrec.experiments.movielens import ExperimentConfig, run_experiment

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
    assert split.valid["a"].item == 2 and split.test["a"].item == 3  # tie at t=30: file order
    assert split.train_counts.tolist() == [1, 1, 0, 0]


def test_float32_time_order_ties_events_seconds_apart_as_recbole_does():
    t = 1_500_000_000  # a multiple of 128, the float32 spacing here
    log = _log([("a", "i0", 4, t - 600), ("a", "i2", 4, t + 30), ("a", "i1", 4, t + 20),
                ("a", "i3", 4, t + 10)])
    exact = leave_last_out(log, _catalog(4))
    assert exact.histories["a"].tolist() == [0, 3]
    assert exact.valid["a"].item == 1 and exact.test["a"].item == 2
    rounded = leave_last_out(log, _catalog(4), time_order="float32")
    # i2, i1, i3 all round to t, so they tie and keep file order
    assert rounded.histories["a"].tolist() == [0, 2]
    assert rounded.valid["a"].item == 1 and rounded.test["a"].item == 3
    assert rounded.test["a"].timestamp == t + 10  # the targets keep their exact times
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
    knn = evaluate(ItemKNN(split), split, k=2, mask_history=True).per_user
    # the user's cluster has 5 items: 3 in the training history, the validation item (also
    # masked: it came before the test item) and the test item, the only one left in it
    assert knn["hr"].mean() == 1.0 and (knn["rank"] == 1).all()
    assert (knn["candidates"] == 10 - 4).all()
    pop = evaluate(Popularity(split.train_counts), split, k=2, mask_history=True).per_user
    assert pop["hr"].mean() < 1.0


def test_sampled_protocol_ranks_among_the_negatives_only():
    log, catalog = _clusters()
    split = leave_last_out(log, catalog)
    result = evaluate(Popularity(split.train_counts), split, k=10, protocol="sampled",
                      n_negatives=3)
    assert result.per_user["rank"].max() <= 4 and (result.per_user["candidates"] == 4).all()
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
                              masking="masked", k=3)
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
    by_model = {(r["model"], "not masked" not in r["protocol"]): r for r in run["results"]}
    # popularity, unmasked, matches the independent reference (0.0092); item-kNN now also reads
    # the validation item, which came before the test item (0.0081 when it did not)
    assert by_model["popularity", False]["NDCG@10"] == pytest.approx(0.0092, abs=0.0005)
    assert by_model["item-kNN", False]["NDCG@10"] == pytest.approx(0.0099, abs=0.0005)
    assert by_model["popularity", True]["NDCG@10"] == pytest.approx(0.0183, abs=0.0005)
    assert by_model["item-kNN", True]["NDCG@10"] == pytest.approx(0.0254, abs=0.0005)
    assert by_model["popularity", False]["users"] == 610


def test_the_evaluate_page_gives_the_cli_numbers(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CTXREC_HOME", str(tmp_path / "home"))
    log, _ = _clusters()
    _write_movielens(tmp_path / "ml-tiny", log)
    config = ExperimentConfig(data=str(tmp_path / "ml-tiny"), models=("popularity", "item-knn"),
                              masking="masked", k=3)
    direct = run_experiment(config)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    at.run()
    at.switch_page("app_pages/evaluate.py").run()
    at.text_input(key="ev_data").input(config.data)
    at.multiselect(key="ev_models").set_value(["popularity", "item-knn"])
    at.radio(key="ev_masking").set_value("masked")
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
    from ctxrec.evaluation.split import random_split, temporal_split

    log = _log([("a", f"i{j}", 4, t) for j, t in enumerate([1, 2, 3, 4, 50, 60])]
               + [("b", "i0", 4, 1), ("b", "i1", 4, 2), ("b", "i2", 4, 3)])
    catalog = _catalog(6)
    temporal = temporal_split(log, catalog, quantile=0.8)  # the cut falls between t=4 and t=50
    assert list(temporal.test) == ["a"]  # b has nothing after the cut
    assert temporal.test["a"].item == 4 and temporal.valid["a"].item == 3
    assert temporal.histories["a"].tolist() == [0, 1, 2]
    rnd = random_split(log, catalog, seed=3)
    for user in ("a", "b"):
        held = {rnd.valid[user].item, rnd.test[user].item}
        assert len(held) == 2 and not held & set(rnd.histories[user].tolist())
        assert len(rnd.histories[user]) == (6 if user == "a" else 3) - 2


def test_ties_at_the_cut_off_count_in_expectation():
    from ctxrec.evaluation.metrics import single_target_metrics, target_position

    # 8 items above the target and 3 tied with it: positions 9–12 equally likely
    m = single_target_metrics(np.array([8]), np.array([3]), k=10)
    assert m["hr"][0] == pytest.approx(2 / 4)
    assert m["ndcg"][0] == pytest.approx((1 / np.log2(10) + 1 / np.log2(11)) / 4)
    assert m["mrr"][0] == pytest.approx((1 / 9 + 1 / 10) / 4) and m["rank"][0] == 10.5
    # a ranker with one score for everything is exactly the random ranker
    better, tied = target_position(np.zeros((1, 50)), np.array([7]))
    flat = single_target_metrics(better, tied, k=10)
    assert flat["hr"][0] == pytest.approx(10 / 50)
    assert flat["ndcg"][0] == pytest.approx(sum(1 / np.log2(p + 1) for p in range(1, 11)) / 50)


def test_a_nan_target_is_a_miss_and_a_nan_run_stops():
    from ctxrec.evaluation.metrics import rank_of, single_target_metrics, target_position
    from ctxrec.evaluation.protocol import NonFiniteScores

    scores = np.array([[0.3, np.nan, 0.1], [np.inf, 0.2, 0.1]])
    better, tied = target_position(scores, np.array([1, 0]))
    assert better.tolist() == [np.inf] * 2 and rank_of(scores, np.array([1, 0])).tolist() == [np.inf] * 2
    assert single_target_metrics(better, tied, k=10)["hr"].tolist() == [0, 0]

    log, catalog = _clusters()
    split = leave_last_out(log, catalog)

    class Broken(Popularity):
        def scores(self, queries):
            out = super().scores(queries).astype(float).copy()
            out[0, 3] = np.nan
            return out

    with pytest.raises(NonFiniteScores, match="Broken .*NaN"):
        evaluate(Broken(split.train_counts, name="Broken"), split)


def test_a_sequence_model_that_emits_nan_stops_training_and_evaluation(tiny_movielens, tmp_path):
    from ctxrec.data.movielens import load_movielens
    from ctxrec.evaluation.protocol import NonFiniteScores
    from ctxrec.sequence.config import SequenceConfig, TrainConfig
    from ctxrec.sequence.train import train_sequence_model

    catalog, interactions = load_movielens(tiny_movielens)
    split = leave_last_out(interactions, catalog)
    vectors = np.ones((len(catalog), 4), dtype=np.float32)
    vectors[3] = np.nan  # one broken text vector
    config = SequenceConfig(n_items=len(catalog), max_len=8, hidden=16, item_repr="text",
                            text_dim=4)
    with pytest.raises(NonFiniteScores, match="NaN"):
        train_sequence_model(split, catalog, config, TrainConfig(epochs=2), vectors)
    good = train_sequence_model(split, catalog, SequenceConfig(n_items=len(catalog), max_len=8,
                                                               hidden=16, item_repr="id"),
                                TrainConfig(epochs=1))
    with torch.no_grad():
        next(good.model.parameters()).fill_(float("nan"))
    good.save(tmp_path / "nan-model")
    out = subprocess.run([sys.executable, "-m", "ctxrec", "evaluate", "--data",
                          str(tiny_movielens), "--models", "popularity", "--checkpoint",
                          str(tmp_path / "nan-model")], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 2 and "NaN" in out.stderr and "Traceback" not in out.stderr


def test_every_ranker_gets_the_same_history_and_the_same_masks(catalog, recommender):
    """One user: the test item comes after the validation item, so every ranker must see the
    validation item in the history, and every protocol must mask it for every ranker."""
    from ctxrec.evaluation.baselines import ItemKNN, TextSimilarity
    from ctxrec.evaluation.protocol import FULL_BOTH_WAYS, Protocol, evaluate_protocols
    from ctxrec.rank.query import query_context
    from ctxrec.rank.ranker import RecommenderRanker
    from ctxrec.sequence.config import SequenceConfig
    from ctxrec.sequence.model import SASRec
    from ctxrec.sequence.train import SequenceRanker, TrainedModel

    ids = list(catalog.ids)
    rows = [(u, ids[(7 * u + j) % len(ids)], 4.0, 100 * u + j) for u in range(3) for j in range(6)]
    log = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    split = leave_last_out(log, catalog)
    valid, test = split.valid[0].item, split.test[0].item
    trained = TrainedModel(SASRec(SequenceConfig(n_items=len(ids), max_len=8, hidden=16,
                                                 item_repr="id")), ids)

    class Recording:
        def __init__(self, ranker):
            self.inner, self.name, self.seen = ranker, ranker.name, []

        def scores(self, queries):
            self.seen += list(queries)
            return self.inner.scores(queries)

    rankers = [Recording(r) for r in (
        Popularity(split.train_counts), ItemKNN(split),
        TextSimilarity(np.eye(len(ids), 8, dtype=np.float32) + 0.1),
        RecommenderRanker(recommender), SequenceRanker(trained))]
    protocols = [*FULL_BOTH_WAYS, Protocol("sampled", n_negatives=len(ids))]
    candidates = []
    for ranker in rankers:
        results = evaluate_protocols(ranker, split, protocols, users=[0])
        candidates.append([r.per_user["candidates"].tolist() for r in results])
        (query,) = ranker.seen
        assert query.items.tolist() == [*split.histories[0].tolist(), valid]
        assert query.timestamp == split.test[0].timestamp
    assert all(c == candidates[0] for c in candidates)
    # unmasked: all; masked: less the 4 history items and the validation item; sampled: as many
    # negatives as there are items draws the whole pool, which leaves out the same 5
    assert candidates[0] == [[len(ids)], [len(ids) - 5], [len(ids) - 5]]
    ctx = query_context(split.query(0, "test"), catalog.ids)
    assert ctx.history[-1].item_id == ids[valid] and ids[test] not in \
        [h.item_id for h in ctx.history]
    sequence = SequenceRanker(trained).scores(split.queries("test", [0]))
    np.testing.assert_allclose(sequence, trained.next_item_scores(
        [np.append(split.histories[0], valid)]), rtol=1e-6)


def test_time_features_do_not_depend_on_the_servers_time_zone(tiny_movielens, tmp_path):
    import os

    runs = []
    for zone in ("UTC", "Pacific/Kiritimati"):  # 14 hours apart: other dayparts and weekdays
        out = tmp_path / f"{zone.replace('/', '-')}.json"
        done = subprocess.run([sys.executable, "-m", "ctxrec", "evaluate", "--data",
                               str(tiny_movielens), "--models", "ctxrec", "--max-users", "20",
                               "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                              timeout=600, env={**os.environ, "TZ": zone})
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(out.read_text()))
    assert runs[0]["per_user"] == runs[1]["per_user"]
    assert runs[0]["results"] == runs[1]["results"]


def test_results_never_overwrite_each_other(tiny_movielens, tmp_path):
    from ctxrec.data.movielens import load_movielens
    from ctxrec.experiments.results import save_results
    from ctxrec.sequence.config import SequenceConfig, TrainConfig
    from ctxrec.sequence.train import train_sequence_model

    paths = {save_results({"n": n}, tmp_path / "results") for n in range(3)}  # same second
    assert len(paths) == 3 and {json.loads(p.read_text())["n"] for p in paths} == {0, 1, 2}
    catalog, interactions = load_movielens(tiny_movielens)
    trained = train_sequence_model(leave_last_out(interactions, catalog), catalog,
                                   SequenceConfig(n_items=len(catalog), max_len=8, hidden=16,
                                                  item_repr="id"),
                                   TrainConfig(epochs=1))
    folders = [str(trained.save(tmp_path / side / "model")) for side in ("a", "b")]
    run = run_experiment(ExperimentConfig(data=str(tiny_movielens), models=("popularity",),
                                          masking="unmasked", checkpoint=folders))
    names = [r["model"] for r in run["results"]]
    assert len(set(names)) == len(names) == 4 and len(run["per_user"]) == 4
    assert names[1] + " #2" == names[2]


def test_the_history_text_with_the_item_mean_reports_the_weight_it_validated(tiny_movielens):
    run = run_experiment(ExperimentConfig(data=str(tiny_movielens),
                                          models=("lm-history", "lm-history-mean"),
                                          masking="unmasked"))
    names = [r["model"] for r in run["results"]]
    assert len(names) == 2 and list(run["validated"]) == names[1:]
    tried = run["validated"][names[1]]
    best = max(tried, key=lambda w: (tried[w], -w))
    assert f"+ {best:g} × item mean" in names[1]  # the name carries the chosen weight, 0 too
    json.dumps(run)  # the run is saved as JSON


def test_the_evaluate_page_runs_a_context_log_and_reports_broken_models(tmp_path, monkeypatch,
                                                                        catalog, recommender,
                                                                        tiny_movielens):
    from streamlit.testing.v1 import AppTest

    from ctxrec.data.context_log import ColumnMap, read_context_log
    from ctxrec.data.movielens import load_movielens
    from ctxrec.experiments.context_log import evaluate_context
    from ctxrec.sequence.config import SequenceConfig, TrainConfig
    from ctxrec.sequence.train import train_sequence_model

    monkeypatch.setenv("CTXREC_HOME", str(tmp_path / "home"))
    ids = list(catalog.ids)
    rng = np.random.default_rng(3)
    rows = ["who,what,when,where"] + [
        f"u{u},{ids[rng.integers(40)]},{1_700_000_000 + 3600 * (7 * u + j)},"
        f"{'home' if j % 2 else 'work'}" for u in range(12) for j in range(5)]
    log = ("\n".join(rows) + "\n").encode()
    (tmp_path / "log.csv").write_bytes(log)
    mapping = ColumnMap(user="who", item="what", timestamp="when", place="where")
    expected = evaluate_context(recommender, read_context_log(tmp_path / "log.csv", mapping,
                                                              catalog), "discovery")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    at.run()
    at.switch_page("app_pages/evaluate.py").run()
    at.file_uploader(key="ev_log_file").upload("log.csv", log, "text/csv").run()
    at.text_input(key="ev_log_map").input("user=who item=what timestamp=when place=where")
    at.radio(key="ev_log_protocol").set_value("discovery")
    at.button(key="ev_log_run").click().run()
    assert not at.exception
    shown = at.session_state["ev_result"]
    assert shown["results"] == expected["results"] and shown["split"] == expected["split"]
    assert any(h.value.startswith("log.csv · discovery") for h in at.subheader)
    at.text_input(key="ev_log_map").input("user=nobody item=what").run()
    at.button(key="ev_log_run").click().run()
    assert not at.exception and any("columns not in log.csv" in e.value for e in at.error)

    cat, interactions = load_movielens(tiny_movielens)
    trained = train_sequence_model(leave_last_out(interactions, cat), cat,
                                   SequenceConfig(n_items=len(cat), max_len=8, hidden=16,
                                                  item_repr="id"),
                                   TrainConfig(epochs=1))
    with torch.no_grad():
        next(trained.model.parameters()).fill_(float("nan"))
    trained.save(tmp_path / "home" / "models" / "broken")
    at.switch_page("app_pages/evaluate.py").run()
    at.text_input(key="ev_data").input(str(tiny_movielens))
    at.multiselect(key="ev_models").set_value(["popularity"])
    at.multiselect(key="ev_checkpoints").set_value([tmp_path / "home" / "models" / "broken"])
    at.button(key="ev_run").click().run()
    assert not at.exception and any("NaN" in e.value for e in at.error)
