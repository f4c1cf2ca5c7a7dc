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


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails at once."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
