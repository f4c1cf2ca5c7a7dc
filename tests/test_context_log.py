import numpy as np
import pytest

from ctxrec.context_log import ColumnMap, compare_with_blank_context, read_context_log

SITUATIONS = [("morning", "weekday", "work"), ("night", "weekend", "home"),
              ("afternoon", "weekend", "outdoors"), ("evening", "weekday", "city")]


def _fits(catalog, daypart, day, place):
    items = catalog.items
    mask = [daypart in d and (w in ("any", day)) and place in p
            for d, w, p in zip(items["dayparts"], items["days"], items["places"])]
    return list(items["id"][mask])


@pytest.fixture(scope="module")
def log_file(tmp_path_factory, catalog):
    rng = np.random.default_rng(7)
    rows = ["uid\titem_id\tDaytime\tDayType\tLocation\tWeather"]
    for u in range(60):
        for step in range(4):
            daytime, day, place = SITUATIONS[rng.integers(len(SITUATIONS))]
            item = rng.choice(_fits(catalog, daytime, day, place))
            rows.append(f"u{u}\t{item}\t{daytime}\t{day}\t{place}\tsunny")
    rows.append("u0\tfilm-01\tbrunchtime\tholiday\tspaceship\train")  # odd values, tolerated
    path = tmp_path_factory.mktemp("ctxlog") / "events.tsv"
    path.write_text("\n".join(rows) + "\n")
    return path


MAPPING = ColumnMap(user="uid", item="item_id", daytime="Daytime", weekend="DayType",
                    place="Location")


def test_reading_maps_columns_and_counts_unknown_values(log_file, catalog):
    events = read_context_log(log_file, MAPPING, catalog)
    assert len(events.items) == 241
    first = events.contexts[0]
    assert first.daypart in {s[0] for s in SITUATIONS}
    assert events.unknown_values == {"weekday": 1, "daytime": 1, "place": 1}
    with pytest.raises(ValueError, match="columns not in events.tsv: daytime=When"):
        read_context_log(log_file, ColumnMap(user="uid", item="item_id", daytime="When"), catalog)


def test_context_aware_beats_the_blanked_context_on_a_log_where_context_decides(
        log_file, catalog, recommender):
    events = read_context_log(log_file, MAPPING, catalog)
    result = compare_with_blank_context(recommender, events, k=10)
    aware, blank = result["context-aware"], result["context blanked"]
    assert result["events"] == 60
    assert aware["NDCG@10"] > blank["NDCG@10"] and result["p_ndcg"] < 0.05


def test_the_command_line_runs_the_same_comparison(log_file):
    import json
    import subprocess
    import sys

    from conftest import ROOT

    out = subprocess.run([sys.executable, "-m", "ctxrec", "evaluate-context", "--events",
                          str(log_file), "--map", "user=uid", "item=item_id", "daytime=Daytime",
                          "weekend=DayType", "place=Location"], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["events"] == 60 and result["protocol"] == "full ranking, seen items excluded"
    bad = subprocess.run([sys.executable, "-m", "ctxrec", "evaluate-context", "--events",
                          str(log_file), "--map", "user=nope"], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert bad.returncode == 2 and "columns not in" in bad.stderr
