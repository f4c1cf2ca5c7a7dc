"""The LLM re-rank page with the packaged SmolLM2: re-ranking, attention beside attribution."""

from streamlit.testing.v1 import AppTest

from conftest import ROOT


def test_rerank_page_shows_the_llm_component_and_its_decision():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600).run()
    at.text_area(key="ctx_intent").input("something warm for breakfast").run()
    at.switch_page("app_pages/rerank.py").run()
    assert not at.exception, at.exception
    at.slider(key="llm_k").set_value(6).run()
    assert not at.exception, at.exception
    table = next(d.value for d in at.dataframe if "before" in d.value.columns)
    assert len(table) == 6 and sorted(table["before"]) == list(range(1, 7))
    assert table["score"].is_monotonic_decreasing
    charts = {c.key for c in at.get("plotly_chart")}
    assert {"llm_breakdown", "llm_attention_bars", "llm_occlusion_bars"} <= charts
    assert any("Attention is not attribution" in i.value for i in at.info)

    at.slider(key="llm_weight").set_value(0.0).run()  # weight 0: the first stage's order
    table = next(d.value for d in at.dataframe if "before" in d.value.columns)
    assert list(table["before"]) == list(range(1, 7))

    at.toggle(key="llm_explain").set_value(True).run()
    assert not at.exception, at.exception
    assert sum("✨" in m.value for m in at.markdown) >= 5


def test_an_llm_that_cannot_load_says_why(no_network):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.switch_page("app_pages/rerank.py").run()
    at.selectbox(key="llm_choice").set_value("Other (Hugging Face id or local folder)…").run()
    at.text_input(key="llm_custom").input("/no/such/llm/folder").run()
    assert not at.exception, at.exception
    assert any("/no/such/llm/folder" in e.value for e in at.error)
