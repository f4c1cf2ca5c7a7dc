import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, SHARED_DATA

from ctxrec import read_catalog_csv
from ctxrec.data.context_log import ColumnMap, read_context_log
from ctxrec.evaluation.baselines import ContextPopularity, Popularity, UserCounts
from ctxrec.evaluation.context_split import context_split
from ctxrec.evaluation.protocol import evaluate
from ctxrec.experiments.context_log import evaluate_context

CARSKIT = SHARED_DATA / "carskit"
ML_SMALL = SHARED_DATA / "ml-latest-small"
needs_carskit = pytest.mark.skipif(not (CARSKIT.is_dir() and ML_SMALL.is_dir()),
                                   reason="../shared/data/carskit or ml-latest-small is absent")
SITUATIONS = [("morning", "weekday", "work"), ("night", "weekend", "home"),
              ("afternoon", "weekend", "outdoors"), ("evening", "weekday", "city")]


def _catalog(n):
    return read_catalog_csv(("id,title\n" + "".join(f"i{j},Item {j}\n" for j in range(n)))
                            .encode())


def _write(tmp_path, rows, header="user,item,ts,place"):
    path = tmp_path / "events.csv"
    path.write_text("\n".join([header] + [",".join(map(str, r)) for r in rows]) + "\n")
    return path


@pytest.fixture(scope="module")
def log_file(tmp_path_factory, catalog):
    rng = np.random.default_rng(7)
    rows = ["uid\titem_id\tDaytime\tDayType\tLocation\tWeather"]
    ids = list(catalog.ids)
    for u in range(60):
        for step in range(4):
            daytime, day, place = SITUATIONS[rng.integers(len(SITUATIONS))]
            rows.append(f"u{u}\t{ids[rng.integers(len(ids))]}\t{daytime}\t{day}\t{place}\tsunny")
    rows.append("u0\tfilm-01\tbrunchtime\tholiday\tspaceship\train")  # odd values, tolerated
    path = tmp_path_factory.mktemp("ctxlog") / "events.tsv"
    path.write_text("\n".join(rows) + "\n")
    return path


MAPPING = ColumnMap(user="uid", item="item_id", daytime="Daytime", weekend="DayType",
                    place="Location")


def test_reading_maps_columns_and_counts_unknown_values(log_file, catalog):
    events = read_context_log(log_file, MAPPING, catalog)
    assert len(events.items) == 241 and events.timestamps is None
    first = events.contexts[0]
    assert first.daypart in {s[0] for s in SITUATIONS}
    assert events.keys[0].startswith("daytime=") and "place=" in events.keys[0]
    assert events.unknown_values == {"weekday": 1, "daytime": 1, "place": 1}
    with pytest.raises(ValueError, match="columns not in events.tsv: daytime=When"):
        read_context_log(log_file, ColumnMap(user="uid", item="item_id", daytime="When"), catalog)


def test_repeat_holds_out_the_last_event_by_time_not_by_file_order(tmp_path):
    # file order and time order disagree; i3 and i4 share the latest second
    path = _write(tmp_path, [("a", "i4", 400, "home"), ("a", "i0", 100, "work"),
                             ("a", "i2", 300, "home"), ("a", "i1", 200, "work"),
                             ("a", "i3", 400, "home"), ("b", "i0", 5, "home")])
    mapping = ColumnMap(timestamp="ts", place="place")
    events = read_context_log(path, mapping, _catalog(5))
    held = set()
    for seed in range(8):
        split = context_split(events, _catalog(5), "repeat", seed)
        assert list(split.test) == ["a"]  # b has no earlier event
        held.add(split.test["a"].item)
        # everything strictly before the held-out second, in time order
        assert split.histories["a"].tolist() == [0, 1, 2]
    assert held == {3, 4}  # a tie in time is broken at random, not by file order


def test_discovery_holds_out_the_latest_first_use_and_masks_what_came_before(tmp_path):
    path = _write(tmp_path, [("a", "i0", 1, "home"), ("a", "i1", 2, "home"),
                             ("a", "i2", 3, "work"), ("a", "i0", 4, "home"),
                             ("a", "i1", 5, "work")])
    events = read_context_log(path, ColumnMap(timestamp="ts", place="place"), _catalog(4))
    split = context_split(events, _catalog(4), "discovery")
    assert split.test["a"].item == 2 and split.histories["a"].tolist() == [0, 1]
    result = evaluate(Popularity(split.train_counts), split, k=1, mask_history=True)
    assert result.per_user["candidates"].tolist() == [2]  # i2 and the never-used i3


def test_without_timestamps_one_random_event_is_held_out_and_the_rest_is_history(tmp_path):
    rows = [("a", f"i{j % 4}", "", "home") for j in range(6)]  # i0 and i1 twice, i2 and i3 once
    path = _write(tmp_path, rows)
    events = read_context_log(path, ColumnMap(place="place"), _catalog(4))
    picked = {context_split(events, _catalog(4), "discovery", seed).test["a"].item
              for seed in range(12)}
    assert picked == {2, 3}  # only items used once are new to the user
    split = context_split(events, _catalog(4), "repeat", seed=3)
    assert len(split.histories["a"]) == 5 and "seed 3" in split.name


def test_same_context_baselines_count_only_the_held_out_events_context(tmp_path):
    rows = [("a", "i0", 1, "home"), ("a", "i0", 2, "home"), ("a", "i1", 3, "work"),
            ("a", "i1", 4, "work"), ("a", "i1", 5, "work"), ("a", "i0", 6, "home"),
            ("b", "i2", 1, "home"), ("b", "i0", 2, "home")]
    events = read_context_log(_write(tmp_path, rows), ColumnMap(timestamp="ts", place="place"),
                              _catalog(3))
    split = context_split(events, _catalog(3), "repeat")
    queries = split.queries("test", ["a"])
    assert UserCounts(3).scores(queries)[0].tolist() == [2, 3, 0]
    assert UserCounts(3, same_context=True).scores(queries)[0].tolist() == [2, 0, 0]
    assert ContextPopularity(split).scores(queries)[0].tolist() == [2, 0, 1]
    assert Popularity(split.train_counts).scores(queries)[0].tolist() == [2, 3, 1]


def test_the_command_line_runs_both_protocols(log_file, tmp_path):
    for protocol in ("repeat", "discovery"):
        out = subprocess.run(
            [sys.executable, "-m", "ctxrec", "evaluate-context", "--events", str(log_file),
             "--map", "user=uid", "item=item_id", "daytime=Daytime", "weekend=DayType",
             "place=Location", "--context", "weather=Weather", "--protocol", protocol,
             "--seed", "0", "--out", str(tmp_path / f"{protocol}.json")],
            cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert result["protocol"].startswith(protocol) and "seed 0" in result["split"]
        models = [r["model"] for r in result["results"]]
        assert models[:2] == ["ctxrec", "ctxrec, context blanked"]
        assert ("the user's counts" in models) == (protocol == "repeat")
        assert 0 <= result["p_ndcg_context_vs_blank"] <= 1
    bad = subprocess.run([sys.executable, "-m", "ctxrec", "evaluate-context", "--events",
                          str(log_file), "--map", "user=nope"], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert bad.returncode == 2 and "columns not in" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.fixture(scope="module")
def depaul(tmp_path_factory):
    """DePaulMovie with a catalog of its films, titled from ml-latest-small where they map."""
    links = pd.read_csv(ML_SMALL / "links.csv").merge(pd.read_csv(ML_SMALL / "movies.csv"))
    titles = dict(zip("tt" + links["imdbId"].astype(str).str.zfill(7), links["title"]))
    ratings = pd.read_csv(CARSKIT / "depaulmovie_ratings.csv")
    ids = sorted(ratings["itemid"].unique())
    folder = tmp_path_factory.mktemp("depaul")
    pd.DataFrame({"id": ids, "title": [titles.get(i, f"Film {i}") for i in ids],
                  "category": "film"}).to_csv(folder / "items.csv", index=False)
    return read_catalog_csv(folder / "items.csv"), ratings


DEPAUL_MAP = ColumnMap(user="userid", item="itemid", weekend="Time", place="Location",
                       companions="Companion")


@needs_carskit
def test_depaul_repeat_figures_match_an_independent_count(depaul, recommender, encoder):
    """The user's-counts baseline on real data, recomputed by hand from the raw file."""
    from ctxrec import Recommender, item_embeddings

    catalog, ratings = depaul
    events = read_context_log(CARSKIT / "depaulmovie_ratings.csv", DEPAUL_MAP, catalog)
    assert events.unknown_values == {}  # "NA" is read as not given, Cinema as out in town
    run = evaluate_context(Recommender(catalog, encoder, item_embeddings(encoder, catalog)),
                           events, "repeat", k=10, seed=0)
    split = context_split(events, catalog, "repeat", seed=0)
    expected = []
    for user, held in split.test.items():
        history = ratings["itemid"][ratings["userid"].astype(str) == user].tolist()
        target = str(catalog.ids[held.item])
        history.remove(target)  # the held-out event itself
        counts = pd.Series(history).value_counts().reindex(catalog.ids, fill_value=0)
        better = int((counts > counts[target]).sum())
        tied = int((counts == counts[target]).sum()) - 1
        positions = np.arange(better + 1, better + tied + 2)
        expected.append(np.where(positions <= 10, 1 / np.log2(positions + 1), 0).mean())
    by_model = {r["model"]: r for r in run["results"]}
    assert by_model["the user's counts"]["NDCG@10"] == pytest.approx(np.mean(expected))
    assert run["events"] == 97 and len(run["per_user"]["ctxrec"]) == 97
    _record("depaulmovie repeat", run)


@needs_carskit
def test_depaul_discovery_never_holds_out_an_item_the_user_used_before(depaul, encoder):
    from ctxrec import Recommender, item_embeddings

    catalog, ratings = depaul
    events = read_context_log(CARSKIT / "depaulmovie_ratings.csv", DEPAUL_MAP, catalog)
    split = context_split(events, catalog, "discovery", seed=0)
    per_user = ratings.groupby(ratings["userid"].astype(str))["itemid"].agg(list)
    for user, held in split.test.items():
        target = str(catalog.ids[held.item])
        assert per_user[user].count(target) == 1 and held.item not in split.histories[user]
    run = evaluate_context(Recommender(catalog, encoder, item_embeddings(encoder, catalog)),
                           events, "discovery", k=10, seed=0)
    assert {r["model"] for r in run["results"]}.isdisjoint({"the user's counts"})
    _record("depaulmovie discovery", run)


@needs_carskit
def test_sts_with_its_many_context_columns(encoder, tmp_path):
    """South Tyrol Suggests: context mostly not given ("NULL") and coded as numbers, so it enters
    only the same-context baselines; every figure is measured and recorded, whichever way it
    comes out."""
    from ctxrec import Recommender, item_embeddings

    table = pd.read_csv(CARSKIT / "sts.tsv", sep="\t")
    ids = sorted(table["itemID"].unique())
    first = table.drop_duplicates("itemID").set_index("itemID")
    pd.DataFrame({"id": ids, "title": [f"Place of interest {i}, category {first.category1[i]}"
                                       for i in ids]}).to_csv(tmp_path / "items.csv", index=False)
    catalog = read_catalog_csv(tmp_path / "items.csv")
    mapping = ColumnMap(user="userID", item="itemID",
                        extra=(("daytime", "daytime"), ("weather", "weather"),
                               ("companion", "companion"), ("season", "season")))
    events = read_context_log(CARSKIT / "sts.tsv", mapping, catalog)
    assert len(set(events.keys)) > 10  # the extra columns make up the context
    recommender = Recommender(catalog, encoder, item_embeddings(encoder, catalog))
    for protocol in ("repeat", "discovery"):
        run = evaluate_context(recommender, events, protocol, k=10, seed=0)
        rows = {r["model"]: r for r in run["results"]}
        assert rows["popularity"]["users"] == run["events"] > 100
        split = context_split(events, catalog, protocol, seed=0)
        masked = evaluate(Popularity(split.train_counts), split, k=10,
                          mask_history=protocol == "discovery").per_user
        unique = np.array([len(np.unique(split.histories[u])) for u in masked["user"]])
        expected = len(catalog) - unique if protocol == "discovery" else len(catalog)
        assert (masked["candidates"].to_numpy() == expected).all()
        _record(f"sts {protocol}", run)


def _record(name: str, run: dict) -> None:
    """Keep what the real logs showed, for people to read (test-output/context-findings.json)."""
    path = ROOT / "test-output" / "context-findings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    found = json.loads(path.read_text()) if path.is_file() else {}
    found[name] = {"split": run["split"], "events": run["events"],
                   "p_context_vs_blank": run["p_ndcg_context_vs_blank"],
                   **{r["model"]: round(r["NDCG@10"], 4) for r in run["results"]}}
    path.write_text(json.dumps(found, indent=1))
