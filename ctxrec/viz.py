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


def heatmap_figure(matrix: np.ndarray, x_labels: Sequence[str], y_labels: Sequence[str],
                   title: str = "", value_name: str = "weight", colorscale: str = "Blues",
                   zmin: float | None = None, zmax: float | None = None,
                   boxes: Sequence[tuple[int, int, int, int]] = (),
                   marks: Sequence[tuple[int, int]] = (), height: int | None = None,
                   show_values: bool = False, value_format: str = ".2f") -> go.Figure:
    """A matrix as a heatmap with labels on both axes and exact values on hover.

    Positions, not label text, place the cells, so repeated tokens stay separate.

    Args:
        matrix: (rows, cols).
        boxes: (first col, last col, first row, last row) rectangles to outline, inclusive.
        marks: (col, row) cells to mark with a dot (e.g. each row's best match).
        show_values: write each value in its cell (for small matrices), as ``value_format``.
    """
    rows, cols = matrix.shape
    fig = go.Figure(go.Heatmap(
        z=matrix, x=list(range(cols)), y=list(range(rows)), colorscale=colorscale, zmin=zmin,
        zmax=zmax, customdata=[[(y_labels[r], x_labels[c]) for c in range(cols)]
                               for r in range(rows)],
        hovertemplate=f"%{{customdata[0]}} → %{{customdata[1]}}<br>{value_name} "
                      f"%{{z:{value_format if value_format == 'd' else '.4f'}}}<extra></extra>",
        texttemplate=f"%{{z:{value_format}}}" if show_values else None))
    for x0, x1, y0, y1 in boxes:
        fig.add_shape(type="rect", x0=x0 - 0.5, x1=x1 + 0.5, y0=y0 - 0.5, y1=y1 + 0.5,
                      line=dict(color="#E45756", width=2))
    if marks:
        fig.add_scatter(x=[m[0] for m in marks], y=[m[1] for m in marks], mode="markers",
                        marker=dict(symbol="circle-open", size=9, color="#E45756", line_width=2),
                        hoverinfo="skip", showlegend=False)
    tick = dict(tickmode="array", tickfont=dict(size=10))
    fig.update_xaxes(tickvals=list(range(cols)), ticktext=list(x_labels),
                     tickangle=0 if cols <= 6 else -60, **tick)
    fig.update_yaxes(tickvals=list(range(rows)), ticktext=list(y_labels), autorange="reversed",
                     **tick)
    size = height or int(min(900, max(280, 16 * rows + 140)))
    fig.update_layout(title=title, height=size, margin=dict(l=10, r=10, t=40 if title else 10,
                                                            b=10))
    return fig


def attention_grid_figure(attentions: np.ndarray, title: str = "") -> go.Figure:
    """Small multiples: one tiny heatmap per layer (rows) and head (columns), shared colour scale.

    Args:
        attentions: (L, H, T, T).
    """
    from plotly.subplots import make_subplots

    layers, heads = attentions.shape[:2]
    fig = make_subplots(rows=layers, cols=heads, horizontal_spacing=0.006,
                        vertical_spacing=0.012,
                        row_titles=[f"L{i}" for i in range(layers)],
                        column_titles=[f"H{j}" for j in range(heads)])
    for layer in range(layers):
        for head in range(heads):
            fig.add_trace(go.Heatmap(z=attentions[layer, head], coloraxis="coloraxis",
                                     hovertemplate=f"layer {layer} head {head}<br>"
                                                   "%{y} → %{x}: %{z:.3f}<extra></extra>"),
                          row=layer + 1, col=head + 1)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False, autorange="reversed")
    fig.update_layout(title=title, height=70 * layers + 80, coloraxis=dict(colorscale="Blues"),
                      margin=dict(l=10, r=30, t=60, b=10))
    return fig


def embedding_map_figure(coords: np.ndarray, labels: Sequence[str], groups: Sequence[str],
                         highlights: dict[str, tuple[float, float]],
                         top: Sequence[int] = ()) -> go.Figure:
    """A 2-D map of items coloured by group, with named points (context, intent) and the top-k
    items ringed.

    Args:
        coords: (N, 2) item positions.
        highlights: name → (x, y) for points that are not items.
        top: item indices to ring.
    """
    fig = go.Figure()
    groups = np.asarray(groups)
    for group in sorted(set(groups)):
        idx = np.flatnonzero(groups == group)
        fig.add_scatter(x=coords[idx, 0], y=coords[idx, 1], mode="markers", name=group,
                        text=[labels[i] for i in idx], marker=dict(size=7, opacity=0.7),
                        hovertemplate="%{text}<extra>" + group + "</extra>")
    if len(top):
        fig.add_scatter(x=coords[list(top), 0], y=coords[list(top), 1], mode="markers",
                        name="top-k", text=[labels[i] for i in top], hoverinfo="text",
                        marker=dict(size=14, symbol="circle-open", color="black", line_width=2))
    for name, (x, y) in highlights.items():
        fig.add_scatter(x=[x], y=[y], mode="markers+text", name=name, text=[name],
                        textposition="top center",
                        marker=dict(size=16, symbol="star", line=dict(width=1, color="black")))
    fig.update_layout(height=560, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis_title="component 1", yaxis_title="component 2")
    return fig


def bar_figure(labels: Sequence[str], values: Sequence[float], title: str = "") -> go.Figure:
    """Vertical bars, one per label, positioned by index so repeated labels stay separate."""
    fig = go.Figure(go.Bar(x=list(range(len(labels))), y=list(values),
                           customdata=list(labels),
                           hovertemplate="%{customdata}: %{y:.4f}<extra></extra>"))
    fig.update_xaxes(tickvals=list(range(len(labels))), ticktext=list(labels), tickangle=-60)
    fig.update_layout(title=title, height=280, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def slope_figure(labels: Sequence[str], rank_a: Sequence[float], rank_b: Sequence[float],
                 k: int, name_a: str = "A", name_b: str = "B") -> go.Figure:
    """Rank in A (left) joined to rank in B (right); items outside a top-k sit on a line below it.

    Args:
        rank_a, rank_b: ranks, NaN where the item was not ranked at all.
    """
    below = k + 2
    fig = go.Figure()
    for label, ra, rb in zip(labels, rank_a, rank_b):
        ya = ra if np.isfinite(ra) and ra <= k else below
        yb = rb if np.isfinite(rb) and rb <= k else below
        color = "#54A24B" if yb < ya else "#E45756" if yb > ya else "#9D9D9D"
        fig.add_scatter(x=[0, 1], y=[ya, yb], mode="lines+markers", line=dict(color=color),
                        name=label, showlegend=False,
                        hovertemplate=f"{label}<br>A: {_rank_text(ra)} → B: {_rank_text(rb)}"
                                      "<extra></extra>")
        for x, y, anchor in ((0, ya, "right"), (1, yb, "left")):
            if y != below:
                fig.add_annotation(x=x, y=y, text=label, showarrow=False, xanchor=anchor,
                                   xshift=-8 if anchor == "right" else 8, font=dict(size=11))
    fig.update_xaxes(tickvals=[0, 1], ticktext=[name_a, name_b], range=[-0.9, 1.9])
    fig.update_yaxes(autorange="reversed", tickvals=list(range(1, k + 1)) + [below],
                     ticktext=[str(r) for r in range(1, k + 1)] + [f"> {k}"], title="rank")
    fig.update_layout(height=28 * (k + 2) + 80, margin=dict(l=10, r=10, t=20, b=10))
    return fig


def _rank_text(rank: float) -> str:
    return "not ranked" if not np.isfinite(rank) else f"#{int(rank)}"


def metric_bars_figure(models: Sequence[str], values: Sequence[float],
                       intervals: Sequence[Sequence[float]], title: str) -> go.Figure:
    """One bar per model with its 95 % interval as error bars."""
    values = np.asarray(values, dtype=float)
    low = values - np.asarray([i[0] for i in intervals])
    high = np.asarray([i[1] for i in intervals]) - values
    fig = go.Figure(go.Bar(x=list(models), y=values, error_y=dict(type="data", array=high,
                                                                  arrayminus=low),
                           hovertemplate="%{x}: %{y:.4f}<extra></extra>"))
    fig.update_layout(title=title, height=360, margin=dict(l=10, r=10, t=50, b=10))
    return fig


def rank_distribution_figure(ranks: dict[str, Sequence[float]], k: int) -> go.Figure:
    """Share of users whose held-out item ranks at or above r, per model (log-scaled r)."""
    fig = go.Figure()
    for name, values in ranks.items():
        ordered = np.sort(np.asarray(values, dtype=float))
        share = np.arange(1, len(ordered) + 1) / len(ordered)
        fig.add_scatter(x=ordered, y=share, mode="lines", name=name,
                        hovertemplate=f"{name}<br>rank ≤ %{{x:.0f}}: %{{y:.1%}}<extra></extra>")
    # shapes on a log axis are placed in log10 units
    fig.add_vline(x=float(np.log10(k)), line_dash="dot", annotation_text=f"K = {k}")
    fig.update_xaxes(type="log", title="rank of the held-out item")
    fig.update_yaxes(title="share of users", tickformat=".0%")
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=30, b=10))
    return fig


def training_curves_figure(epochs: Sequence[dict], target: float | None = None) -> go.Figure:
    """Training loss (left axis) and validation NDCG@10 (right axis) against training time;
    ``target`` draws a reference level for the validation curve."""
    seconds = [e["elapsed_s"] for e in epochs]
    fig = go.Figure()
    fig.add_scatter(x=seconds, y=[e["train_loss"] for e in epochs], name="training loss",
                    mode="lines+markers", line=dict(color="#4C78A8"),
                    hovertemplate="%{x:.0f} s: loss %{y:.4f}<extra></extra>")
    fig.add_scatter(x=seconds, y=[e["valid_ndcg"] for e in epochs], name="validation NDCG@10",
                    mode="lines+markers", line=dict(color="#E45756"), yaxis="y2",
                    text=[f"epoch {e['epoch']}" for e in epochs],
                    hovertemplate="%{text}, %{x:.0f} s: NDCG@10 %{y:.4f}<extra></extra>")
    return _loss_and_ndcg_axes(fig, "training time (s)", target, "reference")


def _loss_and_ndcg_axes(fig: go.Figure, x_title: str, level: float | None, level_name: str
                        ) -> go.Figure:
    """Loss on the left axis, validation NDCG@10 on the right, and a dotted NDCG level."""
    if level is not None:
        fig.add_hline(y=level, yref="y2", line_dash="dot", line_color="#E45756",
                      annotation_text=f"{level_name} {level:.4f}")
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis=dict(title=x_title, rangemode="tozero"),
                      yaxis=dict(title="training loss"),
                      yaxis2=dict(title="validation NDCG@10", overlaying="y", side="right"),
                      legend=dict(orientation="h", y=1.12))
    return fig


def tuning_curves_figure(losses: Sequence[tuple[int, float]], checks: Sequence[dict],
                         first_stage: float | None = None) -> go.Figure:
    """Training loss (left axis) and validation NDCG@10 of the re-ranked list at its validated
    weight (right axis) against the training step; ``first_stage`` draws the first stage alone."""
    fig = go.Figure()
    fig.add_scatter(x=[s for s, _ in losses], y=[v for _, v in losses], name="training loss",
                    mode="lines", line=dict(color="#4C78A8"),
                    hovertemplate="step %{x}: loss %{y:.4f}<extra></extra>")
    fig.add_scatter(x=[c["step"] for c in checks], y=[c["valid_ndcg@10"] for c in checks],
                    name="validation NDCG@10 (re-ranked)", mode="lines+markers",
                    line=dict(color="#E45756"), yaxis="y2",
                    text=[f"weight {c['weight']:g}" for c in checks],
                    hovertemplate="step %{x}, %{text}: NDCG@10 %{y:.4f}<extra></extra>")
    return _loss_and_ndcg_axes(fig, "training step", first_stage, "first stage alone")


def costs_figure(stages: Sequence[str], ms: Sequence[float], total_ms: float) -> go.Figure:
    """One horizontal bar of the call's wall time, one segment per stage in the order they ran;
    what the stages leave of the total shows as a grey "other" segment."""
    palette = ("#4C78A8", "#F58518", "#54A24B", "#B279A2", "#E45756", "#72B7B2", "#9D755D")
    fig = go.Figure()
    for i, (stage, value) in enumerate(zip(stages, ms)):
        fig.add_trace(go.Bar(x=[value], y=[""], orientation="h", name=stage,
                             marker_color=palette[i % len(palette)],
                             hovertemplate=f"{stage}: %{{x:.1f}} ms<extra></extra>"))
    other = total_ms - float(sum(ms))
    if other > 0.05 * total_ms:
        fig.add_trace(go.Bar(x=[other], y=[""], orientation="h", name="other",
                             marker_color="#BBBBBB",
                             hovertemplate="other: %{x:.1f} ms<extra></extra>"))
    fig.update_layout(barmode="stack", height=150, margin=dict(l=10, r=10, t=10, b=10),
                      xaxis_title="milliseconds",
                      legend=dict(orientation="h", y=-0.9, traceorder="normal"))
    return fig
