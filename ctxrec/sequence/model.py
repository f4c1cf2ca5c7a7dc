"""A self-attentive sequence model (SASRec family) over a person's history (sources 000 and 002).

Causal self-attention over the last ``max_len`` items, with learned positions and pre-LN blocks.
Items are represented by an ID embedding, a projection of their frozen language-model text vector, or
both summed (``hybrid``); the output layer is tied to the same item table, so the next-item score is
the dot product between the last hidden state and each item's representation.

Histories longer than the window (source 000) are handled three ways, all with one set of weights:

* ``truncate``: only the last ``max_len`` items.
* ``xl``: segment-level recurrence in the style of Transformer-XL. The segment before the window is
  run first; its per-layer hidden states are kept (without gradient) and offered to the window as
  extra keys and values.
* ``hierarchical``: in the style of LCULM, every earlier segment of ``max_len`` items is summarised
  by the mean of its item vectors; up to ``n_summaries`` summaries, each with a recency embedding,
  are placed before the window, and the window attends across them.

When a history fits in the window there is nothing earlier, so all three give the same result.

Index 0 is padding; catalog position ``p`` is index ``p + 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..rank.seen import SeenItems
from .config import MEMORY_MODES, SequenceConfig

__all__ = ["SASRec", "SequenceInput"]

@dataclass
class SequenceInput:
    """A batch of left-padded windows and what came before them.

    Attributes:
        items: (B, L) item indices, 0 = padding, most recent last.
        previous: (B, L) the segment before each window (all 0 when there is none), for ``xl``.
        summaries: (B, S, L) earlier segments, most recent first, for ``hierarchical``.
    """

    items: torch.Tensor
    previous: torch.Tensor | None = None
    summaries: torch.Tensor | None = None

    def to(self, device: str | torch.device) -> SequenceInput:
        return SequenceInput(*(t.to(device) if t is not None else None
                               for t in (self.items, self.previous, self.summaries)))


class _Block(nn.Module):
    """Pre-LN transformer block whose attention may also read extra keys/values placed before the
    window (memory or summaries)."""

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden)
        self.ffn = nn.Sequential(nn.Linear(hidden, hidden * 4), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden * 4, hidden))
        self.drop = nn.Dropout(dropout)
        self.attn_drop = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor, prefix: torch.Tensor | None = None,
                keep_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, L, D); prefix: (B, P, D) states placed before x (keys/values only);
        mask: (B, 1, L, P + L) True where a query may look."""
        b, length, d = x.shape
        h = self.norm1(x)
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        if prefix is not None:
            _, pk, pv = self.qkv(self.norm1(prefix)).chunk(3, dim=-1)
            k, v = torch.cat([pk, k], dim=1), torch.cat([pv, v], dim=1)

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, -1, self.heads, d // self.heads).transpose(1, 2)

        q, k, v = heads(q), heads(k), heads(v)
        weights = None
        if keep_weights:
            scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads)
            weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)
            mixed = weights @ v
        else:
            mixed = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.attn_drop if self.training else 0.0)
        x = x + self.drop(self.out(mixed.transpose(1, 2).reshape(b, length, d)))
        x = x + self.drop(self.ffn(self.norm2(x)))
        return x, weights


class SASRec(nn.Module):
    """Next-item model: ``forward`` returns the hidden state at every window position;
    ``item_table`` the item representations the scores are dot products with."""

    def __init__(self, config: SequenceConfig, text_vectors: torch.Tensor | None = None,
                 known: torch.Tensor | None = None):
        """
        Args:
            text_vectors: (n_items, text_dim) frozen text vectors, catalog order (text/hybrid).
            known: (n_items,) bool, items seen in training. In the hybrid model an unseen item's
                ID embedding is zero, so it is represented by its text alone (cold start).
        """
        super().__init__()
        if config.item_repr != "id" and config.text_dim <= 0:
            raise ValueError(f"item_repr '{config.item_repr}' needs text vectors (text_dim > 0): "
                             "train with text vectors, or choose item_repr 'id'")
        self.config = c = config
        n = c.n_items + 1
        self.item_id = nn.Embedding(n, c.hidden, padding_idx=0) if c.item_repr != "text" else None
        if c.item_repr != "id":
            if text_vectors is None:
                text_vectors = torch.zeros(c.n_items, c.text_dim)
            table = torch.cat([torch.zeros(1, c.text_dim), text_vectors.float()])
            self.register_buffer("text_vectors", table)
            self.text_proj = nn.Sequential(nn.Linear(c.text_dim, c.hidden), nn.GELU(),
                                           nn.Linear(c.hidden, c.hidden))
        mask = torch.ones(n, dtype=torch.bool) if known is None else \
            torch.cat([torch.zeros(1, dtype=torch.bool), known.bool()])
        mask[0] = False
        self.register_buffer("known", mask)
        self.position = nn.Embedding(c.max_len, c.hidden)
        self.summary_position = nn.Embedding(c.n_summaries, c.hidden)
        self.blocks = nn.ModuleList(_Block(c.hidden, c.heads, c.dropout) for _ in range(c.layers))
        self.norm = nn.LayerNorm(c.hidden)
        self.drop = nn.Dropout(c.dropout)
        # One learned number added to the score of every item the person already has: data
        # where people do not repeat (film ratings) drive it negative, replayed music positive.
        self.repeat = nn.Parameter(torch.zeros(()))
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def item_table(self) -> torch.Tensor:
        """(n_items + 1, hidden): row 0 (padding) is zero."""
        c = self.config
        if c.item_repr == "id":
            return self.item_id.weight
        text = self.text_proj(self.text_vectors) * (self.text_vectors.abs().sum(-1, keepdim=True)
                                                     > 0)
        if c.item_repr == "text":
            return text
        known = self.known
        if self.training and c.id_dropout > 0:
            known = known & (torch.rand(known.shape, device=known.device) >= c.id_dropout)
        return text + self.item_id.weight * known.unsqueeze(-1)

    def forward(self, batch: SequenceInput, table: torch.Tensor | None = None,
                keep_weights: bool = False, memory: str | None = None
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Hidden states (B, L, D) of the window, and (when ``keep_weights``) each layer's
        attention weights (B, H, L, P + L) over the prefix (memory or summaries) and the window.

        ``memory`` reads long histories another way than ``config.memory`` for this call only
        (``truncate``, ``xl``, ``hierarchical``); the same weights serve all three, and a model
        shared between threads is never changed to do it."""
        table = self.item_table() if table is None else table
        mode = memory or self.config.memory
        if mode not in MEMORY_MODES:
            raise ValueError(f"memory must be one of {MEMORY_MODES}, not '{mode}'")
        prefixes: list[torch.Tensor | None] = [None] * len(self.blocks)
        prefix_valid = None
        if mode == "xl" and batch.previous is not None and bool((batch.previous > 0).any()):
            with torch.no_grad():
                prefixes = self._layer_inputs(batch.previous, table)
            prefix_valid = batch.previous > 0
        elif mode == "hierarchical" and batch.summaries is not None and \
                bool((batch.summaries > 0).any()):
            summary = self._summaries(batch.summaries, table)
            prefixes = [summary] * len(self.blocks)
            prefix_valid = (batch.summaries > 0).any(-1)
        x = self._embed(batch.items, table)
        mask = self._mask(batch.items, prefix_valid)
        weights = []
        for block, prefix in zip(self.blocks, prefixes):
            x, w = block(x, mask, prefix, keep_weights)
            if w is not None:
                weights.append(w)
        return self.norm(x), weights

    def next_item_logits(self, batch: SequenceInput, seen: torch.Tensor | None = None,
                         memory: str | None = None) -> torch.Tensor:
        """(B, n_items) next-item scores after each window's last position, catalog order;
        ``seen`` (B, n_items) marks the items already in each history (default: the window's);
        ``memory`` as in :meth:`forward`."""
        table = self.item_table()
        hidden, _ = self.forward(batch, table, memory=memory)
        scores = hidden[:, -1] @ table[1:].T
        if self.config.repeat_offset:
            if seen is None:
                last = torch.zeros_like(batch.items, dtype=torch.bool)
                last[:, -1] = True
                seen = SeenItems.of_prefixes(batch.items, last, self.config.n_items + 1
                                             ).dense()[:, 1:]
            scores = scores + self.repeat * seen
        return scores

    def _embed(self, items: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(items.shape[1], device=items.device) + \
            (self.config.max_len - items.shape[1])
        x = table[items] * math.sqrt(self.config.hidden) + self.position(positions)
        return self.drop(x * (items > 0).unsqueeze(-1))

    def _layer_inputs(self, items: torch.Tensor, table: torch.Tensor) -> list[torch.Tensor]:
        """The input of every layer for a segment run on its own (the memory of the next one)."""
        x = self._embed(items, table)
        mask = self._mask(items, None)
        states = []
        for block in self.blocks:
            states.append(x)
            x, _ = block(x, mask)
        return states

    def _summaries(self, segments: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """(B, S, L) segments → (B, S, D): mean item vector plus a recency embedding."""
        valid = (segments > 0).unsqueeze(-1).float()
        means = (table[segments] * valid).sum(2) / valid.sum(2).clamp(min=1)
        recency = self.summary_position(torch.arange(segments.shape[1], device=segments.device))
        return means * math.sqrt(self.config.hidden) + recency

    @staticmethod
    def _mask(items: torch.Tensor, prefix_valid: torch.Tensor | None) -> torch.Tensor:
        """(B, 1, L, P + L): causal over the window, padding keys hidden, every query may see
        the valid prefix; a query always sees itself so no row is empty."""
        length = items.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=items.device).tril()
        mask = causal & (items > 0).unsqueeze(1)  # (B, L, L)
        mask = mask | torch.eye(length, dtype=torch.bool, device=items.device)
        if prefix_valid is not None:
            mask = torch.cat([prefix_valid.unsqueeze(1).expand(-1, length, -1), mask], dim=-1)
        return mask.unsqueeze(1)
