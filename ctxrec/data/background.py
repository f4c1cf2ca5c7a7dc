"""Work on a thread of its own that a page can watch, wait for and ask to stop: a Streamlit script
run is interrupted by any widget change, so long work (training, tuning) must outlive it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["BackgroundJob"]


@dataclass(kw_only=True)
class BackgroundJob:
    """The thread, its stop flag and its clock; subclasses say what the work is and record its
    progress."""

    started: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def _launch(self, work: Callable[..., None], name: str, *args) -> None:
        self.started = time.monotonic()
        self._thread = threading.Thread(target=work, args=args, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the work to end at its next stopping point, keeping its best result so far."""
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
