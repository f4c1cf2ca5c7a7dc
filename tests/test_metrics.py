import numpy as np
import pytest

from ctxrec.evaluation import metrics as m

# user 0: relevant {1, 3}, hits at positions 2 and 4; user 1: relevant {9}, no hit;
# user 2: no relevant items at all
TOPK = np.array([[0, 1, 2, 3], [4, 5, 6, 7], [0, 1, 2, 3]])
RELEVANT = [{1, 3}, {9}, set()]
N_REL = np.array([2, 1, 0])


@pytest.fixture
def hits():
    return m.hit_matrix(TOPK, RELEVANT)


def test_hit_matrix(hits):
    assert hits.tolist() == [[False, True, False, True], [False] * 4, [False] * 4]


def test_hit_rate_precision_recall(hits):
    assert m.hit_rate(hits).tolist() == [1.0, 0.0, 0.0]
    assert m.precision(hits).tolist() == [0.5, 0.0, 0.0]
    r = m.recall(hits, N_REL)
    assert r[:2].tolist() == [1.0, 0.0] and np.isnan(r[2])


def test_ndcg_by_hand(hits):
    dcg = 1 / np.log2(3) + 1 / np.log2(5)
    idcg = 1 / np.log2(2) + 1 / np.log2(3)
    n = m.ndcg(hits, N_REL)
    assert n[0] == pytest.approx(dcg / idcg) and n[1] == 0.0 and np.isnan(n[2])
    single = m.ndcg(np.array([[False, False, True]]), np.array([1]))
    assert single[0] == pytest.approx(1 / np.log2(4))


def test_mrr_and_map_by_hand(hits):
    assert m.mrr(hits).tolist() == [0.5, 0.0, 0.0]
    ap = m.map_at_k(hits, N_REL)
    assert ap[0] == pytest.approx((1 / 2 + 2 / 4) / 2) and ap[1] == 0.0 and np.isnan(ap[2])


def test_rank_of_counts_ties_as_half():
    scores = np.array([[0.9, 0.5, 0.5, 0.5, 0.1], [0.1, 0.2, 0.3, 0.4, 0.5]])
    ranks = m.rank_of(scores, np.array([1, 4]))
    assert ranks.tolist() == [1 + 1 + 2 / 2, 1.0]
    masked = np.array([[0.9, -np.inf, 0.5]])
    assert m.rank_of(masked, np.array([2])).tolist() == [2.0]


def test_auc_by_hand_with_ties():
    scores = np.array([[0.9, 0.5, 0.5, 0.1], [1.0, 1.0, 1.0, 1.0], [0.3, 0.2, 0.1, 0.0]])
    relevant = np.array([[False, True, False, False], [True, False, False, False],
                         [False] * 4])
    a = m.auc(scores, relevant)
    # user 0: positive 0.5 vs negatives 0.9 (lose), 0.5 (tie), 0.1 (win) → 1.5 / 3
    assert a[0] == pytest.approx(0.5) and a[1] == pytest.approx(0.5) and np.isnan(a[2])
    perfect = m.auc(np.array([[0.9, 0.1, 0.2]]), np.array([[True, False, False]]))
    assert perfect[0] == 1.0


def test_beyond_accuracy():
    assert m.catalog_coverage(TOPK, 10) == 0.8
    vectors = np.eye(4)
    assert m.intra_list_diversity(np.array([[0, 1], [2, 2]]), vectors).tolist() == [1.0, 0.0]
    p = np.array([0.5, 0.25, 0.25])
    assert m.novelty(np.array([[0, 1], [1, 2]]), p).tolist() == [1.5, 2.0]


def test_single_target_metrics_agree_with_the_top_k_metrics_when_nothing_ties():
    rng = np.random.default_rng(5)
    scores = rng.random((40, 30))
    target = rng.integers(0, 30, 40)
    better, tied = m.target_position(scores, target)
    single = m.single_target_metrics(better, tied, k=10)
    topk = np.argsort(-scores, axis=1)[:, :10]
    hits = m.hit_matrix(topk, [{t} for t in target])
    np.testing.assert_allclose(single["ndcg"], m.ndcg(hits, np.ones(40)))
    np.testing.assert_allclose(single["hr"], m.hit_rate(hits))
    np.testing.assert_allclose(single["mrr"], m.mrr(hits))
