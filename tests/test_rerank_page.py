"""The LLM re-rank page with the packaged SmolLM2: re-ranking, attention beside attribution, and
trust in a model's own code asked for beside the model."""

import json
import shutil

from conftest import ROOT
from streamlit.testing.v1 import AppTest

from ui.pickers import OTHER


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


def _remote_code_model(folder, marker):
    """A model folder whose config is custom code that leaves ``marker`` behind when it runs
    (with MiniLM's tokenizer, so loading gets as far as the model's config)."""
    from ctxrec.text.encoders import default_encoder_path

    folder.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                 "vocab.txt"):
        shutil.copy(default_encoder_path() / name, folder / name)
    (folder / "config.json").write_text(json.dumps({
        "model_type": "ctxrec-marker", "architectures": ["MarkerForCausalLM"],
        "auto_map": {"AutoConfig": "configuration_marker.MarkerConfig"}}))
    (folder / "configuration_marker.py").write_text(
        "from pathlib import Path\n"
        "from transformers import PretrainedConfig\n"
        f"Path({str(marker)!r}).write_text('remote code ran')\n\n\n"
        "class MarkerConfig(PretrainedConfig):\n"
        "    model_type = 'ctxrec-marker'\n")
    return folder


def test_trust_ticked_for_the_encoder_does_not_carry_to_an_llm(tmp_path):
    marker = tmp_path / "remote-code-ran"
    folder = _remote_code_model(tmp_path / "remote-llm", marker)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.checkbox(key="model_trust").check().run()
    at.button(key="model_load").click().run()  # the packaged encoder, now trusted
    assert not at.exception, at.exception
    at.switch_page("app_pages/rerank.py").run()
    at.selectbox(key="llm_choice").set_value(OTHER).run()
    at.text_input(key="llm_custom").input(str(folder)).run()
    assert not at.exception, at.exception
    assert not marker.exists(), "the encoder's trust reached the LLM"
    assert any("needs to run its own code" in e.value for e in at.error)
    assert at.checkbox(key="llm_trust").value is False

    at.checkbox(key="llm_trust").check().run()  # asked for beside the LLM: it applies
    assert marker.exists()
    at.text_input(key="llm_custom").input(str(tmp_path / "another")).run()
    assert at.checkbox(key="llm_trust").value is False, "trust belongs to the id it was given"
