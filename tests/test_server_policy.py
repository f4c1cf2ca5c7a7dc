"""The shared-server policy: what it allows, read from the environment, and the app under it
(AppTest, two sessions side by side)."""

from __future__ import annotations

import os
import sys

import pytest
from conftest import ROOT, write_tiny_movielens
from streamlit.testing.v1 import AppTest

from ctxrec import DEFAULT_ENCODER
from ctxrec.llm.models import DEFAULT_LLM
from ctxrec.server_policy import PolicyError, ServerPolicy


def test_one_person_by_default_may_type_anything():
    policy = ServerPolicy.from_env({})
    assert not policy.shared and policy.typed_paths and policy.remote_code
    assert policy.max_models == 4
    assert policy.check_folder("~/anywhere").name == "anywhere"
    policy.check_model("llm", "someone/any-model", DEFAULT_LLM)
    assert policy.model_choices("encoder", DEFAULT_ENCODER, ["a/b"]) == [DEFAULT_ENCODER, "a/b"]


def test_shared_server_offers_only_what_the_operator_listed(tmp_path):
    data, other = tmp_path / "data", tmp_path / "private"
    (data / "ml-small").mkdir(parents=True)
    other.mkdir()
    policy = ServerPolicy.from_env({
        "CTXREC_SHARED": "1", "CTXREC_SHARED_FOLDERS": f"{data}{os.pathsep}{tmp_path / 'gone'}",
        "CTXREC_SHARED_LLMS": "Qwen/Qwen2.5-1.5B-Instruct, Qwen/Qwen2.5-1.5B-Instruct",
        "CTXREC_SHARED_ENCODERS": ""})
    assert policy.shared and not policy.typed_paths and not policy.remote_code
    assert policy.max_models == 2
    assert policy.folder_choices() == [data.resolve()]  # a listed folder that is gone is left out
    assert policy.check_folder(data / "ml-small") == (data / "ml-small").resolve()
    for refused in (other, data / ".." / "private", "/etc"):
        with pytest.raises(PolicyError, match="CTXREC_SHARED_FOLDERS"):
            policy.check_folder(refused)
    (data / "escape").symlink_to(other)
    with pytest.raises(PolicyError, match="not one of the folders"):
        policy.check_folder(data / "escape")

    assert policy.model_choices("llm", DEFAULT_LLM, ["suggested/elsewhere"]) == [
        DEFAULT_LLM, "Qwen/Qwen2.5-1.5B-Instruct"]
    assert policy.model_choices("encoder", DEFAULT_ENCODER, ["a/b"]) == [DEFAULT_ENCODER]
    policy.check_model("llm", "Qwen/Qwen2.5-1.5B-Instruct", DEFAULT_LLM)
    policy.check_model("encoder", DEFAULT_ENCODER, DEFAULT_ENCODER)  # packaged: always
    with pytest.raises(PolicyError, match="CTXREC_SHARED_ENCODERS"):
        policy.check_model("encoder", "Qwen/Qwen2.5-1.5B-Instruct", DEFAULT_ENCODER)
    with pytest.raises(PolicyError, match="not offered on this shared server"):
        policy.check_model("llm", "/home/someone/model", DEFAULT_LLM)


@pytest.mark.parametrize("env, variable", [({"CTXREC_SHARED": "maybe"}, "CTXREC_SHARED"),
                                           ({"CTXREC_MAX_MODELS": "two"}, "CTXREC_MAX_MODELS"),
                                           ({"CTXREC_MAX_MODELS": "0"}, "CTXREC_MAX_MODELS")])
def test_settings_that_cannot_be_read_name_their_variable(env, variable):
    with pytest.raises(PolicyError, match=variable):
        ServerPolicy.from_env(env)


def _forget_app_modules() -> None:
    """The app reads the policy when ``ui.state`` is imported, once per server process; AppTest
    runs in this process, so a test of another policy starts the app's modules afresh."""
    for name in [m for m in sys.modules if m == "ui" or m.startswith("ui.")]:
        del sys.modules[name]


@pytest.fixture
def shared(monkeypatch, tmp_path):
    listed = write_tiny_movielens(tmp_path / "listed" / "ml-tiny")
    write_tiny_movielens(tmp_path / "unlisted" / "ml-tiny")
    monkeypatch.setenv("CTXREC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CTXREC_SHARED", "1")
    monkeypatch.setenv("CTXREC_SHARED_FOLDERS", str(listed))
    monkeypatch.delenv("CTXREC_SHARED_ENCODERS", raising=False)
    _forget_app_modules()
    yield listed
    _forget_app_modules()


def _app() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    assert not at.exception, at.exception
    return at


def test_shared_server_offers_no_box_to_type_paths_or_ids_into(shared):
    at = _app()
    assert at.selectbox(key="model_choice").options == [DEFAULT_ENCODER]
    assert not [t for t in at.text_input if t.key in ("model_custom", "catalog_movielens")]
    assert not [c for c in at.checkbox if c.key == "model_trust"]  # no remote code at all
    at.radio(key="catalog_source").set_value("MovieLens").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="catalog_movielens").options == [str(shared)]
    assert any("ml-tiny" in c.value and "24 items" in c.value for c in at.caption)
    at.switch_page("app_pages/train.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="tr_data").options == [str(shared)]
    at.switch_page("app_pages/evaluate.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="ev_data").options == [str(shared)]
    assert not [t for t in at.text_input if t.key == "ev_data"]


def test_shared_server_refuses_an_unlisted_folder_or_model_with_the_reason(shared):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    # values that reach the pickers without being offered (a stale session, or a saved model's
    # data folder attached from the Train page)
    at.session_state["catalog_source"] = "MovieLens"
    at.session_state["catalog_movielens"] = str(shared.parent.parent / "unlisted" / "ml-tiny")
    at.session_state["model_choice"] = "someone/unlisted-encoder"
    at.run()
    assert not at.exception, at.exception
    errors = " ".join(e.value for e in at.error)
    assert "is not one of the folders this shared server offers" in errors
    assert "'someone/unlisted-encoder' is not offered on this shared server" in errors
    assert at.selectbox(key="catalog_movielens").value == str(shared)
    assert at.selectbox(key="model_choice").value == DEFAULT_ENCODER
    assert any(f"In use: **{DEFAULT_ENCODER}**" in c.value for c in at.caption)


def test_a_training_job_belongs_to_the_session_that_started_it(shared):
    mine, theirs = _app(), _app()
    for at in (mine, theirs):
        at.switch_page("app_pages/train.py").run()
    mine.selectbox(key="tr_repr").set_value("id")
    mine.number_input(key="tr_len").set_value(8)
    mine.number_input(key="tr_budget").set_value(600)
    mine.number_input(key="tr_patience").set_value(50)
    mine.button(key="FormSubmitter:tr_form-Train").click().run()
    assert not mine.exception, mine.exception
    assert mine.button(key="tr_stop") is not None

    theirs.run()
    assert not [b for b in theirs.button if b.key == "tr_stop"], "another session's job shows"
    assert not theirs.button(key="FormSubmitter:tr_form-Train").disabled
    theirs.button(key="FormSubmitter:tr_form-Train").click().run()
    assert any("another session's model is still training" in w.value for w in theirs.warning)

    from ctxrec.sequence.job import latest_job

    job = latest_job(mine.session_state["session_owner"])
    mine.button(key="tr_stop").click().run()
    assert job.wait(timeout=300) and job.error is None
    assert latest_job(theirs.session_state["session_owner"]) is None
