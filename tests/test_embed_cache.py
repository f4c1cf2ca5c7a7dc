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


def test_a_large_catalog_is_kept_in_float16_and_an_older_float32_file_still_loads(tmp_path,
                                                                                   encoder):
    import pandas as pd
    from safetensors import safe_open
    from safetensors.numpy import save_file

    from ctxrec.data.catalog import Catalog
    from ctxrec.text.embed_cache import HALF_FROM, _checksum

    n = HALF_FROM
    catalog = Catalog(items=pd.DataFrame({"id": [f"i{i}" for i in range(n)],
                                          "title": [f"Item {i}" for i in range(n)]}),
                      name="large")
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, encoder.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cache = EmbeddingCache(tmp_path)
    path = cache.save(encoder, catalog, vectors)
    with safe_open(str(path), framework="numpy") as handle:
        assert handle.get_tensor("embeddings").dtype == np.float16
    assert path.stat().st_size < vectors.nbytes * 0.51
    loaded = cache.load(encoder, catalog)
    assert loaded.dtype == np.float16
    np.testing.assert_allclose(loaded, vectors, atol=1e-3)
    encoded = []
    again = item_embeddings(encoder, catalog, cache, progress=lambda d, t: encoded.append(d))
    assert encoded == [] and again.dtype == np.float16  # read back, not encoded again

    # a float32 file from before: its checksum was of the float32 bytes, as it is now
    save_file({"embeddings": vectors}, str(path),
              metadata={"key": cache.key(encoder, catalog), "model": encoder.name,
                        "catalog": catalog.name, "sha256": _checksum(vectors)})
    older = cache.load(encoder, catalog)
    assert older.dtype == np.float16
    np.testing.assert_array_equal(older, vectors.astype(np.float16))

    small = read_catalog_csv(CSV)
    assert item_embeddings(encoder, small, cache).dtype == np.float32
