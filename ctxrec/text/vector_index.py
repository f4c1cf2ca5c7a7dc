"""An approximate nearest-neighbour index over the item vectors (faiss), for catalogs too large to
score exactly on every call.

The index is an inverted file over k-means cells with product-quantised vectors read by faiss's
fast scan (``IVF{cells},PQ{d/2}x4fs``: every two dimensions one of 16 codes, half a byte, inner
product, which is the cosine for unit vectors): a query visits the ``nprobe`` nearest cells only
and compares each item there through lookup tables held in SIMD registers. It only proposes
candidates; the recommender scores them exactly, so what is shown is exact for the candidates and
the index decides only which items are looked at.

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
from typing import Protocol

import faiss
import numpy as np

from ..data.catalog import Catalog
from .embed_cache import EmbeddingCache
from .encoders import TextEncoder

__all__ = ["INDEX_FROM", "Features", "VectorIndex", "index_for", "item_index"]

# Catalogs with at least this many items are ranked through the index by default. Below it, exact
# scoring is fast enough and has no recall to lose (the README's table: at 100k items the index
# saves 4–8 ms of a 21–25 ms call and keeps 0.935–0.96 of the exact top 20; at 1M it is
# 5.8–7.0× faster at 0.92).
INDEX_FROM = 200_000
# v2: the items' facets, mood and popularity beside their text vectors; v3: 4-bit fast-scan PQ
_FORMAT = "ivf-pq4fs-v3"
# two dimensions per 4-bit code (the vectors are padded with zeros to a multiple of four, as fast
# scan reads the codes in pairs). Against 8-bit scalar quantisation at 1M items and 426
# dimensions, one search took 0.4–0.7 ms instead of 12–39 ms (three dimensions per code). Whole
# `recommend` calls at 1M (`bench index`'s ten requests): recall@20 against exact 0.92 with
# two dimensions per code and 1,000 candidates, as with 8-bit codes (0.925), 0.83 with three
# (2,000 candidates: 0.88; 4,000: 0.91), at 6.4 and 5.9 ms for the whole retrieval
_DIMS_PER_CODE = 2


class Features(Protocol):
    """What the index holds beside each item's vector (the recommender's
    :class:`~ctxrec.rank.retrieval_features.RetrievalFeatures`)."""

    @property
    def dim(self) -> int: ...

    def rows(self, positions: np.ndarray | slice) -> np.ndarray: ...

    def digest(self) -> str: ...


@dataclass
class VectorIndex:
    """faiss index over (N, d) unit vectors, each with the features of what it does not hold
    beside it when built with them (see :mod:`ctxrec.rank.retrieval_features`), searched by
    inner product.

    Attributes:
        index: the faiss index.
        key: what it was built from (the embedding cache key), checked on load.
        dim: the dimension of what it holds (faiss's is padded to a multiple of four).
        build_s: seconds the build took (0 when loaded).
    """

    index: faiss.Index
    key: str
    dim: int
    build_s: float = 0.0

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    @property
    def memory_mb(self) -> float:
        """Bytes the index holds: each item's codes and id, plus the cell centroids."""
        ivf = faiss.extract_index_ivf(self.index)
        return (self.size * (ivf.code_size + 8) + ivf.nlist * ivf.d * 4) / 2**20

    @classmethod
    def build(cls, vectors: np.ndarray, key: str = "", features: Features | None = None,
              cells: int | None = None, nprobe: int | None = None, seed: int = 0
              ) -> VectorIndex:
        """Train the cells on a sample of ``vectors`` and add them all.

        Args:
            vectors: (N, d) unit vectors, float32 or float16.
            key: stored with the index and checked on load.
            features: what each item holds beside its vector; the index's dimension is then
                d + ``features.dim``, and a query must carry both parts.
            cells: number of k-means cells; default 4·√N, at most 4,096 (training on a CPU
                grows with the cells squared).
            nprobe: cells a query visits; default cells / 64, at least 16 (see the README's
                "Large catalogs" for the recall this gives).
        """
        n, dim = vectors.shape
        dim += features.dim if features is not None else 0
        if n == 0:
            raise ValueError("cannot index an empty catalog")
        start = time.perf_counter()
        cells = min(n, cells or max(1, min(4096, int(4 * math.sqrt(n)))))
        # past a thousand cells, a graph over the centroids finds each item's cell in
        # logarithmic time, so adding millions of items does not compare each with every cell
        coarse = f"IVF{cells}_HNSW32" if cells > 1024 else f"IVF{cells}"
        padded = _padded(dim)
        index = faiss.index_factory(padded, f"{coarse},PQ{padded // _DIMS_PER_CODE}x4fs",
                                    faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        train = min(n, 40 * cells)  # faiss warns below 39 points per cell
        sample = np.sort(rng.choice(n, train, replace=False)) if train < n else slice(0, n)
        index.train(_rows(vectors, features, sample, padded))
        step = 262_144  # add in slices, so a float16 catalog is never copied whole to float32
        for lo in range(0, n, step):
            index.add(_rows(vectors, features, slice(lo, lo + step), padded))
        faiss.extract_index_ivf(index).nprobe = min(cells, nprobe or max(16, cells // 64))
        return cls(index, key, dim, time.perf_counter() - start)

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
                visited grow as the allowed share shrinks, up to four times as many, and by
                four times again while fewer than ``k`` allowed items were found.
        """
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if queries.shape[1] != self.dim:
            raise ValueError(f"queries have {queries.shape[1]} dimensions; the index holds "
                             f"{self.dim}")
        queries = np.ascontiguousarray(np.pad(queries, ((0, 0), (0, self.index.d - self.dim))))
        nprobe = nprobe or self.nprobe
        nlist = faiss.extract_index_ivf(self.index).nlist
        k = min(k, self.size)
        if allowed is not None:
            count = int(np.count_nonzero(allowed))  # np.mean: 10× slower
            share = max(count / len(allowed), 1e-4)
            nprobe = min(nlist, 4 * nprobe, math.ceil(nprobe / share))
        params = faiss.SearchParametersIVF(nprobe=nprobe)
        quantizer = faiss.downcast_index(faiss.extract_index_ivf(self.index).quantizer)
        graph = None
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
            _, positions = self.index.search(queries, k, params=params)
            # the allowed items may all lie outside the cells the query comes nearest to (items
            # that share their facets share cells): four times the cells until k are found
            while allowed is not None and params.nprobe < nlist and \
                    (positions >= 0).sum(axis=1).min() < min(k, count):
                params.nprobe = min(nlist, 4 * params.nprobe)
                if graph is not None:
                    graph.efSearch = max(256, 2 * params.nprobe)
                _, positions = self.index.search(queries, k, params=params)
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
        if index.ntotal != size or index.d != _padded(dim):
            return None
        return cls(index, key, dim)


def item_index(encoder: TextEncoder, catalog: Catalog, vectors: np.ndarray, features: Features,
               cache: EmbeddingCache | None = None) -> VectorIndex:
    """The index of ``catalog``'s item vectors and their ``features`` (a recommender's
    ``retrieval``): loaded from beside the embedding cache, else built and saved there."""
    cache = cache or EmbeddingCache()
    key = f"{cache.key(encoder, catalog)}-{features.digest()}"
    path = cache.path(encoder, catalog).with_suffix(".faiss")
    index = VectorIndex.load(path, key, len(catalog), encoder.dim + features.dim)
    if index is None:
        index = VectorIndex.build(vectors, key, features)
        index.save(path)
    return index


def index_for(encoder: TextEncoder, catalog: Catalog, vectors: np.ndarray, features: Features,
              use: bool | None = None, cache: EmbeddingCache | None = None
              ) -> VectorIndex | None:
    """The index to rank ``catalog`` through: ``use`` True or False decides; ``None`` uses one
    from :data:`INDEX_FROM` items up (below that, exact scoring is fast and loses nothing)."""
    if use is False or (use is None and len(catalog) < INDEX_FROM):
        return None
    return item_index(encoder, catalog, vectors, features, cache)


def _rows(vectors: np.ndarray, features: Features | None,
          positions: np.ndarray | slice, padded: int) -> np.ndarray:
    """The rows the index holds for ``positions``: float32 vectors, their features, and zeros
    up to ``padded`` dimensions."""
    rows = np.asarray(vectors[positions], dtype=np.float32)
    parts = [rows] if features is None else [rows, features.rows(positions)]
    width = sum(p.shape[1] for p in parts)
    parts.append(np.zeros((len(rows), padded - width), dtype=np.float32))
    return np.ascontiguousarray(np.hstack(parts))


def _padded(dim: int) -> int:
    """``dim`` rounded up to a whole number of code pairs (fast scan reads codes two at a
    time)."""
    step = 2 * _DIMS_PER_CODE
    return -(-dim // step) * step


def _meta_path(path: Path) -> Path:
    return path.with_suffix(".faiss.json")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()
