"""The LLM re-ranker tuned on a log: listwise scoring, examples from the training split, fusion
weights chosen on validation, LoRA tuning with early stopping, and an adapter that loads merged in
the CLI and the LLM re-rank page. Code paths on a tiny random Llama; one run on the packaged
SmolLM2."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pytest
import torch
from conftest import ROOT

from ctxrec import Context, HistoryEntry, ModelLoadError
from ctxrec.cli import main
from ctxrec.data.movielens import load_movielens
from ctxrec.evaluation.split import leave_last_out
from ctxrec.llm.adapters import (ADAPTER_FILE, describe_adapter, load_tuned_reranker,
                                 read_adapter, rerankers_dir, tuned_rerankers)
from ctxrec.llm.models import DEFAULT_LLM, load_llm
from ctxrec.llm.rerank import LLMReranker, label_token_ids
from ctxrec.tune.reranker import (RerankList, fused_ndcg, score_lists, training_moments,
                                  training_rows, tune_reranker, validated_weight)

EVENING = Context(when=datetime(2026, 3, 6, 21, 0), place="home", device="tv",
                  companions=("partner",), intent="a film for tonight",
                  history=(HistoryEntry("film-16", 1),))


@pytest.fixture
def listwise(tiny_llm_folder):
    return LLMReranker(load_llm(str(tiny_llm_folder), device="cpu", dtype="float32"),
                       scoring="listwise")


def _briefs(catalog, n=6):
    return [catalog.brief(i) for i in catalog.ids[:n]]


def test_listwise_scores_are_letter_log_probabilities_in_one_prompt(listwise, catalog):
    briefs = _briefs(catalog)
    prompt = listwise.list_prompt(EVENING, briefs)
    for letter, brief in zip("ABCDEF", briefs):
        assert f"{letter}. {brief}" in prompt.text
    assert "Answer with its letter" in prompt.text
    scores = listwise.judge(EVENING, briefs)
    assert scores.shape == (6,) and np.isclose(np.exp(scores).sum(), 1.0)
    # batched prompts of different lengths score as each does alone (left padding, positions)
    texts = [prompt.text, listwise.list_prompt(EVENING, briefs[::-1]).text,
             listwise.list_prompt(Context(), briefs).text]
    together = listwise.judge_lists(texts, 6, use_cache=False)
    alone = np.stack([listwise.judge_lists([t], 6, use_cache=False)[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-4)
    with pytest.raises(ValueError, match="at most 26"):
        listwise.list_prompt(EVENING, ["x"] * 27)


def test_each_letter_owns_its_tokens(listwise):
    labels = label_token_ids(listwise.llm.tokenizer, 26)
    flat = [i for ids in labels for i in ids]
    assert len(labels) == 26 and len(flat) == len(set(flat))


def test_listwise_occlusion_and_attention_read_the_list(listwise, catalog):
    briefs = _briefs(catalog)
    base = listwise.judge(EVENING, briefs)[2]
    rows = listwise.occlusion(EVENING, briefs[2], None, briefs)
    assert [r.field for r in rows] == ["time", "place", "device", "companions", "history 1",
                                       "intent"]
    without_time = listwise.list_prompt(EVENING, briefs, drop=["time"]).text
    alone = listwise.judge_lists([without_time], 6, use_cache=False)[0, 2]
    assert np.isclose(rows[0].delta, base - alone, atol=1e-4)
    focus = listwise.answer_focus(EVENING, briefs[2], None, briefs)
    assert {f"item {x}" for x in "ABCDEF"} <= set(focus.fields["field"])
    assert np.isclose(focus.rollout.sum(), 1.0, atol=1e-3)


def test_the_sequence_order_reaches_the_list(listwise, catalog):
    """The ranker's top K are lettered in the first stage's order, whatever order argpartition
    gives them in."""
    from ctxrec.llm.ranker import LLMRerankRanker
    from ctxrec.rank.query import Query, query_context

    class Fixed:
        name = "fixed"

        def scores(self, queries):
            return np.tile(np.linspace(1.0, 0.0, len(catalog)), (len(queries), 1))

    query = Query("u", np.array([3]), np.array([np.nan]), np.array([""], dtype=object), None,
                  None, "")
    LLMRerankRanker(Fixed(), listwise, catalog, top_k=30).scores([query])
    first_26 = [catalog.brief(i) for i in catalog.ids[:26]]  # 26 letters at most
    context = query_context(query, catalog.ids, 10)
    expected = listwise.list_prompt(context, first_26, {h.item_id: catalog.title(h.item_id)
                                                        for h in context.history}).text
    assert list(listwise._lists) == [expected]  # the one prompt scored


def _list(hit: int | None, base_rank: int, k: int = 5) -> RerankList:
    candidates = np.arange(k)
    target = hit if hit is not None else 99
    return RerankList(Context(), candidates, np.linspace(1.0, 0.9, k), target, base_rank)


def test_fused_ndcg_and_the_validated_weight():
    lists = [_list(3, 4), _list(0, 1), _list(None, 40)]
    right = [np.eye(5)[3] * 5, np.eye(5)[0] * 5, np.zeros(5)]  # the LLM puts each item first
    wrong = [-r for r in right]
    assert np.isclose(fused_ndcg(lists, right, 0.0), (1 / np.log2(5) + 1) / 3)
    assert np.isclose(fused_ndcg(lists, right, 5.0), 2 / 3)  # both hits ranked first
    assert validated_weight(lists, right)[0] > 0
    weight, table = validated_weight(lists, wrong)
    assert weight == 0.0 and table["0"] == max(table.values())  # one that hurts gets weight 0


def test_training_rows_come_from_the_training_histories_and_label_one_token(listwise,
                                                                             tiny_movielens):
    catalog, interactions = load_movielens(tiny_movielens)
    split = leave_last_out(interactions, catalog, "exact")
    queries, targets = training_moments(split, per_user=3, seed=0)
    assert len(queries) == 3 * len(split.histories)
    for query, target in zip(queries, targets):
        history = split.histories[query.user]
        t = len(query.items)
        assert t >= 3 and history[t] == target and np.array_equal(history[:t], query.items)
        assert query.timestamp == split.history_times[query.user][t]
    lists = [RerankList(Context(), np.array([5, target, 7, 9]), np.zeros(4), target, 2)
             for target in (1, 2)] + [RerankList(Context(), np.arange(4), np.zeros(4), 20, 30)]
    rows = training_rows(lists, catalog, listwise)
    assert len(rows) == 2  # the list without the item used next teaches nothing
    letter_b = label_token_ids(listwise.llm.tokenizer, 4)[1][0]
    for row in rows:
        assert row["labels"][-1] == row["input_ids"][-1] == letter_b
        assert set(row["labels"][:-1]) == {-100}
    pointwise = LLMReranker(listwise.llm, scoring="pointwise")
    assert len(training_rows(lists, catalog, pointwise, negatives=2)) == 2 * 3


def _constant_answer_lists(catalog, n: int, seed: int) -> list[RerankList]:
    """Lists whose item used next is always the third candidate: a re-ranker that learns to
    answer C re-ranks every one of them perfectly."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        candidates = rng.choice(len(catalog), 6, replace=False)
        out.append(RerankList(EVENING, candidates, np.linspace(1, 0.5, 6), int(candidates[2]), 3))
    return out


def test_tuning_learns_keeps_the_best_and_saves_an_adapter_that_loads_merged(listwise, catalog,
                                                                           tmp_path):
    train = _constant_answer_lists(catalog, 48, seed=1)
    valid = _constant_answer_lists(catalog, 8, seed=2)
    rows = training_rows(train, catalog, listwise)
    out = tmp_path / "adapter"
    info = tune_reranker(listwise, rows, valid, catalog, out, epochs=3, batch_size=8,
                         learning_rate=5e-3, lora_rank=4, lora_layers=0, eval_every=6,
                         patience=2, record={"dataset": "constant"})
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    saved = read_adapter(out)
    assert saved == json.loads(json.dumps(info)) and saved["scoring"] == "listwise"
    checks = saved["checks"]
    assert checks[0]["step"] == 0 and saved["best_step"] > 0
    assert saved["validation"]["tuned"] > saved["validation"]["zero_shot"]
    assert saved["validation"]["tuned"] == max(c["valid_ndcg@10"] for c in checks)
    assert saved["weight"] > 0 and "validated weight" in describe_adapter(saved)
    # loaded fresh, merged into the base weights, it scores as the tuned model did
    loaded = load_tuned_reranker(out, device="cpu", dtype="float32")  # as it was tuned
    assert loaded.scoring == "listwise" and loaded.name.endswith("+ adapter")
    fresh = score_lists(loaded, valid, catalog)
    np.testing.assert_allclose(fresh, score_lists(listwise, valid, catalog), atol=1e-4)
    assert np.mean([s.argmax() == 2 for s in fresh]) > 0.5
    default = score_lists(load_tuned_reranker(out, device="cpu"), valid, catalog)
    assert np.mean([s.argmax() == 2 for s in default]) > 0.5  # what it learned survives bfloat16


def test_a_folder_that_is_not_a_tuned_reranker_says_so(tmp_path):
    with pytest.raises(ModelLoadError, match="not a tuned re-ranker"):
        read_adapter(tmp_path)
    (tmp_path / ADAPTER_FILE).write_text("{not json")
    with pytest.raises(ModelLoadError, match="cannot be read"):
        read_adapter(tmp_path)


def test_the_command_tunes_evaluates_and_the_page_offers_the_result(tiny_movielens, tiny_llm_folder,
                                                                   tmp_path, capsys,
                                                                   monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CTXREC_HOME", str(tmp_path / "home"))
    checkpoint = tmp_path / "seq"
    assert main(["train", "--data", str(tiny_movielens), "--item-repr", "id", "--max-len", "8",
                 "--hidden", "16", "--epochs", "2", "--out", str(checkpoint)]) == 0
    capsys.readouterr()
    assert main(["tune-llm", "--data", str(tiny_movielens), "--checkpoint", str(checkpoint),
                 "--model", str(tiny_llm_folder), "--examples-per-user", "2", "--top-k", "6",
                 "--eval-every", "5", "--batch-size", "4", "--results",
                 str(tmp_path / "run.json")]) == 0
    run = json.loads(capsys.readouterr().out)
    folder = rerankers_dir() / f"{tiny_movielens.name}-listwise"  # the default --out
    assert run["kind"] == "tune-llm" and run["out"] == str(folder)
    assert tuned_rerankers() == [folder]
    assert run["moments"] == 80 and 0 < run["examples"] == run["moments_with_item_in_k"]
    assert run["validation"]["events"] == 40
    first, tuned = run["validation"]["first_stage"], run["validation"]["tuned"]
    assert tuned >= first - 1e-12  # weight 0 is always tried, so the kept one never loses

    assert main(["evaluate", "--data", str(tiny_movielens), "--models", "popularity",
                 "--checkpoint", str(checkpoint), "--llm-adapter", str(folder), "--llm-k", "6",
                 "--llm-dtype", "float32", "--target", "valid", "--out",
                 str(tmp_path / "ev.json")]) == 0
    ev = json.loads(capsys.readouterr().out)
    rows = {(r["model"], r["protocol"]): r for r in ev["results"]}
    reranked = [m for m, p in rows if "re-rank" in m]
    assert reranked and f"weight {run['weight']:g}" in reranked[0] and "listwise" in reranked[0]
    # the same validation events, the same fusion, the dtype it was tuned in: the figure is the
    # one tune-llm chose
    row = rows[(reranked[0], "full ranking (history not masked)")]
    assert np.isclose(row["NDCG@10"], tuned)
    # and it is compared, user by user, with the first stage it re-ranks
    first_stage = next(m for m, _ in rows if m.startswith("SASRec") and "re-rank" not in m)
    paired = row["vs_reference"]
    assert paired["model"] == first_stage and 0 <= paired["p_ndcg"] <= 1
    assert np.isclose(paired["ndcg_ratio"], tuned / first)
    low, high = paired["ndcg_difference_ci95"]
    assert low <= paired["ndcg_difference"] <= high

    # an untuned model reads the list the same way when asked to
    assert main(["evaluate", "--data", str(tiny_movielens), "--models", "popularity",
                 "--checkpoint", str(checkpoint), "--llm-rerank", "--llm", str(tiny_llm_folder),
                 "--llm-scoring", "listwise", "--llm-k", "6", "--target", "valid", "--out",
                 str(tmp_path / "zero-shot.json")]) == 0
    zero_shot = json.loads(capsys.readouterr().out)["results"]
    assert any("(listwise, top 6, weight 1)" in r["model"] for r in zero_shot)

    results = tmp_path / "home" / "results"  # where the Evaluate page looks
    results.mkdir(parents=True, exist_ok=True)
    for saved in ("run.json", "ev.json"):
        (results / saved).write_text((tmp_path / saved).read_text())
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.switch_page("app_pages/evaluate.py").run()
    for saved in ("run.json", "ev.json"):
        at.selectbox(key="ev_file").set_value(results / saved).run()
        at.button(key="ev_load").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
    said = " ".join(c.value for c in at.caption)
    assert f"against **{first_stage}**" in said and "paired p" in said
    at.selectbox(key="ev_file").set_value(results / "run.json").run()
    at.button(key="ev_load").click().run()
    assert any(h.value.startswith("LLM re-ranker tuned on") for h in at.subheader)
    assert len(at.dataframe[0].value) == len(run["checks"])

    assert main(["recommend", "--intent", "a film for tonight", "-k", "5", "--llm-k", "8",
                 "--llm-adapter", str(folder)]) == 0
    said = capsys.readouterr()
    table = said.out.splitlines()
    assert "llm" in table[0].split() and len(table) == 1 + 5
    assert "re-ranked the top 8" in said.err and "lettered list" in said.err

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.switch_page("app_pages/rerank.py").run()
    choice = at.selectbox(key="llm_choice")
    assert str(folder) in choice.options
    choice.select(str(folder)).run()
    assert not at.exception, at.exception
    assert at.slider(key="llm_weight").value == pytest.approx(run["weight"])
    assert any("Tuned from" in i.value for i in at.info)
    assert at.slider(key="llm_k").max <= 26
    assert {"llm_attention_bars", "llm_occlusion_bars"} <= {c.key for c in
                                                            at.get("plotly_chart")}

    assert main(["tune-llm", "--data", str(tiny_movielens), "--checkpoint", str(checkpoint),
                 "--top-k", "30"]) == 2
    assert "--top-k must be between 2 and 26" in capsys.readouterr().err


def test_the_packaged_model_tunes_and_loads(catalog, tmp_path):
    """One real run: a few steps of LoRA on SmolLM2-135M, saved and merged back."""
    with pytest.raises(ValueError, match="tunes in float32"):
        tune_reranker(LLMReranker(load_llm(DEFAULT_LLM, device="cpu", dtype="bfloat16"),
                                  scoring="listwise"), [{}], [], catalog, tmp_path / "b")
    reranker = LLMReranker(load_llm(DEFAULT_LLM, device="cpu", dtype="float32"),
                           scoring="listwise")
    train = _constant_answer_lists(catalog, 4, seed=1)
    valid = _constant_answer_lists(catalog, 2, seed=2)
    info = tune_reranker(reranker, training_rows(train, catalog, reranker), valid, catalog,
                         tmp_path / "a", batch_size=2, eval_every=1, patience=5)
    assert info["steps"] == 2 and len(info["checks"]) == 3 and info["lora_layers"] == 8
    tuned = score_lists(reranker, valid, catalog)
    loaded = load_tuned_reranker(tmp_path / "a", device="cpu", dtype="float32")
    np.testing.assert_allclose(score_lists(loaded, valid, catalog), tuned, atol=1e-3)
    # the default load (bfloat16 on a CPU that computes in it) reads the lists the same way
    default = score_lists(load_tuned_reranker(tmp_path / "a", device="cpu"), valid, catalog)
    assert np.corrcoef(np.concatenate(default), np.concatenate(tuned))[0, 1] > 0.9


def test_the_train_page_tunes_in_the_background_and_hands_the_result_over(tiny_movielens,
                                                                        tiny_llm_folder, tmp_path,
                                                                        monkeypatch):
    from streamlit.testing.v1 import AppTest

    from ctxrec.sequence.job import models_home
    from ctxrec.tune.job import latest_tuning

    monkeypatch.setenv("CTXREC_HOME", str(tmp_path / "home"))
    assert main(["train", "--data", str(tiny_movielens), "--item-repr", "id", "--max-len", "8",
                 "--hidden", "16", "--epochs", "2", "--out",
                 str(models_home() / "tiny-seq")]) == 0
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.switch_page("app_pages/train.py").run()
    at.radio(key="tn_kind").set_value("llm").run()
    at.text_input(key="tn_data").set_value(str(tiny_movielens)).run()
    assert at.selectbox(key="tn_checkpoint").value.name == "tiny-seq"
    at.selectbox(key="tn_llm_choice").set_value(
        "Other (Hugging Face id or local folder)…").run()
    at.text_input(key="tn_llm_custom").input(str(tiny_llm_folder)).run()
    at.number_input(key="tn_every").set_value(5)
    at.number_input(key="tn_cross_fit").set_value(2)
    at.button(key="FormSubmitter:tn_llm_form-Tune").click().run()
    assert not at.exception, at.exception
    job = latest_tuning()
    assert job is not None and job.kind == "llm"
    assert job.wait(600) and job.error is None, job.error
    assert job.result["cross_fit"] == 2 and job.result["moments"] == 2 * 40
    at.run()
    assert not at.exception, at.exception
    assert any("Done: saved as" in s.value for s in at.success)
    assert any("Tuned from" in i.value for i in at.info)
    assert "tn_curves_done" in {c.key for c in at.get("plotly_chart")}
    at.button(key="tn_use").click().run()
    at.switch_page("app_pages/rerank.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="llm_choice").value == str(job.out)
    assert at.slider(key="llm_weight").value == pytest.approx(job.result["weight"])


def test_the_tuning_bench_reports_both_ways_against_scoring_the_same_prompts(tiny_movielens,
                                                                          capsys):
    assert main(["bench", "tune-llm", "--data", str(tiny_movielens), "--calls", "8"]) == 0
    out = json.loads(capsys.readouterr().out)
    for way in ("listwise", "pointwise"):
        row = out[way]
        assert row["examples"] == 8 and row["seconds_per_1000_examples"] > 0
        assert row["ratio_to_scoring"] > 1  # a training step costs more than a forward pass
    assert out["listwise"]["prompt_tokens_mean"] > out["pointwise"]["prompt_tokens_mean"]


def test_an_adapter_loaded_in_bfloat16_keeps_updates_smaller_than_its_rounding_step(
        tiny_llm_folder, tmp_path):
    """LoRA's updates are mostly under half of bfloat16's step at the weights' scale; merged in
    float32 and rounded once they survive on average, where merging into weights already on
    bfloat16's grid rounds most of them away."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    peft = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llm_folder),
                          LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj"]))
    draw = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, weight in peft.named_parameters():
            if "lora_A" in name:
                weight.copy_(torch.randn(weight.shape, generator=draw))
            elif "lora_B" in name:
                weight.copy_(torch.randn(weight.shape, generator=draw) * 1e-4)
    peft.save_pretrained(tmp_path / "adapter")
    layers = peft.base_model.model.model.layers
    delta = torch.cat([(b.lora_B["default"].weight @ b.lora_A["default"].weight).flatten()
                       for b in (layer.self_attn.q_proj for layer in layers)]).detach()

    def q_weights(model) -> torch.Tensor:
        return torch.cat([layer.self_attn.q_proj.weight.detach().float().flatten()
                          for layer in model.model.layers])

    base = q_weights(load_llm(str(tiny_llm_folder), device="cpu", dtype="bfloat16").model)
    loaded = load_llm(str(tiny_llm_folder), device="cpu", dtype="bfloat16",
                      adapter=tmp_path / "adapter")
    assert next(loaded.model.parameters()).dtype == torch.bfloat16
    kept = float((q_weights(loaded.model) - base) @ delta / (delta @ delta))
    assert 0.7 < kept < 1.3
    naive = PeftModel.from_pretrained(
        load_llm(str(tiny_llm_folder), device="cpu", dtype="bfloat16").model,
        str(tmp_path / "adapter")).merge_and_unload()
    assert float((q_weights(naive) - base) @ delta / (delta @ delta)) < 0.5
