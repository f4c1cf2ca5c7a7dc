import numpy as np
import pandas as pd

from ctxrec.export import matrix_csv, safe_csv
from ctxrec.similarity import compare_items, project_2d, token_similarity


def test_token_similarity_matches_pooled_and_marks_best(encoder):
    sims = token_similarity(encoder, "a funny film", "A slapstick comedy film for the family.")
    assert sims.query_tokens == ["a", "funny", "film"]
    assert sims.cosines.shape == (3, len(sims.item_tokens))
    assert sims.item_tokens[sims.best[2]] == "film"
    assert abs(sims.maxsim - sims.cosines.max(axis=1).sum()) < 1e-6
    assert abs(sims.pooled - encoder.encode_one("a funny film")
               @ encoder.encode_one("A slapstick comedy film for the family.")) < 1e-5


def test_pca_projection_places_extras_consistently():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((60, 8)).astype(np.float32)
    coords, extra, method = project_2d(vectors, vectors[:3], method="pca")
    assert method == "PCA" and coords.shape == (60, 2)
    np.testing.assert_allclose(extra, coords[:3], atol=1e-5)
    assert coords[:, 0].var() >= coords[:, 1].var()


def test_compare_items(catalog, vectors):
    cosine, shared, rank = compare_items(catalog, vectors, "film-05", "film-01")
    assert abs(cosine - vectors[catalog.position("film-05")] @ vectors[catalog.position("film-01")]) < 1e-6
    assert shared == sorted(set(catalog.record("film-05")["tags"]) & set(catalog.record("film-01")["tags"]))
    others = np.delete(vectors @ vectors[catalog.position("film-05")], catalog.position("film-05"))
    assert rank == (others > cosine).sum() + 1


def test_csv_exports_cannot_run_formulas():
    table = pd.DataFrame({"=cmd": ["=1+1", "+SUM(A1)", "@x", "-2", "plain"], "n": [1, 2, 3, 4, -5]})
    text = safe_csv(table).decode()
    assert text.splitlines()[0] == "'=cmd,n"
    assert "'=1+1" in text and "'+SUM(A1)" in text and "'@x" in text and "'-2" in text
    assert text.splitlines()[-1] == "plain,-5"
    labelled = matrix_csv(np.eye(2), ["=a", "b"], ["c", "d"]).decode().splitlines()
    assert labelled[0] == "row,0:c,1:d" and labelled[1].startswith("0:=a,")
