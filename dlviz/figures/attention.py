"""Figures of the attention page: kernel regression, scoring functions, positional encoding, attention heads."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import CAPTION, PALETTE, caption_gap, heatmap, montage
from ..i18n import N_, _

MARGIN = dict(l=50, r=10, t=50, b=40)


def kernel_fit_figure(a: dict, w: float, height: int = 380) -> go.Figure:
    """Training points, the truth and both Nadaraya-Watson predictions over the test grid."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=a["x_train"], y=a["y_train"], mode="markers", name=_("training data"),
                             marker=dict(color="#999", size=6)))
    fig.add_trace(go.Scatter(x=a["x_test"], y=a["y_true"], mode="lines", name=_("truth 2 sin x + x^0.8"),
                             line=dict(color="black", dash="dot", width=2)))
    fig.add_trace(go.Scatter(x=a["x_test"], y=a["pred_fixed"], mode="lines", name=_("fixed kernel (w = 1)"),
                             line=dict(color=PALETTE[0], width=3)))
    fig.add_trace(go.Scatter(x=a["x_test"], y=a["pred_learned"], mode="lines", name=_("learned w = {w:.2f}").format(w=w),
                             line=dict(color=PALETTE[1], width=3)))
    fig.update_layout(title=_("Predictions on the test grid"), xaxis_title="x", yaxis_title="y", height=height,
                      margin=MARGIN, legend=dict(orientation="h"))
    return fig


def kernel_attention_figure(a: dict, w: float) -> go.Figure:
    """Attention of every test point (rows) over the sorted training points (columns), fixed vs learned."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=[_("fixed kernel (w = 1)"), _("learned (w = {w:.2f})").format(w=w)],
                        horizontal_spacing=0.08)
    zmax = float(max(a["attn_fixed"].max(), a["attn_learned"].max()))
    for col, key in ((1, "attn_fixed"), (2, "attn_learned")):
        fig.add_trace(go.Heatmap(z=a[key], x=np.round(a["x_train"], 2), y=np.round(a["x_test"], 1),
                                 colorscale="Reds", zmin=0, zmax=zmax, showscale=col == 2,
                                 hovertemplate="test x %{y}<br>train x %{x}<br>weight %{z:.3f}<extra></extra>"),
                      row=1, col=col)
        fig.update_xaxes(title_text=_("training x (sorted)"), row=1, col=col)
        fig.update_yaxes(title_text=_("test x") if col == 1 else "", autorange="reversed", row=1, col=col)
    fig.update_layout(title=_("Attention weights: a test point's weight on each training point"), height=400,
                      margin=MARGIN)
    return fig


def scoring_figure(weights: dict[str, np.ndarray], valid_lens: Sequence[int]) -> go.Figure:
    """Weights (B, Q, K) of each scoring function, one panel per function, the examples stacked as rows."""
    names = list(weights)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.1)
    for col, name in enumerate(names, start=1):
        w = np.asarray(weights[name])
        z = w.reshape(-1, w.shape[-1])
        rows = [f"ex {b} q {q} (valid {valid_lens[b]})" for b in range(w.shape[0]) for q in range(w.shape[1])]
        fig.add_trace(go.Heatmap(z=z, y=rows, x=[f"key {k}" for k in range(w.shape[-1])], colorscale="Reds",
                                 zmin=0, zmax=1, showscale=col == len(names), texttemplate="%{z:.2f}",
                                 hovertemplate="%{y}, %{x}: %{z:.3f}<extra></extra>"), row=1, col=col)
        fig.update_yaxes(autorange="reversed", row=1, col=col, showticklabels=col == 1)
    fig.update_layout(height=120 + 40 * z.shape[0], margin=dict(l=150, r=10, t=50, b=40),
                      title=_("Attention weights (masked keys get exactly 0)"))
    return fig


def sharpness_figure(dims: Sequence[int], stats: dict[str, np.ndarray], n_keys: int) -> go.Figure:
    """Softmax entropy with and without 1/sqrt(d), and the spread of q.k, as d grows."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=[_("entropy of the attention weights (nats)"),
                                                        _("standard deviation of q·k")])
    d = list(dims)
    for i, (key, name) in enumerate((("entropy_scaled", "q·k / √d"), ("entropy_unscaled", "q·k (unscaled)"))):
        fig.add_trace(go.Scatter(x=d, y=stats[key], name=name, mode="lines+markers", line=dict(color=PALETTE[i])),
                      row=1, col=1)
    fig.add_trace(go.Scatter(x=[d[0], d[-1]], y=[np.log(n_keys)] * 2, name=_("uniform (ln {n_keys})").format(n_keys=n_keys), mode="lines",
                             line=dict(color="gray", dash="dot")), row=1, col=1)
    fig.add_trace(go.Scatter(x=d, y=stats["score_std"], name=_("std of q·k"), mode="lines+markers",
                             line=dict(color=PALETTE[2])), row=1, col=2)
    fig.add_trace(go.Scatter(x=d, y=np.sqrt(d), name="√d", mode="lines", line=dict(color="gray", dash="dot")),
                  row=1, col=2)
    for col in (1, 2):
        fig.update_xaxes(type="log", title_text=_("dimension d"), row=1, col=col)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_layout(height=340, margin=MARGIN, legend=dict(orientation="h"))
    return fig


def pe_heatmap(P: np.ndarray) -> go.Figure:
    fig = heatmap(P, title=_("Positional encoding P (rows: positions, columns: dimensions)"), x_title=_("dimension"),
                  y_title=_("position"), colorscale="RdBu_r", zmid=0, height=380)
    fig.update_traces(zmin=-1, zmax=1)
    return fig


def pe_columns(P: np.ndarray, cols: Sequence[int]) -> go.Figure:
    fig = go.Figure()
    for i, c in enumerate(cols):
        fig.add_trace(go.Scatter(y=P[:, c], mode="lines", name=_("column {c}").format(c=c), line=dict(color=PALETTE[i % 10])))
    fig.update_layout(title=_("Selected columns: lower columns oscillate faster"), xaxis_title=_("position"),
                      height=340, margin=MARGIN, legend=dict(orientation="h"))
    return fig


def pe_similarity(P: np.ndarray) -> go.Figure:
    sim = P @ P.T
    return heatmap(sim, title=_("Similarity P Pᵀ: depends on the offset i - j only"), x_title=_("position j"),
                   y_title=_("position i"), colorscale="Viridis", height=380)


def attention_grid(maps: np.ndarray, title: str, tile_px: int = 70) -> go.Figure:
    """Every head of every layer, (layers, heads, Q, K), as one montage: a row per layer, a column per head."""
    layers, heads, q, k = maps.shape
    gap = caption_gap(k, tile_px)  # room above each tile for its "L1 H1"
    z = montage(maps.reshape(layers * heads, q, k), heads, gap)
    fig = go.Figure(go.Heatmap(z=z, colorscale="Blues", zmin=0, zmax=1, showscale=False, hoverongaps=False,
                               hovertemplate="%{z:.2f}<extra></extra>"))
    fig.layout.annotations = [dict(x=h * (k + gap) + (k - 1) / 2, y=l * (q + gap) - 0.6, text=f"L{l + 1} H{h + 1}",
                                   showarrow=False, yanchor="bottom", name=CAPTION, font=dict(size=14))
                              for l in range(layers) for h in range(heads)]
    fig.update_xaxes(visible=False, range=[-0.5, z.shape[1] - 0.5])
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", range=[z.shape[0] - 0.5, -gap - 1])
    # Drawn three side by side: the theme wraps the title to a third of the main area.
    fig.update_layout(title=dict(text=title, font=dict(size=13)), height=int(layers * tile_px * (q + gap) / (k + gap)) + 60,
                      margin=dict(l=5, r=5, t=45, b=5), plot_bgcolor="white", meta={"wrap_px": 320})
    return fig


def attention_map(weights: np.ndarray, q_labels: Sequence[str], k_labels: Sequence[str], title: str,
                  target: Sequence[int] | None = None) -> go.Figure:
    """One head's (Q, K) weights with token labels; ``target`` marks, per query, the key it should read: a frame
    on the cell's border, so the weight written in the cell stays readable."""
    q, k = weights.shape
    fig = go.Figure(go.Heatmap(z=weights, colorscale="Blues", zmin=0, zmax=1, texttemplate="%{z:.2f}",
                               hovertemplate="query %{y}, key %{x}: %{z:.3f}<extra></extra>"))
    if target is not None:
        frame = dict(color=PALETTE[1], width=3)
        fig.layout.shapes = [dict(type="rect", x0=t - 0.5, x1=t + 0.5, y0=i - 0.5, y1=i + 0.5, line=frame,
                                  layer="above") for i, t in enumerate(target)]
        # The frames' legend entry: a marker of the same look that draws nothing on the map.
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=_("source position"), hoverinfo="skip",
                                 marker=dict(symbol="square-open", size=14, color=PALETTE[1], line=dict(width=3))))
    # Keys along the top (where a reader starts), queries down the side; the axis titles say which is which.
    fig.update_xaxes(tickvals=list(range(k)), ticktext=list(k_labels), side="top", title_text=_("key attended to"),
                     range=[-0.5, k - 0.5])
    fig.update_yaxes(tickvals=list(range(q)), ticktext=list(q_labels), title_text=_("query"), range=[q - 0.5, -0.5])
    fig.update_layout(title=title, height=max(320, 40 * q + 150), margin=dict(l=60, r=10, t=100, b=10),
                      showlegend=target is not None, legend=dict(orientation="h"))
    return fig
