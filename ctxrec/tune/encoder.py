"""Tuning the sentence encoder on an interaction log (sources 001 and 002: tune the language
model on what people did, not only on what texts say).

Pairs come from the training split only: the text of a person's recent history and the time of
the next event (:func:`ctxrec.evaluation.history_text.history_text`) → the text of the item they
used next. The sentence-transformers trainer fits them with MultipleNegativesRankingLoss: every other
next item in the batch is a negative, and no item appears twice in a batch, so none is its own
negative. The result is saved as a sentence-transformers folder, which every ``--model`` option
and the sidebar's encoder box load like any other.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..data.catalog import Catalog
from ..data.home import data_home
from ..evaluation.history_text import HISTORY_ITEMS, history_text
from ..evaluation.split import Split
from ..text.encoders import TextEncoder

__all__ = ["TUNING_FILE", "describe_tuning", "encoders_dir", "log_pairs", "read_tuning",
           "tune_encoder", "tuned_encoders"]

TUNING_FILE = "ctxrec-tuning.json"  # what was tuned on, how, and what it scored, beside the weights
Progress = Callable[[int, int, float], None]  # step, steps, training loss


def log_pairs(split: Split, catalog: Catalog, per_user: int = 80,
              max_items: int = HISTORY_ITEMS, seed: int = 0) -> dict[str, list[str]]:
    """Up to ``per_user`` (history text → next item text) pairs per user, from the training
    histories only (the validation and test events are never among them)."""
    rng = np.random.default_rng(seed)
    titles = catalog.items["title"].astype(str).tolist()
    texts = catalog.texts()
    anchors, positives = [], []
    for user in sorted(split.histories):
        items = split.histories[user]
        times = split.history_times.get(user)
        steps = np.arange(1, len(items))
        if len(steps) > per_user:
            steps = np.sort(rng.choice(steps, per_user, replace=False))
        for t in steps:
            recent = items[max(0, t - max_items):t]
            anchors.append(history_text([titles[i] for i in recent],
                                        None if times is None else times[t]))
            positives.append(texts[items[t]])
    return {"anchor": anchors, "positive": positives}


def tune_encoder(encoder: TextEncoder, pairs: dict[str, list[str]], out: str | Path,
                 epochs: int = 1, batch_size: int = 32, learning_rate: float = 5e-5,
                 seed: int = 0, progress: Progress | None = None,
                 should_stop: Callable[[], bool] | None = None, bf16: bool | None = None
                 ) -> dict:
    """Fit ``encoder`` (in place) to ``pairs`` and save it to ``out``; ``should_stop`` is asked
    after every step, and the model as it is then is saved. ``bf16``: bfloat16 autocast over
    float32 weights (default: where a GPU supports it).

    Returns:
        What was done: base model, pairs, epochs, seconds, seconds per 1,000 pairs, the loss at
        the first and last logged steps; also written to ``out``/``TUNING_FILE``.
    """
    from datasets import Dataset
    from sentence_transformers import (SentenceTransformerTrainer,
                                       SentenceTransformerTrainingArguments)
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import TrainerCallback

    if len(pairs["anchor"]) < 2:
        raise ValueError("tuning needs at least two pairs: the log's training histories are too "
                         "short")
    model = encoder.model
    # On a GPU the encoder reads in float16; the optimiser needs float32 weights (updates of 5e-5
    # vanish against float16's resolution), with the trainer's bf16 autocast for the arithmetic.
    reading_dtype = next(model.parameters()).dtype
    model.float()
    steps = epochs * -(-len(pairs["anchor"]) // batch_size)
    losses: list[float] = []

    class Report(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if should_stop is not None and should_stop():
                control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))
                if progress:
                    progress(state.global_step, state.max_steps, float(logs["loss"]))

    with tempfile.TemporaryDirectory() as scratch:
        args = SentenceTransformerTrainingArguments(
            output_dir=scratch, num_train_epochs=epochs, per_device_train_batch_size=batch_size,
            learning_rate=learning_rate, warmup_steps=0.1, seed=seed, save_strategy="no",
            batch_sampler=BatchSamplers.NO_DUPLICATES, logging_steps=max(1, steps // 20),
            report_to="none", disable_tqdm=True, dataloader_num_workers=0,
            dataloader_pin_memory=torch.cuda.is_available(),
            use_cpu=model.device.type == "cpu",  # train where the encoder reads
            bf16=bf16 if bf16 is not None else
            torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=Dataset.from_dict(pairs),
            loss=MultipleNegativesRankingLoss(model), callbacks=[Report()])
        started = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # the trainer prints its logs; stdout is JSON
            trainer.train()
        seconds = time.perf_counter() - started
        # with bf16 the trainer leaves autocast wrapped around the model's forward: the encoder
        # would go on reading in bfloat16, unlike the folder it saved
        trainer.accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    out = Path(out)
    model.save(str(out))
    model.to(reading_dtype)
    info = {"base": encoder.name, "pairs": len(pairs["anchor"]), "epochs": epochs,
            "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed,
            "steps": steps, "seconds": round(seconds, 1),
            "seconds_per_1000_pairs": round(1000 * seconds / (epochs * len(pairs["anchor"])), 1),
            "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
            "device": str(model.device)}
    (out / TUNING_FILE).write_text(json.dumps(info, indent=2))
    return info


def encoders_dir() -> Path:
    """Where tuned encoders are saved by default (the sidebar lists them): ``data_home() /
    "encoders"``."""
    return data_home() / "encoders"


def tuned_encoders() -> list[Path]:
    """The tuned encoders under :func:`encoders_dir`, newest first."""
    found = [p for p in encoders_dir().glob(f"*/{TUNING_FILE}")] if encoders_dir().is_dir() \
        else []
    return [p.parent for p in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)]


def read_tuning(name: str | Path) -> dict | None:
    """What ``name`` was tuned on and scored, when it is a folder this module wrote."""
    path = Path(name).expanduser() / TUNING_FILE
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None


def describe_tuning(info: dict | None) -> str:
    """One paragraph on a tuned encoder and its validated effect ("" for any other encoder)."""
    if not info:
        return ""
    text = (f"Tuned from {info.get('base', '?')} on {info.get('pairs', 0):,} pairs "
            f"({info.get('epochs', '?')} epoch(s), {info.get('seconds', 0) / 60:.0f} min).")
    checked = info.get("validated")
    if not checked:
        return text + " Not validated: run `python -m ctxrec tune-encoder` to compare it."
    frozen, tuned = checked["frozen"], checked["tuned"]
    ratio = tuned["valid_ndcg@10"] / max(frozen["valid_ndcg@10"], 1e-12)
    return (text + f" On {checked['dataset']}'s validation events, the history as text finds the "
            f"next item with NDCG@10 {tuned['valid_ndcg@10']:.4f} against "
            f"{frozen['valid_ndcg@10']:.4f} frozen ({ratio:.1f}×); on the judged intents of the "
            f"built-in catalog {tuned['intents_ndcg@10']:.3f} against "
            f"{frozen['intents_ndcg@10']:.3f} ({checked['intents_change']:+.1%}).")
