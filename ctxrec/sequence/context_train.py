"""Training the context-aware sequence model on a log whose events carry their context, and
ranking with it.

The events evaluation will hold out are left out of training: for the split and seed given, the
held-out event of *both* protocols (repeat and discovery) is removed, with any later use of the same
item by that user, so ``evaluate-context`` can measure either protocol on the checkpoint without
it having seen the answer. One more event per user is held out for validation (the last by time,
or a random one). Logs without timestamps have no order: each user's events are shuffled anew
every epoch, so the model learns from them as a set.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..data.catalog import Catalog
from ..data.context import Context, utc_seconds
from ..data.context_fields import (TIME_FIELDS, ContextSchema, column_fields, context_fields,
                                   event_fields)
from ..data.context_log import ContextEvents
from ..evaluation.context_split import CONTEXT_PROTOCOLS, held_out_events
from ..evaluation.split import HeldOut, Split
from ..rank.query import Query
from .config import LOG_SPLITS, SequenceConfig, TrainConfig
from .context_model import ContextInput, ContextSASRec
from .train import EpochLog, EpochProgress, TrainedModel, fit
from .windows import pad_left, training_windows

__all__ = ["ContextRanker", "LogData", "context_input", "edited_query", "field_effects",
           "learned_scores", "log_data", "prediction_attention", "train_context_model"]

LogSplitKind = Literal["leave-last-out", "random-event"]


@dataclass
class LogData:
    """A log ready to train on: every event as arrays (row 0 is padding), the training events per
    user in order, and the validation split.

    Attributes:
        sequences: user → indices (into the arrays) of the training events, oldest first.
        ordered: whether the log has times; without them sequences are shuffled every epoch.
        held_out: (user, event index in the log) of every event left out for evaluation.
    """

    schema: ContextSchema
    items: np.ndarray  # (n + 1,) model item index (catalog position + 1)
    codes: np.ndarray  # (n + 1, F)
    clock: np.ndarray  # (n + 1,) wall-clock seconds, NaN when unknown
    counts: np.ndarray  # (n + 1,)
    sequences: dict[str, np.ndarray]
    validation: Split
    ordered: bool
    split: LogSplitKind
    seed: int
    held_out: int = 0


def log_data(events: ContextEvents, catalog: Catalog, split: LogSplitKind = "leave-last-out",
             seed: int = 0) -> LogData:
    """Leave out what evaluation holds out (see the module docstring), hold out one validation
    event per user, and encode every event's context with the schema of the training events.

    Raises:
        ValueError: an unknown split, ``leave-last-out`` on a log without timestamps, or a log
            with no user left to train on.
    """
    if split not in LOG_SPLITS:
        raise ValueError(f"unknown split '{split}'; choose from {', '.join(LOG_SPLITS)}")
    by_time = split == "leave-last-out"
    positions = np.array([catalog.position(i) for i in events.items], dtype=np.int64)
    n = len(positions)
    left_out = np.zeros(n, dtype=bool)
    for protocol in CONTEXT_PROTOCOLS:
        for chosen, _ in held_out_events(events, catalog, protocol, seed, by_time).values():
            if chosen is not None:
                left_out[chosen] = True
    clock = events.clock if events.clock is not None else np.full(n, np.nan)
    users = np.array(events.users, dtype=object)
    left_out |= _later_uses(users, positions, left_out, events.timestamps)
    fields = [event_fields(key, None if np.isnan(t) else t) for key, t in zip(events.keys, clock)]
    rng = np.random.default_rng(seed)
    by_user: dict[str, list[int]] = {}
    for index in np.flatnonzero(~left_out):
        by_user.setdefault(users[index], []).append(int(index))
    sequences, valid_at = {}, {}
    for user, indices in by_user.items():
        indices = np.array(indices)
        if events.timestamps is not None:
            indices = indices[np.argsort(events.timestamps[indices], kind="stable")]
        if len(indices) >= 2:
            pick = len(indices) - 1 if by_time else int(rng.integers(len(indices)))
            # what came before it: the earlier events by time, or (no times) all the others
            valid_at[user] = (int(indices[pick]), indices[:pick] if events.timestamps is not None
                              else np.delete(indices, pick))
            indices = np.delete(indices, pick)
        sequences[user] = indices
    if not any(len(s) >= 2 for s in sequences.values()):
        raise ValueError("nothing to train on: no user has two events left once the held-out "
                         "ones are set aside")
    training = np.concatenate(list(sequences.values()))
    columns = column_fields(events.keys[0], events.clock is not None) if events.keys else set()
    schema = ContextSchema.fit((fields[i] for i in training), columns=columns)
    codes = schema.codes_of(fields)
    return LogData(schema, np.concatenate([[0], positions + 1]),
                   np.concatenate([np.zeros((1, len(schema.fields)), np.int64), codes]),
                   np.concatenate([[np.nan], clock]), np.concatenate([[0.0], events.counts]),
                   {u: s + 1 for u, s in sequences.items()},
                   _validation_split(events, positions, valid_at, len(catalog), split, seed),
                   events.timestamps is not None, split, seed, int(left_out.sum()))


def _later_uses(users: np.ndarray, positions: np.ndarray, held: np.ndarray,
                timestamps: np.ndarray | None) -> np.ndarray:
    """Events that use a held-out event's item again, by the same user, after it (any time,
    without timestamps): training on them would show the model the answer."""
    out = np.zeros(len(users), dtype=bool)
    when = timestamps if timestamps is not None else np.zeros(len(users))
    first: dict[tuple[str, int], float] = {}
    for index in np.flatnonzero(held):
        key = (users[index], int(positions[index]))
        first[key] = min(first.get(key, np.inf), float(when[index]))
    for index in range(len(users)):
        at = first.get((users[index], int(positions[index])))
        if at is not None and not held[index] and when[index] >= at:
            out[index] = True
    return out


def _validation_split(events: ContextEvents, positions: np.ndarray,
                      valid_at: dict[str, tuple[int, np.ndarray]], n_items: int,
                      split: LogSplitKind, seed: int) -> Split:
    keys = np.array(events.keys, dtype=object)
    histories, ratings, history_keys, times, counts_of, valid = {}, {}, {}, {}, {}, {}
    counts = np.zeros(n_items)
    for user, (chosen, earlier) in valid_at.items():
        np.add.at(counts, positions[earlier], 1)
        if earlier.size == 0:
            continue
        histories[user], history_keys[user] = positions[earlier], keys[earlier]
        ratings[user] = np.full(earlier.size, np.nan)
        counts_of[user] = events.counts[earlier]
        if events.clock is not None:
            times[user] = events.clock[earlier]
        time = None if events.timestamps is None else float(events.timestamps[chosen])
        valid[user] = HeldOut(int(positions[chosen]), time, context=events.contexts[chosen],
                              key=events.keys[chosen])
    return Split(histories, ratings, valid, {}, counts, f"{split} (seed {seed}), validation",
                 history_keys, times, counts_of)


def _gather(data: LogData, inputs: list[np.ndarray], targets: list[np.ndarray], max_len: int
            ) -> tuple[ContextInput, torch.Tensor]:
    """Windows of event indices (+ 1, 0 = padding) → the model's batch and target items."""
    events, following = pad_left(inputs, max_len), pad_left(targets, max_len)
    # a target index is the event after the input at the same position (0 where none)
    batch = ContextInput(items=torch.from_numpy(data.items[events]),
                         codes=torch.from_numpy(data.codes[events]),
                         times=torch.from_numpy(data.clock[events]),
                         counts=torch.from_numpy(data.counts[events]).float(),
                         target_codes=torch.from_numpy(data.codes[following]),
                         target_times=torch.from_numpy(data.clock[following]))
    return batch, torch.from_numpy(data.items[following])


@dataclass
class _ContextWindows:
    """Training windows over event indices; see :func:`training_windows`."""

    data: LogData
    inputs: list[np.ndarray]
    targets: list[np.ndarray]
    max_len: int

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def n_targets(self) -> int:
        return int(sum(np.count_nonzero(t) for t in self.targets))

    def batches(self, batch_size: int, rng: np.random.Generator):
        order = rng.permutation(len(self))
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            yield _gather(self.data, [self.inputs[i] for i in chosen],
                          [self.targets[i] for i in chosen], self.max_len)


def _windows(data: LogData, max_len: int, stride: int | None, rng: np.random.Generator | None
             ) -> _ContextWindows:
    sequences = list(data.sequences.values())
    if not data.ordered and rng is not None:
        sequences = [rng.permutation(s) for s in sequences]
    # training_windows adds 1 to what it is given (its padding); event indices already have it
    cut = training_windows([s - 1 for s in sequences], max_len, stride=stride, rng=rng)
    return _ContextWindows(data, cut.inputs, cut.targets, max_len)


def _blind(codes: torch.Tensor, p: float) -> torch.Tensor:
    """Codes with each field set to unknown with chance ``p`` and each whole event with ``p/2``."""
    if p <= 0:
        return codes
    field = torch.rand(codes.shape, device=codes.device) < p
    event = torch.rand(codes.shape[:-1], device=codes.device).unsqueeze(-1) < p / 2
    return codes.masked_fill(field | event, 0)


def _context_loss(model: ContextSASRec, batch: ContextInput, targets: torch.Tensor,
                  train: TrainConfig) -> torch.Tensor:
    batch = replace(batch, codes=_blind(batch.codes, train.context_dropout),
                    target_codes=_blind(batch.target_codes, train.context_dropout))
    valid = targets > 0
    positions = valid.nonzero()
    logits = model.scores(batch, positions=positions)
    logits[:, 0] = float("-inf")  # padding is never an answer
    return F.cross_entropy(logits.float(), targets[valid])


def train_context_model(data: LogData, catalog: Catalog, config: SequenceConfig,
                        train: TrainConfig = TrainConfig(),
                        text_vectors: np.ndarray | None = None, encoder: str | None = None,
                        on_batch: EpochProgress | None = None,
                        on_epoch: Callable[[EpochLog], None] | None = None,
                        should_stop: Callable[[], bool] | None = None) -> TrainedModel:
    """Train a :class:`ContextSASRec` (``config.context`` says how context enters) on ``data``;
    validation, early stopping and the weight average as in
    :func:`~ctxrec.sequence.train.train_sequence_model`."""
    from ..text.encoders import pick_device

    if config.context == "none":
        raise ValueError("choose how context enters the model: tokens or gate")
    config = replace(config, context_sizes=data.schema.sizes, repeat_offset=False)
    torch.manual_seed(train.seed)
    known = np.zeros(len(catalog), dtype=bool)
    for sequence in data.sequences.values():
        known[data.items[sequence] - 1] = True
    vectors = torch.from_numpy(np.asarray(text_vectors, dtype=np.float32)) \
        if text_vectors is not None else None
    model = ContextSASRec(config, vectors, torch.from_numpy(known)).to(pick_device(train.device))
    trained = TrainedModel(model, list(map(str, catalog.ids)), train, encoder=encoder,
                           schema=data.schema)
    first = _windows(data, config.max_len, train.stride, None)
    if first.n_targets == 0:
        raise ValueError("nothing to train on: every user has fewer than two training events")
    rng = np.random.default_rng(train.seed)
    return fit(trained, data.validation,
               lambda epoch: first if epoch == 1 else _windows(data, config.max_len, train.stride,
                                                               rng if train.shuffle_windows or
                                                               not data.ordered else None),
               lambda m, b, t: _context_loss(m, b, t, train), ContextRanker(trained),
               on_batch, on_epoch, should_stop, rng)


def context_input(trained: TrainedModel, queries: Sequence[Query],
                  blind: Collection[str] = ()) -> ContextInput:
    """The model's batch for held-out events: each history's last ``max_len`` events with their
    contexts, and the event's own context; ``blind`` fields read as unknown everywhere."""
    schema, max_len = trained.schema, trained.config.max_len
    rows = len(queries)
    items = np.zeros((rows, max_len), np.int64)
    codes = np.zeros((rows, max_len, len(schema.fields)), np.int64)
    times = np.full((rows, max_len), np.nan)
    counts = np.zeros((rows, max_len), np.float32)
    target_codes = np.zeros_like(codes)
    target_times = np.full((rows, max_len), np.nan)
    for row, query in enumerate(queries):
        n = min(len(query.items), max_len)
        if n:
            span = slice(max_len - n, max_len)
            items[row, span] = query.items[-n:] + 1
            query_times = query.times[-n:] if query.times is not None else np.full(n, np.nan)
            codes[row, span] = schema.codes_of(
                [event_fields(str(k), t) for k, t in zip(query.keys[-n:], query_times)], blind)
            times[row, span] = query_times
            counts[row, span] = query.counts[-n:] if query.counts is not None else 1.0
        clock = query.clock
        target_codes[row, -1] = schema.codes(event_fields(query.key, clock), blind)
        target_times[row, -1] = np.nan if clock is None else clock
    return ContextInput(*(torch.from_numpy(a) for a in (items, codes, times, counts,
                                                          target_codes, target_times)))


@dataclass
class ContextRanker:
    """Ranks held-out events with a trained context model; ``blind`` names fields read as
    unknown (``"all"``: every field, the same model with no context)."""

    trained: TrainedModel
    blind: Collection[str] | Literal["all"] = ()
    name: str = ""

    def __post_init__(self) -> None:
        if self.blind == "all":
            self.blind = tuple(self.trained.schema.fields)
        self.name = self.name or ("context model" if not self.blind else
                                  "context model, every field unknown"
                                  if set(self.blind) >= set(self.trained.schema.fields) else
                                  f"context model, {', '.join(self.blind)} unknown")

    @torch.inference_mode()
    def scores(self, queries: Sequence[Query]) -> np.ndarray:
        model, device = self.trained._reading()
        batch = context_input(self.trained, queries, self.blind).to(device)
        return model.scores(batch)[:, 1:].float().cpu().numpy()


def edited_query(positions: Sequence[int], context: Context) -> Query:
    """A context edited in the app as a held-out event: the history (catalog positions, whose
    own contexts are not known) and the context's fields (see
    :func:`~ctxrec.data.context_fields.context_fields`)."""
    fields = {k: v for k, v in context_fields(context).items() if k not in TIME_FIELDS or
              k in dict(context.extra)}
    items = np.asarray(positions, dtype=np.int64)
    return Query("", items, np.full(len(items), np.nan), np.full(len(items), "", dtype=object),
                 utc_seconds(context.when), context, "|".join(f"{k}={v}" for k, v in
                                                              fields.items()))


@torch.inference_mode()
def learned_scores(trained: TrainedModel, positions: Sequence[int], context: Context,
                   blinds: Sequence[Collection[str]] = ((),)) -> np.ndarray:
    """(len(blinds), N) next-item log-probabilities after the history in ``context``, once per
    set of fields read as unknown."""
    model, device = trained._reading()
    query = edited_query(positions, context)
    batches = [context_input(trained, [query], blind) for blind in blinds]
    batch = ContextInput(*(torch.cat([getattr(b, f) for b in batches]) for f in
                           ("items", "codes", "times", "counts", "target_codes",
                            "target_times"))).to(device)
    return torch.log_softmax(model.scores(batch)[:, 1:].double(), dim=1).float().cpu().numpy()


def field_effects(trained: TrainedModel, positions: Sequence[int], context: Context,
                  items: Sequence[int], exclude_seen: bool = True) -> pd.DataFrame:
    """How many places each of ``items`` (catalog positions) falls when one field is read as
    unknown (negative: it rises), one column per field, among the items the ranking can show."""
    fields = trained.schema.fields
    scores = learned_scores(trained, positions, context, [(), *((f,) for f in fields)])
    if exclude_seen and len(positions):
        scores[:, np.asarray(positions)] = -np.inf
    items = np.asarray(items, dtype=np.int64)
    ranks = 1 + (scores[:, None, :] > scores[:, items, None]).sum(-1)  # (1 + F, len(items))
    return pd.DataFrame((ranks[1:] - ranks[0]).T, columns=list(fields))


def prediction_attention(trained: TrainedModel, positions: Sequence[int], context: Context
                         ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """What the prediction after the history reads, averaged over heads: the labels of its
    context fields (``tokens`` models; ``field=value``) then the history's positions, the
    weights of each, and the history positions shown (the last ``max_len``)."""
    model, device = trained._reading()
    shown = np.asarray(positions, dtype=np.int64)[-trained.config.max_len:]
    query = edited_query(shown, context)
    batch = context_input(trained, [query]).to(device)
    with torch.inference_mode():
        _, weights = model.encode(batch, keep_weights=True)
    last = weights[-1][0, :, -1].mean(0).float().cpu().numpy()  # (F + L) or (L,)
    labels = []
    if trained.config.context == "tokens":
        codes = batch.target_codes[0, -1].cpu().numpy()
        labels = [f"{name}={trained.schema.vocabularies[i][code - 1] if code else '(unknown)'}"
                  for i, (name, code) in enumerate(zip(trained.schema.fields, codes))]
        history = last[len(labels):]
        last = np.concatenate([last[:len(labels)], history[len(history) - len(shown):]])
    else:
        last = last[len(last) - len(shown):]
    return labels, last, shown
