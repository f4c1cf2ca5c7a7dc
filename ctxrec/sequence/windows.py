"""Turning per-user histories into the windows a sequence model trains and predicts on.

A history is a 1-D array of catalog positions, oldest first. Windows hold model indices (position + 1,
0 = padding), are left-padded, and end with the most recent item, so the last column is always the
one that predicts what comes next.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .model import SequenceInput

__all__ = ["TrainingWindows", "pad_left", "prediction_input", "training_windows"]


def pad_left(rows: Sequence[np.ndarray], length: int) -> np.ndarray:
    """(len(rows), length) int64: each row's last ``length`` values, right-aligned, 0 before."""
    out = np.zeros((len(rows), length), dtype=np.int64)
    for i, row in enumerate(rows):
        if len(row):
            out[i, length - len(row):] = row[-length:]
    return out


def _context_arrays(indices: np.ndarray, start: int, max_len: int, n_summaries: int
                    ) -> tuple[np.ndarray, list[np.ndarray]]:
    """What precedes ``indices[start:]``: the previous segment and the summarised segments before
    it (most recent first), each ``max_len`` items, aligned to end right before ``start``."""
    previous = indices[max(0, start - max_len):start]
    segments = []
    end = start
    while end > 0 and len(segments) < n_summaries:
        segments.append(indices[max(0, end - max_len):end])
        end -= max_len
    return previous, segments


def prediction_input(histories: Sequence[np.ndarray], max_len: int, n_summaries: int = 16
                     ) -> SequenceInput:
    """Windows for predicting the item after each history (catalog positions, oldest first)."""
    windows, previous, summaries = [], [], []
    for history in histories:
        indices = np.asarray(history, dtype=np.int64) + 1
        start = max(0, len(indices) - max_len)
        windows.append(indices[start:])
        prev, segments = _context_arrays(indices, start, max_len, n_summaries)
        previous.append(prev)
        summaries.append(segments)
    return _batch(windows, previous, summaries, max_len, n_summaries)


def _batch(windows: list[np.ndarray], previous: list[np.ndarray],
           summaries: list[list[np.ndarray]], max_len: int, n_summaries: int) -> SequenceInput:
    depth = max(1, max(len(s) for s in summaries))
    seg = np.zeros((len(windows), min(depth, n_summaries), max_len), dtype=np.int64)
    for i, segments in enumerate(summaries):
        if segments:
            seg[i, :len(segments)] = pad_left(segments, max_len)
    return SequenceInput(items=torch.from_numpy(pad_left(windows, max_len)),
                         previous=torch.from_numpy(pad_left(previous, max_len)),
                         summaries=torch.from_numpy(seg))


@dataclass
class TrainingWindows:
    """Every training target once per epoch: each user's history cut into consecutive windows of
    ``max_len`` inputs, where the input at step t predicts the item at step t + 1."""

    inputs: list[np.ndarray]
    targets: list[np.ndarray]
    previous: list[np.ndarray]
    summaries: list[list[np.ndarray]]
    max_len: int
    n_summaries: int

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def n_targets(self) -> int:
        return int(sum(np.count_nonzero(t) for t in self.targets))

    def batches(self, batch_size: int, rng: np.random.Generator
                ) -> Iterator[tuple[SequenceInput, torch.Tensor]]:
        """Shuffled batches of (input windows, (B, L) target indices, 0 where there is none)."""
        order = rng.permutation(len(self))
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            batch = _batch([self.inputs[i] for i in chosen], [self.previous[i] for i in chosen],
                           [self.summaries[i] for i in chosen], self.max_len, self.n_summaries)
            targets = torch.from_numpy(pad_left([self.targets[i] for i in chosen], self.max_len))
            yield batch, targets


def training_windows(histories: Sequence[np.ndarray], max_len: int, n_summaries: int = 16,
                     stride: int | None = None, rng: np.random.Generator | None = None
                     ) -> TrainingWindows:
    """Cut histories (catalog positions, oldest first) into windows of ``max_len`` inputs ending
    at the most recent item, one every ``stride`` items (default ``max_len``: no overlap).

    With a smaller stride windows overlap, and each keeps as targets only its last ``stride``
    positions (the oldest window keeps all), so every target still counts once per epoch but is
    predicted from at least ``max_len − stride`` earlier items, as at prediction time, instead of
    from whatever happens to precede it inside its window. Histories of one item teach nothing and
    are skipped.

    With ``rng`` the newest window of each history keeps a random number of targets (1 to
    ``stride``), which moves every later window boundary: cut afresh each epoch, an item is then
    predicted from a different amount of context each time instead of always the same."""
    stride = min(stride or max_len, max_len)
    if stride < 1:
        raise ValueError(f"the window stride must be at least 1, not {stride}")
    inputs, targets, previous, summaries = [], [], [], []
    for history in histories:
        indices = np.asarray(history, dtype=np.int64) + 1
        end = len(indices) - 1  # inputs indices[start:end] predict indices[start + 1:end + 1]
        step = int(rng.integers(1, stride + 1)) if rng is not None else stride
        while end > 0:
            start = max(0, end - max_len)
            target = indices[start + 1:end + 1].copy()
            if start > 0:
                target[:-step] = 0  # counted by an older window, which ends with them
            inputs.append(indices[start:end])
            targets.append(target)
            prev, segments = _context_arrays(indices, start, max_len, n_summaries)
            previous.append(prev)
            summaries.append(segments)
            end -= step if start > 0 else end
            step = stride
    return TrainingWindows(inputs, targets, previous, summaries, max_len, n_summaries)
