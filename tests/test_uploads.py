"""Library helpers behind the Train page: uploads kept by content, CSV headers, checkpoints."""

import json
from datetime import datetime

import pytest

from ctxrec.data.uploads import guess_mapping, read_csv_columns, save_upload, uploads_folder
from ctxrec.sequence.config import SequenceConfig
from ctxrec.sequence.job import read_checkpoint_summary, run_folder_name, saved_checkpoints


def test_uploads_are_kept_by_content_so_sessions_never_overwrite_each_other(tmp_path):
    mine = save_upload(b"user,item\n1,a\n", "log.csv", tmp_path)
    theirs = save_upload(b"user,item\n2,b\n", "log.csv", tmp_path)
    assert mine != theirs and mine.name.endswith("-log.csv")
    assert mine.read_bytes() == b"user,item\n1,a\n" and theirs.read_bytes() == b"user,item\n2,b\n"
    again = save_upload(b"user,item\n1,a\n", "log.csv", tmp_path)
    assert again == mine
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, theirs.name]), \
        "the same file twice is kept once, and no temporary file is left behind"


def test_an_upload_name_cannot_leave_the_uploads_folder(tmp_path):
    path = save_upload(b"x\n", "../../elsewhere/log.csv", tmp_path / "up")
    assert path.parent == tmp_path / "up" and path.name.endswith("-log.csv")
    assert save_upload(b"x\n", "", tmp_path / "up").name.endswith("-upload")


def test_uploads_go_under_the_data_home_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("CTXREC_HOME", str(tmp_path))
    assert uploads_folder() == tmp_path / "uploads"
    assert save_upload(b"a\n", "log.csv").parent == tmp_path / "uploads"


@pytest.mark.parametrize("content, columns", [
    (b"user, item ,timestamp\n1,a,3\n", ["user", "item", "timestamp"]),
    (b"\xef\xbb\xbfuser,item\r\n1,a\r\n", ["user", "item"]),  # Excel's BOM and CRLF
    (b'user,"item, id",rating\n', ["user", "item, id", "rating"]),
    (b"user\titem\ttime\n", ["user", "item", "time"]),
    (b"user;item;time,zone\n", ["user", "item", "time,zone"]),
    (b"user\n", ["user"]),
    (b"", []),
    (b"\n1,a\n", []),
])
def test_csv_header_columns(content, columns, tmp_path):
    assert read_csv_columns(content) == columns
    (tmp_path / "log.csv").write_bytes(content)
    assert read_csv_columns(tmp_path / "log.csv") == columns


def test_a_header_that_is_not_utf8_says_so():
    with pytest.raises(ValueError, match="not UTF-8"):
        read_csv_columns("caf\xe9,item\n".encode("latin-1"))


FIELDS, OPTIONAL = ("user", "item", "timestamp", "rating"), ("rating",)


@pytest.mark.parametrize("columns, expected", [
    (["user", "item", "timestamp"], {"user": "user", "item": "item", "timestamp": "timestamp"}),
    (["userId", "movieId", "rating", "timestamp"],  # MovieLens: the item takes what is left
     {"user": "userId", "item": "movieId", "timestamp": "timestamp", "rating": "rating"}),
    (["Time", "Item_ID", "User ID"], {"user": "User ID", "item": "Item_ID", "timestamp": "Time"}),
    (["visitor", "thing", "when", "stars"],  # nothing named: one column each, in order
     {"user": "visitor", "item": "thing", "timestamp": "when"}),
    (["user", "item"], {"user": "user", "item": "item"}),  # too few columns: no field shares one
])
def test_columns_are_guessed_by_name_then_in_order(columns, expected):
    assert guess_mapping(columns, FIELDS, OPTIONAL) == expected


def test_run_folders_are_named_by_source_settings_and_time():
    when = datetime(2026, 3, 4, 5, 6, 7)
    assert run_folder_name("/data/ml-latest-small", "hybrid", "xl", when) == \
        "ml-latest-small-hybrid-xl-20260304-050607"
    assert run_folder_name("/up/ab12-log.csv", "id", "truncate", when) == \
        "ab12-log-id-truncate-20260304-050607"
    assert run_folder_name(None, "text", "hierarchical", when).startswith("model-text-")


def _checkpoint(folder, config: SequenceConfig, **extra):
    from ctxrec.sequence.model import SASRec
    from ctxrec.sequence.train import EpochLog, TrainedModel

    history = [EpochLog(1, 2.0, 0.1, 0.2, 1.5), EpochLog(2, 1.5, 0.3, 0.4, 3.0)]
    return TrainedModel(SASRec(config), [f"i{j}" for j in range(config.n_items)],
                        history=history, best_epoch=2, extra=extra).save(folder)


def test_saved_checkpoints_are_listed_and_summarised_without_their_weights(tmp_path):
    models = tmp_path / "models"
    assert saved_checkpoints(models) == [], "no folder yet: nothing saved"
    config = SequenceConfig(n_items=5, max_len=8, hidden=32, dropout=0.2, item_repr="id")
    b = _checkpoint(models / "b-run", config, report={"model": "SASRec"}, data="/data/ml")
    a = _checkpoint(models / "a-run", config)
    (models / "not-a-model").mkdir()
    (models / ".c-run-x1y2").mkdir()  # a checkpoint still being written
    (models / ".c-run-x1y2" / "config.json").write_text("{}")
    (models / "notes.txt").write_text("hello")
    assert saved_checkpoints(models) == [a, b]

    summary = read_checkpoint_summary(b)
    assert summary.path == b and summary.model == config
    assert (summary.n_items, summary.best_epoch) == (5, 2)
    assert [e["valid_ndcg"] for e in summary.history] == [0.1, 0.3]
    assert summary.report == {"model": "SASRec"} and summary.data == "/data/ml"
    plain = read_checkpoint_summary(a)
    assert plain.report == {} and plain.data is None


def test_the_models_folder_is_under_the_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CTXREC_HOME", str(tmp_path))
    folder = _checkpoint(tmp_path / "models" / "run", SequenceConfig(n_items=2, hidden=16,
                                                                     item_repr="id"))
    assert saved_checkpoints() == [folder]


@pytest.mark.parametrize("text, message", [
    ("{not json", "damaged config.json"),
    (json.dumps({"item_ids": ["a"]}), "has no 'model' entry"),
    (json.dumps({"model": {"n_items": 1, "hidden": 33}, "item_ids": ["a"]}),
     "damaged config.json"),  # settings no model can have: 33 is not divisible by 2 heads
    (json.dumps({"model": {"n_items": 1, "colour": "red"}, "item_ids": ["a"]}),
     "damaged config.json"),
])
def test_a_damaged_checkpoint_summary_says_what_is_wrong(tmp_path, text, message):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        read_checkpoint_summary(folder)
    assert "broken" in str(err.value)
    with pytest.raises(ValueError, match="no config.json"):
        read_checkpoint_summary(tmp_path / "nowhere")
