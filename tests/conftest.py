"""Shared fixtures: the packaged model and the built-in catalog, loaded once per test session, and
a private data folder so tests never touch the user's cache."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

# Set before anything reads it, so AppTest runs and subprocesses use the same private folder.
os.environ.setdefault("CTXREC_HOME", str(ROOT / "test-output" / "ctxrec-home"))


@pytest.fixture(scope="session")
def encoder():
    from ctxrec import load_encoder

    return load_encoder()


@pytest.fixture(scope="session")
def catalog():
    from ctxrec import builtin_catalog

    return builtin_catalog()


@pytest.fixture(scope="session")
def vectors(encoder, catalog):
    from ctxrec import item_embeddings

    return item_embeddings(encoder, catalog)


@pytest.fixture(scope="session")
def recommender(catalog, encoder, vectors):
    from ctxrec import Recommender

    return Recommender(catalog, encoder, vectors)


@pytest.fixture(scope="session")
def tiny_llm_folder(tmp_path_factory):
    """A two-layer random Llama with SmolLM2's tokenizer (and chat template), saved as a folder so
    that ``load_llm`` and an adapter's record can name it."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from ctxrec.llm.models import DEFAULT_LLM, load_llm, packaged_cache_dir

    load_llm(DEFAULT_LLM, device="cpu")  # converts the packaged model once, for its tokenizer
    tokenizer = AutoTokenizer.from_pretrained(packaged_cache_dir())
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=2048, initializer_range=0.5)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("llm") / "tiny-llama"
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails at once."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def write_tiny_movielens(folder: Path, n_users: int = 40, n_items: int = 24,
                         length: int = 30) -> Path:
    """A MovieLens-layout folder where every user walks the movies in one fixed cycle from a
    random start, so the next movie is predictable from the last one."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    genres = ["Comedy", "Drama", "Horror", "Animation|Children", "Documentary", "Sci-Fi"]
    movies = ["movieId,title,genres"] + [
        f'{m},"Movie number {m} ({1990 + m})",{genres[m % len(genres)]}'
        for m in range(1, n_items + 1)]
    (folder / "movies.csv").write_text("\n".join(movies) + "\n")
    rng = np.random.default_rng(0)
    rows = ["userId,movieId,rating,timestamp"]
    for user in range(1, n_users + 1):
        start = int(rng.integers(n_items))
        rows += [f"{user},{(start + t) % n_items + 1},4.0,{1_000_000 + 60 * t}"
                 for t in range(length)]
    (folder / "ratings.csv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture(scope="session")
def tiny_movielens(tmp_path_factory) -> Path:
    return write_tiny_movielens(tmp_path_factory.mktemp("data") / "ml-tiny")
