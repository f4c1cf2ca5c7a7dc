import pytest

from ctxrec import CatalogError, read_catalog_csv
from ctxrec.data.catalog import (CATEGORIES, COMPANIONS, DAYPARTS, DAYS, MOODS, PLACES, PRICES,
                                 builtin_catalog)

HEADER = "id,title,category,description,tags,mood,dayparts,days,places,devices,companions," \
         "duration_min,price\n"
GOOD = "a-1,Dawn Loaf,cafe,A bakery counter at six.,bread;early,calm,morning,any,city,,alone,30,low\n"


def test_builtin_catalog_is_complete_and_valid(catalog):
    items = catalog.items
    assert len(catalog) >= 300 and not catalog.problems
    assert items["id"].is_unique
    assert set(items["category"]) <= set(CATEGORIES) and items["category"].nunique() >= 8
    assert set(items["mood"]) <= set(MOODS) and set(items["days"]) <= set(DAYS)
    assert set(items["price"]) <= set(PRICES)
    for column, vocab in (("dayparts", DAYPARTS), ("places", PLACES),
                          ("companions", COMPANIONS)):
        assert all(values and set(values) <= set(vocab) for values in items[column]), column
    words = items["description"].str.split().str.len()
    assert words.between(10, 80).all()
    assert (items["duration_min"] > 0).all()


def test_every_category_has_morning_and_night_items(catalog):
    items = catalog.items
    for category, group in items.groupby("category"):
        assert any("morning" in d for d in group["dayparts"]), category
    assert sum("night" in d for d in items["dayparts"]) >= 30


def test_bad_rows_are_reported_by_line_and_field_and_skipped():
    text = (HEADER + GOOD
            + "a-2,Bad Mood,cafe,Text.,x,sleepy,morning,any,city,,alone,30,low\n"
            + "a-3,Bad Part,cafe,Text.,x,calm,brunch,any,city,,alone,30,low\n"
            + "a-1,Duplicate,cafe,Text.,x,calm,morning,any,city,,alone,30,low\n"
            + "a-5,Too Short,cafe\n"
            + "a-6,,cafe,Text.,x,calm,morning,any,city,,alone,30,low\n"
            + "a-7,Bad Number,cafe,Text.,x,calm,morning,any,city,,alone,half an hour,low\n")
    catalog = read_catalog_csv(text.encode())
    assert list(catalog.ids) == ["a-1"]
    found = {(p.line, p.field) for p in catalog.problems}
    assert found == {(3, "mood"), (4, "dayparts"), (5, "id"), (6, "row"), (7, "title"),
                     (8, "duration_min")}
    mood = next(p for p in catalog.problems if p.field == "mood")
    assert "sleepy" in str(mood) and "calm" in str(mood) and str(mood).startswith("line 3")


@pytest.mark.parametrize("raw, fragment", [
    (b"", "empty"),
    (b"name,text\nx,y\n", "'id'"),
    ("id,title\n1,caf\xe9\n".encode("latin-1"), "not UTF-8"),
    (b"id,title\n", "no item rows"),
])
def test_unusable_files_are_rejected_with_a_reason(raw, fragment):
    with pytest.raises(CatalogError, match=fragment):
        read_catalog_csv(raw)


def test_minimal_catalog_needs_only_id_and_title():
    catalog = read_catalog_csv(b"id,title\n1,First\n2,Second\n")
    assert list(catalog.ids) == ["1", "2"] and not catalog.has("mood")
    assert catalog.texts() == ["First.", "Second."]


def test_content_hash_follows_the_text():
    a = read_catalog_csv((HEADER + GOOD).encode())
    b = read_catalog_csv((HEADER + GOOD.replace("six", "seven")).encode())
    assert a.content_hash() == read_catalog_csv((HEADER + GOOD).encode()).content_hash()
    assert a.content_hash() != b.content_hash()


def test_item_text_and_facts():
    catalog = read_catalog_csv((HEADER + GOOD).encode())
    assert catalog.texts()[0] == "Dawn Loaf (cafe). A bakery counter at six. Tags: bread, early."
    assert catalog.facts("a-1") == "cafe · calm · 30 min · low"
    assert catalog.title("missing") == "missing" and catalog.record("missing") == {}


def test_brief_is_short_and_falls_back_to_the_first_sentence():
    catalog = read_catalog_csv((HEADER + GOOD).encode())
    assert catalog.brief("a-1") == "Dawn Loaf (calm cafe, 30 min). Tags: bread, early."
    plain = read_catalog_csv(b"id,title,description\n1,Quiet Film,Slow and kind. Long tail.\n"
                             b"2,Bare,\n")
    assert plain.brief("1") == "Quiet Film. Slow and kind."
    assert plain.brief("2") == "Bare."
    assert plain.brief("missing") == "missing"


def test_builtin_loader_refuses_a_broken_builtin(tmp_path, monkeypatch):
    broken = tmp_path / "catalog.csv"
    broken.write_text(HEADER + GOOD.replace("calm", "sleepy"))
    monkeypatch.setattr("ctxrec.data.catalog.BUILTIN_PATH", broken)
    with pytest.raises(CatalogError, match="line 2, field 'mood'"):
        builtin_catalog()


def test_common_header_names_are_understood():
    catalog = read_catalog_csv(b"item_id,name,category,description\n7,Night Bus,event,Neon.\n")
    assert list(catalog.ids) == ["7"] and catalog.title("7") == "Night Bus"
