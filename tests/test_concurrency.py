"""One model, many sessions: the app's sessions are threads that share each cached model. Eight
threads score and read attention at once on one shared model and must get exactly what one
thread gets, with no exception. Each task mixes calls that, before the fix, changed the shared
model per call (attention kernel, memory mode, forward hooks, tokenizer truncation)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import numpy as np
import pytest
import torch

from ctxrec import Context, HistoryEntry

THREADS = 8


def _together(tasks: list, rounds: int = 3) -> list:
    """Run every task on its own thread, all released at once, ``rounds`` times over; the result
    of each task in each round, in task order."""
    gate = threading.Barrier(len(tasks))

    def run(task):
        gate.wait()
        return [task() for _ in range(rounds)]

    with ThreadPoolExecutor(len(tasks)) as pool:
        return list(pool.map(run, tasks))


def _same(alone, together, atol: float) -> None:
    for want, got_rounds in zip(alone, together):
        for got in got_rounds:
            for a, b in zip(want, got):
                np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=atol)


def _contexts(n: int) -> list[Context]:
    places = ("home", "work", "commute", "outdoors")
    return [Context(when=datetime(2026, 3, 3 + i, (7 + 3 * i) % 24, 30), place=places[i % 4],
                    device="phone", intent=f"something for moment number {i}",
                    history=(HistoryEntry("book-06", 1),)) for i in range(n)]


@pytest.fixture(scope="module")
def llm():
    from ctxrec.llm.models import DEFAULT_LLM, load_llm

    return load_llm(DEFAULT_LLM, device="cpu")


def test_llm_scores_and_attention_from_eight_threads(llm, catalog):
    """Scores run with fused attention and the attention views with the eager kernel; a kernel
    switched per call on the shared model gave other threads ``attentions=None``."""
    from ctxrec.llm.rerank import LLMReranker

    reranker = LLMReranker(llm, cache_size=8)  # fewer than the prompts: eviction happens
    contexts, items = _contexts(THREADS), list(catalog.ids[:2 * THREADS])

    def task(n):
        context, brief = contexts[n], [catalog.brief(i) for i in items[2 * n:2 * n + 2]]
        texts = [reranker.prompt(context, b).text for b in brief]

        def fresh():  # past the cache, so every call runs the model
            return reranker.judge_prompts(texts, use_cache=False)

        if n % 2:
            return lambda: [reranker.answer_focus(context, brief[0]).per_head, fresh()]
        return lambda: [fresh(), reranker.judge_prompts(texts)]

    tasks = [task(n) for n in range(THREADS)]
    alone = [t() for t in tasks]
    assert np.ptp(np.concatenate([a[0] for a in alone[::2]])) > 1e-2  # the scores differ
    _same(alone, _together(tasks, rounds=2), atol=1e-4)
    assert len(reranker._scores) <= 8


def test_sequence_model_memory_modes_from_eight_threads():
    """The same weights read long histories three ways; the way is an argument, not a setting
    changed on the shared model."""
    from ctxrec.sequence.config import SequenceConfig
    from ctxrec.sequence.model import SASRec
    from ctxrec.sequence.train import TrainedModel

    torch.manual_seed(0)
    config = SequenceConfig(n_items=40, max_len=6, hidden=16, layers=2, heads=2, dropout=0.0,
                            n_summaries=4, item_repr="id")
    trained = TrainedModel(SASRec(config).eval(), [f"i{j}" for j in range(40)])
    rng = np.random.default_rng(0)
    histories = [rng.integers(0, 40, size=int(rng.integers(14, 30))) for _ in range(THREADS)]
    memories = [None, "truncate", "xl", "hierarchical"]

    def task(n):
        history, memory = histories[n], memories[n % 4]
        return lambda: [trained.next_item_scores([history], memory),
                        trained.self_attention(history)[0]]

    tasks = [task(n) for n in range(THREADS)]
    alone = [t() for t in tasks]
    modes = [trained.next_item_scores([histories[0]], m) for m in memories[1:]]
    assert min(np.abs(modes[0] - m).max() for m in modes[1:]) > 1e-3  # the modes differ
    _same(alone, _together(tasks, rounds=20), atol=1e-5)
    assert trained.config.memory == "truncate"


def test_encoder_attention_and_step_by_step_from_eight_threads(catalog):
    """The Attention and Learn pages on one shared encoder: pairs of different lengths, and the
    step-by-step view whose hooks sit on modules every forward pass runs through."""
    from ctxrec.inspect.attention import AttentionModel

    model = AttentionModel()
    ids = list(catalog.ids[:THREADS])

    def task(n):
        item = catalog.text(ids[n])
        if n % 2:
            return lambda: [model.attend(f"a quiet evening number {n} " * (n + 1),
                                         item).attentions]
        return lambda: [v for step in [model.step_by_step(item, layer=n % 6, head=n % 12)[1]]
                        for v in (step.q, step.weights, step.model_weights)]

    tasks = [task(n) for n in range(THREADS)]
    alone = [t() for t in tasks]
    _same(alone, _together(tasks), atol=1e-5)


def test_text_encoder_encodes_and_counts_tokens_from_eight_threads(encoder, catalog):
    long_text = "Something calm and slow for a rainy evening. " * 200
    texts = catalog.texts()[:8]

    def task(n):
        if n % 2:
            return lambda: [np.array([encoder.truncation(long_text).kept_chars])]
        return lambda: [encoder.encode(texts[n:] + texts[:n], batch_size=4)]

    tasks = [task(n) for n in range(THREADS)]
    alone = [t() for t in tasks]
    _same(alone, _together(tasks), atol=1e-5)
