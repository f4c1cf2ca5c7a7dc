"""Asking a causal LM which kind of item a request wants, for requests the rules cannot place.

The intent reader's rules name a kind only when the request says it ("a series", "something to
read"). For the rest ("keep my 5-year-old busy on the train") a language model can be asked, in
one forward pass: the prompt lists the catalog's kinds, and the next-token distribution is read
over the first token of each kind's name (a verbalizer, as LlamaRec reads candidate labels). A
confident answer becomes a soft preference, never a limit: a wrong guess lifts some items, it
does not hide the rest.

Measured on the judged intents, the packaged SmolLM2-135M answers "book" for almost every request
(README, "What the intent reader understands"), so this is off by default; it is meant for a
larger model (``--intent-model Qwen/Qwen2.5-1.5B-Instruct`` online, or on a GPU).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .models import CausalLM
from .rerank import render_chat

__all__ = ["KindReader"]

# how a kind is said when its catalog name is not a plain word
SPOKEN = {"daytrip": "day trip", "longread": "article", "cafe": "café", "fitness": "workout"}
INSTRUCTIONS = "You sort requests into the kinds of things a person can do, watch, read or eat."


class KindReader:
    """Which of ``kinds`` a request asks for, as probabilities.

    Args:
        llm: any causal LM with a fast tokenizer.
        kinds: the catalog's categories.
        threshold: the smallest probability that counts as an answer.

    Raises:
        ValueError: when two kinds start with the same token, so one pass cannot tell them apart.
    """

    def __init__(self, llm: CausalLM, kinds: Sequence[str], threshold: float = 0.5):
        self.llm = llm
        self.kinds = tuple(sorted(kinds))
        self.threshold = threshold
        self._spoken = [SPOKEN.get(k, k) for k in self.kinds]
        self._first = []
        for word in self._spoken:
            ids = {self._first_token(variant) for variant in (word, " " + word)}
            self._first.append(sorted(ids))
        flat = [t for ids in self._first for t in ids]
        if len(flat) != len(set(flat)):
            raise ValueError(f"'{llm.name}': two of the kinds {', '.join(self._spoken)} start "
                             "with the same token")

    @property
    def name(self) -> str:
        return self.llm.name

    def _first_token(self, text: str) -> int:
        return self.llm.tokenizer(text, add_special_tokens=False)["input_ids"][0]

    def probabilities(self, request: str) -> dict[str, float]:
        """Kind → probability that it is the one asked for (they sum to 1)."""
        user = (f'Request: "{" ".join(request.split())[:500]}"\n'
                f"Kinds: {', '.join(self._spoken)}.\n"
                "Which kind fits the request best? Answer with the kind only.")
        text = render_chat(self.llm.tokenizer, INSTRUCTIONS, user)[0]
        ids = self.llm.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            logits = self.llm.fast(input_ids=ids["input_ids"].to(self.llm.device)).logits[0, -1]
        logits = logits.float().cpu()
        scores = torch.stack([torch.logsumexp(logits[t], 0) for t in self._first])
        probs = torch.softmax(scores, 0).numpy()
        return dict(zip(self.kinds, np.round(probs.astype(float), 4).tolist()))

    def answer(self, request: str) -> tuple[str, float] | None:
        """The kind asked for and its probability, or ``None`` below ``threshold``."""
        probs = self.probabilities(request)
        kind = max(probs, key=probs.get)
        return (kind, probs[kind]) if probs[kind] >= self.threshold else None
