import numpy as np

from ctxrec import EmbeddingCache, item_embeddings, read_catalog_csv

CSV = b"id,title,description\n1,Dawn Loaf,A bakery at six.\n2,Night Bus,Neon and rain.\n"


def test_vectors_are_computed_once_then_read_back(tmp_path, encoder):
    cache = EmbeddingCache(tmp_path)
    catalog = read_catalog_csv(CSV)
    calls = []
    first = item_embeddings(encoder, catalog, cache, progress=lambda d, t: calls.append(d))
    np.testing.assert_allclose(first, encoder.encode(catalog.texts()), atol=1e-6)
    path = cache.path(encoder, catalog)
    stamp = path.stat().st_mtime_ns
    second = item_embeddings(encoder, catalog, cache, progress=lambda d, t: calls.append(d))
    assert calls == [2]  # the second call encoded nothing
    assert path.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(first, second)
    assert list(tmp_path.iterdir()) == [path]  # no temporary files left behind


def test_a_changed_catalog_gets_its_own_entry(tmp_path, encoder):
    cache = EmbeddingCache(tmp_path)
    a = read_catalog_csv(CSV)
    b = read_catalog_csv(CSV.replace(b"Neon", b"Sodium"))
    assert cache.path(encoder, a) != cache.path(encoder, b)
    item_embeddings(encoder, a, cache)
    assert cache.load(encoder, b) is None


def test_a_damaged_file_is_not_trusted(tmp_path, encoder):
    cache = EmbeddingCache(tmp_path)
    catalog = read_catalog_csv(CSV)
    good = item_embeddings(encoder, catalog, cache)
    path = cache.path(encoder, catalog)
    raw = bytearray(path.read_bytes())
    raw[-8:] = b"\x00" * 8  # flip the last values: the checksum no longer matches
    path.write_bytes(bytes(raw))
    assert cache.load(encoder, catalog) is None
    path.write_bytes(b"not a safetensors file")
    assert cache.load(encoder, catalog) is None
    np.testing.assert_allclose(item_embeddings(encoder, catalog, cache), good, atol=1e-6)
    assert cache.load(encoder, catalog) is not None
