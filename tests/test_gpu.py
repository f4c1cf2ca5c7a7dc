"""What changes on a CUDA device: the encoder reads in float16 and the product runs on the GPU,
with the same answers as the CPU's float32 within half precision. Skipped where there is no GPU
(CI); run on one with ``pytest tests/test_gpu.py``."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from ctxrec.bench import _evening, synthetic_catalog
from ctxrec.data.catalog import builtin_catalog
from ctxrec.rank.recommender import Recommender
from ctxrec.text.encoders import load_encoder

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def both():
    catalog = builtin_catalog()
    gpu, cpu = load_encoder(device="cuda"), load_encoder(device="cpu")
    return catalog, gpu, cpu, gpu.encode(catalog.texts()), cpu.encode(catalog.texts())


def test_the_encoder_reads_in_float16_on_the_gpu_and_agrees_with_the_cpu(both):
    _, gpu, cpu, on_gpu, on_cpu = both
    assert gpu.precision == "float16" and cpu.precision == "float32"
    assert gpu.fingerprint() != cpu.fingerprint()  # their caches are kept apart
    assert on_gpu.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(on_gpu, axis=1), 1, atol=1e-5)
    assert np.min(np.sum(on_gpu * on_cpu, axis=1)) > 0.999


@pytest.mark.parametrize("size", [0, 60_000])  # the catalog as it is; large, in float16
def test_a_ranking_on_the_gpu_matches_the_cpus_and_says_where_it_ran(both, size):
    catalog, gpu, cpu, on_gpu, on_cpu = both
    if size:
        catalog, on_cpu = synthetic_catalog(catalog, on_cpu, size, dtype=np.float16)
        on_gpu = on_cpu
    context = replace(_evening(catalog), intent="something funny for the kids")
    rankings = [Recommender(catalog, enc, vectors).recommend(context, k=10, exact=True)
                for enc, vectors in ((gpu, on_gpu), (cpu, on_cpu))]
    on_the_gpu = [s for s in rankings[0].costs.stages if s.stage == "components"][0]
    assert on_the_gpu.device.startswith("cuda") and on_the_gpu.memory == "cuda peak allocated"
    ids = [list(r.table["item_id"]) for r in rankings]
    assert len(set(ids[0]) & set(ids[1])) >= 9
    np.testing.assert_allclose(rankings[0].table["score"].to_numpy()[:3],
                               rankings[1].table["score"].to_numpy()[:3], atol=0.02)
