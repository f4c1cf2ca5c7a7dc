"""Benchmarks that print JSON. Ratios are measured against a reference in the same run, because the
machine is shared and absolute times drift."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .rank.costs import Costs
from .data.catalog import Catalog, builtin_catalog
from .data.context import Context, HistoryEntry
from .rank.recommender import Recommender, RecommenderConfig
from .text.embed_cache import item_embeddings
from .text.encoders import TextEncoder, load_encoder, pick_device

__all__ = ["bench_all", "bench_attention", "bench_context", "bench_encode", "bench_index",
           "bench_ray", "bench_recommend", "stage_medians", "synthetic_catalog"]

_INTENTS = ("something calm to read before bed", "a quick vegetarian dinner for two",
            "loud music for a morning run", "a funny film with the kids", "a podcast about space",
            "somewhere cozy for coffee and work", "a day out in nature", "a tense late-night thriller",
            "a board game for friends", "a short workout at my desk")


def synthetic_catalog(base: Catalog, vectors: np.ndarray, size: int, seed: int = 0,
                      jitter: float = 0.02, dtype: type = np.float32
                      ) -> tuple[Catalog, np.ndarray]:
    """``size`` items made from the built-in ones: rows repeated with new ids, vectors jittered
    (``jitter`` per dimension: at 0.02 a copy keeps a cosine of about 0.87 with its original, at
    0.05 about 0.5) and re-normalised, so scores and attributes stay realistic without encoding
    ``size`` texts. The vectors are made a slice at a time, so ``dtype`` float16 gives 10M
    items in 7 GB."""
    picks = np.arange(size) % len(base)
    items = base.items.iloc[picks].reset_index(drop=True)
    items["id"] = [f"{i}~{n}" for n, i in enumerate(items["id"])]
    return (Catalog(items=pd.DataFrame(items), name=f"synthetic-{size}"),
            _jittered(vectors, size, jitter, np.random.default_rng(seed), dtype))


def _jittered(vectors: np.ndarray, size: int, jitter: float, rng: np.random.Generator,
              dtype: type) -> np.ndarray:
    out = np.empty((size, vectors.shape[1]), dtype=dtype)
    step = 100_000  # each float32 temporary of a step is 150 MB
    for lo in range(0, size, step):
        picks = np.arange(lo, min(size, lo + step)) % len(vectors)
        block = vectors[picks] + rng.standard_normal((len(picks), vectors.shape[1]),
                                                     dtype=np.float32) * jitter
        out[lo:lo + len(picks)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def _evening(catalog: Catalog) -> Context:
    """The benchmarks' situation: a Saturday evening at home with the family, after five items
    of ``catalog`` (four liked, one not)."""
    history = tuple(HistoryEntry(str(i), s) for i, s in
                    zip(catalog.ids[[3, 40, 77, 150, 222]], (1, 1, -1, 1, 1)))
    return Context(when=pd.Timestamp("2026-11-21 19:30").to_pydatetime(), place="home",
                   device="tv", companions=("family",), history=history)


def _percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(samples_ms)
    return {"p50_ms": round(float(np.percentile(arr, 50)), 2),
            "p95_ms": round(float(np.percentile(arr, 95)), 2)}


def _time_calls(call: Callable[[int], object], n: int, warmup: int = 3) -> list[float]:
    for i in range(warmup):
        call(-1 - i)
    samples = []
    for i in range(n):
        start = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def bench_recommend(sizes: Sequence[int] = (1_000, 10_000, 100_000), calls: int = 50, k: int = 20,
                    encoder: TextEncoder | None = None) -> dict:
    """Latency of ``recommend(context, k)`` with a new intent on every call.

    Three cases per size: only the intent changes (the history and situation components come
    from the recommender's cache, as when a person types), the same with the intent reader off,
    and intent and history both change (nothing cached but the item vectors).
    """
    encoder = encoder or load_encoder()
    base = builtin_catalog()
    base_vectors = item_embeddings(encoder, base)
    results = {}
    for size in sizes:
        catalog, vectors = synthetic_catalog(base, base_vectors, size)
        situation = _evening(catalog)
        history = situation.history
        rec = Recommender(catalog, encoder, vectors)
        first_ids = catalog.ids

        costs: list[Costs] = []

        def new_intent(i: int) -> None:
            ranking = rec.recommend(replace(situation, intent=f"{_INTENTS[i % 10]} (variant {i})"),
                                    k=k)
            if i >= 0:
                costs.append(ranking.costs)

        def new_intent_reader_off(i: int) -> None:
            rec.recommend(replace(situation, intent=f"{_INTENTS[i % 10]} (plain {i})"), k=k,
                          read_intent=False)

        def new_intent_and_history(i: int) -> None:
            fresh = history + (HistoryEntry(str(first_ids[(i * 7919) % size]), 1),)
            rec.recommend(replace(situation, history=fresh,
                                  intent=f"{_INTENTS[i % 10]} (take {i})"), k=k)

        results[str(size)] = {"new_intent": _percentiles(_time_calls(new_intent, calls)),
                              "new_intent_stages": stage_medians(costs),
                              "new_intent_reader_off":
                                  _percentiles(_time_calls(new_intent_reader_off, calls)),
                              "new_intent_and_history":
                                  _percentiles(_time_calls(new_intent_and_history, calls))}
    return {"benchmark": "recommend", "k": k, "calls": calls, "history_items": len(history) + 1,
            "encoder": encoder.name, "device": encoder.device, "torch_threads":
                torch.get_num_threads(), "machine": platform.machine(), "results": results,
            "intent_reader": bench_intent_reader(base, calls, encoder.known_words()),
            "encode": bench_encode(encoder, base)}


def stage_medians(costs: Sequence[Costs]) -> dict:
    """The cost panel over many calls: per stage the median time, its device, dtype and memory,
    and the median share of the call the stages account for."""
    by_stage: dict[str, list] = {}
    for one in costs:
        for stage in one.stages:
            by_stage.setdefault(stage.stage, []).append(stage)
    return {"accounted": round(float(np.median([c.accounted for c in costs])), 4),
            "total_p50_ms": round(float(np.median([c.total_ms for c in costs])), 2),
            "stages": {name: {"p50_ms": round(float(np.median([s.ms for s in runs])), 3),
                              "device": runs[0].device, "dtype": runs[0].dtype,
                              "memory_mb": round(float(np.median([s.memory_mb for s in runs])), 1),
                              "memory": runs[0].memory}
                       for name, runs in by_stage.items()}}


def bench_index(sizes: Sequence[int] = (100_000, 1_000_000), vector_sizes: Sequence[int] = (),
                calls: int = 30, k: int = 20, jitter: float = 0.05) -> dict:
    """Ranking through the vector index against exact scoring, in the same run.

    Per size in ``sizes``: a synthetic catalog (``jitter`` sets how far its copies spread),
    ``recommend`` with a new intent on every call, once scoring every item and once through the
    index, with p50 times, their ratio, recall@k of the index's top k against the exact top k
    (in the benchmark's situation, and with no device and no company stated), the candidates
    scored, the stages of each route, and the index's build time and memory.

    Per size in ``vector_sizes`` (no catalog table, so 10M items fit in memory): the vectors
    alone, as float16; the index's candidates for an encoded intent rescored exactly against
    a brute-force top k over all of them.
    """
    import resource

    from .text.vector_index import VectorIndex

    encoder = load_encoder()
    base = builtin_catalog()
    base_vectors = item_embeddings(encoder, base)
    results: dict[str, dict] = {}
    for size in sizes:
        # made in float16 where the recommender keeps them so, which 10M items need to fit
        half = size >= RecommenderConfig().half_precision_from
        catalog, vectors = synthetic_catalog(base, base_vectors, size, jitter=jitter,
                                             dtype=np.float16 if half else np.float32)
        situation = _evening(catalog)
        start = time.perf_counter()
        rec = Recommender(catalog, encoder, vectors)
        recommender_s = time.perf_counter() - start
        index = VectorIndex.build(vectors, features=rec.retrieval)
        rec.attach_index(index)
        rows = {"exact": [], "index": []}

        def call(i: int, exact: bool) -> None:
            context = replace(situation, intent=f"{_INTENTS[i % 10]} ({'ex' if exact else 'ix'}"
                                                f"{i})")
            ranking = rec.recommend(context, k=k, exact=exact)
            if i >= 0:
                rows["exact" if exact else "index"].append(ranking)

        exact_ms = _time_calls(lambda i: call(i, True), calls)
        index_ms = _time_calls(lambda i: call(i, False), calls)
        recall, unstated = [], []
        # the same contexts both ways; also with no device and no company stated, where the
        # index's facet features divide by more facets than apply
        bare = replace(situation, device="none", companions=())
        for i in range(min(calls, 10)):
            for where, out in ((situation, recall), (bare, unstated)):
                context = replace(where, intent=f"{_INTENTS[i % 10]} (recall {i})")
                both = [set(rec.recommend(context, k=k, exact=e).table["item_id"])
                        for e in (1, 0)]
                out.append(len(both[0] & both[1]) / k)
        exact_p50, index_p50 = float(np.median(exact_ms)), float(np.median(index_ms))
        results[str(size)] = {
            "exact": _percentiles(exact_ms), "index": _percentiles(index_ms),
            "speedup_p50": round(exact_p50 / index_p50, 2),
            f"recall@{k}": round(float(np.mean(recall)), 3),
            f"recall@{k}_no_device_no_company": round(float(np.mean(unstated)), 3),
            "candidates_p50": int(np.median([r.candidates for r in rows["index"]])),
            "exact_stages": stage_medians([r.costs for r in rows["exact"]]),
            "index_stages": stage_medians([r.costs for r in rows["index"]]),
            "index_build_s": round(index.build_s, 2), "index_mb": round(index.memory_mb, 1),
            "recommender_build_s": round(recommender_s, 2),
            "vectors_mb": round(vectors.nbytes / 2**20, 1),
            "peak_rss_mb_so_far": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "cells": int(index.index.nlist) if hasattr(index.index, "nlist") else None,
            "nprobe": index.nprobe}
    for size in vector_sizes:
        results[f"vectors-{size}"] = _bench_index_vectors(encoder, base_vectors, size, calls, k,
                                                          jitter)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"benchmark": "index", "k": k, "calls": calls, "jitter": jitter,
            "encoder": encoder.name, "torch_threads": torch.get_num_threads(),
            "machine": platform.machine(), "results": results,
            "peak_rss_mb": round(peak_kb / 1024, 1)}


def _bench_index_vectors(encoder: TextEncoder, base_vectors: np.ndarray, size: int, calls: int,
                         k: int, jitter: float, candidates: int = 1_000) -> dict:
    from .text.vector_index import VectorIndex

    vectors = _jittered(base_vectors, size, jitter, np.random.default_rng(0), np.float16)
    index = VectorIndex.build(vectors)
    matrix = torch.from_numpy(vectors).to(encoder.device)  # where the recommender keeps it
    queries = encoder.encode([f"{_INTENTS[i % 10]} ({i})" for i in range(calls)])

    def through_index(i: int) -> np.ndarray:
        query = queries[i % calls]
        found = index.search(query, candidates)[0]
        found = found[found >= 0]
        scores = vectors[found].astype(np.float32) @ query
        return found[np.argsort(-scores)[:k]]

    def exact(i: int) -> np.ndarray:
        query = torch.from_numpy(queries[i % calls]).to(matrix.device, torch.float16)
        return torch.topk(matrix @ query, k).indices.cpu().numpy()

    index_ms = _time_calls(through_index, calls)
    exact_ms = _time_calls(exact, min(calls, 10), warmup=1)
    recall = [len(set(through_index(i)) & set(exact(i))) / k for i in range(min(calls, 10))]
    return {"items": size, "index": _percentiles(index_ms), "exact_float16": _percentiles(exact_ms),
            "exact_device": str(matrix.device),
            f"recall@{k}": round(float(np.mean(recall)), 3), "candidates": candidates,
            "index_build_s": round(index.build_s, 2), "index_mb": round(index.memory_mb, 1),
            "vectors_mb": round(vectors.nbytes / 2**20, 1), "nprobe": index.nprobe}


def bench_intent_reader(catalog: Catalog, calls: int = 50,
                        known_words: Collection[str] = ()) -> dict:
    """The intent reader alone (rules over the catalog's vocabulary, slips read against
    ``known_words`` as the recommender does), on texts it has not seen, one with a new slip
    each; ``new_intent`` minus ``new_intent_reader_off`` above is what it adds to a whole call."""
    from .rank.intent import IntentReader

    reader = IntentReader(catalog, known_words)
    slips = ("podcats", "moives", "comute", "horor", "epsiode", "relaxng", "documentry")
    return _percentiles(_time_calls(
        lambda i: reader.read(f"{_INTENTS[i % 10]}, not too long, under {20 + i % 40} minutes, "
                              f"nothing sad, {slips[i % len(slips)]}{'x' * (i // 7)} ({i})"),
        calls))


def bench_encode(encoder: TextEncoder, catalog: Catalog, n_texts: int = 2_000, repeats: int = 3,
                 batch_sizes: Sequence[int] = (64,)) -> dict:
    """Catalog-encoding throughput of :meth:`TextEncoder.encode` as a ratio to plain
    ``SentenceTransformer.encode`` on the same texts, best of ``repeats`` each, interleaved, per
    batch size; the top-level figures are the first batch size's."""
    texts = _numbered_texts(catalog, n_texts)
    runs = {}
    for batch_size in batch_sizes:
        ours, plain = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            encoder.encode(texts, batch_size=batch_size, progress=lambda done, total: None)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            encoder.model.encode(texts, batch_size=batch_size, normalize_embeddings=True)
            plain.append(time.perf_counter() - start)
        ours_tp, plain_tp = n_texts / min(ours), n_texts / min(plain)
        runs[str(batch_size)] = {"ctxrec_texts_per_s": round(ours_tp, 1),
                                 "sentence_transformers_texts_per_s": round(plain_tp, 1),
                                 "ratio": round(ours_tp / plain_tp, 3)}
    return {"benchmark": "encode", "texts": n_texts, "encoder": encoder.name,
            "device": encoder.device, "precision": encoder.precision,
            "batch_size": batch_sizes[0], **runs[str(batch_sizes[0])], "by_batch_size": runs}


def _numbered_texts(catalog: Catalog, n: int) -> list[str]:
    """``n`` distinct texts: the catalog's, repeated with a copy number."""
    base = catalog.texts()
    return [f"{base[i % len(base)]} ({i // len(base)})" for i in range(n)]


def bench_ray(n_texts: int = 20_000, workers: Sequence[int] = (1, 2),
              threads: int | None = None) -> dict:
    """Catalog encoding through Ray Data with each pool size in ``workers``, beside this process
    encoding the same texts (all its threads), and the lowest cosine between the two per text."""
    from .text.encoders import DEFAULT_ENCODER
    from .text.ray_encode import encode_with_ray

    texts = _numbered_texts(builtin_catalog(), n_texts)
    encoder = load_encoder(DEFAULT_ENCODER)
    start = time.perf_counter()
    reference = encoder.encode(texts)
    local_s = time.perf_counter() - start
    runs = {}
    for n in workers:
        vectors, run = encode_with_ray(texts, DEFAULT_ENCODER, workers=n, threads=threads)
        runs[str(n)] = {"threads_per_worker": run.threads, "device": run.device,
                        "seconds": round(run.seconds, 2), "items_per_s": round(run.items_per_s, 1),
                        "min_cosine_to_one_process": float(
                            np.min(np.sum(vectors * reference, axis=1)))}
    result = {"benchmark": "ray", "items": n_texts, "cores": os.cpu_count(),
              "one_process": {"threads": torch.get_num_threads(), "seconds": round(local_s, 2),
                              "items_per_s": round(n_texts / local_s, 1)},
              "ray": runs, "note": "Ray seconds run from handing the dataset to Ray to the last "
              "vector back: the actors' start (loading the model) is included, Ray's own start "
              "is not"}
    if "1" in runs:
        result["speedup_vs_one_worker"] = {
            n: round(r["items_per_s"] / runs["1"]["items_per_s"], 3) for n, r in runs.items()}
    return result


def bench_attention(calls: int = 20, tokens: int = 128) -> dict:
    """Time to extract every layer's attention for a ``tokens`` + ``tokens`` pair, and the rollout,
    with the default encoder read with eager attention."""
    from .inspect.attention import AttentionModel, rollout

    model = AttentionModel()
    words = ("quiet", "evening", "film", "kids", "rain", "market", "coffee", "trail")
    first = " ".join(words[i % 8] for i in range(tokens))
    second = " ".join(words[(i * 3) % 8] for i in range(tokens))
    pair = model.attend(first, second, max_tokens=tokens)
    extract = _time_calls(lambda i: model.attend(first, second, max_tokens=tokens), calls)
    roll = _time_calls(lambda i: rollout(pair.attentions), calls)
    return {"benchmark": "attention", "model": model.name, "device": model.device,
            "sequence_tokens": len(pair.tokens), "shape": list(pair.attentions.shape),
            "extract": _percentiles(extract), "rollout": _percentiles(roll),
            "torch_threads": torch.get_num_threads()}


def bench_training(data: str | None = None, epochs: int = 2, max_len: int = 50,
                   batch_size: int = 32, context: bool = False) -> dict:
    """Seconds per training epoch of the sequence model (the Train page's quick preset with ID
    items, full softmax) on a MovieLens folder (default: the first one found), validation
    excluded; the JSON names the architecture. With ``context``, the same model with the time of
    each rating as context (tokens, then gate) is timed in the same run, with its ratio to the
    plain model's epoch."""
    from .sequence.config import PRESETS, TrainConfig
    from .sequence.context_run import log_data_of_split
    from .sequence.context_train import train_context_model
    from .sequence.train import train_sequence_model

    folder, catalog, split = _movielens_split(data)
    if folder is None:
        return {"benchmark": "training", "skipped": NO_MOVIELENS}
    config = replace(PRESETS["quick"], n_items=len(catalog), max_len=max_len, item_repr="id")
    trained = train_sequence_model(split, catalog, config,
                                   TrainConfig(epochs=epochs, batch_size=batch_size,
                                               patience=epochs))
    seconds = [e.epoch_train_s for e in trained.history]
    result = {"benchmark": "training", "data": Path(folder).name, "users": len(split.histories),
              "items": len(catalog), "targets_per_epoch": int(sum(
                  max(0, len(h) - 1) for h in split.histories.values())),
              "model": config.to_dict(), "epoch_s": [round(s, 2) for s in seconds],
              "device": str(next(trained.model.parameters()).device),
              "torch_threads": torch.get_num_threads()}
    if context:
        data_with_time = log_data_of_split(split)
        result["context_models"] = {}
        for entry in ("tokens", "gate"):
            model = train_context_model(data_with_time, catalog, replace(config, context=entry),
                                        TrainConfig(epochs=epochs, batch_size=batch_size,
                                                    patience=epochs))
            timed = [e.epoch_train_s for e in model.history]
            result["context_models"][entry] = {
                "fields": list(data_with_time.schema.fields),
                "epoch_s": [round(s, 2) for s in timed],
                "ratio_to_plain": round(float(np.mean(timed) / np.mean(seconds)), 2)}
    return result


NO_MOVIELENS = ("no MovieLens folder found: run `python -m ctxrec data download ml-latest-small` "
                "or pass --data")


def _movielens_split(data: str | None):
    """The given MovieLens folder, or the first one found, with its catalog and exact-time
    leave-last-out split; (None, None, None) when there is none."""
    from .data.movielens import find_movielens_folders, load_movielens
    from .evaluation.split import leave_last_out

    folder = data or next((str(p) for p in find_movielens_folders()), None)
    if folder is None:
        return None, None, None
    catalog, interactions = load_movielens(folder)
    return folder, catalog, leave_last_out(interactions, catalog)


def bench_tune_encoder(data: str | None = None, pairs: int = 320, batch_size: int = 32) -> dict:
    """Seconds per 1,000 (history text → next item) pairs to tune the default encoder on a
    MovieLens folder, and, as the reference measured in the same run, seconds per 1,000 pairs to
    only encode both sides with it."""
    import tempfile

    from .text.encoders import load_encoder
    from .tune.encoder import log_pairs, tune_encoder

    folder, catalog, split = _movielens_split(data)
    if folder is None:
        return {"benchmark": "tune-encoder", "skipped": NO_MOVIELENS}
    drawn = log_pairs(split, catalog, per_user=20)
    sample = {side: texts[:pairs] for side, texts in drawn.items()}
    encoder = load_encoder()
    start = time.perf_counter()
    encoder.encode(sample["anchor"] + sample["positive"], batch_size=batch_size)
    encoding = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as out:
        info = tune_encoder(encoder, sample, out, batch_size=batch_size)
    per_1000 = 1000 / len(sample["anchor"])
    return {"benchmark": "tune-encoder", "data": Path(folder).name, "pairs": len(sample["anchor"]),
            "batch_size": batch_size, "device": info["device"],
            "torch_threads": torch.get_num_threads(),
            "seconds_per_1000_pairs": info["seconds_per_1000_pairs"],
            "encode_only_seconds_per_1000_pairs": round(encoding * per_1000, 1),
            "ratio_to_encoding": round(info["seconds"] / encoding, 2),
            "full_run_minutes_estimate": round(info["seconds_per_1000_pairs"] *
                                               len(drawn["anchor"]) / 1000 / 60, 1)}


def bench_tune_llm(data: str | None = None, examples: int = 32, batch_size: int = 4) -> dict:
    """Seconds per 1,000 examples to LoRA-tune the packaged LLM re-ranker, listwise and
    pointwise, on moments of a MovieLens folder's training histories, and, as the reference
    measured in the same run, seconds per 1,000 examples to only score the same prompts.

    The first stage here is popularity (its top 20 decide which moments teach something, not how
    long a step takes: a listwise prompt always holds 20 briefs)."""
    import tempfile

    from .evaluation.baselines import Popularity
    from .llm.models import DEFAULT_LLM, load_llm
    from .llm.rerank import LLMReranker
    from .tune.reranker import rerank_lists, training_moments, training_rows, tune_reranker

    folder, catalog, split = _movielens_split(data)
    if folder is None:
        return {"benchmark": "tune-llm", "skipped": NO_MOVIELENS}
    queries, targets = training_moments(split, per_user=20)
    lists = [m for m in rerank_lists(Popularity(split.train_counts), queries, targets, catalog)
             if m.hit is not None][:examples]
    out = {"benchmark": "tune-llm", "data": Path(folder).name, "model": DEFAULT_LLM,
           "batch_size": batch_size, "torch_threads": torch.get_num_threads()}
    for scoring in ("listwise", "pointwise"):
        # scored in float32, the dtype tuning trains in on a CPU, so the ratio compares like
        reranker = LLMReranker(load_llm(DEFAULT_LLM, dtype="float32"), scoring=scoring)
        rows = training_rows(lists, catalog, reranker)[:examples]
        texts = [reranker.llm.tokenizer.decode(r["input_ids"][:-1]) for r in rows]
        start = time.perf_counter()
        if scoring == "listwise":
            reranker.judge_lists(texts, 20, use_cache=False)
        else:
            reranker.judge_prompts(texts, use_cache=False)
        scoring_s = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as folder_out:
            info = tune_reranker(reranker, rows, [], catalog, folder_out, batch_size=batch_size,
                                 eval_every=10**9)
        out[scoring] = {"examples": len(rows), "prompt_tokens_mean": round(float(np.mean(
                            [len(r["input_ids"]) for r in rows])), 1),
                        "seconds_per_1000_examples": info["seconds_per_1000_examples"],
                        "score_only_seconds_per_1000_examples": round(
                            1000 * scoring_s / len(rows), 1),
                        "ratio_to_scoring": round(info["training_seconds"] / scoring_s, 2),
                        "device": info["device"], "lora_layers": info["lora_layers"]}
    return out


def bench_context(sizes: Sequence[int] = (10_000,), calls: int = 50, k: int = 20,
                  history_items: int = 30) -> dict:
    """Latency of ``recommend`` with a context model attached (the defaults: hidden 128, hybrid
    items, context by gate and by tokens, 8 fields), a new context on every call so nothing
    is served from a cache, against the same recommender without the model in the same run.
    The weights are untrained: only the time is measured."""
    from .data.context_fields import ContextSchema
    from .sequence.config import SequenceConfig
    from .sequence.context_model import ContextSASRec
    from .sequence.train import TrainedModel

    encoder = load_encoder()
    base = builtin_catalog()
    base_vectors = item_embeddings(encoder, base)
    schema = ContextSchema(("hour", "daypart", "weekday", "weekend", "season", "place",
                            "weather", "companions"),
                           (tuple(f"{h:02d}" for h in range(24)),
                            ("morning", "midday", "afternoon", "evening", "night"),
                            ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                             "sunday"), ("weekday", "weekend"),
                            ("winter", "spring", "summer", "autumn"), ("home", "work"),
                            ("rain", "sun", "snow"), ("alone", "family")))
    results = {}
    for size in sizes:
        catalog, vectors = synthetic_catalog(base, base_vectors, size)
        history = tuple(HistoryEntry(str(catalog.ids[(i * 7919) % size]), 1)
                        for i in range(history_items))
        plain = Recommender(catalog, encoder, vectors)
        row = {}
        for entry in ("none", "gate", "tokens"):
            rec = plain
            if entry != "none":
                rec = Recommender(catalog, encoder, vectors)
                config = SequenceConfig(n_items=size, text_dim=vectors.shape[1], context=entry,
                                        context_sizes=schema.sizes, repeat_offset=False)
                model = ContextSASRec(config, torch.from_numpy(vectors)).eval()
                rec.attach_sequence_model(TrainedModel(model, list(map(str, catalog.ids)),
                                                       schema=schema))

            def new_context(i: int, rec=rec) -> None:
                weather = ("rain", "sun", "snow")[i % 3]
                when = pd.Timestamp("2026-11-21 00:00") + pd.Timedelta(minutes=37 * (i + 10))
                rec.recommend(Context(history=history, when=when.to_pydatetime(),
                                      extra=(("weather", weather), ("place", "home"))), k=k)
            row[entry if entry != "none" else "no model"] = _percentiles(
                _time_calls(new_context, calls))
        results[str(size)] = row
    return {"benchmark": "context", "k": k, "calls": calls, "history_items": history_items,
            "encoder": encoder.name, "torch_threads": torch.get_num_threads(),
            "results": results}


def bench_rerank(top_k: int = 20, calls: int = 5, llm: str | None = None) -> dict:
    """Latency of re-ranking the top ``top_k`` with the generative LLM (a new intent on every
    call, so no prompt is served from the cache), pointwise (``rerank``) and listwise
    (``rerank_listwise``, one prompt for the K, at most 26) in the same process, the model's load
    times and the peak memory.

    ``load_s`` is the first load of the LLM in a process that has already loaded the text
    encoder, as the app has; ``fresh_process`` times a new interpreter importing the libraries
    and then loading the LLM, as a command-line run does."""
    import resource

    from .data.scenarios import load_presets
    from .llm.models import DEFAULT_LLM, load_llm
    from .llm.rerank import LABELS, LLMReranker, shared_prefix_length

    name = llm or DEFAULT_LLM
    fresh = _fresh_process_load(name)  # also converts and caches the packaged model if needed
    encoder = load_encoder()  # as in the app, whose encoder is loaded before any LLM
    start = time.perf_counter()
    # float32 on a CPU, the reference the bfloat16 default is timed against below
    model = load_llm(name, dtype="float32" if pick_device() == "cpu" else None)
    load_s = time.perf_counter() - start
    reranker = LLMReranker(model)
    listwise = LLMReranker(model, scoring="listwise")
    catalog = builtin_catalog()
    recommender = Recommender(catalog, encoder, item_embeddings(encoder, catalog))
    base = load_presets()[0].context
    intents = ("something light for breakfast", "a calm film for a rainy evening",
               "music to focus at work", "a board game for friends", "a quick healthy dinner")

    def call(i: int, way: LLMReranker = reranker) -> None:
        context = replace(base, intent=f"{intents[i % len(intents)]} ({i}, {way.scoring})")
        first = recommender.recommend(context, k=top_k)
        way.rerank(first, catalog, context, llm_weight=1.0, top_k=top_k)

    timings = _time_calls(call, calls, warmup=1)
    listwise_timings = _time_calls(lambda i: call(i, listwise), calls, warmup=1)
    half = {}
    if model.device == "cpu":  # on CUDA the default is bfloat16 already
        bf16 = LLMReranker(load_llm(name, dtype="bfloat16"), scoring="listwise")
        half_timings = _time_calls(lambda i: call(i, bf16), calls, warmup=1)
        half = {"rerank_listwise_bfloat16": _percentiles(half_timings),
                "bfloat16_over_float32_p50": round(float(np.median(half_timings) /
                                                         np.median(listwise_timings)), 3)}
    context = replace(base, intent=intents[0])
    prompts = [reranker.prompt(context, catalog.brief(i)).text
               for i in recommender.recommend(context, k=top_k).table["item_id"]]
    ids = model.tokenizer(prompts, add_special_tokens=False)["input_ids"]
    shared = shared_prefix_length(ids)
    one_list = listwise.list_prompt(context, [catalog.brief(i) for i in recommender.recommend(
        context, k=min(top_k, len(LABELS))).table["item_id"]]).text
    first_stage = _time_calls(lambda i: recommender.recommend(
        replace(base, intent=f"{intents[i % len(intents)]} [{i}]"), k=top_k), calls)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"benchmark": "rerank", "model": reranker.name, "device": model.device,
            "dtype": str(model.dtype).removeprefix("torch."), "top_k": top_k,
            "load_s": round(load_s, 2), "fresh_process": fresh,
            "prompt_tokens": {"shared": shared, "per_item_mean": round(
                float(np.mean([len(i) - shared for i in ids])), 1)},
            "listwise_prompt_tokens": len(model.tokenizer(one_list, add_special_tokens=False)[
                "input_ids"]),
            "rerank": _percentiles(timings),
            "rerank_listwise": _percentiles(listwise_timings),
            "listwise_over_pointwise_p50": round(float(np.median(listwise_timings) /
                                                       np.median(timings)), 3),
            **half, "first_stage": _percentiles(first_stage),
            "torch_threads": torch.get_num_threads(), "peak_rss_mb": round(peak_kb / 1024, 1)}


def _fresh_process_load(name: str) -> dict:
    """Seconds a new Python process needs to import the libraries, and then to load the LLM
    from its cache: what a command-line run pays, where the app has the libraries loaded."""
    script = ("import time; t = time.perf_counter(); import transformers, torch; "
              "from ctxrec.llm.models import load_llm; i = time.perf_counter(); "
              f"load_llm({name!r}); e = time.perf_counter(); print(i - t, e - i)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parent.parent)
    imports, load = map(float, out.stdout.split()[-2:])
    return {"import_s": round(imports, 2), "load_s": round(load, 2),
            "total_s": round(imports + load, 2)}


def bench_all(sizes: Sequence[int] = (1_000, 10_000, 100_000, 1_000_000), calls: int = 30) -> dict:
    """Every benchmark in one JSON, with the device and the peak memory of the run."""
    import resource

    recommend = bench_recommend(sizes=sizes, calls=calls)
    attention = bench_attention(calls=calls)
    training = bench_training()
    rerank = bench_rerank()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return {"benchmark": "all", "device": pick_device(), "machine": platform.machine(),
            "torch_threads": torch.get_num_threads(), "recommend": recommend["results"],
            "encode": recommend["encode"], "attention": {k: attention[k] for k in (
                "sequence_tokens", "extract", "rollout")},
            "training_epoch_s": min(training["epoch_s"]) if "epoch_s" in training else None,
            "training": training,
            "rerank_top20": {k: rerank[k] for k in ("model", "device", "rerank", "rerank_listwise",
                                                    "load_s")},
            "peak_rss_mb": round(peak_kb / 1024, 1)}
