"""What the visitors of one app server may do, read once from the environment.

By default the app trusts the person at the keyboard: any folder on the machine or any Hugging Face
id can be typed in. A server that many people share (``CTXREC_SHARED=1``) lets visitors pick only
what the operator listed: data folders, model ids, with the packaged models always available, and
never runs a model's own code. The app reads this policy; nothing here imports Streamlit.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["FOLDERS_ENV", "MAX_MODELS_ENV", "MODELS_ENV", "ModelKind", "PolicyError",
           "SHARED_ENV", "ServerPolicy"]

SHARED_ENV = "CTXREC_SHARED"
FOLDERS_ENV = "CTXREC_SHARED_FOLDERS"
MODELS_ENV = {"encoder": "CTXREC_SHARED_ENCODERS", "llm": "CTXREC_SHARED_LLMS"}
MAX_MODELS_ENV = "CTXREC_MAX_MODELS"

ModelKind = Literal["encoder", "llm"]


class PolicyError(ValueError):
    """Something this server does not allow, or a policy setting it cannot read; the message
    says which and what to do instead."""


@dataclass(frozen=True)
class ServerPolicy:
    """The server's rules.

    Attributes:
        shared: many people use this server: only listed folders and models, no remote code.
        folders: data folders visitors may pick (shared mode); nothing else on disk is offered.
        encoders: encoder ids visitors may pick besides the packaged one (shared mode).
        llms: generative model ids visitors may pick besides the packaged one (shared mode).
        max_models: loaded models kept per kind (encoders, attention models, LLMs, sequence
            models); the least recently used is dropped to load another.
    """

    shared: bool = False
    folders: tuple[Path, ...] = ()
    encoders: tuple[str, ...] = ()
    llms: tuple[str, ...] = ()
    max_models: int = 4

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerPolicy:
        """Read ``CTXREC_SHARED``, ``CTXREC_SHARED_FOLDERS`` (joined with ``os.pathsep``),
        ``CTXREC_SHARED_ENCODERS`` and ``CTXREC_SHARED_LLMS`` (comma-separated ids) and
        ``CTXREC_MAX_MODELS``.

        Raises:
            PolicyError: a value that cannot be read, naming the variable.
        """
        env = os.environ if env is None else env
        flag = env.get(SHARED_ENV, "").strip().lower()
        if flag not in ("", "0", "1", "false", "true", "no", "yes"):
            raise PolicyError(f"{SHARED_ENV}={env[SHARED_ENV]!r}: use 1 to share the server "
                              "between people, 0 (or leave it unset) for one person.")
        shared = flag in ("1", "true", "yes")
        folders = tuple(Path(p.strip()).expanduser().resolve()
                        for p in env.get(FOLDERS_ENV, "").split(os.pathsep) if p.strip())
        models = {kind: tuple(dict.fromkeys(m.strip() for m in env.get(var, "").split(",")
                                            if m.strip()))
                  for kind, var in MODELS_ENV.items()}
        raw = env.get(MAX_MODELS_ENV, "").strip()
        try:
            max_models = int(raw) if raw else (2 if shared else 4)
        except ValueError:
            max_models = 0
        if max_models < 1:
            raise PolicyError(f"{MAX_MODELS_ENV}={raw!r}: give a whole number of at least 1 "
                              "(how many models of each kind stay loaded).")
        return cls(shared=shared, folders=folders, encoders=models["encoder"],
                   llms=models["llm"], max_models=max_models)

    @property
    def typed_paths(self) -> bool:
        """Whether visitors may type server paths and arbitrary model ids."""
        return not self.shared

    @property
    def remote_code(self) -> bool:
        """Whether a visitor may let a model run its own code."""
        return not self.shared

    def model_choices(self, kind: ModelKind, packaged: str, suggested: Sequence[str] = ()
                      ) -> list[str]:
        """The models a picker offers: the packaged one first, then the page's suggestions (one
        person) or the operator's list (shared)."""
        listed = self.encoders if kind == "encoder" else self.llms
        return list(dict.fromkeys([packaged, *(listed if self.shared else suggested)]))

    def check_model(self, kind: ModelKind, name: str, packaged: str) -> None:
        """Refuse a model this server does not offer.

        Raises:
            PolicyError: in shared mode, for an id that is neither packaged nor listed.
        """
        if name not in self.model_choices(kind, packaged, ()) and self.shared:
            var = MODELS_ENV[kind]
            raise PolicyError(f"'{name}' is not offered on this shared server: pick one of the "
                              f"listed models (the operator adds ids to {var}).")

    def folder_choices(self) -> list[Path]:
        """The operator's folders that exist, in the order listed."""
        return [p for p in self.folders if p.is_dir()]

    def check_folder(self, path: str | Path) -> Path:
        """The folder to read, after checking this server lets visitors read it.

        Raises:
            PolicyError: in shared mode, for a folder that is not one of the listed folders or
                inside one (links and ``..`` are resolved first, so they cannot step outside).
        """
        folder = Path(path).expanduser()
        if not self.shared:
            return folder
        resolved = folder.resolve()
        if any(resolved == root or root in resolved.parents for root in self.folders):
            return resolved
        raise PolicyError(f"'{path}' is not one of the folders this shared server offers: pick "
                          f"a listed folder, or upload a file (the operator lists folders in "
                          f"{FOLDERS_ENV}).")
