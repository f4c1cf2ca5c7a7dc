"""The Train page: a model trained in the app joins the ranking and the Attention page."""

from streamlit.testing.v1 import AppTest

from conftest import ROOT


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
    assert not at.error, [e.value for e in at.error]
    assert at.get("plotly_chart"), "the curves are drawn"
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
    assert at.slider(key="seq_layer") is not None
    assert any(c.key == "seq_heatmap" for c in at.get("plotly_chart"))
