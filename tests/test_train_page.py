"""The Train page: a model trained in the app joins the ranking and the Attention page."""

import json

import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from ctxrec.sequence.config import PRESETS
from ctxrec.sequence.job import latest_job, read_checkpoint_summary, start_job


def test_train_use_and_see_the_sequence_model(tiny_movielens, tmp_path, monkeypatch):
    monkeypatch.setenv("CTXREC_HOME", str(tmp_path))  # the model list starts empty
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.switch_page("app_pages/train.py").run()
    assert not at.exception, at.exception
    assert any("No saved models yet" in i.value for i in at.info)

    at.text_input(key="tr_data").set_value(str(tiny_movielens))
    at.selectbox(key="tr_repr").set_value("id")
    at.number_input(key="tr_len").set_value(8)
    at.number_input(key="tr_budget").set_value(20)
    at.button(key="FormSubmitter:tr_form-Train").click().run()
    assert not at.exception, at.exception
    job = latest_job()
    assert at.button(key="FormSubmitter:tr_form-Train").disabled, "one training at a time"
    stop = at.button(key="tr_stop")
    assert stop.label == "Stop (keeps the best epoch)" and not stop.disabled
    assert job.wait(timeout=300), "training ended"
    at.run()
    assert not at.exception, at.exception
    assert "tr_stop" not in [b.key for b in at.button], "no stop button once it has ended"
    assert not at.error, [e.value for e in at.error]
    assert not at.button(key="FormSubmitter:tr_form-Train").disabled
    assert any(c.key == "tr_curves_done" for c in at.get("plotly_chart")), "the curves are drawn"
    assert any(d.value["protocol"].str.startswith("full ranking").any() for d in at.dataframe)

    at.button(key="tr_use_new").click().run()
    assert not at.exception, at.exception
    assert at.radio(key="catalog_source").value == "MovieLens"
    at.switch_page("app_pages/recommend.py").run()
    assert not at.exception, at.exception
    liked = at.multiselect(key="ctx_liked")
    liked.set_value(["3", "4", "5"]).run()
    assert not at.exception, at.exception
    assert any("sequence" in c.value for c in [*at.caption, *at.markdown]), \
        "the sequence component is named in the weights"

    at.switch_page("app_pages/attention.py").run()
    assert not at.exception, at.exception
    layer, head = at.slider(key="seq_layer"), at.slider(key="seq_head")
    # the form's defaults: two layers; the sequence model's: two heads
    assert [(s.label, s.min, s.max, s.value) for s in (layer, head)] == [("Layer", 0, 1, 0),
                                                                         ("Head", 0, 1, 0)]
    layer.set_value(1).run()
    assert not at.exception, at.exception
    heatmap = next(c for c in at.get("plotly_chart") if c.key == "seq_heatmap")
    assert json.loads(heatmap.proto.spec)["layout"]["title"]["text"].startswith("Layer 1, head 0")


def test_stop_ends_training_after_the_epoch_and_keeps_the_best(tiny_movielens, tmp_path,
                                                               monkeypatch):
    monkeypatch.setenv("CTXREC_HOME", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.switch_page("app_pages/train.py").run()
    at.text_input(key="tr_data").set_value(str(tiny_movielens))
    at.selectbox(key="tr_repr").set_value("id")
    at.number_input(key="tr_len").set_value(8)
    at.number_input(key="tr_budget").set_value(600)
    at.number_input(key="tr_patience").set_value(50)
    at.button(key="FormSubmitter:tr_form-Train").click().run()
    job = latest_job()
    with pytest.raises(RuntimeError, match="still training"):
        start_job(job.run, tmp_path / "second")  # another session's click: one at a time
    at.button(key="tr_stop").click().run()
    assert not at.exception, at.exception
    stop = at.button(key="tr_stop")
    assert stop.disabled and stop.label == "Stopping after this epoch…"
    assert job.wait(timeout=300)
    assert job.error is None and 1 <= len(job.epochs) <= 2
    at.run()
    assert any("Done: best epoch" in s.value for s in at.success)
    assert (job.out / "model.safetensors").is_file()


def test_a_bad_folder_is_reported_and_the_form_unlocks(tmp_path, monkeypatch):
    monkeypatch.setenv("CTXREC_HOME", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.switch_page("app_pages/train.py").run()
    at.text_input(key="tr_data").set_value(str(tmp_path / "nowhere"))
    at.button(key="FormSubmitter:tr_form-Train").click().run()
    assert latest_job().wait(timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert any("Training did not finish" in e.value for e in at.error)
    assert not at.button(key="FormSubmitter:tr_form-Train").disabled


def test_the_presets_fill_the_form_and_standard_trains_the_command_lines_model(
        tiny_movielens, tmp_path, monkeypatch):
    monkeypatch.setenv("CTXREC_HOME", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.switch_page("app_pages/train.py").run()
    preset = at.radio(key="tr_preset")
    assert preset.value == "quick", "the page starts from the quicker preset"
    assert any(o.startswith("Quick (hidden 64, dropout 0.2)") for o in preset.options)
    assert any(o.startswith("Standard (hidden 128, dropout 0.3)") for o in preset.options)
    assert at.select_slider(key="tr_hidden").value == 64

    preset.set_value("standard").run()
    assert not at.exception, at.exception
    assert at.select_slider(key="tr_hidden").value == 128
    assert (at.number_input(key="tr_len").value, at.number_input(key="tr_layers").value,
            at.selectbox(key="tr_repr").value, at.selectbox(key="tr_memory").value) == \
        (50, 2, "hybrid", "truncate")
    at.text_input(key="tr_data").set_value(str(tiny_movielens))
    at.number_input(key="tr_budget").set_value(10)
    at.button(key="FormSubmitter:tr_form-Train").click().run()
    assert not at.exception, at.exception
    job = latest_job()
    assert job.run.model == PRESETS["standard"]
    assert (job.run.model.hidden, job.run.model.dropout) == (128, 0.3)
    at.button(key="tr_stop").click().run()  # one epoch is enough to see what was saved
    assert job.wait(timeout=300) and job.error is None, job.error
    saved = read_checkpoint_summary(job.out).model
    assert (saved.hidden, saved.dropout, saved.item_repr) == (128, 0.3, "hybrid")
    assert saved.text_dim > 0, "filled in from the encoder when training started"
    at.run()
    assert any("hidden 128 · dropout 0.3" in c.value for c in at.caption), "the Saved models tab"


def test_a_preset_resets_what_was_typed_into_the_form(tmp_path, monkeypatch):
    monkeypatch.setenv("CTXREC_HOME", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.switch_page("app_pages/train.py").run()
    at.number_input(key="tr_len").set_value(8).run()
    at.radio(key="tr_preset").set_value("standard").run()
    assert at.number_input(key="tr_len").value == PRESETS["standard"].max_len


def test_train_without_data_asks_for_it_and_starts_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("CTXREC_HOME", str(tmp_path))
    before = latest_job()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.switch_page("app_pages/train.py").run()
    at.radio(key="tr_source").set_value("Interaction log CSV").run()
    at.button(key="FormSubmitter:tr_form-Train").click().run()
    assert not at.exception, at.exception
    assert any("upload an interaction log CSV" in w.value for w in at.warning)
    assert latest_job() is before
