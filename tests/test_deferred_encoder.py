"""The encoder that loads after the first ranking: a card stands in for the model, stored texts are
answered without it, and anything else waits for the real load (packaged model, real SQLite)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime

import numpy as np
import pytest

from ctxrec import EmbeddingCache, Recommender
from ctxrec.data.context import Context
from ctxrec.text.deferred import DeferredEncoder, TextVectorStore, deferred_encoder
from ctxrec.text.encoders import default_encoder_path


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CTXREC_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_second_start_ranks_from_the_card_then_loads_for_new_text(home, encoder, catalog,
                                                                   vectors):
    first = deferred_encoder()
    assert isinstance(first, DeferredEncoder) and first.is_loaded  # no card yet: loaded now
    context = Context(intent="something calm for a rainy evening", place="home",
                      companions=("partner",), when=datetime(2026, 11, 21, 19, 30))
    Recommender(catalog, first, vectors).recommend(context, k=10)  # fills the store

    later = deferred_encoder()
    assert isinstance(later, DeferredEncoder) and not later.is_loaded
    assert later.fingerprint() == encoder.fingerprint() and later.dim == encoder.dim
    assert later.known_words() == encoder.known_words()
    ranking = Recommender(catalog, later, vectors).recommend(context, k=10)
    assert not later.is_loaded  # the whole ranking came from the card and the store
    expected = Recommender(catalog, encoder, vectors).recommend(context, k=10)
    assert list(ranking.table["item_id"]) == list(expected.table["item_id"])
    np.testing.assert_allclose(ranking.table["score"], expected.table["score"], atol=1e-5)

    fresh = later.encode_one("a text nobody stored")  # needs the model: waits for the load
    assert later.is_loaded and later.load_seconds > 0
    np.testing.assert_allclose(fresh, encoder.encode_one("a text nobody stored"), atol=1e-5)
    assert later.tokenizer is later.loaded().tokenizer  # the model's own attributes pass through


def test_a_delayed_load_keeps_its_delay_unless_the_model_is_needed(home):
    deferred_encoder()
    seen = []
    later = deferred_encoder(on_loaded=seen.append)
    later.start_loading(delay=3)  # as the app does after its first page
    patient = threading.Thread(target=later.loaded, kwargs={"hurry": False})
    patient.start()
    patient.join(timeout=1)
    assert patient.is_alive() and not later.is_loaded  # a patient wait leaves the delay alone
    patient.join()
    assert later.is_loaded and seen == [later.load_seconds]

    seen.clear()
    later = deferred_encoder(on_loaded=seen.append)
    later.start_loading(delay=600)
    time.sleep(0.5)
    assert not later.is_loaded
    start = time.perf_counter()
    later.encode_one("a text that needs the model")
    assert time.perf_counter() - start < 120  # the wait was cut, not sat out
    assert len(seen) == 1 and seen[0] == later.load_seconds > 0


def test_a_changed_model_folder_is_loaded_not_trusted(home, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(default_encoder_path(), folder)
    assert deferred_encoder(str(folder)).is_loaded
    assert not deferred_encoder(str(folder)).is_loaded  # the card matches the files
    readme = next(p for p in folder.rglob("*.md"))
    readme.write_text(readme.read_text() + "\nedited\n")
    assert deferred_encoder(str(folder)).is_loaded  # a file changed: the card is not used


def test_a_card_of_another_shape_is_replaced(home):
    deferred_encoder()
    card = next((home / "encoder_cards").glob("*.json"))
    card.write_text('{"name": "all-MiniLM-L6-v2 (packaged)"}')
    assert deferred_encoder().is_loaded  # loaded, not trusted
    assert not deferred_encoder().is_loaded  # and a whole card written again


def test_a_broken_store_costs_speed_not_vectors(home, tmp_path, encoder):
    path = tmp_path / "vectors.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    deferred_encoder()
    later = deferred_encoder(store=TextVectorStore(path))
    got = later.encode(["quiet jazz", "a long walk"])
    np.testing.assert_allclose(got, encoder.encode(["quiet jazz", "a long walk"]), atol=1e-5)


def test_store_keeps_vectors_apart_per_model_and_size(tmp_path):
    store = TextVectorStore(tmp_path / "v.sqlite")
    store.put("model-a", {"hello": np.ones(4, np.float32)})
    assert list(store.get("model-a", ["hello", "other"], 4)) == ["hello"]
    assert store.get("model-b", ["hello"], 4) == {}
    assert store.get("model-a", ["hello"], 8) == {}  # a vector of another size is not trusted


def test_a_second_process_ranks_without_importing_sentence_transformers(home, catalog, vectors):
    """What `streamlit run` gains: a new process with a card never imports the model's library
    on the way to its first ranking."""
    context = Context(intent="a podcast for the commute", place="commute",
                      when=datetime(2026, 11, 23, 8, 0))
    Recommender(catalog, deferred_encoder(), vectors).recommend(context, k=5)
    code = ("import datetime, logging, sys\n"
            "logging.basicConfig(level=logging.INFO)\n"
            "from ctxrec import Recommender, builtin_catalog, item_embeddings\n"
            "from ctxrec.data.context import Context\n"
            "from ctxrec.text.deferred import deferred_encoder\n"
            "enc = deferred_encoder(); cat = builtin_catalog()\n"
            "r = Recommender(cat, enc, item_embeddings(enc, cat)).recommend("
            "Context(intent='a podcast for the commute', place='commute', "
            "when=datetime.datetime(2026, 11, 23, 8, 0)), k=5)\n"
            "print(enc.is_loaded, 'sentence_transformers' in sys.modules, "
            "','.join(r.table['item_id']))\n")
    # the embedding cache of this home is filled by the first process's model
    EmbeddingCache().save(deferred_encoder(), catalog, vectors)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=300)
    out = done.stdout.split()
    expected = Recommender(catalog, deferred_encoder(), vectors).recommend(context, k=5)
    assert out == ["False", "False", ",".join(expected.table["item_id"])], done.stderr[-2000:]
