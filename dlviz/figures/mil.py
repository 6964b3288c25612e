"""Figures of the multiple-instance learning page: curves per pooling, and one bag's instances with their weights."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..i18n import _
from .common import PALETTE, montage

POOL_COLORS = {"mean": PALETTE[0], "max": PALETTE[1], "attention": PALETTE[2], "gated": PALETTE[3]}
KEY_COLOR = PALETTE[4]  # orange frame around the key instances


def mil_curves(history: Sequence[dict], pools: Sequence[str], labels: Mapping[str, str], loc_chance: float,
               height: int = 300) -> go.Figure:
    """Four panels over steps, one line per pooling: train bag loss, test bag accuracy, test AUC, and localization
    (top-relevance instance is a key instance, positive test bags) with chance as a dashed line."""
    panels = [(_("train bag loss (BCE)"), "loss"), (_("test bag accuracy"), "acc"), (_("test AUC"), "auc"),
              (_("top instance is a key one"), "loc")]
    fig = make_subplots(rows=1, cols=4, subplot_titles=[t for t, _unused in panels], horizontal_spacing=0.06)
    for col, (_unused, metric) in enumerate(panels, start=1):
        for p in pools:
            rows = [r for r in history if f"{p}_{metric}" in r]
            if not rows:
                continue
            fig.add_trace(go.Scatter(x=[r["step"] for r in rows], y=[r[f"{p}_{metric}"] for r in rows],
                                     mode="lines", name=labels.get(p, p), legendgroup=p, showlegend=col == 2,
                                     line=dict(color=POOL_COLORS.get(p, PALETTE[6]), width=2.5)), row=1, col=col)
        fig.update_xaxes(title_text=_("step"), row=1, col=col)
    steps = [r["step"] for r in history] or [0]
    fig.add_trace(go.Scatter(x=[min(steps), max(steps)], y=[loc_chance] * 2, mode="lines",
                             name=_("chance (random instance)"), line=dict(color="#777777", dash="dash", width=2)),
                  row=1, col=4)
    for col in (2, 3, 4):
        fig.update_yaxes(range=[0, 1.02], row=1, col=col)
    fig.update_layout(height=height, margin=dict(l=40, r=10, t=40, b=40), legend=dict(orientation="h", y=-0.3))
    return fig


def bag_figure(images: np.ndarray, keys: np.ndarray, relevance: Mapping[str, np.ndarray],
               labels: Mapping[str, str], title: str = "", width_px: int = 1150) -> go.Figure:
    """One bag: its instances (n, S, S) as a strip (key instances framed) above bars of each pooling's weight per
    instance (attention a_k; max: share of pooled features; mean: 1/n), aligned under the images."""
    images = np.asarray(images, dtype=np.float32)
    n, s, _unused = images.shape
    gap = max(1, s // 6)
    strip = montage(images, n, gap)
    centers = np.arange(n) * (s + gap) + (s - 1) / 2
    tile_px = int(np.clip(width_px / max(n, 1), 22, 110))
    bars_px = 230
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        row_heights=[tile_px / (tile_px + bars_px), bars_px / (tile_px + bars_px)])
    fig.add_trace(go.Heatmap(z=strip, colorscale="gray_r", showscale=False, zmin=0, zmax=1, hoverongaps=False,
                             hovertemplate="%{z:.2f}<extra></extra>"), row=1, col=1)
    for k in np.flatnonzero(np.asarray(keys[:n], dtype=bool)):
        x0 = k * (s + gap) - 0.5
        fig.add_shape(type="rect", x0=x0 - gap / 2, x1=x0 + s + gap / 2, y0=-0.5 - gap / 2, y1=s - 0.5 + gap / 2,
                      line=dict(color=KEY_COLOR, width=3), row=1, col=1)
    for p, rel in relevance.items():
        fig.add_trace(go.Bar(x=centers, y=np.asarray(rel)[:n], name=labels.get(p, p), width=(s + gap) * 0.8 / max(len(relevance), 1),
                             marker_color=POOL_COLORS.get(p, PALETTE[6]), legendgroup=p,
                             hovertemplate=_("instance") + " %{customdata}: %{y:.3f}<extra>" + labels.get(p, p)
                             + "</extra>",
                             customdata=np.arange(n)), row=2, col=1)
    if np.asarray(keys[:n], dtype=bool).any():  # a legend entry for the frames
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=_("key instance (target digit)"),
                                 marker=dict(symbol="square-open", size=14, color=KEY_COLOR, line=dict(width=3))),
                      row=2, col=1)
    fig.add_hline(y=1.0 / max(n, 1), line=dict(color="#777777", dash="dot", width=1.5), row=2, col=1)
    fig.update_yaxes(visible=False, autorange="reversed", row=1, col=1)
    fig.update_xaxes(visible=False, range=[-0.5 - gap, strip.shape[1] - 0.5 + gap], row=1, col=1)
    fig.update_xaxes(visible=False, row=2, col=1)
    fig.update_yaxes(title_text=_("weight"), rangemode="tozero", row=2, col=1)
    fig.update_layout(title=title, height=tile_px + bars_px + 110, barmode="group", bargap=0.1,
                      margin=dict(l=50, r=10, t=40 if title else 10, b=10), plot_bgcolor="rgba(0,0,0,0)",
                      legend=dict(orientation="h", y=-0.02, yanchor="top"), meta={"instances": n})
    return fig


__all__ = ["POOL_COLORS", "mil_curves", "bag_figure"]
