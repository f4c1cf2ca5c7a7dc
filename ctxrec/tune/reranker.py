"""Tuning the generative re-ranker on an interaction log (sources 001 and 002; LlamaRec's listwise
verbalizer, TALLRec's Yes/No answers).

Every example comes from the training split: a moment in a person's training history (its time
and the items before it), the first stage's top K for that moment, and the item used next. Only
moments whose next item is among the K teach anything, so only those are kept.

- **Listwise:** one prompt with the K candidates lettered in the first stage's order; the answer
  is the letter of the item used next.
- **Pointwise:** the item used next answers "Yes"; ``negatives`` others from the same K, the
  hard negatives, answer "No".

Either way the loss is the language model's own cross-entropy on the one answer token, through
transformers' ``Trainer`` with a peft LoRA adapter. Every ``eval_every`` steps the validation
events are re-ranked (only those whose item is among the K: the others' ranks cannot change) and
the fusion weight is chosen on them; training stops when that NDCG@10 has not improved for
``patience`` checks, and the best adapter is what is saved.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.catalog import Catalog
from ..data.context import Context
from ..evaluation.split import Split
from ..llm.adapters import ADAPTER_FILE
from ..llm.models import CausalLM
from ..llm.rerank import LLMReranker, answer_token_ids, label_token_ids
from ..rank.components import standardise, top_in_order
from ..rank.query import Query, Ranker, query_context

__all__ = ["FUSION_WEIGHTS", "RerankList", "fused_ndcg", "moment_query", "rerank_lists",
           "score_lists", "training_moments", "training_rows", "tune_reranker", "validated_weight"]

FUSION_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
Progress = Callable[[str, dict], None]  # what happened ("step", "check"), its figures


@dataclass(frozen=True)
class RerankList:
    """One moment to re-rank.

    Attributes:
        context: what the prompt tells of the moment (its time and the items before it).
        candidates: the first stage's top K, catalog positions in its rank order.
        base: the first stage's scores of ``candidates``.
        target: the catalog position of the item used next.
        base_rank: its 1-based rank in the first stage's full ranking.
    """

    context: Context
    candidates: np.ndarray
    base: np.ndarray
    target: int
    base_rank: int

    @property
    def hit(self) -> int | None:
        """Where the item used next is among the candidates, or None."""
        found = np.flatnonzero(self.candidates == self.target)
        return int(found[0]) if found.size else None


def rerank_lists(first: Ranker, queries: Sequence[Query], targets: Sequence[int],
                 catalog: Catalog, k: int = 20, max_history: int = 10,
                 batch: int = 256) -> list[RerankList]:
    """The first stage's top ``k`` for each query, with the rank of its target."""
    out = []
    for start in range(0, len(queries), batch):
        chunk = queries[start:start + batch]
        scores = np.asarray(first.scores(chunk), dtype=np.float64)
        for row, (query, target) in enumerate(zip(chunk, targets[start:start + batch])):
            top = top_in_order(scores[row], k)
            out.append(RerankList(query_context(query, catalog.ids, max_history), top,
                                  scores[row, top], int(target),
                                  int((scores[row] > scores[row, target]).sum()) + 1))
    return out


def training_moments(split: Split, per_user: int, seed: int = 0, min_history: int = 3
                     ) -> tuple[list[Query], list[int]]:
    """Up to ``per_user`` random moments per user from the training histories only: the query
    (the items before the moment and its time) and the item used at it."""
    rng = np.random.default_rng(seed)
    queries, targets = [], []
    for user in sorted(split.histories):
        steps = np.arange(min_history, len(split.histories[user]))
        if len(steps) > per_user:
            steps = np.sort(rng.choice(steps, per_user, replace=False))
        for t in steps:
            queries.append(moment_query(split, user, int(t)))
            targets.append(int(split.histories[user][t]))
    return queries, targets


def moment_query(split: Split, user: str, t: int) -> Query:
    """What was known at the ``t``-th event of ``user``'s training history: the items before it
    and its time."""
    items, ratings = split.histories[user], split.ratings[user]
    times = split.history_times.get(user)
    return Query(user, items[:t], ratings[:t], np.full(t, "", dtype=object),
                 None if times is None else float(times[t]), None, "",
                 None if times is None else times[:t])


def _titles(context: Context, catalog: Catalog) -> dict[str, str]:
    return {h.item_id: catalog.title(h.item_id) for h in context.history}


def _answer_id(variants: list[int], llm: CausalLM) -> int:
    # after a chat template's assistant header the answer starts a line (no space); after the
    # plain layout's "Answer:" it follows a space
    return variants[0] if llm.has_chat_template or len(variants) == 1 else variants[1]


def training_rows(lists: Sequence[RerankList], catalog: Catalog, reranker: LLMReranker,
                  negatives: int = 3, seed: int = 0) -> list[dict]:
    """Tokenised examples, ``input_ids`` and ``labels`` (-100 except the answer token), from the
    lists whose item used next is among the candidates."""
    rng = np.random.default_rng(seed)
    llm, tokenizer = reranker.llm, reranker.llm.tokenizer
    prompts, answers = [], []
    for lst in lists:
        if lst.hit is None:
            continue
        briefs = [catalog.brief(catalog.ids[i]) for i in lst.candidates]
        titles = _titles(lst.context, catalog)
        if reranker.scoring == "listwise":
            labels = label_token_ids(tokenizer, len(briefs))
            prompts.append(reranker.list_prompt(lst.context, briefs, titles).text)
            answers.append(_answer_id(labels[lst.hit], llm))
            continue
        yes, no = answer_token_ids(tokenizer)
        others = [j for j in range(len(briefs)) if j != lst.hit]
        for j in [lst.hit, *rng.choice(others, min(negatives, len(others)), replace=False)]:
            prompts.append(reranker.prompt(lst.context, briefs[j], titles).text)
            answers.append(_answer_id(yes if j == lst.hit else no, llm))
    ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    return [{"input_ids": [*row, answer], "labels": [-100] * len(row) + [answer]}
            for row, answer in zip(ids, answers)]


def score_lists(reranker: LLMReranker, lists: Sequence[RerankList], catalog: Catalog
                ) -> list[np.ndarray]:
    """The re-ranker's raw score of every candidate of every list."""
    return [reranker.judge(lst.context, [catalog.brief(catalog.ids[i]) for i in lst.candidates],
                           _titles(lst.context, catalog)) for lst in lists]


def fused_ndcg(lists: Sequence[RerankList], llm_scores: Sequence[np.ndarray], weight: float,
               k: int = 10) -> float:
    """Mean NDCG@k of the item used next when each list is re-ranked as the app does (first-stage
    score + ``weight`` · z(LLM score)); an item outside the candidates keeps its rank."""
    gains = []
    for lst, raw in zip(lists, llm_scores):
        rank = lst.base_rank
        if lst.hit is not None:
            fused = lst.base + weight * standardise(np.asarray(raw, dtype=np.float64))
            rank = int((fused > fused[lst.hit]).sum()) + 1
        gains.append(_gain(rank, k))
    return float(np.mean(gains)) if gains else 0.0


def _gain(rank: int, k: int = 10) -> float:
    return 1.0 / np.log2(rank + 1) if rank <= k else 0.0


def validated_weight(lists: Sequence[RerankList], llm_scores: Sequence[np.ndarray],
                     weights: Sequence[float] = FUSION_WEIGHTS) -> tuple[float, dict[str, float]]:
    """The weight with the best fused NDCG@10 (the smallest among ties, so 0 when nothing
    helps), and the NDCG@10 of every weight tried."""
    table = {f"{w:g}": fused_ndcg(lists, llm_scores, w) for w in weights}
    best = max(weights, key=lambda w: (table[f"{w:g}"], -w))
    return float(best), table


def _alone(lists: Sequence[RerankList], scores: Sequence[np.ndarray], fixed: float,
           n: int) -> float:
    """NDCG@10 over ``n`` events when the K are ordered by the LLM alone."""
    gains = [_gain(int((raw > raw[lst.hit]).sum()) + 1) for lst, raw in zip(lists, scores)]
    return float((sum(gains) + fixed) / max(n, 1))


def _top_linear_layers(model: torch.nn.Module, n: int) -> tuple[list[str], int]:
    """The names of the linear layers inside the last ``n`` blocks of a transformer (every block
    when ``n`` < 1), found by structure so any architecture works, and how many blocks that is."""
    blocks = max((m for m in model.modules() if isinstance(m, torch.nn.ModuleList)), key=len)
    n = len(blocks) if n < 1 else min(n, len(blocks))
    chosen = {id(m) for block in list(blocks)[len(blocks) - n:] for m in block.modules()}
    return [name for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and id(m) in chosen], n


def _collate(pad_id: int):
    def collate(rows: list[dict]) -> dict:
        # Left padding with explicit positions puts every answer in the last column, so the
        # output layer runs on the last two positions only (logits_to_keep) instead of every
        # prompt token: the loss reads one answer per row. Labels are cut to match; the model
        # shifts them by one, so the last prompt position is the one that must predict the answer.
        width = max(len(r["input_ids"]) for r in rows)
        ids = [[pad_id] * (width - len(r["input_ids"])) + r["input_ids"] for r in rows]
        mask = torch.tensor([[0] * (width - len(r["input_ids"])) + [1] * len(r["input_ids"])
                             for r in rows])
        return {"input_ids": torch.tensor(ids), "attention_mask": mask,
                "position_ids": (mask.cumsum(-1) - 1).clamp(min=0),
                "labels": torch.tensor([r["labels"][-2:] for r in rows]), "logits_to_keep": 2}
    return collate


def tune_reranker(reranker: LLMReranker, rows: Sequence[dict], valid: Sequence[RerankList],
                  catalog: Catalog, out: str | Path, epochs: int = 1, batch_size: int = 4,
                  learning_rate: float = 2e-4, lora_rank: int = 16, lora_layers: int = 8,
                  eval_every: int = 100,
                  patience: int = 2, seed: int = 0, progress: Progress | None = None,
                  record: dict | None = None,
                  should_stop: Callable[[], bool] | None = None) -> dict:
    """LoRA-tune ``reranker``'s model (in place) on ``rows``, keep the adapter that re-ranks the
    ``valid`` lists best, and save it with its record to ``out``. ``should_stop`` is asked after
    every step; when it says so, training ends there, checks once more and keeps the best.

    Returns:
        The record written to ``out``/``ADAPTER_FILE``: the base model, scoring way, settings,
        seconds (training and validation apart) and training seconds per 1,000 examples, every
        check (step, validation NDCG@10 at its best weight, that weight, the LLM alone, NDCG@10
        at every weight tried), the best step, its weight, and ``validation``: the first stage
        alone, zero-shot and tuned.
    """
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, \
        set_peft_model_state_dict
    from transformers import Trainer, TrainerCallback, TrainingArguments

    if not rows:
        raise ValueError("no training example: the first stage's top K never holds the item used "
                         "next in the training moments; raise --top-k or --examples-per-user")
    llm = reranker.llm
    if llm.device == "cpu" and llm.dtype != torch.float32:
        # bfloat16 keeps 8 bits of mantissa, too few for small updates, and a CPU has no mixed
        # precision; casting here would tune rounded weights the adapter is never loaded onto
        raise ValueError("on a CPU the re-ranker tunes in float32: load the model with "
                         "load_llm(..., dtype='float32')")
    torch.manual_seed(seed)
    # Only the top layers are adapted: the backward pass then stops there, which halves a step
    # on a CPU (the lower layers' activations need no gradient at all).
    targets, lora_layers = _top_linear_layers(llm.fast, lora_layers)
    model = get_peft_model(llm.fast, LoraConfig(
        r=lora_rank, lora_alpha=2 * lora_rank, lora_dropout=0.05, target_modules=targets,
        task_type="CAUSAL_LM"))
    # no score cache: the weights change between checks
    scorer = LLMReranker(CausalLM(model=model, tokenizer=llm.tokenizer, name=llm.name,
                                  device=llm.device, fast=model),
                         batch_size=reranker.batch_size, scoring=reranker.scoring, cache_size=0)
    # a list whose item is outside the K ranks the same at every weight: it is not scored, and
    # its fixed gain is added back so figures are over every validation event
    informative = [lst for lst in valid if lst.hit is not None]
    fixed = sum(_gain(lst.base_rank) for lst in valid if lst.hit is None)
    checks: list[dict] = []
    best: dict = {"ndcg": -1.0, "state": None, "step": 0}
    validating = [0.0]

    def check(step: int) -> bool:
        """Validate; True when it is time to stop."""
        began = time.perf_counter()
        model.eval()
        scores = score_lists(scorer, informative, catalog)
        model.train()
        weight, table = validated_weight(informative, scores)
        table = {w: (v * len(informative) + fixed) / max(len(valid), 1) for w, v in table.items()}
        ndcg = table[f"{weight:g}"]
        validating[0] += time.perf_counter() - began
        checks.append({"step": step, "valid_ndcg@10": ndcg, "weight": weight,
                       "llm_alone_valid_ndcg@10": _alone(informative, scores, fixed, len(valid)),
                       "by_weight": table})
        if progress:
            progress("check", checks[-1])
        if ndcg > best["ndcg"]:
            best.update(ndcg=ndcg, step=step, weight=weight, state={
                k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()})
            return False
        return sum(c["step"] > best["step"] for c in checks) >= patience

    class Validate(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % eval_every == 0 and check(state.global_step):
                control.should_training_stop = True
            if should_stop is not None and should_stop():
                control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kwargs):
            if progress and logs and "loss" in logs:
                progress("step", {"step": state.global_step, "steps": state.max_steps,
                                  "loss": float(logs["loss"])})

    started = time.perf_counter()
    check(0)  # the untuned model: training must beat it to be kept
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=scratch, num_train_epochs=epochs, per_device_train_batch_size=batch_size,
            learning_rate=learning_rate, warmup_steps=0.05, lr_scheduler_type="linear",
            seed=seed, save_strategy="no", eval_strategy="no", logging_steps=10,
            report_to="none", disable_tqdm=True, remove_unused_columns=False,
            dataloader_num_workers=0, dataloader_pin_memory=torch.cuda.is_available(),
            bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        trainer = Trainer(model=model, args=args, train_dataset=list(rows),
                          data_collator=_collate(llm.tokenizer.pad_token_id),
                          callbacks=[Validate()])
        with contextlib.redirect_stdout(sys.stderr):  # the trainer prints; stdout is JSON
            result = trainer.train()
        steps = result.global_step
    if not checks or checks[-1]["step"] != steps:
        check(steps)
    seconds = time.perf_counter() - started
    training = seconds - validating[0]
    set_peft_model_state_dict(model, best["state"])
    model.eval()
    out = Path(out)
    model.save_pretrained(str(out))
    seen = min(steps * batch_size, epochs * len(rows))
    info = {**(record or {}), "base": llm.name, "scoring": reranker.scoring,
            "lora_rank": lora_rank, "lora_layers": lora_layers, "examples": len(rows),
            "epochs": epochs,
            "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed,
            "steps": steps, "seconds": round(seconds, 1),
            "training_seconds": round(training, 1),
            "validation_seconds": round(validating[0], 1),
            "seconds_per_1000_examples": round(1000 * training / max(seen, 1), 1),
            "device": str(llm.device), "checks": checks, "best_step": best["step"],
            "weight": best["weight"],
            "validation": {"events": len(valid), "events_with_item_in_k": len(informative),
                           "first_stage": checks[0]["by_weight"]["0"],
                           "zero_shot": checks[0]["valid_ndcg@10"],
                           "zero_shot_weight": checks[0]["weight"], "tuned": best["ndcg"]}}
    (out / ADAPTER_FILE).write_text(json.dumps(info, indent=2))
    return info
