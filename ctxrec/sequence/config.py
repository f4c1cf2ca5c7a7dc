"""The sequence model's settings: its architecture and how it is trained.

These dataclasses are the one source of the defaults: ``python -m ctxrec train`` and the Train
page read theirs from here, and the checkpoint saves both next to the weights. Nothing here
imports torch, so the command line can show them without loading it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

__all__ = ["CONTEXT_ENTRIES", "ITEM_REPRS", "LOG_CONTEXT_ENTRY", "LOG_SPLITS", "MEMORY_MODES",
           "PRESETS", "SequenceConfig", "TrainConfig"]

ITEM_REPRS = ("id", "text", "hybrid")
MEMORY_MODES = ("truncate", "xl", "hierarchical")
CONTEXT_ENTRIES = ("none", "tokens", "gate")
LOG_CONTEXT_ENTRY = "tokens"  # what train --log uses unless told: the better of the two measured
LOG_SPLITS = ("leave-last-out", "random-event")


@dataclass(frozen=True)
class SequenceConfig:
    """Architecture of the model; saved next to every checkpoint. The defaults are what
    ``python -m ctxrec train`` and the README's figures use."""

    n_items: int
    max_len: int = 50
    hidden: int = 128
    layers: int = 2
    heads: int = 2
    dropout: float = 0.3
    item_repr: Literal["id", "text", "hybrid"] = "hybrid"
    text_dim: int = 0  # width of the frozen text vectors; filled in from the encoder when
    # training starts (stays 0 for "id")
    memory: Literal["truncate", "xl", "hierarchical"] = "truncate"
    n_summaries: int = 16  # hierarchical: how many earlier segments are summarised
    repeat_offset: bool = True  # learn one score offset for items already in the history
    # hybrid: the share of known items scored on their text alone in each training batch, so the
    # model also learns to rank an item by its text, as it must for items never trained on
    id_dropout: float = 0.0
    # how the predicted event's context enters (see context_model): "none" is the plain model
    context: Literal["none", "tokens", "gate"] = "none"
    context_sizes: tuple[int, ...] = ()  # codes per context field, "unknown" included

    def __post_init__(self) -> None:
        if self.item_repr not in ITEM_REPRS:
            raise ValueError(f"item_repr must be one of {ITEM_REPRS}, not '{self.item_repr}'")
        if self.memory not in MEMORY_MODES:
            raise ValueError(f"memory must be one of {MEMORY_MODES}, not '{self.memory}'")
        if self.context not in CONTEXT_ENTRIES:
            raise ValueError(f"context must be one of {CONTEXT_ENTRIES}, not '{self.context}'")
        object.__setattr__(self, "context_sizes", tuple(int(s) for s in self.context_sizes))
        if not 0 <= self.id_dropout < 1:
            raise ValueError(f"id_dropout must be in [0, 1), not {self.id_dropout}")
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes:
        loss: ``full`` softmax over every item, or ``sampled`` with ``n_negatives`` shared
            negatives per batch (for very large catalogs).
        patience: stop after this many epochs without a better validation NDCG@10.
        time_budget_s: stop once this much wall-clock time has passed (None: no limit).
        eval_users: validate on this many users (None: all).
    """

    epochs: int = 200
    batch_size: int = 16  # windows; small batches mean more steps per epoch, which ml-latest-small
    lr: float = 3e-3  # needs more than large batches (measured: see the README)
    weight_decay: float = 0.0
    loss: Literal["full", "sampled"] = "full"
    n_negatives: int = 1024
    patience: int = 5
    stride: int | None = None  # windows every this many items (None: max_len, no overlap)
    shuffle_windows: bool = True  # cut windows at new random places every epoch
    average: float = 0.995  # > 0: validate and keep an exponential moving average of the
    # weights with this decay per step (on ml-latest-small: smoother curves, a higher peak)
    seed: int = 0
    device: str | None = None
    time_budget_s: float | None = None
    eval_users: int | None = None
    context_dropout: float = 0.2  # context models: each field is unknown with this chance, and
    # a whole event's context with half of it


# The Train page's choices: the defaults, and a smaller model for a short time limit on a CPU.
PRESETS: dict[str, SequenceConfig] = {
    "standard": SequenceConfig(n_items=1),
    "quick": replace(SequenceConfig(n_items=1), hidden=64, dropout=0.2),
}
