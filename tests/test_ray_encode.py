"""Catalog encoding through Ray Data with two local workers, against this process's encoder."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from ctxrec.data.catalog import read_catalog_csv
from ctxrec.text.embed_cache import EmbeddingCache


def _local(home):
    """This test's cache folder, and a Ray started for the call even where a cluster is set."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return {**env, "CTXREC_HOME": str(home)}


@pytest.mark.slow
def test_two_ray_workers_encode_a_10k_catalog_as_one_process_does(encoder, catalog, tmp_path):
    # short texts keep the 10,000 encodings quick on two cores; every one is distinct
    titles = catalog.items["title"].tolist()
    rows = [{"id": f"i{n}", "title": f"{titles[n % len(titles)]} no. {n // len(titles)}",
             "category": catalog.items["category"].iloc[n % len(titles)]}
            for n in range(10_000)]
    path = tmp_path / "big.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    home = tmp_path / "home"
    run = subprocess.run([sys.executable, "-m", "ctxrec", "embed", "--catalog", str(path),
                          "--ray", "--workers", "2"], cwd=ROOT, capture_output=True, text=True,
                         timeout=900, env=_local(home))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "10000 items encoded" in run.stdout and "by 2 Ray workers" in run.stdout
    assert "on local" in run.stdout

    big = read_catalog_csv(path)
    cached = EmbeddingCache(home / "embeddings").load(encoder, big)
    assert cached is not None, "the Ray run's file must pass the cache's own checks"
    alone = encoder.encode(big.texts())
    cosines = np.sum(cached * alone, axis=1)
    assert cached.shape == (10_000, encoder.dim)
    assert cosines.min() > 0.9999

    again = subprocess.run([sys.executable, "-m", "ctxrec", "embed", "--catalog", str(path),
                            "--ray"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                           env=_local(home))
    assert again.returncode == 0 and "already in the cache" in again.stdout


def test_a_pool_of_no_workers_is_refused_before_ray_starts():
    from ctxrec.text.ray_encode import encode_with_ray

    with pytest.raises(ValueError, match="at least 1"):
        encode_with_ray(["a"], workers=0)


def test_shards_keep_what_passes_their_checks_and_drop_the_rest(tmp_path):
    from ctxrec.text.ray_encode import Shards

    rng = np.random.default_rng(0)
    first = Shards(tmp_path / "x.parts", "key-a", n_items=10, dim=4)
    first.write(np.array([0, 1, 2]), rng.standard_normal((3, 4)))
    first.write(np.array([7, 8]), rng.standard_normal((2, 4)))
    kept = first.vectors.copy()
    bad = tmp_path / "x.parts" / "part-000001.safetensors"
    raw = bytearray(bad.read_bytes())
    raw[-3] ^= 0xFF  # one flipped byte in the vectors: the checksum no longer matches
    bad.write_bytes(bytes(raw))

    again = Shards(tmp_path / "x.parts", "key-a", n_items=10, dim=4)
    assert again.done.tolist() == [True] * 3 + [False] * 7
    assert np.array_equal(again.vectors[:3], kept[:3]) and not bad.exists()
    again.write(np.array([3, 4, 5, 6, 7, 8, 9]), rng.standard_normal((7, 4)))
    assert (tmp_path / "x.parts" / "part-000002.safetensors").exists()  # numbering moves on
    assert again.gather().shape == (10, 4)
    assert not Shards(tmp_path / "x.parts", "key-b", n_items=10, dim=4).done.any()  # other key


def test_an_interrupted_ray_run_resumes_from_its_shards(encoder, catalog, tmp_path):
    from ctxrec.data.catalog import Catalog
    from ctxrec.text.ray_encode import Shards, ray_item_embeddings

    small = Catalog(items=catalog.items.iloc[:60].reset_index(drop=True), name="first-60")
    cache = EmbeddingCache(tmp_path)
    texts = small.texts()
    # what a run stopped after its first batches leaves behind
    earlier = Shards(cache.path(encoder, small).with_suffix(".parts"),
                     cache.key(encoder, small), len(small), encoder.dim)
    earlier.write(np.arange(25), encoder.encode(texts[:25]))
    vectors, run = ray_item_embeddings(encoder, small, workers=1, threads=1, cache=cache)
    assert run.items == 35 and run.resumed == 25
    assert np.sum(vectors * encoder.encode(texts), axis=1).min() > 0.9999
    assert not cache.path(encoder, small).with_suffix(".parts").exists()
    assert cache.load(encoder, small) is not None
