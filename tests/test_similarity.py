import numpy as np
import pandas as pd
import pytest

from ctxrec.export import matrix_csv, safe_csv
from ctxrec.inspect.similarity import compare_items, project_2d, token_similarity


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def test_token_similarity_matches_pooled_and_marks_best(encoder):
    query, item = "a funny film", "A slapstick comedy film for the family."
    sims = token_similarity(encoder, query, item)
    assert sims.query_tokens == ["a", "funny", "film"]
    assert sims.item_tokens[sims.best[2]] == "film"
    # the same token vectors through sentence-transformers' own API: [CLS] … [SEP]
    q, i = (encoder.model.encode([t], output_value="token_embeddings")[0].numpy()
            for t in (query, item))
    assert len(i) == len(sims.item_tokens) + 2
    expected = _unit(q[1:-1]) @ _unit(i[1:-1]).T
    np.testing.assert_allclose(sims.cosines, expected, atol=1e-5)
    assert sims.maxsim == pytest.approx(expected.max(axis=1).sum(), abs=1e-5)
    # all-MiniLM-L6-v2 mean-pools every token, special ones included, into the sentence vector
    assert sims.pooled == pytest.approx(float(_unit(q.mean(0)) @ _unit(i.mean(0))), abs=1e-5)


def test_pca_projection_places_extras_consistently():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((60, 8)).astype(np.float32)
    coords, extra, method = project_2d(vectors, vectors[:3], method="pca")
    assert method == "PCA" and coords.shape == (60, 2)
    np.testing.assert_allclose(extra, coords[:3], atol=1e-5)
    # the axes are the two principal directions: their variances are the covariance's largest
    # eigenvalues, in order
    top = np.linalg.eigvalsh(np.cov(vectors.T.astype(np.float64), bias=True))[::-1][:2]
    np.testing.assert_allclose(coords.var(axis=0), top, rtol=1e-4)


def test_compare_items(catalog, vectors):
    cosine, shared, rank = compare_items(catalog, vectors, "film-05", "film-01")
    a, b = catalog.position("film-05"), catalog.position("film-01")
    assert cosine == pytest.approx(float(vectors[a] @ vectors[b]), abs=1e-6)
    assert shared == ["family"]  # comedy/caper/family/multigenerational vs animation/family/…
    neighbours = [p for p in np.argsort(-(vectors @ vectors[a]), kind="stable") if p != a]
    assert rank == neighbours.index(b) + 1
    nearest = catalog.ids[neighbours[0]]
    assert compare_items(catalog, vectors, "film-05", nearest)[2] == 1



def test_a_large_catalogs_float16_vectors_are_projected_and_compared_in_float32(catalog,
                                                                                vectors):
    half = vectors.astype(np.float16)  # as a catalog from 50,000 items keeps them
    coords, extra, method = project_2d(half, half[:2], method="pca")
    assert coords.dtype == np.float32
    np.testing.assert_allclose(np.abs(coords), np.abs(project_2d(vectors, method="pca")[0]),
                               atol=2e-3)
    cosine, shared, rank = compare_items(catalog, half, "film-05", "film-01")
    assert cosine == pytest.approx(compare_items(catalog, vectors, "film-05", "film-01")[0],
                                   abs=2e-3)
    assert shared == ["family"]


def test_csv_exports_cannot_run_formulas():
    table = pd.DataFrame({"=cmd": ["=1+1", "+SUM(A1)", "@x", "-2", "plain"], "n": [1, 2, 3, 4, -5]})
    text = safe_csv(table).decode()
    assert text.splitlines()[0] == "'=cmd,n"
    assert "'=1+1" in text and "'+SUM(A1)" in text and "'@x" in text and "'-2" in text
    assert text.splitlines()[-1] == "plain,-5"
    labelled = matrix_csv(np.eye(2), ["=a", "b"], ["c", "d"]).decode().splitlines()
    assert labelled[0] == "row,0:c,1:d" and labelled[1].startswith("0:=a,")
