"""Generic interaction logs: column mapping, timestamps, counts, context columns, clear errors."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from ctxrec.data.catalog import read_catalog_csv
from ctxrec.data.interaction_log import (InteractionLog, LogError, load_interaction_log,
                                         mapping_from_pairs)
from ctxrec.evaluation.split import leave_last_out

CATALOG = "id,title,category\n" + "".join(f"m{i},Movie {i},film\n" for i in range(1, 7))
LOG = """uid,movie,when,stars,mood,place
u1,m1,1700000000,4.5,calm,home
u1,m2,2024-01-02T03:04:05,3,tense,work
u2,zz,1700000100,5,calm,home
u1,m3,2024-01-02T03:04:05+02:00,,cheerful,home
u2,m4,2024-01-02 03:04,2,,commute
u2,m5,1700000200.9,1,calm,home
u2,m6,2024-03-01,5,calm,home
"""
MAPPING = dict(user="uid", item="movie", timestamp="when", rating="stars")


def _utc(*args) -> int:
    return int(datetime(*args, tzinfo=timezone.utc).timestamp())


@pytest.fixture
def files(tmp_path):
    catalog = tmp_path / "items.csv"
    catalog.write_text(CATALOG)
    log = tmp_path / "events.csv"
    log.write_text(LOG)
    return log, catalog


def _write(tmp_path, text: str | bytes, name: str = "events.csv"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_happy_path_maps_columns_parses_times_and_keeps_context(files):
    log, catalog = files
    loaded = load_interaction_log(log, catalog, context_columns=("mood", "place"), **MAPPING)
    assert isinstance(loaded, InteractionLog)
    frame = loaded.interactions
    assert list(frame.columns) == ["user", "item", "rating", "timestamp", "mood", "place"]
    assert list(frame["item"]) == ["m1", "m2", "m3", "m4", "m5", "m6"]  # file order, zz dropped
    assert list(frame["user"]) == ["u1", "u1", "u1", "u2", "u2", "u2"]
    assert frame["timestamp"].dtype == np.int64
    assert list(frame["timestamp"]) == [
        1_700_000_000, _utc(2024, 1, 2, 3, 4, 5), _utc(2024, 1, 2, 1, 4, 5),
        _utc(2024, 1, 2, 3, 4), 1_700_000_200, _utc(2024, 3, 1)]
    assert frame["rating"].dtype == np.float64
    assert frame["rating"].tolist()[:2] == [4.5, 3.0] and np.isnan(frame["rating"][2])
    assert list(frame["mood"]) == ["calm", "tense", "cheerful", "", "calm", "calm"]
    assert list(frame["place"]) == ["home", "work", "home", "commute", "home", "home"]
    assert "count" not in frame
    [note] = loaded.problems
    assert note.field == "movie" and "1 of 7 events dropped" in note.message
    assert "not in items.csv (e.g. 'zz')" in note.message


def test_unpacks_like_load_movielens_and_feeds_the_splits(files):
    log, catalog = files
    catalog_out, interactions = load_interaction_log(log, catalog, **MAPPING)
    assert len(catalog_out) == 6
    split = leave_last_out(interactions, catalog_out)
    assert set(split.test) == {"u1", "u2"}
    # u2's latest event is m6 (March 2024), not the last line with an epoch
    assert catalog_out.ids[split.test["u2"].item] == "m6"


def test_count_column_and_a_catalog_object(tmp_path):
    catalog = read_catalog_csv(CATALOG.encode(), name="shop")
    log = _write(tmp_path, "user\titem\ttimestamp\tplays\nalice\tm1\t10\t3\n"
                           "bob\tm2\t20\t0\nalice\tm9\t30\t1\nbob\tm3\t40\t12.5\n")
    loaded = load_interaction_log(log, catalog, count="plays")
    frame = loaded.interactions
    assert loaded.catalog is catalog
    assert list(frame.columns) == ["user", "item", "rating", "timestamp", "count"]
    assert frame["rating"].isna().all()
    assert frame["count"].tolist() == [3.0, 0.0, 12.5]
    assert list(frame["timestamp"]) == [10, 20, 40]
    assert "not in shop (e.g. 'm9')" in loaded.problems[0].message


def test_without_timestamps_the_line_order_stands_in(tmp_path, files):
    _, catalog = files
    log = _write(tmp_path, "user,item\nu1,m3\nu1,m1\nu1,m2\n", "plain.csv")
    loaded = load_interaction_log(log, catalog, timestamp=None)
    assert list(loaded.interactions["timestamp"]) == [0, 1, 2]
    assert "ordered by their line" in loaded.problems[0].message


def test_missing_files_are_named(tmp_path, files):
    log, catalog = files
    with pytest.raises(LogError, match=r"^nope.csv: file not found \(.*nope.csv\)"):
        load_interaction_log(tmp_path / "nope.csv", catalog, **MAPPING)
    with pytest.raises(LogError, match=r"^gone.csv: catalog file not found"):
        load_interaction_log(log, tmp_path / "gone.csv", **MAPPING)


def test_rejected_catalog_names_its_file(tmp_path, files):
    log, _ = files
    bad = _write(tmp_path, "name\nx\n", "cat.csv")
    with pytest.raises(LogError, match=r"^cat.csv: Catalog rejected: .*'id'"):
        load_interaction_log(log, bad, **MAPPING)


def test_not_utf8(tmp_path, files):
    _, catalog = files
    log = _write(tmp_path, b"user,item,timestamp\nu1,caf\xe9,1\n")
    with pytest.raises(LogError, match=r"^events.csv: is not UTF-8 text"):
        load_interaction_log(log, catalog)


def test_empty_file_and_header_only(tmp_path, files):
    _, catalog = files
    with pytest.raises(LogError, match=r"^events.csv: is empty; it needs a header row"):
        load_interaction_log(_write(tmp_path, ""), catalog)
    with pytest.raises(LogError, match=r"^events.csv: has a header but no rows"):
        load_interaction_log(_write(tmp_path, "user,item,timestamp\n\n"), catalog)


def test_absent_column_lists_what_the_file_has(files):
    log, catalog = files
    with pytest.raises(LogError) as caught:
        load_interaction_log(log, catalog, user="user_id", item="movie", timestamp="time")
    assert str(caught.value) == (
        "events.csv: columns 'user_id' (user), 'time' (timestamp) not in the header; the file "
        "has: uid, movie, when, stars, mood, place")
    assert caught.value.column == "user_id"
    with pytest.raises(LogError, match=r"column 'UID' \(user, did you mean 'uid'\?\)"):
        load_interaction_log(log, catalog, **{**MAPPING, "user": "UID"})
    with pytest.raises(LogError, match=r"column 'weather' \(context\) not in the header"):
        load_interaction_log(log, catalog, context_columns=["weather"], **MAPPING)


def test_non_numeric_rating_names_the_line(tmp_path, files):
    _, catalog = files
    # the blank line still counts, so the bad value is on line 5
    log = _write(tmp_path, "u,i,t,r\nu1,m1,1,4\n\nu1,m2,2,3\nu1,m3,3,five\nu1,m4,4,n/a\n")
    with pytest.raises(LogError) as caught:
        load_interaction_log(log, catalog, user="u", item="i", timestamp="t", rating="r")
    assert str(caught.value) == ("events.csv: line 5, column 'r' (rating): 'five' is not a number "
                                 "(and 1 more line like it)")
    assert caught.value.line == 5


def test_bad_counts_name_the_line(tmp_path, files):
    _, catalog = files
    log = _write(tmp_path, "user,item,timestamp,n\nu1,m1,1,2\nu1,m2,2,-1\n")
    with pytest.raises(LogError, match=r"line 3, column 'n' \(count\): '-1' is not a "
                                       r"non-negative number$"):
        load_interaction_log(log, catalog, count="n")
    log = _write(tmp_path, "user,item,timestamp,n\nu1,m1,1,\n")
    with pytest.raises(LogError, match=r"line 2, column 'n' \(count\): is empty"):
        load_interaction_log(log, catalog, count="n")


def test_unparseable_timestamp_names_the_line(tmp_path, files):
    _, catalog = files
    log = _write(tmp_path, "user,item,ts\nu1,m1,2024-05-01\nu1,m2,yesterday\n")
    with pytest.raises(LogError) as caught:
        load_interaction_log(log, catalog, timestamp="ts")
    assert str(caught.value) == ("events.csv: line 3, column 'ts' (timestamp): 'yesterday' is "
                                 "neither seconds since 1970 nor an ISO date and time")


def test_empty_ids_name_the_line(tmp_path, files):
    _, catalog = files
    log = _write(tmp_path, "user,item,timestamp\nu1,m1,1\n ,m2,2\n")
    with pytest.raises(LogError, match=r"^events.csv: line 3, column 'user' \(user\): is empty$"):
        load_interaction_log(log, catalog)


def test_no_rows_left_when_no_item_is_in_the_catalog(tmp_path, files):
    _, catalog = files
    log = _write(tmp_path, "user,item,timestamp\nu1,a1,1\nu1,a2,2\nu2,a1,3\n")
    with pytest.raises(LogError) as caught:
        load_interaction_log(log, catalog)
    assert str(caught.value) == (
        "events.csv: no rows left: 3 of 3 events dropped: their item is not in items.csv "
        "(e.g. 'a1', 'a2'); check that column 'item' holds the catalog's ids")


def test_long_rows_and_context_name_clashes(tmp_path, files):
    _, catalog = files
    log = _write(tmp_path, "user,item,timestamp\nu1,m1,1,extra\n")
    with pytest.raises(LogError, match="more cells than the header"):
        load_interaction_log(log, catalog)
    log = _write(tmp_path, "user,item,timestamp\nu1,m1,1\nu1,m2,2,extra\n")
    with pytest.raises(LogError, match=r"Expected 3 fields in line 3, saw 4"):
        load_interaction_log(log, catalog)
    with pytest.raises(LogError, match="context column 'rating' has the name of an output"):
        load_interaction_log(log, catalog, context_columns=["rating"])


def test_mapping_from_pairs():
    assert mapping_from_pairs(["user=uid", "item=movie", "rating=stars", "timestamp=",
                               "context=mood,place", "context=device"]) == {
        "user": "uid", "item": "movie", "rating": "stars", "timestamp": None,
        "context_columns": ("mood", "place", "device")}
    with pytest.raises(ValueError, match="'uid' is not FIELD=COLUMN"):
        mapping_from_pairs(["uid"])
    with pytest.raises(ValueError, match="unknown field 'usr'"):
        mapping_from_pairs(["usr=uid"])
    with pytest.raises(ValueError, match="the item column is required"):
        mapping_from_pairs(["item="])


def test_mapping_feeds_the_loader(files):
    log, catalog = files
    mapping = mapping_from_pairs(["user=uid", "item=movie", "timestamp=when", "context=place"])
    frame = load_interaction_log(log, catalog, **mapping).interactions
    assert list(frame.columns) == ["user", "item", "rating", "timestamp", "place"]
