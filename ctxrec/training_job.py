"""Training in a background thread, so a page can show progress, stay usable and stop it.

A Streamlit script run is interrupted by any widget change; training inside it would die with the
first click elsewhere. A job outlives the script runs and its state is read by each of them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from .interaction_log import LogError
from .sequence_experiment import TrainingRun, train_and_report

__all__ = ["TrainingJob", "latest_job", "start_job"]

log = logging.getLogger(__name__)
_jobs: deque[TrainingJob] = deque(maxlen=64)  # newest last; old finished jobs fall off
_starting = threading.Lock()


@dataclass
class TrainingJob:
    """``train_and_report(run, out)`` on a thread of its own.

    Read while it runs: ``stage`` (what it is doing), ``batch`` (epoch, batch, batches, loss),
    ``epochs`` (one dict per finished epoch); when ``done``: ``report``, or ``error`` (one line).
    ``owner`` names who started it (an app session on a shared server), ``None`` for anyone.
    """

    run: TrainingRun
    out: Path
    owner: str | None = None
    stage: str = "waiting to start"
    batch: tuple[int, int, int, float] | None = None
    epochs: list[dict] = field(default_factory=list)
    report: dict | None = None
    error: str | None = None
    started: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> TrainingJob:
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._work, name=f"train {self.out.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Finish after the current epoch and keep the best epoch so far."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set() and not self.done

    @property
    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (or ``timeout`` seconds pass); whether it ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.done

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started if self.started else 0.0

    def _work(self) -> None:
        try:
            self.report = train_and_report(
                self.run, self.out, on_batch=self._on_batch, on_epoch=self._on_epoch,
                on_stage=self._on_stage, should_stop=self._stop.is_set)
            self.stage = "done"
        except (LogError, OSError, ValueError) as err:
            self.error = str(err)
        except Exception as err:  # the page shows one line; the log keeps the traceback
            log.exception("training %s failed", self.out)
            self.error = f"{type(err).__name__}: {err}"

    def _on_batch(self, epoch: int, batch: int, batches: int, loss: float) -> None:
        self.batch = (epoch, batch, batches, loss)

    def _on_epoch(self, epoch_log) -> None:
        self.epochs = [*self.epochs, dict(epoch_log.__dict__)]

    def _on_stage(self, text: str) -> None:
        self.stage = text


def start_job(run: TrainingRun, out: Path, owner: str | None = None) -> TrainingJob:
    """Start training unless a job of this process is still running (``RuntimeError``): the
    cores are shared, so two at once would each take twice as long. ``owner`` marks the job as
    someone's, so that :func:`latest_job` shows it to them alone."""
    with _starting:
        running = next((j for j in _jobs if not j.done), None)
        if running is not None:
            if owner is None or running.owner in (None, owner):
                raise RuntimeError(f"{running.out.name} is still training")
            raise RuntimeError("another session's model is still training (one at a time per "
                               "server); try again when it ends")
        job = TrainingJob(run, Path(out), owner=owner).start()
        _jobs.append(job)
        return job


def latest_job(owner: str | None = None) -> TrainingJob | None:
    """The job started last in this process, running or ended, so a reloaded page finds its
    training again; with ``owner``, the last one that owner started (a shared server shows each
    session its own jobs only)."""
    with _starting:
        return next((j for j in reversed(_jobs) if owner is None or j.owner == owner), None)
