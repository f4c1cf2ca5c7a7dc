"""Plotly figure builders: arrays and labels in, figures out. No models in here."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

__all__ = ["COMPONENT_COLORS", "contributions_figure"]

COMPONENT_COLORS = {"intent": "#4C78A8", "history": "#F58518", "context": "#54A24B",
                    "mood": "#B279A2", "popularity": "#9D755D", "sequence": "#E45756",
                    "llm": "#72B7B2"}


def contributions_figure(labels: Sequence[str], contributions: dict[str, Sequence[float]],
                         scores: Sequence[float]) -> go.Figure:
    """Stacked horizontal bars: one bar per item, one segment per component.

    Negative contributions stack to the left of zero, so each bar's net length is the score, marked
    with a diamond.

    Args:
        labels: item labels, best first.
        contributions: component → weighted contribution per item.
        scores: the fused score per item (the sum of the contributions).
    """
    fig = go.Figure()
    for name, values in contributions.items():
        values = np.asarray(values, dtype=float)
        if not np.any(values):
            continue
        fig.add_bar(y=list(labels), x=values, name=name, orientation="h",
                    marker_color=COMPONENT_COLORS.get(name),
                    hovertemplate=f"{name}: %{{x:+.3f}}<extra>%{{y}}</extra>")
    fig.add_scatter(y=list(labels), x=list(scores), mode="markers", name="score",
                    marker=dict(symbol="diamond", size=9, color="black"),
                    hovertemplate="score %{x:.3f}<extra>%{y}</extra>")
    fig.update_layout(barmode="relative", height=max(260, 26 * len(labels) + 110),
                      margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0),
                      xaxis_title="weighted contribution to the score (standard deviations)")
    fig.update_yaxes(autorange="reversed")
    return fig
