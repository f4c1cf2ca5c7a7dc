import numpy as np

from ctxrec.viz import contributions_figure, heatmap_figure, rank_distribution_figure


def test_contribution_bars_stack_to_the_score():
    labels = ["1. a", "2. b"]
    fig = contributions_figure(labels, {"intent": [0.5, 0.2], "context": [-0.1, 0.3],
                                        "mood": [0.0, 0.0]}, [0.4, 0.5])
    bars = {t.name: t for t in fig.data if t.type == "bar"}
    assert list(bars) == ["intent", "context"]  # all-zero components are left out
    assert all(t.orientation == "h" and list(t.y) == labels for t in bars.values())
    assert list(bars["intent"].x) == [0.5, 0.2] and list(bars["context"].x) == [-0.1, 0.3]
    [score] = [t for t in fig.data if t.name == "score"]
    assert score.type == "scatter" and list(score.y) == labels and list(score.x) == [0.4, 0.5]
    assert fig.layout.barmode == "relative"  # negatives stack left of zero: net length = score
    assert fig.layout.yaxis.autorange == "reversed"  # best first, at the top


def test_heatmap_keeps_repeated_labels_apart():
    fig = heatmap_figure(np.eye(3), ["the", "cat", "the"], ["the", "cat", "the"],
                         boxes=[(0, 1, 2, 2)], marks=[(1, 0)])
    assert list(fig.layout.xaxis.ticktext) == ["the", "cat", "the"]
    assert list(fig.data[0].x) == [0, 1, 2] and len(fig.layout.shapes) == 1


def test_rank_distribution_marks_k_on_the_log_axis():
    fig = rank_distribution_figure({"m": [1, 5, 100, 1000]}, k=10)
    assert fig.layout.xaxis.type == "log"
    assert fig.layout.shapes[0].x0 == 1.0  # log10(10)
