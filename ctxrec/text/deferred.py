"""An encoder whose model loads after the first ranking, for a fast start.

Importing sentence-transformers and loading a model takes 3–4 s on a 2-core CPU, while the first
ranking of a known context needs only a few short texts (the intent, the situation, the mood
prototypes) encoded, and the item vectors, which the embedding cache already holds. So a local
model that has been loaded once leaves a card (its name, size, window, precision and the files it
was read from), and the short texts it encodes are kept in a small SQLite store keyed by the
model's fingerprint. Next time :func:`deferred_encoder` answers from the card at once, serves stored
texts from the store, and loads the model in a background thread; anything else the model is asked
for waits for that load. Only models read from this machine's disk get a card (the packaged default
and local folders), and the card names the size and time of every file, so a changed model is
loaded, not trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..data.home import data_home
from .encoders import (DEFAULT_ENCODER, Progress, TextEncoder, default_encoder_path, load_encoder,
                       pick_device)

__all__ = ["DeferredEncoder", "TextVectorStore", "deferred_encoder"]

log = logging.getLogger(__name__)

STORE_MAX_CHARS = 1_000  # longer texts are encoded each time: a store of queries, not documents
STORE_MAX_BATCH = 64  # a catalog goes through the embedding cache, not here
STORE_MAX_ROWS = 20_000  # the oldest rows go beyond this
CARD_KEYS = {"name", "device", "dim", "max_tokens", "precision", "fingerprint", "words", "trust",
             "source"}


class TextVectorStore:
    """Vectors of short texts per encoder fingerprint, in one SQLite file.

    Each call opens its own connection, so Streamlit's session threads share it safely."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else data_home() / "text_vectors.sqlite"
        self._ready = False  # the schema is made once per store, not on every call

    def _connect(self) -> sqlite3.Connection:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=5)
        if not self._ready:
            # the index on ``added`` keeps the pruning in ``put`` from sorting the whole table
            db.executescript("CREATE TABLE IF NOT EXISTS vectors (fingerprint TEXT, text TEXT, "
                             "vector BLOB, added REAL, PRIMARY KEY (fingerprint, text));"
                             "CREATE INDEX IF NOT EXISTS vectors_added ON vectors (added);")
            self._ready = True
        return db

    def get(self, fingerprint: str, texts: Sequence[str], dim: int) -> dict[str, np.ndarray]:
        """The stored vectors of ``texts`` (those not stored are absent)."""
        wanted = list(dict.fromkeys(texts))
        found: dict[str, np.ndarray] = {}
        try:
            with self._connect() as db:
                for start in range(0, len(wanted), 500):
                    part = wanted[start:start + 500]
                    rows = db.execute(
                        "SELECT text, vector FROM vectors WHERE fingerprint = ? AND text IN "
                        f"({','.join('?' * len(part))})", (fingerprint, *part)).fetchall()
                    for text, blob in rows:
                        vector = np.frombuffer(blob, dtype=np.float32)
                        if vector.shape == (dim,):  # a row of another size is not trusted
                            found[text] = vector
        except sqlite3.Error as err:  # a broken store costs speed, never a ranking
            self._ready = False  # a file removed meanwhile gets its schema again next time
            log.warning("ctxrec: text vector store unreadable (%s); encoding instead", err)
        return found

    def put(self, fingerprint: str, vectors: dict[str, np.ndarray]) -> None:
        now = time.time()
        rows = [(fingerprint, text, np.ascontiguousarray(v, dtype=np.float32).tobytes(), now)
                for text, v in vectors.items()]
        try:
            with self._connect() as db:
                db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)", rows)
                db.execute("DELETE FROM vectors WHERE rowid IN (SELECT rowid FROM vectors "
                           "ORDER BY added DESC LIMIT -1 OFFSET ?)", (STORE_MAX_ROWS,))
        except sqlite3.Error as err:
            self._ready = False
            log.warning("ctxrec: text vector store not written (%s)", err)


class DeferredEncoder(TextEncoder):
    """A :class:`TextEncoder` known from its card before its model is loaded.

    ``name``, ``device``, ``dim``, ``max_tokens``, ``precision``, ``fingerprint()`` and
    ``known_words()`` come from the card; ``encode`` answers stored texts from the store; every
    other attribute (``model``, ``tokenizer``, …) is the loaded encoder's, waiting for the load.
    """

    def __init__(self, card: dict, load: Callable[[], TextEncoder], store: TextVectorStore,
                 loaded: TextEncoder | None = None,
                 on_loaded: Callable[[float], None] | None = None):
        # TextEncoder.__init__ is not called: it loads the model, which is what this defers
        self.name, self.device = card["name"], card["device"]
        self.dim, self.max_tokens = int(card["dim"]), int(card["max_tokens"])
        self._card, self._load, self.store, self._on_loaded = card, load, store, on_loaded
        self._loaded, self._error = loaded, None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._hurry = threading.Event()  # set when something waits for the model: no more delay
        self.load_seconds: float | None = 0.0 if loaded is not None else None

    @property
    def precision(self) -> str:
        return self._card["precision"]

    def fingerprint(self) -> str:
        return self._card["fingerprint"]

    def known_words(self) -> frozenset[str]:
        return frozenset(self._card["words"])

    @property
    def is_loaded(self) -> bool:
        return self._loaded is not None

    def start_loading(self, delay: float = 0.0) -> None:
        """Load the model in a background thread (once), after ``delay`` seconds unless something
        asks for the model sooner."""
        with self._lock:
            if self._loaded is None and self._thread is None:
                self._thread = threading.Thread(target=self._run_load, args=(delay,),
                                                name="ctxrec-encoder-load", daemon=True)
                self._thread.start()

    def loaded(self, reason: str = "asked for", hurry: bool = True) -> TextEncoder:
        """The loaded encoder, waiting for the load (started here when it was not yet; a
        delayed start is cut short unless ``hurry`` is false)."""
        if self._loaded is None:
            log.info("ctxrec: waiting for %s to load (%s)", self.name, reason)
            if hurry:
                self._hurry.set()
            self.start_loading()
            self._thread.join()
        if self._loaded is None:
            raise self._error
        return self._loaded

    def _run_load(self, delay: float) -> None:
        self._hurry.wait(delay)
        start = time.perf_counter()
        try:
            encoder = self._load()
        except Exception as err:  # noqa: BLE001  (raised where the model is asked for)
            self._error = err
            return
        if encoder.fingerprint() != self.fingerprint():
            # the files matched the card but the model reads differently: stop serving the card's
            log.warning("ctxrec: %s no longer matches its card; it is rewritten", self.name)
            self._card = write_card(encoder, self._card["source"], self._card["trust"])
        self.load_seconds = time.perf_counter() - start
        self._loaded = encoder
        if self._on_loaded:
            self._on_loaded(self.load_seconds)

    def __getattr__(self, attr: str):
        # only attributes the card does not set reach here: the model's own
        if attr.startswith("__") or attr in ("_loaded", "_card", "_load", "_thread", "_lock",
                                             "_error", "_on_loaded", "_hurry"):
            raise AttributeError(attr)
        return getattr(self.loaded(f"its {attr}"), attr)

    def encode(self, texts: Sequence[str], batch_size: int = 64,
               progress: Progress | None = None) -> np.ndarray:
        storable = len(texts) <= STORE_MAX_BATCH and all(len(t) <= STORE_MAX_CHARS for t in texts)
        if not storable:
            return self.loaded(f"{len(texts)} texts to encode").encode(texts, batch_size, progress)
        found = self.store.get(self.fingerprint(), texts, self.dim)
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            fresh = self.loaded(f"{len(missing)} new texts").encode(missing, batch_size)
            new = dict(zip(missing, fresh))
            self.store.put(self.fingerprint(), new)
            found.update(new)
        if progress:
            progress(len(texts), len(texts))
        return np.stack([found[t] for t in texts]) if texts else \
            np.zeros((0, self.dim), dtype=np.float32)


def deferred_encoder(name: str = DEFAULT_ENCODER, device: str | None = None,
                     trust_remote_code: bool = False, store: TextVectorStore | None = None,
                     on_loaded: Callable[[float], None] | None = None) -> TextEncoder:
    """The encoder ``name``: a :class:`DeferredEncoder` whose model loads later when a card
    matches its files, else loaded now (leaving a card for next time). Models from a hub are
    loaded now and get no card: their files are not known before the load.

    ``on_loaded(seconds)`` is called from the loading thread when a deferred load ends."""
    store = store or TextVectorStore()
    source = _source(name)
    if source is None:
        return load_encoder(name, device, trust_remote_code)
    device = pick_device(device)
    card = _read_card(name, device, trust_remote_code, source)
    load = lambda: load_encoder(name, device, trust_remote_code)  # noqa: E731
    if card is not None:
        return DeferredEncoder(card, load, store, on_loaded=on_loaded)
    encoder = load()
    try:
        card = write_card(encoder, source, trust_remote_code)
    except OSError as err:  # a home that cannot be written costs the fast start, nothing else
        log.warning("ctxrec: no card written for %s (%s)", name, err)
        return encoder
    return DeferredEncoder(card, load, store, loaded=encoder)


def _source(name: str) -> dict | None:
    """Every file of a local model with its size and time, or ``None`` for a hub id."""
    folder = default_encoder_path() if name == DEFAULT_ENCODER else Path(name).expanduser()
    if not folder.is_dir():
        return None
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {"folder": str(folder.resolve()),
            "files": [[str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns]
                      for p in files]}


def _card_path(name: str, device: str, trust_remote_code: bool) -> Path:
    key = hashlib.sha256(f"{name}|{device}|{trust_remote_code}".encode()).hexdigest()[:24]
    return data_home() / "encoder_cards" / f"{key}.json"


def _read_card(name: str, device: str, trust_remote_code: bool, source: dict) -> dict | None:
    try:
        card = json.loads(_card_path(name, device, trust_remote_code).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(card, dict) or not CARD_KEYS <= set(card) or \
            card["source"] != source or card["name"] != name or card["device"] != device:
        return None  # another version's card, or another model's: load and write a new one
    return card


def write_card(encoder: TextEncoder, source: dict, trust_remote_code: bool = False) -> dict:
    """Save what :class:`DeferredEncoder` needs to stand in for ``encoder`` before it loads."""
    card = {"name": encoder.name, "device": encoder.device, "dim": encoder.dim,
            "max_tokens": encoder.max_tokens, "precision": encoder.precision,
            "fingerprint": encoder.fingerprint(), "words": sorted(encoder.known_words()),
            "trust": trust_remote_code, "source": source}
    path = _card_path(encoder.name, encoder.device, trust_remote_code)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(card, handle)
    os.replace(tmp, path)
    return card
