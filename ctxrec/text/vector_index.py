"""An approximate nearest-neighbour index over the item vectors (faiss), for catalogs too large to
score exactly on every call.

The index is an inverted file over k-means cells with 8-bit scalar-quantised vectors
(``IVF{cells},SQ8``, inner product, which is the cosine for unit vectors): a query visits the
``nprobe`` nearest cells only. It only proposes candidates; the recommender scores them exactly, so
what is shown is exact for the candidates and the index decides only which items are looked at.

Like the embedding cache, it is built once per (encoder, catalog content), written to a temporary
file and renamed into place, and checked on load (key, size, dimension and a checksum of the file);
a file that fails a check is rebuilt rather than trusted.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from ..data.catalog import Catalog
from .embed_cache import EmbeddingCache
from .encoders import TextEncoder

__all__ = ["INDEX_FROM", "VectorIndex", "index_for", "item_index"]

# Catalogs with at least this many items are ranked through the index by default. Below it, exact
# scoring is fast enough and has no recall to lose (the README's table: at 100k items the index
# saves 6–10 ms of a 34–37 ms call and keeps 0.955 of the exact top 20; at 1M it is 2.8–4.2×
# faster at 0.92).
INDEX_FROM = 200_000
_FORMAT = "ivf-sq8-v1"


@dataclass
class VectorIndex:
    """faiss index over (N, d) unit vectors, searched by inner product.

    Attributes:
        index: the faiss index.
        key: what it was built from (the embedding cache key), checked on load.
        build_s: seconds the build took (0 when loaded).
    """

    index: faiss.Index
    key: str
    build_s: float = 0.0

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def memory_mb(self) -> float:
        """Bytes the index holds: one code byte per dimension per item, plus the cell centroids
        and the item ids."""
        ivf = faiss.extract_index_ivf(self.index)
        return (self.size * (self.dim + 8) + ivf.nlist * self.dim * 4) / 2**20

    @classmethod
    def build(cls, vectors: np.ndarray, key: str = "", cells: int | None = None,
              nprobe: int | None = None, seed: int = 0) -> VectorIndex:
        """Train the cells on a sample of ``vectors`` and add them all.

        Args:
            vectors: (N, d) unit vectors, float32 or float16.
            key: stored with the index and checked on load.
            cells: number of k-means cells; default 4·√N, at most 4,096 (training on a CPU
                grows with the cells squared).
            nprobe: cells a query visits; default cells / 64, at least 16 (see the README's
                "Large catalogs" for the recall this gives).
        """
        n, dim = vectors.shape
        if n == 0:
            raise ValueError("cannot index an empty catalog")
        start = time.perf_counter()
        cells = min(n, cells or max(1, min(4096, int(4 * math.sqrt(n)))))
        # past a thousand cells, a graph over the centroids finds each item's cell in
        # logarithmic time, so adding millions of items does not compare each with every cell
        coarse = f"IVF{cells}_HNSW32" if cells > 1024 else f"IVF{cells}"
        index = faiss.index_factory(dim, f"{coarse},SQ8", faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        train = min(n, 40 * cells)  # faiss warns below 39 points per cell
        sample = vectors[np.sort(rng.choice(n, train, replace=False))] if train < n else vectors
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        step = 262_144  # add in slices, so a float16 catalog is never copied whole to float32
        for lo in range(0, n, step):
            index.add(np.ascontiguousarray(vectors[lo:lo + step], dtype=np.float32))
        faiss.extract_index_ivf(index).nprobe = min(cells, nprobe or max(16, cells // 64))
        return cls(index, key, time.perf_counter() - start)

    @property
    def nprobe(self) -> int:
        return int(faiss.extract_index_ivf(self.index).nprobe)

    def search(self, queries: np.ndarray, k: int, nprobe: int | None = None,
               allowed: np.ndarray | None = None) -> np.ndarray:
        """Positions of the ``k`` best items per query, (Q, k) from (Q, d); -1 pads a short row.

        Args:
            nprobe: the cells visited, for this search only (default: the index's own).
            allowed: (N,) booleans; only these items are returned (faiss filters while it
                scans, so the ``k`` are the best allowed ones, not the best ones filtered).
                When few are allowed, their best may lie in cells farther away, so the cells
                visited grow as the allowed share shrinks, up to four times as many.
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        nprobe = nprobe or self.nprobe
        if allowed is not None:
            share = max(np.count_nonzero(allowed) / len(allowed), 1e-4)  # mean: 10× slower
            nprobe = min(faiss.extract_index_ivf(self.index).nlist, 4 * nprobe,
                         math.ceil(nprobe / share))
        params = faiss.SearchParametersIVF(nprobe=nprobe)
        quantizer = faiss.downcast_index(faiss.extract_index_ivf(self.index).quantizer)
        if isinstance(quantizer, faiss.IndexHNSW):  # the graph must look wider than nprobe
            graph = faiss.SearchParametersHNSW(efSearch=max(256, 2 * nprobe))
            params.quantizer_params = graph
        if allowed is not None:
            bits = np.packbits(np.asarray(allowed, dtype=bool), bitorder="little")
            selector = faiss.IDSelectorBitmap(self.size, faiss.swig_ptr(bits))
            params.sel = selector  # both kept alive until the search returns
        # one thread: a search scans a few thousand codes, and an OpenMP pool left spinning
        # after it would take the cores from the encoder's next forward pass
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            _, positions = self.index.search(queries, min(k, self.size), params=params)
        finally:
            faiss.omp_set_num_threads(threads)
        return positions

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        try:
            faiss.write_index(self.index, tmp)
            meta = {"format": _FORMAT, "key": self.key, "size": self.size, "dim": self.dim,
                    "sha256": _file_sha256(Path(tmp))}
            os.replace(tmp, path)
            _meta_path(path).write_text(json.dumps(meta))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def load(cls, path: Path, key: str, size: int, dim: int) -> VectorIndex | None:
        """The saved index, or ``None`` when absent or failing a check."""
        try:
            meta = json.loads(_meta_path(path).read_text())
            if meta != {"format": _FORMAT, "key": key, "size": size, "dim": dim,
                        "sha256": _file_sha256(path)}:
                return None
            index = faiss.read_index(str(path))
        except (OSError, ValueError, RuntimeError):
            return None
        if index.ntotal != size or index.d != dim:
            return None
        return cls(index, key)


def item_index(encoder: TextEncoder, catalog: Catalog, vectors: np.ndarray,
               cache: EmbeddingCache | None = None) -> VectorIndex:
    """The index of ``catalog``'s item vectors: loaded from beside the embedding cache, else built
    and saved there."""
    cache = cache or EmbeddingCache()
    key = cache.key(encoder, catalog)
    path = cache.path(encoder, catalog).with_suffix(".faiss")
    index = VectorIndex.load(path, key, len(catalog), encoder.dim)
    if index is None:
        index = VectorIndex.build(vectors, key)
        index.save(path)
    return index


def index_for(encoder: TextEncoder, catalog: Catalog, vectors: np.ndarray,
              use: bool | None = None, cache: EmbeddingCache | None = None
              ) -> VectorIndex | None:
    """The index to rank ``catalog`` through: ``use`` True or False decides; ``None`` uses one
    from :data:`INDEX_FROM` items up (below that, exact scoring is fast and loses nothing)."""
    if use is False or (use is None and len(catalog) < INDEX_FROM):
        return None
    return item_index(encoder, catalog, vectors, cache)


def _meta_path(path: Path) -> Path:
    return path.with_suffix(".faiss.json")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()
