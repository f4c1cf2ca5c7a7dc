"""Where ctxrec keeps its files on this machine."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_home"]


def data_home() -> Path:
    """Where ctxrec keeps its files: ``$CTXREC_HOME``, else ``$XDG_CACHE_HOME/ctxrec``, else
    ``~/.cache/ctxrec``."""
    if os.environ.get("CTXREC_HOME"):
        return Path(os.environ["CTXREC_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ctxrec"
