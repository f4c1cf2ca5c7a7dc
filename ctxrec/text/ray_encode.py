"""Encoding a large catalog with a pool of encoder processes through Ray Data.

The texts become a Ray dataset; ``map_batches`` sends its batches to a fixed pool of actors, each
holding one copy of the encoder (one actor per GPU, or per group of CPU cores), and the vectors
come back by catalog position; they are written as shards as they arrive (so an interrupted run
resumes) and merged into the usual embedding cache file. Without ``RAY_ADDRESS`` a
single-node Ray is started for the call and stopped after it; with it, the work runs on that
cluster and this process only gathers the vectors.

Only ``embed --ray`` and ``bench ray`` import Ray; the app and one-process encoding never do.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from ..data.catalog import Catalog
from .embed_cache import HALF_FROM, EmbeddingCache
from .encoders import DEFAULT_ENCODER, TextEncoder, pick_device

__all__ = ["RayEncoding", "Shards", "encode_with_ray", "ray_item_embeddings"]


@dataclass
class RayEncoding:
    """What a Ray encoding run did."""

    items: int
    workers: int
    threads: int  # per worker (CPU)
    device: str
    seconds: float  # from handing the dataset to Ray to the last vector back, actors' start included
    cluster: str  # "local" or the RAY_ADDRESS it ran on
    resumed: int = 0  # items whose vectors an earlier, unfinished run had left in shards

    @property
    def items_per_s(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0


class _Encoder:
    """One Ray actor: an encoder loaded once, then batch after batch of texts."""

    def __init__(self, model: str, device: str, threads: int):
        import torch

        if device == "cpu":
            torch.set_num_threads(threads)
        self.encoder = TextEncoder(model, device=device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.encoder.encode([str(t) for t in batch["text"]])
        return {"position": batch["position"], "vector": vectors}


def encode_with_ray(texts: Sequence[str], model: str = DEFAULT_ENCODER, workers: int = 2,
                    threads: int | None = None, device: str | None = None,
                    batch_size: int = 256) -> tuple[np.ndarray, RayEncoding]:
    """Unit vectors for ``texts`` from ``workers`` encoder actors, in the order of ``texts``.

    Args:
        workers: actors in the pool; on a GPU each takes one GPU.
        threads: CPU threads per actor (default: this machine's cores shared out among them).
        device: ``cuda`` or ``cpu`` for the actors (default: CUDA when this machine has it).
        batch_size: texts per Ray batch; each actor sorts its batch by length before encoding.
    """
    out: np.ndarray | None = None

    def keep(positions: np.ndarray, vectors: np.ndarray) -> None:
        nonlocal out
        if out is None:
            out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
        out[positions] = vectors

    run = _encode_batches(texts, keep, model, workers, threads, device, batch_size)
    return out, run


def _encode_batches(texts: Sequence[str], on_batch: Callable[[np.ndarray, np.ndarray], None],
                    model: str, workers: int, threads: int | None, device: str | None,
                    batch_size: int) -> RayEncoding:
    """Run the pool over ``texts``, calling ``on_batch(positions, vectors)`` as batches return."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    if not texts:
        raise ValueError("there are no texts to encode")
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    device = "cuda" if pick_device(device) == "cuda" else "cpu"  # actors: one GPU each, or CPU
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    address = os.environ.get("RAY_ADDRESS")
    started_here = not ray.is_initialized()
    if started_here:
        # Locally, one logical CPU more than the actors take leaves room for Ray Data's own
        # small tasks, which otherwise wait behind the actors and stall the pipeline.
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR,
                 **({} if address else {"num_cpus": workers * threads + 1}))
    try:
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        DataContext.get_current().enable_progress_bars = False
        started = time.perf_counter()
        # several blocks per worker, so that the pool stays busy to the end
        n_blocks = min(len(texts), max(workers * 4, len(texts) // (batch_size * 4)))
        chunks = np.array_split(np.arange(len(texts)), n_blocks)
        frames = [pd.DataFrame({"position": chunk, "text": [texts[i] for i in chunk]})
                  for chunk in chunks if len(chunk)]
        dataset = ray.data.from_pandas(frames).map_batches(
            _Encoder, fn_constructor_kwargs={"model": model, "device": device,
                                             "threads": threads},
            compute=ActorPoolStrategy(size=workers), batch_size=batch_size,
            batch_format="numpy", num_cpus=0 if device == "cuda" else threads,
            num_gpus=1 if device == "cuda" else 0)
        done = 0
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            vectors = np.asarray(batch["vector"], dtype=np.float32)
            on_batch(np.asarray(batch["position"], dtype=np.int64), vectors)
            done += len(vectors)
        if done != len(texts):
            raise RuntimeError(f"Ray returned {done} of {len(texts)} vectors")
        seconds = time.perf_counter() - started
    finally:
        if started_here:
            ray.shutdown()
    return RayEncoding(len(texts), workers, threads, device, seconds, address or "local")


def ray_item_embeddings(encoder: TextEncoder, catalog: Catalog, workers: int = 2,
                        threads: int | None = None, cache: EmbeddingCache | None = None
                        ) -> tuple[np.ndarray, RayEncoding | None]:
    """Like :func:`~ctxrec.text.embed_cache.item_embeddings`, with the encoding done by Ray
    actors each loading ``encoder``'s model; the cache file is the same, so the app reads it.

    Batches are written as they return, as shards beside the cache file (``….parts/``, each
    with the cache key and a checksum); a run that stops part-way is resumed from its shards,
    and they are merged into the cache file at the end. ``None`` for the run when the cache
    already held the vectors."""
    cache = cache or EmbeddingCache()
    vectors = cache.load(encoder, catalog)
    if vectors is not None:
        return vectors, None
    shards = Shards(cache.path(encoder, catalog).with_suffix(".parts"),
                    cache.key(encoder, catalog), len(catalog), encoder.dim)
    todo = np.flatnonzero(~shards.done)
    texts = catalog.texts()
    run = None
    if len(todo):
        # each actor loads the model by its name (the packaged one from its own environment), on
        # the device this encoder uses, so the vectors match the cache key's precision
        run = _encode_batches([texts[i] for i in todo],
                              lambda positions, vecs: shards.write(todo[positions], vecs),
                              encoder.name, workers, threads, encoder.device, 256)
        run.resumed = len(catalog) - len(todo)
    vectors = shards.gather()
    cache.save(encoder, catalog, vectors)
    shards.remove()
    return vectors, run


class Shards:
    """A folder of safetensors shards, each some catalog positions and their vectors, with the
    cache key and a checksum; a shard that fails its checks is deleted and its items encoded
    again."""

    def __init__(self, folder: Path, key: str, n_items: int, dim: int):
        self.folder, self.key, self.dim = folder, key, dim
        # as the cache keeps them: 10M items in float32 would not fit beside the catalog
        self.vectors = np.zeros((n_items, dim),
                                dtype=np.float16 if n_items >= HALF_FROM else np.float32)
        self.done = np.zeros(n_items, dtype=bool)
        self._next = 0  # the next shard's number, past every file there, kept or not
        for path in sorted(folder.glob("part-*.safetensors")) if folder.is_dir() else ():
            self._next = max(self._next, int(path.stem.split("-")[1]) + 1)
            read = self._read(path)
            if read is None:
                path.unlink()
                continue
            positions, vectors = read
            self.vectors[positions], self.done[positions] = vectors, True

    def write(self, positions: np.ndarray, vectors: np.ndarray) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        positions = np.ascontiguousarray(positions, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        path = self.folder / f"part-{self._next:06d}.safetensors"
        tmp = path.with_suffix(".tmp")
        save_file({"positions": positions, "embeddings": vectors}, str(tmp),
                  metadata={"key": self.key, "sha256": _digest(positions, vectors)})
        os.replace(tmp, path)  # a shard is there whole or not at all
        self.vectors[positions], self.done[positions] = vectors, True
        self._next += 1

    def gather(self) -> np.ndarray:
        if not self.done.all():
            raise RuntimeError(f"{int((~self.done).sum())} items have no vector in the shards")
        return self.vectors

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _read(self, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            with safe_open(str(path), framework="numpy") as handle:
                meta = handle.metadata() or {}
            tensors = load_file(str(path))
            positions, vectors = tensors["positions"], tensors["embeddings"]
        except (SafetensorError, OSError, KeyError, ValueError):
            return None
        fits = vectors.ndim == 2 and vectors.shape[1] == self.dim and \
            len(positions) == len(vectors) and len(positions) > 0 and \
            positions.min() >= 0 and positions.max() < len(self.done)
        if not fits or meta.get("key") != self.key or \
                meta.get("sha256") != _digest(positions, vectors):
            return None
        return positions, vectors


def _digest(positions: np.ndarray, vectors: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(positions, dtype=np.int64).tobytes()
                          + np.ascontiguousarray(vectors, dtype=np.float32).tobytes()).hexdigest()
