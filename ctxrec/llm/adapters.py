"""Re-rankers tuned on a log (``python -m ctxrec tune-llm``): where they are kept, what each one
records about itself, and how one is loaded.

A tuned re-ranker is a folder holding a LoRA adapter as peft writes it
(``adapter_model.safetensors`` and ``adapter_config.json``) and ``ctxrec-reranker.json``: the base model's name as
:func:`~ctxrec.llm.models.load_llm` takes it, the scoring way it was tuned for, the fusion weight
chosen on validation and the validation figures behind that choice.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..data.home import data_home
from ..text.encoders import ModelLoadError
from .models import load_llm
from .rerank import SCORINGS, LLMReranker

__all__ = ["ADAPTER_FILE", "describe_adapter", "load_tuned_reranker", "read_adapter",
           "rerankers_dir", "tuned_rerankers"]

ADAPTER_FILE = "ctxrec-reranker.json"


def rerankers_dir() -> Path:
    """Where tuned re-rankers are saved by default (the LLM re-rank page lists them)."""
    return data_home() / "rerankers"


def tuned_rerankers() -> list[Path]:
    """The tuned re-rankers under :func:`rerankers_dir`, newest first."""
    home = rerankers_dir()
    found = list(home.glob(f"*/{ADAPTER_FILE}")) if home.is_dir() else []
    return [p.parent for p in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)]


def read_adapter(folder: str | Path) -> dict:
    """What a tuned re-ranker records about itself.

    Raises:
        ModelLoadError: the folder is not a tuned re-ranker, or its record is unreadable.
    """
    path = Path(folder).expanduser() / ADAPTER_FILE
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"{Path(folder)} is not a tuned re-ranker: it has no "
                             f"{ADAPTER_FILE} (make one with `python -m ctxrec tune-llm`).") \
            from None
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{path} cannot be read: {err}") from err
    if info.get("scoring") not in SCORINGS or not info.get("base"):
        raise ModelLoadError(f"{path} does not name a base model and a scoring way.")
    return info


def load_tuned_reranker(folder: str | Path, device: str | None = None,
                        dtype: str | None = None) -> LLMReranker:
    """The base model with the adapter merged into its weights, scoring the way it was tuned."""
    info = read_adapter(folder)
    llm = load_llm(info["base"], device=device, adapter=folder, dtype=dtype)
    return LLMReranker(llm, scoring=info["scoring"])


def describe_adapter(info: dict) -> str:
    """One paragraph on a tuned re-ranker and its validated effect."""
    valid = info.get("validation", {})
    first, tuned = valid.get("first_stage"), valid.get("tuned")
    text = (f"Tuned from {info['base']} ({info['scoring']}, LoRA rank "
            f"{info.get('lora_rank', '?')}) on {info.get('examples', 0):,} moments of "
            f"{info.get('dataset', 'a log')} in {info.get('seconds', 0) / 60:.0f} min.")
    if first is None or tuned is None:
        return text
    weight = info.get("weight", 0.0)
    verdict = (f"Its validated weight is {weight:g}: re-ranked, the validation events score "
               f"NDCG@10 {tuned:.4f} against {first:.4f} for the first stage alone "
               f"({tuned / max(first, 1e-12):.3f}×).") if weight > 0 else \
        (f"On validation it did not beat the first stage alone (NDCG@10 {first:.4f}), so its "
         f"validated weight is 0: it is loaded, but it changes nothing unless you raise the "
         f"weight.")
    return f"{text} {verdict}"
