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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from .catalog import Catalog
from .evaluate import Query, Split, evaluate
from .sequence_data import prediction_input, training_windows
from .sequence_model import SASRec, SequenceConfig

__all__ = ["EpochLog", "SequenceEnsemble", "SequenceRanker", "TrainConfig", "TrainedModel",
           "load_checkpoint", "train_sequence_model"]


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
    def scores(self, histories: list[np.ndarray], memory: str | None = None) -> np.ndarray:
        """(len(histories), n_items) next-item scores, catalog order; ``memory`` overrides how
        long histories are read (``truncate``, ``xl``, ``hierarchical``)."""
        c = self.config
        seen = torch.zeros(len(histories), c.n_items, dtype=torch.bool)
        for row, history in enumerate(histories):
            seen[row, np.asarray(history, dtype=np.int64)] = True
        model, device = self._reading()
        batch = prediction_input(histories, c.max_len, c.n_summaries).to(device)
        return model.scores(batch, seen.to(device), memory=memory).float().cpu().numpy()

    @torch.inference_mode()
    def self_attention(self, history: np.ndarray) -> tuple[np.ndarray, int]:
        """Attention weights (layers, heads, L, L) over the last ``max_len`` history items and
        how many of those positions are real (the rest is left padding)."""
        window = np.asarray(history, dtype=np.int64)[-self.config.max_len:]
        model, device = self._reading()
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
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{folder}: damaged checkpoint ({err})") from err
    model = SASRec(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{folder}: weights do not match config.json ({err})") from err
    from .encoders import pick_device

    model.to(pick_device(device)).eval()
    return TrainedModel(model=model, item_ids=list(meta["item_ids"]),
                        train=_train_settings(meta.get("train", {})),
                        history=[EpochLog(**e) for e in meta.get("history", [])],
                        best_epoch=meta.get("best_epoch", 0), encoder=meta.get("encoder"),
                        extra=meta.get("extra", {}))


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
        histories = [q.items if self.exclude is None else q.items[~np.isin(q.items, self.exclude)]
                     for q in queries]
        return self.trained.scores(histories, self.memory)


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
    from .encoders import pick_device

    torch.manual_seed(train.seed)
    rng = np.random.default_rng(train.seed)
    device = pick_device(train.device)
    known = torch.from_numpy(split.train_counts > 0)
    vectors = torch.from_numpy(np.asarray(text_vectors, dtype=np.float32)) \
        if text_vectors is not None else None
    model = SASRec(config, vectors, known).to(device)
    trained = TrainedModel(model, list(map(str, catalog.ids)), train, encoder=encoder)
    histories = list(split.histories.values())
    windows = training_windows(histories, config.max_len, config.n_summaries, train.stride)
    if windows.n_targets == 0:
        raise ValueError("nothing to train on: every history has fewer than two items")
    users = sorted(split.valid, key=str)[: train.eval_users] if train.eval_users else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr,
                                  weight_decay=train.weight_decay)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else \
        torch.autocast("cpu", enabled=False)
    best, best_state, waited = -1.0, None, 0
    started = time.perf_counter()
    n_batches = -(-len(windows) // train.batch_size)
    averaged = [p.detach().clone() for p in model.parameters()] if train.average else None
    for epoch in range(1, train.epochs + 1):
        model.train()
        if train.shuffle_windows and epoch > 1:
            windows = training_windows(histories, config.max_len, config.n_summaries,
                                       train.stride, rng)
            n_batches = -(-len(windows) // train.batch_size)
        epoch_start = time.perf_counter()
        total, count = 0.0, 0
        for i, (batch, targets) in enumerate(windows.batches(train.batch_size, rng)):
            batch, targets = batch.to(device), targets.to(device)
            with autocast:
                loss = _loss(model, batch, targets, train, config.n_items)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if averaged is not None:
                with torch.no_grad():
                    torch._foreach_lerp_(averaged, list(model.parameters()), 1 - train.average)
            total, count = total + loss.item(), count + 1
            if on_batch:
                on_batch(epoch, i + 1, n_batches, total / count)
        epoch_s = time.perf_counter() - epoch_start
        live = _swap(model, averaged) if averaged is not None else None
        result = evaluate(SequenceRanker(trained), split, k=10, target="valid", users=users)
        means = result.per_user[["ndcg", "hr"]].mean()
        log = EpochLog(epoch, total / max(count, 1), float(means["ndcg"]), float(means["hr"]),
                       time.perf_counter() - started, epoch_s)
        trained.history.append(log)
        if on_epoch:
            on_epoch(log)
        if log.valid_ndcg > best:
            best, waited, trained.best_epoch = log.valid_ndcg, 0, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
        if live is not None:
            _swap(model, live)
        out_of_time = train.time_budget_s is not None and log.elapsed_s >= train.time_budget_s
        if waited >= train.patience or out_of_time or (should_stop and should_stop()):
            break
    model.load_state_dict(best_state)
    model.eval()
    return trained


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
    keys = model.seen_keys(batch.items, valid) if model.config.repeat_offset else None
    hidden, targets = hidden[valid], targets[valid]
    if train.loss == "full":
        logits = hidden @ table.T
        if keys is not None:
            logits = model.add_repeat_offset(logits, keys)
        logits[:, 0] = float("-inf")  # padding is never an answer
        return F.cross_entropy(logits.float(), targets)
    negatives = torch.randint(1, n_items + 1, (train.n_negatives,), device=targets.device)
    positive = (hidden * table[targets]).sum(-1, keepdim=True)
    negative = hidden @ table[negatives].T
    if keys is not None:
        rows = torch.arange(len(targets), device=targets.device).unsqueeze(1)
        positive = positive + model.repeat * model.has_seen(keys, rows, targets.unsqueeze(1))
        negative = negative + model.repeat * model.has_seen(keys, rows, negatives.unsqueeze(0))
    negative = negative.masked_fill(negatives.unsqueeze(0) == targets.unsqueeze(1), float("-inf"))
    logits = torch.cat([positive, negative], dim=1).float()
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long,
                                               device=logits.device))
