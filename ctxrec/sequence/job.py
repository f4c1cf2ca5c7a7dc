"""Training in a background thread, so a page can show progress, stay usable and stop it; and
where the finished checkpoints go and how to list them.

A Streamlit script run is interrupted by any widget change; training inside it would die with the
first click elsewhere. A job outlives the script runs and its state is read by each of them.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..data.background import BackgroundJob
from ..data.home import data_home
from ..data.interaction_log import LogError
from .config import SequenceConfig
from .run import TrainingRun, train_and_report

__all__ = ["CheckpointSummary", "TrainingJob", "latest_job", "models_home",
           "read_checkpoint_summary", "run_folder_name", "saved_checkpoints", "start_job"]

log = logging.getLogger(__name__)
_jobs: deque[TrainingJob] = deque(maxlen=64)  # newest last; old finished jobs fall off
_starting = threading.Lock()


@dataclass
class TrainingJob(BackgroundJob):
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

    def start(self) -> TrainingJob:
        """Train on a new thread; :meth:`stop` finishes after the current epoch and keeps the
        best epoch so far."""
        self._launch(self._work, f"train {self.out.name}")
        return self

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


def models_home() -> Path:
    """Where trained models are saved: ``data_home() / "models"``."""
    return data_home() / "models"


def run_folder_name(source: str | Path | None, item_repr: str, memory: str,
                    when: datetime | None = None) -> str:
    """``<stem>-<item_repr>-<memory>-<YYYYmmdd-HHMMSS>`` for a run on ``source`` (a data folder
    or log file; ``model`` when None), so that retraining never overwrites a saved model."""
    stem = Path(source).stem if source else "model"
    return f"{stem}-{item_repr}-{memory}-{(when or datetime.now()):%Y%m%d-%H%M%S}"


def saved_checkpoints(models: str | Path | None = None) -> list[Path]:
    """Checkpoint folders (those holding ``config.json``) directly under ``models`` (default:
    :func:`models_home`), sorted by name; empty when the folder does not exist."""
    models = Path(models) if models is not None else models_home()
    if not models.is_dir():
        return []
    # a dot folder is a checkpoint still being written (see TrainedModel.save)
    return sorted(p for p in models.iterdir()
                  if not p.name.startswith(".") and (p / "config.json").is_file())


@dataclass(frozen=True)
class CheckpointSummary:
    """What a checkpoint's ``config.json`` says about it, read without its weights.

    Attributes:
        path: the checkpoint folder.
        model: its architecture.
        n_items: how many catalog items it scores.
        best_epoch: the epoch whose weights were kept (None when not recorded).
        history: one dict per epoch (epoch, train_loss, valid_ndcg, valid_hr, elapsed_s, …).
        report: the evaluation report saved with it (empty when none).
        data: the MovieLens folder it was trained on (None for a log, or when not recorded).
    """

    path: Path
    model: SequenceConfig
    n_items: int
    best_epoch: int | None
    history: list[dict]
    report: dict
    data: str | None


def read_checkpoint_summary(folder: str | Path) -> CheckpointSummary:
    """Read ``folder/config.json`` (torch is not needed and no weights are loaded).

    Raises:
        ValueError: the file is missing, not JSON, or lacks the model's settings or item ids.
    """
    folder = Path(folder)
    try:
        meta = json.loads((folder / "config.json").read_text())
        extra = meta.get("extra") or {}
        return CheckpointSummary(
            path=folder, model=SequenceConfig(**meta["model"]), n_items=len(meta["item_ids"]),
            best_epoch=meta.get("best_epoch"), history=list(meta.get("history") or []),
            report=dict(extra.get("report") or {}), data=extra.get("data"))
    except FileNotFoundError:
        raise ValueError(f"{folder} is not a ctxrec checkpoint: it has no config.json") from None
    except KeyError as err:
        raise ValueError(f"{folder.name}: config.json has no {err} entry") from None
    except (OSError, ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"{folder.name}: damaged config.json ({err})") from None
