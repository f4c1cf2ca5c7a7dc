"""Training the sequence model in several processes with PyTorch DDP, launched by ``torchrun``.

Every process reads the same data and cuts the same shuffled global batches (same seed); each
takes its own slice of every batch, and DDP averages the gradients. Each slice's loss is scaled by
its share of the batch's targets, so the averaged gradient is the one a single process computes
on the whole batch: with no dropout and the full softmax, the runs agree up to float summation
order. Only rank 0 validates, saves and reports; it broadcasts the best epoch and when to stop.

The backend is gloo on CPU and NCCL on CUDA. ``torchrun`` gives each process one thread unless
``OMP_NUM_THREADS`` says otherwise, so two processes on a 2-core machine use one core each.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields, is_dataclass, replace

import torch
import torch.distributed as dist

__all__ = ["LAUNCH", "LossModule", "Ranks", "start", "stop", "wrap"]

# the line README and `train --help` give; `--standalone` runs a local rendezvous
LAUNCH = "torchrun --standalone --nproc_per_node 2 -m ctxrec train --distributed …"


class Ranks:
    """This process's place in the group (one process alone when no group is running)."""

    def __init__(self) -> None:
        running = dist.is_available() and dist.is_initialized()
        self.world = dist.get_world_size() if running else 1
        self.rank = dist.get_rank() if running else 0

    @property
    def many(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def slice(self, batch, targets: torch.Tensor) -> tuple[object, torch.Tensor, float]:
        """This rank's rows of a global batch, and the factor its mean loss is multiplied by so
        that DDP's average over ranks equals the mean over the whole batch's targets.

        A rank left without rows (a last batch smaller than the group) computes on one row with
        factor 0, because every rank must take part in each gradient exchange."""
        parts = torch.arange(len(targets)).tensor_split(self.world)
        rows = parts[self.rank]
        scale = 1.0
        if len(rows) == 0:
            rows, scale = torch.arange(1), 0.0
        total = int((targets > 0).sum())
        mine = int((targets[rows] > 0).sum())
        return _rows(batch, rows), targets[rows], scale * mine * self.world / max(total, 1)

    def decide(self, best_epoch: int, stop: bool) -> tuple[int, bool]:
        """Rank 0's best epoch and stop decision, on every rank."""
        if not self.many:
            return best_epoch, stop
        sent = torch.tensor([best_epoch, int(stop)], dtype=torch.long)
        dist.broadcast(sent, src=0)
        return int(sent[0]), bool(sent[1])

    def mean(self, value: float) -> float:
        """The mean of ``value`` over the ranks (the loss the whole batch would show)."""
        if not self.many:
            return value
        sent = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(sent)
        return float(sent[0]) / self.world

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (it fills caches), then the other ranks (they read them)."""
        if self.many and not self.main:
            dist.barrier()
        yield
        if self.many and self.main:
            dist.barrier()


def start(device: str | None = None) -> Ranks:
    """Join the group ``torchrun`` set up in the environment: gloo on CPU, NCCL on CUDA."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise ValueError("--distributed runs under torchrun, which starts the processes: "
                           f"{LAUNCH}")
    if not dist.is_initialized():
        cuda = device != "cpu" and torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if cuda else "gloo")
    return Ranks()


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class LossModule(torch.nn.Module):
    """The model with its loss as ``forward``, so that DDP sees the whole step: the loss reads
    the item table outside the model's own forward."""

    def __init__(self, model: torch.nn.Module, loss_of: Callable):
        super().__init__()
        self.model = model
        self.loss_of = loss_of

    def forward(self, batch, targets: torch.Tensor) -> torch.Tensor:
        return self.loss_of(self.model, batch, targets)


def wrap(model: torch.nn.Module, loss_of: Callable) -> torch.nn.Module:
    """``LossModule`` under DDP. Unused parameters are allowed: which ones a step uses depends
    on the memory mode and on whether a batch repeats items. The buffers (frozen text vectors,
    the known-item mask) never change, so they are sent once, not every step."""
    from torch.nn.parallel import DistributedDataParallel

    device = next(model.parameters()).device
    return DistributedDataParallel(LossModule(model, loss_of),
                                   device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=True, forward_sync_buffers=False)


def _rows(batch, rows: torch.Tensor):
    """The rows ``rows`` of every batch-first tensor in a batch dataclass."""
    if not is_dataclass(batch):
        return batch[rows]
    return replace(batch, **{f.name: getattr(batch, f.name)[rows] for f in fields(batch)
                             if isinstance(getattr(batch, f.name), torch.Tensor)})
