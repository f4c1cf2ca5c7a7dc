"""What a ranking cost, stage by stage, measured while it ran: wall time, the device and dtype the
stage ran on, and memory.

Memory is the CUDA allocator's peak during the stage when the stage ran on a GPU, and the process's
resident set at the end of the stage on a CPU (a process-wide figure: CPU allocations cannot be told
apart per stage without tracing every allocation, which would cost more than the ranking).
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

__all__ = ["CostMeter", "Costs", "StageCost", "resident_mb"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_mb() -> float:
    """The process's resident memory now, in MiB (its peak where /proc is missing)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * _PAGE / 2**20
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass(frozen=True)
class StageCost:
    """One stage of a ranking.

    Attributes:
        stage: its name ("encode", "components", …).
        ms: wall time.
        device: where it ran ("cpu", "cuda:0", …).
        dtype: the number format of its main arrays ("float32", "float16", …; "-" for rules).
        memory_mb: CUDA peak allocated during the stage, or the process RSS after it on a CPU.
        memory: which of the two ``memory_mb`` is.
    """

    stage: str
    ms: float
    device: str
    dtype: str
    memory_mb: float
    memory: str


@dataclass
class Costs:
    """The stages of one ranking and the wall time of the whole call.

    ``total_ms`` is measured around the call, separately from the stages, so ``accounted`` shows
    how much of the call the stages explain.
    """

    stages: list[StageCost] = field(default_factory=list)
    total_ms: float = 0.0
    peak_rss_mb: float = 0.0  # the process's high-water mark when the call ended

    @property
    def accounted(self) -> float:
        """Sum of the stage times over the total, in [0, 1] (1 when the total is 0)."""
        return sum(s.ms for s in self.stages) / self.total_ms if self.total_ms > 0 else 1.0

    def with_stage(self, stage: StageCost) -> Costs:
        """These costs and one more stage that ran after them (the total grows by its time)."""
        return Costs([*self.stages, stage], self.total_ms + stage.ms,
                     max(self.peak_rss_mb, _peak_rss_mb()))

    def summary(self) -> str:
        """One line: "84 ms: encode 12 ms · components 40 ms · …"."""
        parts = " · ".join(f"{s.stage} {_ms(s.ms)}" for s in self.stages)
        return f"{_ms(self.total_ms)}: {parts}" if parts else _ms(self.total_ms)

    def as_dict(self) -> dict:
        return {"total_ms": round(self.total_ms, 3), "accounted": round(self.accounted, 4),
                "peak_rss_mb": round(self.peak_rss_mb, 1),
                "stages": [{"stage": s.stage, "ms": round(s.ms, 3), "device": s.device,
                            "dtype": s.dtype, "memory_mb": round(s.memory_mb, 1),
                            "memory": s.memory} for s in self.stages]}


class CostMeter:
    """Times the stages of one call: ``with meter.stage("encode", device, dtype): …``, then
    :meth:`finish`."""

    def __init__(self) -> None:
        self._stages: list[StageCost] = []
        self._start = time.perf_counter()

    @contextmanager
    def stage(self, name: str, device: str | torch.device = "cpu", dtype: str = "float32"
              ) -> Iterator[None]:
        device = str(device)
        cuda = device.startswith("cuda") and torch.cuda.is_available()
        if cuda:  # the GPU runs asynchronously: wait, so the time is the stage's own
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        try:
            yield
        finally:
            if cuda:
                torch.cuda.synchronize(device)
                memory, kind = torch.cuda.max_memory_allocated(device) / 2**20, "cuda peak allocated"
            else:
                memory, kind = resident_mb(), "process RSS"
            self._stages.append(StageCost(name, (time.perf_counter() - start) * 1000, device,
                                          dtype, memory, kind))

    def finish(self) -> Costs:
        return Costs(list(self._stages), (time.perf_counter() - self._start) * 1000,
                     _peak_rss_mb())


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _ms(ms: float) -> str:
    return f"{ms:,.0f} ms" if ms >= 10 else f"{ms:.1f} ms"
