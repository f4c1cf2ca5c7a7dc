"""The app driven through Streamlit's AppTest: real model, real catalog, widgets by key."""

from datetime import time

import numpy as np
import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from ctxrec import read_catalog_csv

TIMEOUT = 240


def _titles(at):
    return [m.value.split("**")[1] for m in at.markdown if m.value.startswith("**")]


@pytest.fixture
def app():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    return at


def test_app_starts_and_shows_a_ranking(app):
    assert len(_titles(app)) == 10
    assert any("device **cpu**" in c.value or "device **cuda**" in c.value for c in app.caption)
    assert app.get("plotly_chart")


def _cost_panel(at):
    panel = [e for e in at.expander if e.label.startswith("⏱️ Where the ")]
    assert len(panel) == 1
    return panel[0]


def test_the_cost_panel_shows_the_stages_of_this_ranking(app):
    panel = _cost_panel(app)
    total = float(panel.label.split("the ")[1].split(" ms")[0].replace(",", ""))
    table = panel.dataframe[0].value
    assert list(table["stage"]) == ["read intent", "encode", "components", "fusion and top-k"]
    assert table["ms"].sum() <= total + 0.5  # the label rounds the total to a whole millisecond
    captions = " ".join(c.value for c in panel.caption)
    assert "every item scored exactly" in captions
    assert "This server's start-up: imports" in captions and "first ranking" in captions

    # the stages make up the call. The glue between them is a fixed 0.06–0.15 ms: 2–6 % of these
    # 3 ms rankings of the built-in catalog (a clean-clone CI run read 94 % three times), a pause
    # can add a tenth, so three are read; the 5 % target holds for longer calls (bench JSON)
    shares = []
    for _ in range(3):
        caption = " ".join(c.value for c in _cost_panel(app).caption)
        shares.append(int(caption.split("the stages account for ")[1].split("%")[0]) / 100)
        app.run()
    assert max(shares) >= 0.9 and min(shares) >= 0.8, shares


def test_intent_time_and_feedback_rerank(app):
    app.text_area(key="ctx_intent").input("a quick vegetarian dinner to cook").run()
    assert not app.exception
    top = _titles(app)[0]
    assert "recipe" in next(m.value for m in app.markdown if top in m.value)

    app.time_input(key="ctx_time").set_value(time(7, 30)).run()
    assert not app.exception and _titles(app)

    first_up = next(b for b in app.button if b.key and b.key.startswith("fb_up_"))
    item_id = first_up.key.removeprefix("fb_up_")
    first_up.click().run()
    assert not app.exception
    assert item_id in app.multiselect(key="ctx_liked").value
    assert top not in _titles(app)  # seen items leave the list at once
    assert any(m.value.startswith(":blue[Why:]") and "attends to" in m.value
               for m in app.markdown)

    down = next(b for b in app.button if b.key and b.key.startswith("fb_down_"))
    down.click().run()
    assert down.key.removeprefix("fb_down_") in app.multiselect(key="ctx_disliked").value


def test_long_intent_is_truncated_with_a_message(app):
    app.text_area(key="ctx_intent").input("Something calm and slow for a rainy evening. " * 450)
    app.run()
    assert not app.exception
    assert any("tokens long" in w.value for w in app.warning)
    assert len(_titles(app)) == 10


def test_a_model_that_cannot_load_keeps_the_previous_one(app, no_network):
    app.selectbox(key="model_choice").select_index(3).run()
    app.text_input(key="model_custom").input("/no/such/model/folder").run()
    app.button(key="model_load").click().run()
    assert not app.exception
    assert any("Could not load '/no/such/model/folder'" in e.value for e in app.error)
    assert any("In use: **all-MiniLM-L6-v2 (packaged)**" in c.value for c in app.caption)
    assert len(_titles(app)) == 10


def test_manual_weights_and_diversity(app):
    app.radio(key="opt_weight_mode").set_value("Manual").run()
    app.slider(key="opt_w_context").set_value(0.0).run()
    app.slider(key="opt_diversity").set_value(0.5).run()
    assert not app.exception
    assert any("Weights (manual)" in c.value for c in app.caption)


def test_an_uploaded_catalog_with_everything_seen():
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    app.session_state["catalog_uploaded"] = read_catalog_csv(
        b"id,title\n1,Dawn Loaf\n2,Night Bus\n", name="tiny.csv")
    app.session_state["catalog_source"] = "Upload CSV"
    app.query_params["liked"] = "1,2,film-01"
    app.run()
    assert not app.exception
    assert any("not in tiny.csv" in i.value for i in app.info)  # film-01 dropped
    assert any("Every item is already in the history" in w.value for w in app.warning)
    assert any("Nothing to recommend" in i.value for i in app.info)


def test_a_shared_link_sets_the_context_and_bad_values_are_named():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params.update({"when": "2026-11-21T19:30", "place": "moon", "device": "tv",
                            "with": "family,kids", "intent": "a funny film for the kids",
                            "liked": "film-01"})
    at.run()
    assert not at.exception
    assert at.time_input(key="ctx_time").value == time(19, 30)
    assert at.selectbox(key="ctx_device").value == "tv"
    assert at.multiselect(key="ctx_liked").value == ["film-01"]
    assert any("place='moon'" in w.value for w in at.warning)
    assert any("Saturday evening" in c.value for c in at.caption)
    assert dict(at.query_params) == {  # the link now names the context as shown
        "when": "2026-11-21T19:30", "place": "home", "device": "tv", "with": "family,kids",
        "intent": "a funny film for the kids", "liked": "film-01"}


LINK = {"when": "2026-11-21T19:30", "device": "tv", "with": "family,kids",
        "intent": "a funny film to watch with the kids", "liked": "film-01,game-22",
        "disliked": "film-02"}


@pytest.fixture
def linked():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params.update(LINK)
    at.run()
    assert not at.exception
    return at


def test_attention_page_views(linked):
    linked.switch_page("app_pages/attention.py").run()
    assert not linked.exception and linked.get("plotly_chart")
    for view in ("Head average", "Rollout (all layers)", "All layers × heads", "One head"):
        linked.radio(key="att_view").set_value(view).run()
        assert not linked.exception, view
    linked.slider(key="att_layer").set_value(4).run()
    linked.radio(key="att_focus").set_value("context→item").run()
    linked.toggle(key="att_hide_special").set_value(True).run()
    assert not linked.exception
    assert linked.session_state["att_layer"] == 4


def test_history_heatmap_shows_the_rankings_own_weights(linked, recommender):
    import base64
    import json

    from ctxrec.data.context import context_from_params

    linked.switch_page("app_pages/history_attention.py").run()
    assert not linked.exception
    z = json.loads(linked.get("plotly_chart")[0].proto.spec)["data"][0]["z"]  # plotly's binary form
    rows, cols = (int(n) for n in z["shape"].split(","))
    shown = np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(rows, cols)
    context, _ = context_from_params(LINK)
    expected = recommender.recommend(context, k=10).history_attention
    np.testing.assert_allclose(shown, expected, atol=1e-6)


def test_similarity_and_learn_pages(linked):
    linked.switch_page("app_pages/similarity.py").run()
    assert not linked.exception
    assert linked.metric[0].label == "Cosine"
    linked.radio(key="sim_source").set_value("the whole context").run()
    assert not linked.exception
    linked.switch_page("app_pages/learn.py").run()
    assert not linked.exception
    assert any("equal the model's own attention" in s.value for s in linked.success)
    linked.select_slider(key="learn_token").set_value(3).run()
    assert not linked.exception


def test_page_state_is_kept_between_pages(linked):
    linked.switch_page("app_pages/attention.py").run()
    linked.slider(key="att_head").set_value(5).run()
    linked.switch_page("app_pages/learn.py").run()
    assert linked.slider(key="att_head").value == 5
    linked.switch_page("app_pages/recommend.py").run()
    assert linked.text_area(key="ctx_intent").value == LINK["intent"]


def test_a_link_restores_the_inspected_item_layer_and_head():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params.update({**LINK, "item": "film-05", "layer": "4", "head": "oops"})
    at.switch_page("app_pages/attention.py").run()
    assert not at.exception
    assert at.selectbox(key="sel_item").value == "film-05"
    assert at.slider(key="att_layer").value == 4 and at.slider(key="att_head").value == 0
    assert at.query_params["item"] == "film-05" and at.query_params["layer"] == "4"


def test_compare_and_scenario_pages(tmp_path, monkeypatch):
    monkeypatch.setenv("CTXREC_SCENARIOS", str(tmp_path / "s.sqlite"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params.update(LINK)
    at.run()
    at.switch_page("app_pages/scenarios.py").run()
    at.text_input(key="scn_name").input("Kids evening").run()
    at.text_input(key="scn_story").input("film night").run()
    at.button(key="scn_save").click().run()
    assert not at.exception and any("Saved" in s.value for s in at.success)
    at.text_input(key="scn_new_name").input("Kids film night").run()
    at.button(key="scn_rename").click().run()
    assert at.selectbox(key="scn_chosen").options == ["Kids film night"]

    at.switch_page("app_pages/compare.py").run()
    assert not at.exception
    at.selectbox(key="cmp_B").set_value("💾 Kids film night").run()
    assert not at.exception
    assert at.get("plotly_chart") and len(at.dataframe) == 3

    at.switch_page("app_pages/recommend.py").run()
    at.selectbox(key="scenario_pick").set_value("⭐ Monday 7:40 commute").run()
    at.button(key="scenario_load").click().run()
    assert not at.exception
    assert at.selectbox(key="ctx_place").value == "commute"
    assert at.text_area(key="ctx_intent").value.startswith("something short to listen to")
