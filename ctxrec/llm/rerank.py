"""A generative LLM re-ranker: a causal LM judges the first stage's top-K items, one at a time
(pointwise) or all in one prompt (listwise).

**Pointwise.** For one (context, item) pair the model reads a prompt that lays out the person's
situation, asks whether the suggestion below fits it, to be answered Yes or No, and ends with the
item in its brief form (:meth:`Catalog.brief`). The score is

    s = log P(Yes) − log P(No)

at the answer position, with each answer's probability summed over its spellings ("Yes", " Yes") so
the score does not depend on how the tokenizer splits words. In the re-ranked list the scores are
standardised over the K items and added to the first stage's score with a weight, like any other
component.

The prompt is assembled from named parts (instructions, one line per context field, the question,
the item), and character spans are kept for each, so the same prompt can be shown with attention per
part, and parts can be left out to measure what each contributes (occlusion).

What the packaged SmolLM2-135M measures is mostly the item itself: it ranks breakfast items above
late-night ones at 07:30, but also at 23:45 with a "sleepless night" request, and leaving out a
context line moves its score by about a tenth of the spread between items. The occlusion view shows
how much a given model reads the context.

**Listwise** (LlamaRec's verbalizer): one prompt lists the K candidates under the letters A, B, …
in the first stage's order and asks which fits best; one forward pass gives the next-token
distribution, and each candidate's score is the log-probability of its letter among the K
letters. That is one pass for K items instead of K item suffixes, and it is what the re-ranker
tuned on a log (``python -m ctxrec tune-llm``) learns to answer.
"""

from __future__ import annotations

import copy
import logging
import string
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from ..data.catalog import Catalog, clip_text
from ..data.context import COMPANION_WORDS, DEVICE_WORDS, PLACE_WORDS, Context
from ..inspect.attention import PairAttention, rollout
from ..rank.components import standardise
from ..rank.costs import CostMeter
from ..rank.recommender import Ranking
from .models import DEFAULT_LLM, CausalLM, load_llm

__all__ = ["LABELS", "SCORINGS", "AnswerFocus", "LLMReranker", "OcclusionRow", "Prompt",
           "PromptPart", "answer_token_ids", "build_prompt", "context_parts", "label_token_ids",
           "list_prompt_parts", "prompt_parts", "render_chat", "shared_prefix_length"]

log = logging.getLogger(__name__)

INSTRUCTIONS = "You recommend things to people."
QUESTION = "Is the suggestion below a good fit for my situation? Answer Yes or No."
EXPLAIN_QUESTION = ("In one sentence, explain why the suggestion below does or does not fit my "
                    "situation.")
ANSWERS = ("Yes", "No")
LIST_QUESTION = ("Which one of the suggestions below fits my situation best? Answer with its "
                 "letter.")
LABELS = string.ascii_uppercase  # one token each in the tokenizers tried; 26 candidates at most
SCORINGS = ("pointwise", "listwise")
MAX_INTENT_CHARS = 400
KIND_SEGMENT = {"template": 0, "context": 1, "item": 2}


@dataclass(frozen=True)
class PromptPart:
    """One named piece of the prompt.

    Attributes:
        name: stable key: ``instructions``, ``time``, ``place``, ``device``, ``companions``,
            ``history 1`` … (oldest shown first), ``intent``, ``item``, ``question``.
        label: for people, e.g. ``Liked before: Paper Kites Over Lisbon``.
        text: as it appears in the prompt.
        kind: ``template`` (instructions and question), ``context`` or ``item``.
    """

    name: str
    label: str
    text: str
    kind: str


@dataclass(frozen=True)
class Prompt:
    """The text the model reads, with the character span of every part in it."""

    text: str
    parts: tuple[PromptPart, ...]
    spans: dict[str, tuple[int, int]]

    def part(self, name: str) -> PromptPart:
        return next(p for p in self.parts if p.name == name)


@dataclass(frozen=True)
class OcclusionRow:
    """The score with one context field left out of the prompt."""

    field: str
    label: str
    score_without: float
    delta: float  # base score − score_without: > 0 when the field argued for the item


@dataclass
class AnswerFocus:
    """Where the answer position looks, over the prompt's tokens.

    Attributes:
        pair: the full attention of the forward pass.
        token_parts: (T,) the part name each token belongs to (``template`` for chat markup).
        per_head: (L, H, T) attention of the answer position (the last row) per layer and head.
        averaged: (L, T) the same, mean over heads.
        rollout: (T,) the last row of attention rollout over all layers.
        fields: one row per prompt part, in prompt order: field, label, kind, tokens, attention
            (head-mean summed over the part's tokens, then averaged over layers), rollout (sum of
            the rollout row over the part's tokens).
        field_by_layer: (L, P) head-mean attention per layer summed over each part, P = rows of
            ``fields``.
    """

    pair: PairAttention
    token_parts: list[str]
    per_head: np.ndarray
    averaged: np.ndarray
    rollout: np.ndarray
    fields: pd.DataFrame
    field_by_layer: np.ndarray


def context_parts(context: Context, titles: Mapping[str, str] | None = None,
                  max_history: int = 10) -> list[PromptPart]:
    """One labelled line per context field, in prompt order; empty fields are left out."""
    titles = titles or {}
    when = context.when
    place = PLACE_WORDS[context.place] + (f" in {context.city.strip()}"
                                           if context.city.strip() else "")
    parts = [
        PromptPart("time", "Time", f"Time: {when:%A} {context.daypart}, {when:%H:%M} "
                   f"(a {context.day_type} in {context.season})", "context"),
        PromptPart("place", "Place", f"Place: {place}", "context"),
        PromptPart("device", "Device", f"Device: {DEVICE_WORDS[context.device]}", "context"),
    ]
    if context.companions:
        company = " and ".join(COMPANION_WORDS[c] for c in context.companions)
        parts.append(PromptPart("companions", "Company", f"Company: {company}", "context"))
    for n, entry in enumerate(context.history[-max_history:], start=1):
        verb = "Liked" if entry.signal > 0 else "Disliked" if entry.signal < 0 else "Used"
        title = titles.get(entry.item_id, entry.item_id)
        parts.append(PromptPart(f"history {n}", f"{verb} before: {title}",
                                f"{verb} before: {title}", "context"))
    if context.intent.strip():
        parts.append(PromptPart("intent", "Request", "Request: "
                                + clip_text(context.intent, MAX_INTENT_CHARS), "context"))
    return parts


def prompt_parts(context: Context, item_text: str, titles: Mapping[str, str] | None = None,
                 question: str = QUESTION) -> list[PromptPart]:
    """Every part of the prompt for one (context, item) pair, in order; ``item_text`` is the
    item's :meth:`~ctxrec.data.catalog.Catalog.brief`, already short."""
    # The situation and the question come first and the item last: all K prompts then share
    # everything up to the item, which is computed once, so each item costs only its own tokens
    # (half the time of a question after the item). Item-first prompts were at chance for
    # SmolLM2-135M.
    return [PromptPart("instructions", "Instructions", INSTRUCTIONS, "template"),
            *context_parts(context, titles),
            PromptPart("question", "Question", question, "template"),
            PromptPart("item", "Item", "Suggestion: " + item_text, "item")]


def list_prompt_parts(context: Context, item_texts: Sequence[str],
                      titles: Mapping[str, str] | None = None) -> list[PromptPart]:
    """The listwise prompt's parts: the situation, the question, then one part per candidate
    (``item A``, ``item B`` …) in the order given, which should be the first stage's."""
    if len(item_texts) > len(LABELS):
        raise ValueError(f"a listwise prompt holds at most {len(LABELS)} candidates, not "
                         f"{len(item_texts)}")
    return [PromptPart("instructions", "Instructions", INSTRUCTIONS, "template"),
            *context_parts(context, titles),
            PromptPart("question", "Question", LIST_QUESTION, "template"),
            *(PromptPart(f"item {label}", f"{label}. {text}", f"{label}. {text}", "item")
              for label, text in zip(LABELS, item_texts))]


def shared_prefix_length(ids: Sequence[Sequence[int]]) -> int:
    """How many leading tokens every prompt in ``ids`` has in common, leaving at least one
    token of each for the answer position."""
    first, shortest = ids[0], min(len(i) for i in ids)
    n = 0
    while n < shortest - 1 and all(i[n] == first[n] for i in ids):
        n += 1
    return n


def _join(pieces: Iterable[tuple[str | None, str]]) -> tuple[str, dict[str, tuple[int, int]]]:
    """Concatenate (part name or None, text) pieces, recording each named part's span."""
    text, spans = "", {}
    for name, piece in pieces:
        if name is not None:
            spans[name] = (len(text), len(text) + len(piece))
        text += piece
    return text, spans


def build_prompt(tokenizer, parts: Sequence[PromptPart], drop: Iterable[str] = ()) -> Prompt:
    """Lay the parts out as one prompt, through the tokenizer's chat template when it has one.

    Args:
        drop: names of parts to leave out (occlusion); dropping nothing gives the full prompt.
    """
    dropped = set(drop)
    kept = tuple(p for p in parts if p.name not in dropped)
    by_kind = {kind: [p for p in kept if p.kind == kind] for kind in ("context", "item")}
    pieces: list[tuple[str | None, str]] = [(None, "My situation:\n")]
    for p in by_kind["context"]:
        pieces += [(p.name, p.text), (None, "\n")]
    question = [p for p in kept if p.name == "question"]
    if question:
        pieces += [(None, "\n"), ("question", question[0].text), (None, "\n")]
    for p in by_kind["item"]:
        pieces += [(None, "\n"), (p.name, p.text)]
    body, body_spans = _join(pieces)
    instructions = next((p.text for p in kept if p.name == "instructions"), "")
    text, offset, system_at = render_chat(tokenizer, instructions, body)
    spans = {name: (a + offset, b + offset) for name, (a, b) in body_spans.items()}
    if instructions and system_at is not None:
        spans["instructions"] = (system_at, system_at + len(instructions))
    return Prompt(text=text, parts=kept, spans=spans)


def render_chat(tokenizer, system: str, user: str) -> tuple[str, int, int | None]:
    """The full prompt text (the model's chat template when it has one, ending where the answer
    starts), where ``user`` starts in it, and where ``system`` starts."""
    if getattr(tokenizer, "chat_template", None):
        attempts = ([[{"role": "system", "content": system}, {"role": "user", "content": user}]]
                    if system else [])
        # some templates refuse a system role; the instructions then open the user message
        attempts.append([{"role": "user", "content": f"{system}\n\n{user}" if system else user}])
        for messages in attempts:
            try:
                text = tokenizer.apply_chat_template(messages, tokenize=False,
                                                     add_generation_prompt=True)
            except Exception:  # jinja errors raised by the template itself
                continue
            if not isinstance(text, str):
                continue
            at = text.rfind(user)
            system_at = text.find(system) if system else None
            if at >= 0 and (system_at is None or system_at >= 0):
                return text, at, system_at
    bos = tokenizer.bos_token or ""
    head = f"{bos}{system}\n\n" if system else bos
    return f"{head}{user}\nAnswer:", len(head), len(bos) if system else None


def _first_tokens(tokenizer, word: str) -> list[int]:
    """The token ids that start ``word`` without and with a leading space, duplicates removed."""
    found = []
    for variant in (word, " " + word):
        tokens = tokenizer(variant, add_special_tokens=False)["input_ids"]
        if tokens and tokens[0] not in found:
            found.append(tokens[0])
    return found


def answer_token_ids(tokenizer) -> tuple[list[int], list[int]]:
    """Token ids that start "Yes" and "No", with and without a leading space, duplicates removed."""
    yes, no = (_first_tokens(tokenizer, word) for word in ANSWERS)
    if set(yes) & set(no) or not yes or not no:
        raise ValueError("the tokenizer does not tell 'Yes' and 'No' apart by their first token")
    return yes, no


def label_token_ids(tokenizer, n: int) -> list[list[int]]:
    """For each of the first ``n`` letters, the token ids that start it with and without a
    leading space (no-space first); every letter must own its tokens."""
    found = [_first_tokens(tokenizer, label) for label in LABELS[:n]]
    flat = [i for ids in found for i in ids]
    if len(flat) != len(set(flat)) or any(not ids for ids in found):
        raise ValueError("the tokenizer does not give each candidate letter a token of its own")
    return found


def _token_parts(offsets: Sequence[tuple[int, int]], spans: Mapping[str, tuple[int, int]]
                 ) -> list[str]:
    """The part each token belongs to: the one its characters overlap most, else ``template``."""
    names = []
    for start, end in offsets:
        best, overlap = "template", 0
        for name, (a, b) in spans.items():
            shared = min(end, b) - max(start, a)
            if shared > overlap:
                best, overlap = name, shared
        names.append(best)
    return names


class LLMReranker:
    """Scores (context, item) pairs with a causal LM and re-ranks a first-stage ranking.

    Args:
        llm: a loaded model; ``None`` loads ``DEFAULT_LLM`` on first use.
        batch_size: at most this many prompts per forward pass.
        share_prefix: compute the tokens all prompts of a batch start with once (same scores,
            about half the work for K items in one context).
        cache_size: at most this many scores, and as many reasons, are kept (least recently
            used go first).
        scoring: ``pointwise`` (Yes/No per item) or ``listwise`` (one prompt, a letter each).

    One re-ranker may serve many threads at once (the app's sessions share it): the model is
    only read, and the caches are guarded by a lock.
    """

    def __init__(self, llm: CausalLM | None = None, batch_size: int = 10,
                 share_prefix: bool = True, cache_size: int = 4096,
                 scoring: str = "pointwise"):
        if scoring not in SCORINGS:
            raise ValueError(f"unknown scoring '{scoring}'; choose from {', '.join(SCORINGS)}")
        self.scoring = scoring
        self._llm = llm
        self.batch_size = batch_size
        self.share_prefix = share_prefix
        self._scores: OrderedDict[str, float] = OrderedDict()
        self._lists: OrderedDict[str, np.ndarray] = OrderedDict()
        self._reasons: OrderedDict[tuple, str] = OrderedDict()
        self._cache_size = cache_size
        self._answer_ids: tuple[list[int], list[int]] | None = None
        self._lock = threading.Lock()  # guards the caches and the first load, never a forward

    @property
    def llm(self) -> CausalLM:
        if self._llm is None:
            with self._lock:
                if self._llm is None:
                    self._llm = load_llm(DEFAULT_LLM)
        return self._llm

    @property
    def name(self) -> str:
        return self.llm.name

    # ----- prompts
    def prompt(self, context: Context, item_text: str, titles: Mapping[str, str] | None = None,
               drop: Iterable[str] = (), question: str = QUESTION) -> Prompt:
        """The prompt for one pair, optionally without some parts."""
        return build_prompt(self.llm.tokenizer,
                            prompt_parts(context, item_text, titles, question), drop)

    def list_prompt(self, context: Context, item_texts: Sequence[str],
                    titles: Mapping[str, str] | None = None, drop: Iterable[str] = ()) -> Prompt:
        """The listwise prompt over ``item_texts``, optionally without some parts."""
        return build_prompt(self.llm.tokenizer, list_prompt_parts(context, item_texts, titles),
                            drop)

    def scored_prompt(self, context: Context, item_text: str,
                      titles: Mapping[str, str] | None = None,
                      among: Sequence[str] | None = None) -> tuple[Prompt, int]:
        """The prompt whose answer position scores ``item_text``, and the item's place in it:
        its own prompt (pointwise), or the list of ``among`` (listwise; ``item_text`` must be one
        of them)."""
        if self.scoring == "pointwise":
            return self.prompt(context, item_text, titles), 0
        among = list(among) if among else [item_text]
        return self.list_prompt(context, among, titles), among.index(item_text)

    # ----- scoring
    def judge(self, context: Context, item_texts: Sequence[str],
              titles: Mapping[str, str] | None = None) -> np.ndarray:
        """One score per item in ``context``, (len(item_texts),): log P(Yes) − log P(No)
        (pointwise), or the log-probability of the item's letter among the K (listwise)."""
        if self.scoring == "listwise":
            return self.judge_lists([self.list_prompt(context, item_texts, titles).text],
                                    len(item_texts))[0]
        return self.judge_prompts([self.prompt(context, t, titles).text for t in item_texts])

    def judge_lists(self, texts: Sequence[str], n: int, use_cache: bool = True) -> np.ndarray:
        """(len(texts), n): for each listwise prompt over ``n`` candidates, the log-probability
        of each candidate's letter, normalised over the ``n`` letters."""
        found = self._recall(self._lists, texts) if use_cache else {}
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            ids = self.llm.tokenizer(missing, add_special_tokens=False)["input_ids"]
            rows = []
            with torch.inference_mode():
                for start in range(0, len(ids), self.batch_size):
                    logits = self._last_logits(ids[start:start + self.batch_size], 0, None)
                    rows += list(self._label_logprobs(logits, n))
            found.update(zip(missing, rows))
            if use_cache:
                with self._lock:
                    for text in missing:
                        self._store(self._lists, text, found[text])
        return np.stack([found[t] for t in texts]) if texts else np.zeros((0, n))

    def _label_logprobs(self, logits: torch.Tensor, n: int) -> np.ndarray:
        labels = label_token_ids(self.llm.tokenizer, n)
        logp = torch.log_softmax(logits, dim=-1)
        per_label = torch.stack([torch.logsumexp(logp[:, ids], dim=-1) for ids in labels], dim=1)
        return torch.log_softmax(per_label, dim=-1).double().cpu().numpy()

    def judge_prompts(self, texts: Sequence[str], use_cache: bool = True) -> np.ndarray:
        """Scores of ready-made prompt texts; repeated prompts come from an in-memory cache."""
        if not use_cache:
            return self._judge_texts(list(texts))
        found = self._recall(self._scores, texts)
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            # scored outside the lock, so sessions scoring different items do not wait for
            # each other; two scoring the same new prompt both compute it (same number)
            found.update(zip(missing, map(float, self._judge_texts(missing))))
            with self._lock:
                for text in missing:
                    self._store(self._scores, text, found[text])
        return np.array([found[t] for t in texts], dtype=np.float64)

    def _recall(self, store: OrderedDict, keys: Iterable) -> dict:
        """The cached values among ``keys``, each marked as recently used."""
        with self._lock:
            found = {}
            for key in keys:
                if key in store:
                    store.move_to_end(key)
                    found[key] = store[key]
            return found

    def _store(self, store: OrderedDict, key, value) -> None:
        """Add under the lock (the caller holds it), dropping the least recently used."""
        store[key] = value
        store.move_to_end(key)
        while len(store) > self._cache_size:
            store.popitem(last=False)

    def _yes_no(self) -> tuple[list[int], list[int]]:
        if self._answer_ids is None:
            self._answer_ids = answer_token_ids(self.llm.tokenizer)
        return self._answer_ids

    @torch.inference_mode()
    def _judge_texts(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.float64)
        # the chat template or the plain layout already holds any special tokens the model needs
        ids = self.llm.tokenizer(texts, add_special_tokens=False)["input_ids"]
        # shortest first, so each batch pads little
        order = np.argsort([len(i) for i in ids], kind="stable")
        scores = np.empty(len(ids), dtype=np.float64)
        prefix = shared_prefix_length(ids) if self.share_prefix and len(ids) > 1 else 0
        cache = None
        if prefix >= 8:
            try:
                cache = self._prefix_cache(ids[0][:prefix])
            except Exception as err:  # a model whose cache cannot be reused: score in full
                log.info("Prefix sharing is off for %s: %s", self.name, err)
                prefix = 0
        else:
            prefix = 0
        # equal batches (20 prompts at most 10 per batch: 10 + 10, not 8 + 8 + 4) leave no small
        # last batch that costs a pass of its own
        for chunk in np.array_split(order, -(-len(ids) // self.batch_size)):
            logits = self._last_logits([ids[i][prefix:] for i in chunk], prefix, cache)
            scores[chunk] = self._yes_no_margin(logits)
        return scores

    def _prefix_cache(self, prefix_ids: list[int]):
        tensor = torch.tensor([prefix_ids], device=self.llm.device)
        out = self._forward(input_ids=tensor, attention_mask=torch.ones_like(tensor),
                            use_cache=True)
        return out.past_key_values

    def _forward(self, model: torch.nn.Module | None = None, **kwargs):
        """One forward pass that computes logits for the last position only, where supported;
        ``model`` defaults to the fused-attention one used for scores."""
        model = self.llm.fast if model is None else model
        try:
            return model(**kwargs, logits_to_keep=1)
        except TypeError:
            # older or remote-code models: no logits_to_keep, and some (ALiBi) no position_ids
            kwargs.pop("position_ids", None)
            return model(**kwargs)

    def _last_logits(self, rows: list[list[int]], prefix: int, cache) -> torch.Tensor:
        """Next-token logits after each row, (B, V); rows follow ``prefix`` cached tokens."""
        device, pad = self.llm.device, self.llm.tokenizer.pad_token_id
        width = max(len(r) for r in rows)
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
        # positions count real tokens only, so a padded row sees exactly what it sees alone
        positions = (prefix + mask.cumsum(-1) - 1).clamp(min=0)
        kwargs = {}
        if cache is not None:
            kwargs["past_key_values"] = copy.deepcopy(cache)
            kwargs["past_key_values"].batch_repeat_interleave(len(rows))
            mask = torch.cat([torch.ones(len(rows), prefix, dtype=mask.dtype, device=device),
                              mask], dim=1)
        out = self._forward(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                            use_cache=cache is not None, **kwargs)
        return out.logits[:, -1].float()

    def _yes_no_margin(self, logits: torch.Tensor) -> np.ndarray:
        yes, no = self._yes_no()
        logp = torch.log_softmax(logits, dim=-1)
        margin = torch.logsumexp(logp[:, yes], dim=-1) - torch.logsumexp(logp[:, no], dim=-1)
        return margin.double().cpu().numpy()

    # ----- re-ranking
    def contribution(self, context: Context, catalog: Catalog, item_ids: Iterable[str],
                     weight: float) -> tuple[np.ndarray, np.ndarray]:
        """The one way the LLM's judgement joins a first stage's scores, in the app and in
        evaluation alike: each item (in its :meth:`Catalog.brief` form) is judged, and the
        judgements s, standardised over these items, are weighted, ``weight`` · z(s).

        Returns:
            s and ``weight`` · z(s), both (len(item_ids),); add the second to the first stage's
            scores of the same items.
        """
        titles = {h.item_id: catalog.title(h.item_id) for h in context.history}
        raw = self.judge(context, [catalog.brief(i) for i in item_ids], titles)
        return raw, weight * standardise(raw)

    def rerank(self, ranking: Ranking, catalog: Catalog, context: Context, llm_weight: float,
               top_k: int = 20) -> Ranking:
        """Re-rank the first ``top_k`` rows of ``ranking``; the rest are dropped.

        The rows get :meth:`contribution` as one more contribution column, ``llm`` =
        ``llm_weight`` · z(s), added to ``score``; ``raw_llm`` keeps s.
        """
        if self.scoring == "listwise":
            top_k = min(top_k, len(LABELS))
        table = ranking.table.head(top_k).reset_index(drop=True).copy()
        n = len(table)
        meter = CostMeter()
        with meter.stage("LLM re-rank", self.llm.device,
                         str(self.llm.dtype).removeprefix("torch.")):
            raw, contribution = self.contribution(context, catalog, table["item_id"],
                                                  llm_weight)
        stage = meter.finish()
        costs = ranking.costs.with_stage(stage.stages[0]) if ranking.costs else stage
        table["raw_llm"] = raw
        table["llm"] = contribution
        table["score"] = table["score"].to_numpy(dtype=np.float64) + contribution
        order = np.argsort(-table["score"].to_numpy(), kind="stable")
        table = table.iloc[order].reset_index(drop=True)
        table["rank"] = np.arange(1, n + 1)
        attention = ranking.history_attention
        if attention.shape[0] >= n:
            attention = attention[:n][order]
        asked = ("was asked whether each item fits the situation, and log P(Yes) − log P(No)"
                 if self.scoring == "pointwise" else
                 "read them as one lettered list and was asked which fits best, and the "
                 "log-probability of each item's letter")
        note = (f"The language model {self.name} re-ranked the top {n}: it {asked}, "
                f"standardised over these {n}, was added with weight {llm_weight:g}.")
        return replace(ranking, table=table, history_attention=attention,
                       notes=[*ranking.notes, note], costs=costs)

    # ----- inside the decision
    def occlusion(self, context: Context, item_text: str,
                  titles: Mapping[str, str] | None = None,
                  among: Sequence[str] | None = None) -> list[OcclusionRow]:
        """The score with each context field left out, all variants in one batch; ``among`` is
        the list a listwise re-ranker reads ``item_text`` in.

        ``delta`` is the base score minus the score without the field, both from the same batch.
        """
        among = list(among) if among else [item_text]
        listwise = self.scoring == "listwise"
        parts = list_prompt_parts(context, among, titles) if listwise else \
            prompt_parts(context, item_text, titles)
        fields = [p for p in parts if p.kind == "context"]
        tokenizer = self.llm.tokenizer
        texts = [build_prompt(tokenizer, parts).text]
        texts += [build_prompt(tokenizer, parts, drop=[p.name]).text for p in fields]
        scores = self.judge_lists(texts, len(among), use_cache=False)[:, among.index(item_text)] \
            if listwise else self.judge_prompts(texts, use_cache=False)
        base = scores[0]
        return [OcclusionRow(p.name, p.label, float(s), float(base - s))
                for p, s in zip(fields, scores[1:])]

    def answer_attention(self, context: Context, item_text: str,
                         titles: Mapping[str, str] | None = None,
                         among: Sequence[str] | None = None) -> PairAttention:
        """Attention of every layer and head over the prompt; segments 0 = instructions, question
        and chat markup, 1 = context, 2 = item (every candidate, listwise)."""
        return self._attend(self.scored_prompt(context, item_text, titles, among)[0])[0]

    def answer_focus(self, context: Context, item_text: str,
                     titles: Mapping[str, str] | None = None,
                     among: Sequence[str] | None = None) -> AnswerFocus:
        """Where the answer position looks: per head, head-averaged, rolled out, and per part
        (listwise: over the list of ``among``)."""
        prompt = self.scored_prompt(context, item_text, titles, among)[0]
        pair, token_parts = self._attend(prompt)
        per_head = pair.attentions[:, :, -1, :]
        averaged = per_head.mean(axis=1)
        rolled = rollout(pair.attentions)[-1]
        names = ["template"] + [p.name for p in prompt.parts]
        labels = {"template": "Chat markup and layout", **{p.name: p.label for p in prompt.parts}}
        kinds = {"template": "template", **{p.name: p.kind for p in prompt.parts}}
        member = np.array([[tp == name for tp in token_parts] for name in names], dtype=float)
        by_layer = averaged @ member.T  # (L, P)
        fields = pd.DataFrame({"field": names, "label": [labels[n] for n in names],
                               "kind": [kinds[n] for n in names],
                               "tokens": member.sum(axis=1).astype(int),
                               "attention": by_layer.mean(axis=0), "rollout": member @ rolled})
        return AnswerFocus(pair=pair, token_parts=token_parts, per_head=per_head,
                           averaged=averaged, rollout=rolled, fields=fields,
                           field_by_layer=by_layer)

    @torch.inference_mode()
    def _attend(self, prompt: Prompt) -> tuple[PairAttention, list[str]]:
        tokenizer = self.llm.tokenizer
        encoded = tokenizer(prompt.text, add_special_tokens=False, return_offsets_mapping=True)
        token_parts = _token_parts(encoded["offset_mapping"], prompt.spans)
        kinds = {p.name: p.kind for p in prompt.parts}
        segments = np.array([KIND_SEGMENT[kinds.get(n, "template")] for n in token_parts])
        input_ids = torch.tensor([encoded["input_ids"]], device=self.llm.device)
        out = self._forward(self.llm.model, input_ids=input_ids,
                            attention_mask=torch.ones_like(input_ids), output_attentions=True)
        if not out.attentions or out.attentions[0] is None:
            raise RuntimeError(f"{self.name} returned no attention weights; it must be loaded "
                               "with attn_implementation='eager'.")
        attentions = torch.stack(out.attentions)[:, 0].float().cpu().numpy()  # (L, H, T, T)
        tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
        return PairAttention(tokens=tokens, attentions=attentions, segments=segments,
                             causal=True), token_parts

    def explain(self, context: Context, item_text: str, titles: Mapping[str, str] | None = None,
                max_new_tokens: int = 40) -> str:
        """A one-sentence reason, by greedy generation; cached per (model, prompt)."""
        prompt = self.prompt(context, item_text, titles, question=EXPLAIN_QUESTION).text
        key = (self.name, prompt, max_new_tokens)
        found = self._recall(self._reasons, [key])
        if key in found:
            return found[key]
        reason = self._generate(prompt, max_new_tokens)
        with self._lock:
            self._store(self._reasons, key, reason)
        return reason

    @torch.inference_mode()
    def _generate(self, prompt: str, max_new_tokens: int) -> str:
        tokenizer = self.llm.tokenizer
        encoded = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
        input_ids = encoded["input_ids"].to(self.llm.device)
        output = self.llm.fast.generate(input_ids=input_ids,
                                        attention_mask=torch.ones_like(input_ids),
                                        max_new_tokens=max_new_tokens, do_sample=False,
                                        pad_token_id=tokenizer.pad_token_id)
        text = tokenizer.decode(output[0, input_ids.shape[1]:], skip_special_tokens=True)
        return _first_sentence(text)


def _first_sentence(text: str) -> str:
    """Up to the first sentence end; a reply cut off by the token limit gets an ellipsis."""
    text = " ".join(text.strip().split())
    for i, char in enumerate(text):
        if char in ".!?" and (i + 1 == len(text) or text[i + 1] == " "):
            return text[: i + 1]
    return text + "…" if text else ""
