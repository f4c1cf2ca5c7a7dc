"""Item embeddings computed once per (model, catalog content) and kept on disk.

Files are safetensors with the cache key and a checksum in their metadata; they are written to a
temporary file and renamed into place, so a crash never leaves a half-written cache behind, and a file
that fails its checks on load is recomputed rather than trusted.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from ..data.catalog import Catalog
from ..data.home import data_home
from .encoders import Progress, TextEncoder

__all__ = ["HALF_FROM", "EmbeddingCache", "item_embeddings", "stored"]

TEXT_RECIPE = "v1"  # bump when Catalog.texts() changes meaning
# Catalogs this large keep their vectors in float16, on disk and in memory: a cosine moves by
# about 1e-4, and 10M items take 7 GB instead of 15
HALF_FROM = 50_000


def stored(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` as the cache keeps them: float16 from :data:`HALF_FROM` items, else float32."""
    return np.ascontiguousarray(vectors, dtype=np.float16 if len(vectors) >= HALF_FROM
                                else np.float32)


class EmbeddingCache:
    """A folder of embedding matrices keyed by (encoder fingerprint, catalog content)."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else data_home() / "embeddings"

    def key(self, encoder: TextEncoder, catalog: Catalog) -> str:
        raw = f"{encoder.fingerprint()}|{catalog.content_hash()}|{TEXT_RECIPE}"
        return hashlib.sha256(raw.encode()).hexdigest()[:24]

    def path(self, encoder: TextEncoder, catalog: Catalog) -> Path:
        slug = re.sub(r"[^A-Za-z0-9]+", "-", encoder.name).strip("-")[:40]
        return self.root / f"{slug}-{self.key(encoder, catalog)}.safetensors"

    def load(self, encoder: TextEncoder, catalog: Catalog) -> np.ndarray | None:
        """The cached matrix, or ``None`` when absent or failing its checks."""
        path = self.path(encoder, catalog)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="numpy") as handle:
                meta = handle.metadata() or {}
            vectors = load_file(str(path))["embeddings"]
        except (SafetensorError, OSError, KeyError, ValueError):
            return None
        expected = (len(catalog), encoder.dim)
        if meta.get("key") != self.key(encoder, catalog) or vectors.shape != expected or \
                vectors.dtype not in (np.float16, np.float32) or \
                meta.get("sha256") != _checksum(vectors):
            return None
        return stored(vectors)  # a file written before large catalogs were kept in float16

    def save(self, encoder: TextEncoder, catalog: Catalog, vectors: np.ndarray) -> Path:
        """Write ``vectors`` as :func:`stored` keeps them."""
        path = self.path(encoder, catalog)
        path.parent.mkdir(parents=True, exist_ok=True)
        vectors = stored(vectors)
        meta = {"key": self.key(encoder, catalog), "model": encoder.name,
                "catalog": catalog.name, "sha256": _checksum(vectors)}
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        try:
            save_file({"embeddings": vectors}, tmp, metadata=meta)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path


def item_embeddings(encoder: TextEncoder, catalog: Catalog, cache: EmbeddingCache | None = None,
                    progress: Progress | None = None) -> np.ndarray:
    """Unit vectors for every item, shape (len(catalog), dim), float16 from :data:`HALF_FROM`
    items (see :func:`stored`): from the cache, else computed and stored."""
    cache = cache or EmbeddingCache()
    vectors = cache.load(encoder, catalog)
    if vectors is None:
        vectors = stored(encoder.encode(catalog.texts(), progress=progress))
        cache.save(encoder, catalog, vectors)
    return vectors


def _checksum(vectors: np.ndarray) -> str:
    """Of the bytes as stored (a float32 file's are what they were before float16 files)."""
    return hashlib.sha256(np.ascontiguousarray(vectors).data).hexdigest()
