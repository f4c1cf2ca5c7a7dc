"""Tuning in a background thread, for the Train page: a job runs ``tune-llm`` or ``tune-encoder``
as the command line does, records its steps and validation checks as they come, and can be asked
to stop (the re-ranker then keeps its best check so far).

Only one heavy job runs at a time per process: a tuning does not start while a sequence model
trains, nor while another tuning runs.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..data.background import BackgroundJob
from ..sequence.job import latest_job as latest_training

__all__ = ["TuningJob", "latest_tuning", "start_tuning"]

log = logging.getLogger(__name__)
_jobs: deque[TuningJob] = deque(maxlen=32)
_starting = threading.Lock()
# the work: called with the job's progress and stop callbacks, returns the run's JSON
Work = Callable[[Callable[[str, dict], None], Callable[[], bool]], dict]


@dataclass
class TuningJob(BackgroundJob):
    """One tuning on a thread of its own.

    Read while it runs: ``stage``, ``step`` (step, steps, loss), ``losses`` ((step, loss) pairs)
    and ``checks`` (one dict per validation check); when ``done``: ``result`` or ``error``.
    """

    kind: str  # "llm" (a re-ranker) or "encoder"
    out: Path
    owner: str | None = None
    stage: str = "preparing the examples"
    step: tuple[int, int, float] | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)
    result: dict | None = None
    error: str | None = None

    def start(self, work: Work) -> TuningJob:
        """Run ``work`` on a new thread; :meth:`stop` ends it after the current step, keeping
        the best check so far."""
        self._launch(self._work, f"tune {self.out.name}", work)
        return self

    def _progress(self, kind: str, figures: dict) -> None:
        if kind == "check":
            self.checks = [*self.checks, figures]
            self.stage = "tuning"
        elif kind == "step":
            self.step = (figures["step"], figures["steps"], figures["loss"])
            self.losses = [*self.losses, (figures["step"], figures["loss"])]
            self.stage = "tuning"
        else:
            self.stage = kind

    def _work(self, work: Work) -> None:
        try:
            self.result = work(self._progress, self._stop.is_set)
            self.stage = "done"
        except (OSError, ValueError) as err:
            self.error = str(err)
        except Exception as err:  # the page shows one line; the log keeps the traceback
            log.exception("tuning %s failed", self.out)
            self.error = f"{type(err).__name__}: {err}"


def start_tuning(kind: str, out: Path, work: Work, owner: str | None = None) -> TuningJob:
    """Start ``work`` unless a tuning or a sequence training of this process still runs
    (``RuntimeError``, with the reason)."""
    with _starting:
        training = latest_training()
        if training is not None and not training.done:
            raise RuntimeError(f"{training.out.name} is still training; one job at a time")
        running = next((j for j in _jobs if not j.done), None)
        if running is not None:
            raise RuntimeError(f"{running.out.name} is still tuning"
                               if owner is None or running.owner in (None, owner) else
                               "another session's tuning is still running (one at a time per "
                               "server); try again when it ends")
        job = TuningJob(kind, Path(out), owner=owner).start(work)
        _jobs.append(job)
        return job


def latest_tuning(owner: str | None = None) -> TuningJob | None:
    """The tuning started last in this process (by ``owner`` when given), running or ended."""
    with _starting:
        return next((j for j in reversed(_jobs) if owner is None or j.owner == owner), None)
