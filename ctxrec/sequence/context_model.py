"""The context-aware sequence model (sources 000 and 004): y = argmax_i h_i · φ(h_q, h_C) + r_i.

The history runs through the self-attentive model of :mod:`.model`, each event's item embedding
plus the embeddings of that event's own context fields. The context of the event being predicted
(h_C) then enters in one of two ways:

* ``tokens``: every field of it is a token, and one more attention layer lets each prediction
  position attend to those tokens and to the history states before it. Its weights show what a
  prediction looked at, history and context together.
* ``gate``: the fields' embeddings are summed, and a gate computed from the history state and that
  sum decides how much of a context-dependent shift to add: φ(h, c) = h + σ(W_g[h; c]) ⊙ W_c[h; c].

Repeat use is learned, not a rule: for every item in the history, a small network reads how often
and how recently the user used it (in steps and, when the log has times, hours), overall and in the
same context as the predicted event, and adds r_i to that item's score.

Every field has an "unknown" code (0). Training sets fields (and whole contexts) to unknown at
random, so a context with nothing known is a state the model has learned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import SequenceConfig
from .model import SASRec, SequenceInput

__all__ = ["ContextInput", "ContextSASRec"]

_FEATURES = 7  # of the repeat network, see ContextSASRec._repeat_features


@dataclass
class ContextInput:
    """A batch of left-padded windows of events with their contexts.

    Attributes:
        items: (B, L) item indices, 0 = padding, most recent last.
        codes: (B, L, F) each history event's context codes (0 = unknown).
        times: (B, L) each history event's wall-clock seconds (NaN when unknown).
        counts: (B, L) how often each history event used its item.
        target_codes: (B, L, F) the context of the event each position predicts.
        target_times: (B, L) that event's time (NaN when unknown).
    """

    items: torch.Tensor
    codes: torch.Tensor
    times: torch.Tensor
    counts: torch.Tensor
    target_codes: torch.Tensor
    target_times: torch.Tensor

    def to(self, device: str | torch.device) -> ContextInput:
        return ContextInput(*(t.to(device) for t in (self.items, self.codes, self.times,
                                                      self.counts, self.target_codes,
                                                      self.target_times)))


class ContextSASRec(SASRec):
    """:class:`SASRec` with the context of every event as input, the predicted event's context
    entering by ``config.context`` (``tokens`` or ``gate``), and learned repeat scores."""

    def __init__(self, config: SequenceConfig, text_vectors: torch.Tensor | None = None,
                 known: torch.Tensor | None = None):
        if config.context not in ("tokens", "gate"):
            raise ValueError(f"a context model needs context 'tokens' or 'gate', "
                             f"not '{config.context}'")
        super().__init__(config, text_vectors, known)
        c, d = config, config.hidden
        sizes = torch.tensor(c.context_sizes, dtype=torch.long)
        self.register_buffer("field_offsets", torch.cumsum(sizes, 0) - sizes, persistent=False)
        self.field_value = nn.Embedding(int(sizes.sum()), d)
        self.field_name = nn.Embedding(len(c.context_sizes), d)
        if c.context == "tokens":
            self.cross_norm = nn.LayerNorm(d)
            self.cross_q, self.cross_kv = nn.Linear(d, d), nn.Linear(d, 2 * d)
            self.cross_out = nn.Linear(d, d)
            self.cross_ffn_norm = nn.LayerNorm(d)
            self.cross_ffn = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Dropout(c.dropout),
                                           nn.Linear(4 * d, d))
        else:
            self.gate = nn.Linear(2 * d, d)
            self.shift = nn.Linear(2 * d, d)
        self.final_norm = nn.LayerNorm(d)
        self.repeat_net = nn.Sequential(nn.Linear(_FEATURES, 32), nn.GELU(), nn.Linear(32, 1))
        self.apply(self._init)

    def _field_embeddings(self, codes: torch.Tensor) -> torch.Tensor:
        """(…, F) codes → (…, F, D): value embedding plus field-name embedding."""
        return self.field_value(codes + self.field_offsets) + self.field_name.weight

    def encode(self, batch: ContextInput, table: torch.Tensor | None = None,
               keep_weights: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, L, D) prediction states, and when ``keep_weights`` each self-attention layer's
        weights (B, H, L, L), followed (``tokens``) by the context layer's (B, H, L, F + L):
        the predicted event's context fields first, then the history."""
        table = self.item_table() if table is None else table
        history_context = self._field_embeddings(batch.codes).sum(2) / math.sqrt(
            max(1, batch.codes.shape[-1]))
        x = self._embed(batch.items, table) + self.drop(history_context) * \
            (batch.items > 0).unsqueeze(-1)
        mask = self._mask(batch.items, None)
        weights = []
        for block in self.blocks:
            x, w = block(x, mask, None, keep_weights)
            weights += [w] if w is not None else []
        h = self.norm(x)
        target = self._field_embeddings(batch.target_codes)  # (B, L, F, D)
        if self.config.context == "tokens":
            h, w = self._attend(h, target, batch.items > 0, keep_weights)
            weights += [w] if w is not None else []
        else:
            both = torch.cat([h, target.sum(2)], dim=-1)
            h = h + torch.sigmoid(self.gate(both)) * self.shift(both)
        return self.final_norm(h), weights

    def _attend(self, h: torch.Tensor, tokens: torch.Tensor, valid: torch.Tensor,
                keep_weights: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One attention layer: position t reads its own context tokens and history states ≤ t."""
        b, length, d = h.shape
        heads, width = self.config.heads, d // self.config.heads
        x = self.cross_norm(h)
        q = self.cross_q(x).view(b, length, heads, width).transpose(1, 2)  # (B, H, L, W)
        hk, hv = self.cross_kv(x).chunk(2, -1)
        ck, cv = self.cross_kv(self.cross_norm(tokens)).chunk(2, -1)  # (B, L, F, D)
        hk = hk.view(b, length, heads, width).transpose(1, 2)
        hv = hv.view(b, length, heads, width).transpose(1, 2)
        n_fields = tokens.shape[2]
        ck = ck.view(b, length, n_fields, heads, width).permute(0, 3, 1, 2, 4)  # (B, H, L, F, W)
        cv = cv.view(b, length, n_fields, heads, width).permute(0, 3, 1, 2, 4)
        scale = 1 / math.sqrt(width)
        to_context = (q.unsqueeze(3) * ck).sum(-1) * scale  # (B, H, L, F)
        to_history = (q @ hk.transpose(-1, -2)) * scale  # (B, H, L, L)
        causal = torch.ones(length, length, dtype=torch.bool, device=h.device).tril()
        allowed = (causal & valid.unsqueeze(1)) | torch.eye(length, dtype=torch.bool,
                                                            device=h.device)
        to_history = to_history.masked_fill(~allowed.unsqueeze(1), float("-inf"))
        weights = torch.cat([to_context, to_history], dim=-1).softmax(-1)
        weights_dropped = F.dropout(weights, self.config.dropout, self.training)
        mixed = (weights_dropped[..., :n_fields].unsqueeze(-1) * cv).sum(3) + \
            weights_dropped[..., n_fields:] @ hv
        h = h + self.drop(self.cross_out(mixed.transpose(1, 2).reshape(b, length, d)))
        h = h + self.drop(self.cross_ffn(self.cross_ffn_norm(h)))
        return h, weights if keep_weights else None

    def scores(self, batch: ContextInput, table: torch.Tensor | None = None,
               positions: torch.Tensor | None = None) -> torch.Tensor:
        """Scores over every item index (padding included) for each (row, position) in
        ``positions`` ((P, 2); default: the last position of every row): (P, n_items + 1)."""
        table = self.item_table() if table is None else table
        hidden, _ = self.encode(batch, table)
        if positions is None:
            rows = torch.arange(len(batch.items), device=hidden.device)
            positions = torch.stack([rows, torch.full_like(rows, hidden.shape[1] - 1)], 1)
        logits = hidden[positions[:, 0], positions[:, 1]] @ table.T
        bonus = self.repeat_scores(batch)  # (B, L, L): per position t, per history slot j
        items = batch.items[positions[:, 0]]  # (P, L)
        return logits.scatter_add(1, items, bonus[positions[:, 0], positions[:, 1]].to(
            logits.dtype))

    def repeat_scores(self, batch: ContextInput) -> torch.Tensor:
        """(B, L, L): the learned repeat score at position t (dim 1) of the item in history slot
        j (dim 2), non-zero only at the item's most recent use up to t."""
        features, latest = self._repeat_features(batch)
        return self.repeat_net(features).squeeze(-1) * latest

    def _repeat_features(self, batch: ContextInput) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L_t, L_j, 7) features and the (B, L_t, L_j) mask of most recent uses."""
        items, length = batch.items, batch.items.shape[1]
        valid = items > 0
        same = (items.unsqueeze(2) == items.unsqueeze(1)) & valid.unsqueeze(2) & \
            valid.unsqueeze(1)  # (B, j, k)
        causal = torch.ones(length, length, dtype=torch.bool, device=items.device).tril()  # t, k
        uses = same.float() * batch.counts.unsqueeze(1)  # (B, j, k): count of k if same item
        count = uses @ causal.T.float()  # (B, j, t): uses of j's item up to t
        occurrences = same.float() @ causal.T.float()
        steps = torch.arange(length, device=items.device)
        later = occurrences - occurrences.gather(2, steps.view(1, length, 1).expand(
            len(items), -1, -1))  # occurrences in (j, t]
        latest = (later == 0) & (steps.view(1, length, 1) <= steps.view(1, 1, length)) & \
            valid.unsqueeze(2)  # (B, j, t)
        known = batch.target_codes > 0  # (B, t, F)
        agree = (batch.codes.unsqueeze(2) == batch.target_codes.unsqueeze(1)) & \
            known.unsqueeze(1)  # (B, k, t, F)
        n_known = known.sum(-1).unsqueeze(1)  # (B, 1, t)
        share = torch.where(n_known > 0, agree.sum(-1) / n_known.clamp(min=1), 1.0)
        exact = (agree.sum(-1) == n_known).float()
        in_share = uses @ (share * causal.T)  # (B, j, t)
        in_exact = uses @ (exact * causal.T)
        gap_steps = (steps.view(1, 1, length) - steps.view(1, length, 1)).clamp(min=0)
        hours = (batch.target_times.unsqueeze(1) - batch.times.unsqueeze(2)) / 3600  # (B, j, t)
        timed = torch.isfinite(hours)
        hours = torch.where(timed, hours.clamp(min=0), torch.zeros_like(hours)).float()
        features = torch.stack([torch.log1p(count), torch.log1p(in_share), torch.log1p(in_exact),
                                in_share / count.clamp(min=1e-6),
                                torch.log1p(gap_steps.float()).expand_as(count),
                                torch.log1p(hours), timed.float()], dim=-1)
        return features.transpose(1, 2), latest.transpose(1, 2).float()

    def forward(self, batch: SequenceInput | ContextInput, table: torch.Tensor | None = None,
                keep_weights: bool = False, memory: str | None = None):
        if isinstance(batch, ContextInput):
            return self.encode(batch, table, keep_weights)
        return super().forward(batch, table, keep_weights, memory)
