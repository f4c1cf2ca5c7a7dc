import numpy as np

from ctxrec.viz import contributions_figure, heatmap_figure, rank_distribution_figure


def test_contribution_bars_stack_to_the_score():
    fig = contributions_figure(["1. a", "2. b"], {"intent": [0.5, 0.2], "context": [-0.1, 0.3],
                                                  "mood": [0.0, 0.0]}, [0.4, 0.5])
    names = [t.name for t in fig.data]
    assert names == ["intent", "context", "score"]  # all-zero components are left out
    assert fig.layout.barmode == "relative"


def test_heatmap_keeps_repeated_labels_apart():
    fig = heatmap_figure(np.eye(3), ["the", "cat", "the"], ["the", "cat", "the"],
                         boxes=[(0, 1, 2, 2)], marks=[(1, 0)])
    assert list(fig.layout.xaxis.ticktext) == ["the", "cat", "the"]
    assert list(fig.data[0].x) == [0, 1, 2] and len(fig.layout.shapes) == 1


def test_rank_distribution_marks_k_on_the_log_axis():
    fig = rank_distribution_figure({"m": [1, 5, 100, 1000]}, k=10)
    assert fig.layout.xaxis.type == "log"
    assert fig.layout.shapes[0].x0 == 1.0  # log10(10)
