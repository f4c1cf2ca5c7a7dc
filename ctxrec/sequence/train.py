"""Training the sequence model, saving it, and ranking with it.

Training predicts the next item at every position of every window with a full softmax over all
items (cross-entropy), or with shared sampled negatives for catalogs too large for that. Validation
after each epoch uses the evaluation protocol (full ranking, NDCG@10 of each user's validation item);
the best epoch's weights are kept and training stops after ``patience`` epochs without improvement.

Checkpoints are a folder holding ``model.safetensors`` and ``config.json`` (architecture, training
settings, the catalog's item ids, the curves); nothing is pickled, so loading one runs no code.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ..data.catalog import Catalog
from ..data.context import Context
from ..data.context_fields import ContextSchema
from ..evaluation.protocol import evaluate
from ..evaluation.split import Split
from ..rank.query import Query
from ..rank.seen import SeenItems
from .config import SequenceConfig, TrainConfig
from .distributed import Ranks, wrap
from .model import SASRec
from .windows import TrainingWindows, prediction_input, training_windows

__all__ = ["EpochLog", "SequenceEnsemble", "SequenceRanker", "TrainedModel", "fit",
           "load_checkpoint", "train_sequence_model"]


@dataclass
class EpochLog:
    epoch: int
    train_loss: float
    valid_ndcg: float
    valid_hr: float
    elapsed_s: float  # wall clock since training started, validation included
    epoch_train_s: float = 0.0  # this epoch's optimisation alone, validation excluded


@dataclass
class TrainedModel:
    """A trained model with what it needs to be used again: the catalog ids it was trained for,
    and its curves."""

    model: SASRec
    item_ids: list[str]
    train: TrainConfig = field(default_factory=TrainConfig)
    history: list[EpochLog] = field(default_factory=list)
    best_epoch: int = 0
    encoder: str | None = None  # the text model of the frozen vectors (text and hybrid)
    extra: dict = field(default_factory=dict)  # e.g. test results
    schema: ContextSchema | None = None  # the context fields of a context model

    @property
    def config(self) -> SequenceConfig:
        return self.model.config

    def matches(self, catalog: Catalog) -> bool:
        """Whether this model scores exactly the items of ``catalog``, in its order."""
        return list(map(str, catalog.ids)) == self.item_ids

    def time_to(self, ndcg: float) -> float | None:
        """Seconds of training until validation NDCG@10 first reached ``ndcg``."""
        return next((e.elapsed_s for e in self.history if e.valid_ndcg >= ndcg), None)

    def _reading(self) -> tuple[SASRec, torch.device]:
        """The model ready to read and its device; nothing on it changes per call, because one
        loaded checkpoint serves every session of the app at once."""
        if self.model.training:  # only a model fresh from training; a loaded one is in eval
            self.model.eval()
        return self.model, next(self.model.parameters()).device

    @torch.inference_mode()
    def next_item_scores(self, histories: list[np.ndarray], memory: str | None = None
                         ) -> np.ndarray:
        """(len(histories), n_items) next-item scores, catalog order; ``memory`` overrides how
        long histories are read (``truncate``, ``xl``, ``hierarchical``)."""
        c = self.config
        seen = SeenItems.of_histories(histories, c.n_items).dense()
        model, device = self._reading()
        batch = prediction_input(histories, c.max_len, c.n_summaries).to(device)
        return model.next_item_logits(batch, seen.to(device), memory=memory
                                      ).float().cpu().numpy()

    def learned_scores(self, positions: Sequence[int], context, blinds=((),)) -> np.ndarray:
        """A context model's (len(blinds), N) next-item log-probabilities after the history
        in ``context`` (see :func:`~ctxrec.sequence.context_train.learned_scores`)."""
        from .context_train import learned_scores

        return learned_scores(self, positions, context, blinds)

    @torch.inference_mode()
    def self_attention(self, history: np.ndarray) -> tuple[np.ndarray, int]:
        """Attention weights (layers, heads, L, L) over the last ``max_len`` history items and
        how many of those positions are real (the rest is left padding)."""
        window = np.asarray(history, dtype=np.int64)[-self.config.max_len:]
        model, device = self._reading()
        if self.schema is not None:  # its history enters with its own (here unknown) context
            from .context_train import context_input, edited_query

            batch = context_input(self, [edited_query(window, Context())], self.schema.fields)
            _, weights = model.encode(batch.to(device), keep_weights=True)
            weights = weights[:len(model.blocks)]
            length = self.config.max_len
            return torch.stack(weights)[:, 0, :, length - len(window):, length - len(window):
                                        ].float().cpu().numpy(), len(window)
        _, weights = model.forward(prediction_input([window], len(window)).to(device),
                                   keep_weights=True, memory="truncate")
        return torch.stack(weights)[:, 0].float().cpu().numpy(), len(window)

    def save(self, folder: str | Path) -> Path:
        """Write the checkpoint folder atomically (a temporary folder renamed into place)."""
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, tmp / "model.safetensors")
        meta = {"format": "ctxrec-sequence-v1", "model": self.config.to_dict(),
                "train": asdict(self.train), "item_ids": self.item_ids,
                "history": [asdict(e) for e in self.history], "best_epoch": self.best_epoch,
                "encoder": self.encoder, "extra": self.extra}
        if self.schema is not None:
            meta["context_schema"] = self.schema.to_dict()
        (tmp / "config.json").write_text(json.dumps(meta, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
        return folder


def load_checkpoint(folder: str | Path, device: str | None = None) -> TrainedModel:
    """Read a checkpoint folder written by :meth:`TrainedModel.save`; every problem is a
    ``ValueError`` that says what is wrong."""
    folder = Path(folder)
    config_path, weights_path = folder / "config.json", folder / "model.safetensors"
    if not config_path.is_file() or not weights_path.is_file():
        raise ValueError(f"{folder} is not a ctxrec checkpoint: it needs config.json and "
                         "model.safetensors")
    try:
        meta = json.loads(config_path.read_text())
        config = SequenceConfig(**meta["model"])
        state = load_file(weights_path)
        schema = ContextSchema.from_dict(meta["context_schema"]) \
            if config.context != "none" else None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{folder}: damaged checkpoint ({err})") from err
    if schema is not None and schema.sizes != config.context_sizes:
        raise ValueError(f"{folder}: damaged checkpoint (its context schema does not match "
                         "the model's context inputs)")
    if config.context == "none":
        model = SASRec(config)
    else:
        from .context_model import ContextSASRec

        model = ContextSASRec(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{folder}: weights do not match config.json ({err})") from err
    from ..text.encoders import pick_device

    model.to(pick_device(device)).eval()
    return TrainedModel(model=model, item_ids=list(meta["item_ids"]),
                        train=_train_settings(meta.get("train", {})),
                        history=[EpochLog(**e) for e in meta.get("history", [])],
                        best_epoch=meta.get("best_epoch", 0), encoder=meta.get("encoder"),
                        extra=meta.get("extra", {}), schema=schema)


def _train_settings(saved: dict) -> TrainConfig:
    """The training settings a checkpoint records; they only describe how it was made, so
    settings this version does not know (from a newer or an older one) are left out."""
    known = set(TrainConfig.__dataclass_fields__)
    return TrainConfig(**{k: v for k, v in saved.items() if k in known})


@dataclass
class SequenceRanker:
    """Evaluation adapter: each held-out item is predicted from everything the user did before it
    (for the test item: the training history followed by the validation item)."""

    trained: TrainedModel
    name: str = "SASRec"
    memory: str | None = None
    exclude: np.ndarray | None = None  # catalog positions never fed as input (cold-start runs)

    def scores(self, queries: Sequence[Query]) -> np.ndarray:
        if self.trained.schema is not None:  # a context model also reads each event's context
            from .context_train import ContextRanker

            return ContextRanker(self.trained).scores(queries)
        histories = [q.items if self.exclude is None else q.items[~np.isin(q.items, self.exclude)]
                     for q in queries]
        return self.trained.next_item_scores(histories, self.memory)


@dataclass
class SequenceEnsemble:
    """Several trained models (e.g. seeds) ranking together: the mean of their next-item
    log-probabilities. On a data set as small as ml-latest-small single models differ a lot from
    seed to seed, and averaging them cancels part of that."""

    members: list[TrainedModel]
    name: str = ""

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("an ensemble needs at least one model")
        if any(m.item_ids != self.members[0].item_ids for m in self.members):
            raise ValueError("the models of an ensemble must share one catalog")
        self.name = self.name or f"SASRec ensemble of {len(self.members)}"

    def scores(self, queries: Sequence[Query]) -> np.ndarray:
        total = 0.0
        for member in self.members:
            scores = torch.from_numpy(SequenceRanker(member).scores(queries))
            total = total + torch.log_softmax(scores.double(), dim=1).numpy()
        return total / len(self.members)


EpochProgress = Callable[[int, int, int, float], None]  # epoch, batch, batches, running loss


def train_sequence_model(split: Split, catalog: Catalog, config: SequenceConfig,
                         train: TrainConfig = TrainConfig(),
                         text_vectors: np.ndarray | None = None, encoder: str | None = None,
                         on_batch: EpochProgress | None = None,
                         on_epoch: Callable[[EpochLog], None] | None = None,
                         should_stop: Callable[[], bool] | None = None) -> TrainedModel:
    """Train on ``split.histories`` and validate on ``split.valid`` each epoch; stop early on
    patience, the time budget or ``should_stop()`` (asked after each epoch), keeping the best.

    Items with no training interaction are marked unknown: the hybrid model represents them by
    their text alone (cold start).
    """
    from ..text.encoders import pick_device

    torch.manual_seed(train.seed)
    rng = np.random.default_rng(train.seed)
    known = torch.from_numpy(split.train_counts > 0)
    vectors = torch.from_numpy(np.asarray(text_vectors, dtype=np.float32)) \
        if text_vectors is not None else None
    model = SASRec(config, vectors, known).to(pick_device(train.device))
    trained = TrainedModel(model, list(map(str, catalog.ids)), train, encoder=encoder)
    histories = list(split.histories.values())
    first = training_windows(histories, config.max_len, config.n_summaries, train.stride)
    if first.n_targets == 0:
        raise ValueError("nothing to train on: every history has fewer than two items")

    def windows(epoch: int) -> TrainingWindows:
        if epoch == 1 or not train.shuffle_windows:
            return first
        return training_windows(histories, config.max_len, config.n_summaries, train.stride, rng)
    return fit(trained, split, windows,
               lambda m, b, t: _loss(m, b, t, train, config.n_items), SequenceRanker(trained),
               on_batch, on_epoch, should_stop, rng)


def fit(trained: TrainedModel, split: Split, windows: Callable[[int], TrainingWindows],
        loss: Callable, ranker, on_batch: EpochProgress | None,
        on_epoch: Callable[[EpochLog], None] | None, should_stop: Callable[[], bool] | None,
        rng: np.random.Generator) -> TrainedModel:
    """The training loop every sequence model shares: an epoch over ``windows(epoch)``, then
    validation NDCG@10 of ``ranker`` on ``split.valid`` (with the weight average when it is on);
    keeps the best epoch and stops on patience, the time budget or ``should_stop()``.

    Under ``torchrun`` (see :mod:`.distributed`) each process trains on its slice of every batch
    and only rank 0 validates, calls ``on_epoch`` and decides when to stop; every rank ends with
    the best epoch's weights."""
    model, train = trained.model, trained.train
    group = Ranks()
    step = wrap(model, loss) if group.many else None
    users = sorted(split.valid, key=str)[: train.eval_users] if train.eval_users else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr,
                                  weight_decay=train.weight_decay)
    averaged = [p.detach().clone() for p in model.parameters()] if train.average else None
    best, best_state, waited = -1.0, None, 0
    started = time.perf_counter()
    for epoch in range(1, train.epochs + 1):
        epoch_loss, epoch_s = _train_epoch(model, windows(epoch), optimizer, train, rng,
                                           averaged, loss, (
            lambda i, n, running, e=epoch: on_batch(e, i, n, running))
            if on_batch and group.main else None, step, group)
        best_epoch, stop = trained.best_epoch, False
        if group.main:
            with _weights(model, averaged):
                result = evaluate(ranker, split, k=10, target="valid", users=users)
            means = result.per_user[["ndcg", "hr"]].mean()
            log = EpochLog(epoch, epoch_loss, float(means["ndcg"]), float(means["hr"]),
                           time.perf_counter() - started, epoch_s)
            trained.history.append(log)
            if on_epoch:
                on_epoch(log)
            if log.valid_ndcg > best:
                best, waited, best_epoch = log.valid_ndcg, 0, epoch
            else:
                waited += 1
            out_of_time = train.time_budget_s is not None and log.elapsed_s >= train.time_budget_s
            stop = waited >= train.patience or out_of_time or bool(should_stop and should_stop())
        trained.best_epoch, stop = group.decide(best_epoch, stop)
        if trained.best_epoch == epoch:
            with _weights(model, averaged):
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if stop:
            break
    model.load_state_dict(best_state)
    model.eval()
    return trained


def _train_epoch(model: SASRec, windows: TrainingWindows, optimizer: torch.optim.Optimizer,
                 train: TrainConfig, rng: np.random.Generator,
                 averaged: list[torch.Tensor] | None, loss_of: Callable,
                 on_batch: Callable[[int, int, float], None] | None,
                 step: torch.nn.Module | None = None, group: Ranks | None = None
                 ) -> tuple[float, float]:
    """One pass over the windows, updating the moving average after each step; the mean loss
    and the seconds it took. With ``step`` (the DDP-wrapped loss) this process computes its
    slice of each batch and the reported loss is the whole batch's."""
    model.train()
    device = next(model.parameters()).device
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else \
        torch.autocast("cpu", enabled=False)
    n_batches = -(-len(windows) // train.batch_size)
    start = time.perf_counter()
    total, count = 0.0, 0
    for i, (batch, targets) in enumerate(windows.batches(train.batch_size, rng)):
        if step is not None:
            batch, targets, scale = group.slice(batch, targets)
        batch, targets = batch.to(device), targets.to(device)
        with autocast:
            loss = loss_of(model, batch, targets) if step is None else \
                step(batch, targets) * scale
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if averaged is not None:
            with torch.no_grad():
                torch._foreach_lerp_(averaged, list(model.parameters()), 1 - train.average)
        total += loss.item() if step is None else group.mean(loss.item())
        count += 1
        if on_batch:
            on_batch(i + 1, n_batches, total / count)
    return total / max(count, 1), time.perf_counter() - start


@contextmanager
def _weights(model: torch.nn.Module, weights: list[torch.Tensor] | None) -> Iterator[None]:
    """Within the block the model holds ``weights`` (None: its own), then its own again."""
    if weights is None:
        yield
        return
    live = _swap(model, weights)
    try:
        yield
    finally:
        _swap(model, live)


@torch.no_grad()
def _swap(model: torch.nn.Module, weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """Load ``weights`` into the model's parameters and return the ones they replaced."""
    replaced = [p.detach().clone() for p in model.parameters()]
    for p, w in zip(model.parameters(), weights):
        p.copy_(w)
    return replaced


def _loss(model: SASRec, batch, targets: torch.Tensor, train: TrainConfig, n_items: int
          ) -> torch.Tensor:
    table = model.item_table()
    hidden, _ = model(batch, table)
    valid = targets > 0
    seen = SeenItems.of_prefixes(batch.items, valid, n_items + 1) \
        if model.config.repeat_offset else None
    hidden, targets = hidden[valid], targets[valid]
    if train.loss == "full":
        logits = hidden @ table.T
        if seen is not None:
            logits = seen.add(logits, model.repeat)
        logits[:, 0] = float("-inf")  # padding is never an answer
        return F.cross_entropy(logits.float(), targets)
    negatives = torch.randint(1, n_items + 1, (train.n_negatives,), device=targets.device)
    positive = (hidden * table[targets]).sum(-1, keepdim=True)
    negative = hidden @ table[negatives].T
    if seen is not None:
        rows = torch.arange(len(targets), device=targets.device).unsqueeze(1)
        positive = positive + model.repeat * seen.contains(rows, targets.unsqueeze(1))
        negative = negative + model.repeat * seen.contains(rows, negatives.unsqueeze(0))
    negative = negative.masked_fill(negatives.unsqueeze(0) == targets.unsqueeze(1), float("-inf"))
    logits = torch.cat([positive, negative], dim=1).float()
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long,
                                               device=logits.device))
