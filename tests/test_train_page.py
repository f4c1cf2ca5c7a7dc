"""The Train page: a model trained in the app joins the ranking and the Attention page."""

import json

import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from ctxrec.training_job import latest_job, start_job


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
