"""Where a person picks a model or a data folder, under the server's policy.

Trust in a model's own code is asked for here, beside the model it applies to, and belongs to that
model id: picking or typing another id unticks it. On a shared server the pickers offer only what
the operator listed, and a value that arrives any other way (a stale session, an attached model's
data folder) is refused with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from ctxrec.server_policy import ModelKind, PolicyError
from ui import state

OTHER = "Other (Hugging Face id or local folder)…"
TRUST_HELP = ("Lets this model run its own Python code. Applies to this model id only; only for "
              "authors you trust.")


@dataclass(frozen=True)
class ModelPick:
    name: str  # stripped; empty when nothing is typed yet
    trust_remote_code: bool


def model_picker(kind: ModelKind, label: str, packaged: str, suggested: Sequence[str],
                 key: str, container=st) -> ModelPick:
    """A model selectbox (``{key}_choice``), a box for any id or folder when this server allows
    typing (``{key}_custom``) and the trust box for that very id (``{key}_trust``)."""
    policy = state.POLICY
    choices = policy.model_choices(kind, packaged, suggested)
    if policy.typed_paths:
        choices.append(OTHER)
    _refuse_stale(f"{key}_choice", choices,
                  lambda value: policy.check_model(kind, value, packaged), container)
    choice = container.selectbox(label, choices, key=f"{key}_choice")
    name = container.text_input("Model id or folder", key=f"{key}_custom") \
        if choice == OTHER else choice
    name = name.strip()
    trust = _trust_box(container, f"{key}_trust", name) if policy.remote_code else False
    return ModelPick(name, trust)


def folder_picker(label: str, key: str, found: Sequence[Path], hint: str | None = None,
                  container=st) -> str:
    """A data folder: typed (one person) or one of the operator's folders (shared). Returns ""
    when a shared server lists none."""
    policy = state.POLICY
    if policy.typed_paths:
        st.session_state.setdefault(key, str(found[0]) if found else "")
        return container.text_input(label, key=key, help=hint).strip()
    choices = [str(p) for p in policy.folder_choices()]
    _refuse_stale(key, choices, policy.check_folder, container)
    if not choices:
        container.info("This shared server lists no data folders; upload a file instead.")
        return ""
    return container.selectbox(label, choices, key=key, help=hint)


def _refuse_stale(key: str, choices: list[str], check, container) -> None:
    """A value in the widget's state that the picker does not offer: say why it was refused
    (the policy's message when it refuses it) and fall back to the first choice."""
    value = st.session_state.get(key)
    if value is None or value in choices:
        return
    try:
        check(value)
        reason = f"'{value}' is not offered here."
    except PolicyError as err:
        reason = str(err)
    container.error(reason)
    if choices:
        st.session_state[key] = choices[0]
    else:
        del st.session_state[key]


def _trust_box(container, key: str, name: str) -> bool:
    owner = f"{key}_for"
    if st.session_state.get(owner) != name:
        st.session_state[owner] = name
        st.session_state[key] = False
    return container.checkbox("Trust remote code", key=key, help=TRUST_HELP)
