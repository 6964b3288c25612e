"""Figures every page uses: metric curves, heatmaps, image grids, embeddings."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")


def metric_curves(history: Sequence[dict], panels: Sequence[tuple[str, Sequence[str]]], x: str = "step",
                  log_y: Sequence[bool] | None = None, height: int = 320) -> go.Figure:
    """One panel per (title, metric keys) with a line per key over ``x``; rows lacking a key are skipped."""
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[t for t, _ in panels])
    for col, (_, keys) in enumerate(panels, start=1):
        for i, k in enumerate(keys):
            rows = [r for r in history if k in r]
            fig.add_trace(go.Scatter(x=[r[x] for r in rows], y=[r[k] for r in rows], mode="lines",
                                     name=k.replace("_", " "), line=dict(color=PALETTE[i % 10], width=2),
                                     legendgroup=str(col)), row=1, col=col)
        fig.update_xaxes(title_text=x, row=1, col=col)
        if log_y and log_y[col - 1]:
            fig.update_yaxes(type="log", row=1, col=col)
    fig.update_layout(height=height, margin=dict(l=40, r=10, t=40, b=40), legend=dict(orientation="h", y=-0.25))
    return fig


def heatmap(z: np.ndarray, x: Sequence | None = None, y: Sequence | None = None, title: str = "",
            x_title: str = "", y_title: str = "", colorscale: str = "Blues", text: bool = False,
            zmid: float | None = None, height: int = 360) -> go.Figure:
    """A labelled heatmap (row 0 at the top); ``text`` writes each value in its cell."""
    z = np.asarray(z)
    hm = go.Heatmap(z=z, x=list(x) if x is not None else None, y=list(y) if y is not None else None,
                    colorscale=colorscale, zmid=zmid,
                    text=z if text else None, texttemplate="%{text}" if text else None)
    fig = go.Figure(hm)
    fig.update_layout(title=title, height=height, margin=dict(l=40, r=10, t=40, b=40),
                      xaxis_title=x_title, yaxis_title=y_title)
    fig.update_yaxes(autorange="reversed")
    return fig


def image_grid(images: np.ndarray, titles: Sequence[str] | None = None, ncols: int = 8, title: str = "",
               colorscale: str = "gray_r", symmetric: bool = False, tile_px: int = 90) -> go.Figure:
    """Small multiples of (N, H, W) images, one heatmap each; ``symmetric`` centers the colors on 0 (filters)."""
    images = np.asarray(images)
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, int(np.ceil(n / ncols)))
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=list(titles) if titles else None,
                        horizontal_spacing=0.01, vertical_spacing=0.12 / nrows if titles else 0.02)
    for i, img in enumerate(images):
        lim = float(np.abs(img).max()) or 1.0
        fig.add_trace(go.Heatmap(z=img, colorscale="RdBu" if symmetric else colorscale, showscale=False,
                                 zmin=-lim if symmetric else None, zmax=lim if symmetric else None,
                                 hovertemplate="(%{x}, %{y}): %{z:.3f}<extra></extra>"),
                      row=i // ncols + 1, col=i % ncols + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    for i in range(2, n + 1):
        fig.update_yaxes(scaleanchor=f"x{i}", row=(i - 1) // ncols + 1, col=(i - 1) % ncols + 1)
    fig.update_annotations(font_size=12)
    fig.update_layout(title=title, height=max(160, nrows * tile_px + 60), margin=dict(l=5, r=5, t=50, b=5))
    return fig


def embedding_scatter(coords: np.ndarray, labels: np.ndarray, title: str = "", hover: Sequence[str] | None = None,
                      class_names: Sequence[str] | None = None, height: int = 420) -> go.Figure:
    """2-D (or 3-D) points colored by class, one trace per class so the legend toggles classes.

    Each point's ``customdata`` is its index in ``coords``, so a selection maps back to the example.
    """
    coords, labels = np.asarray(coords), np.asarray(labels)
    fig = go.Figure()
    for i, c in enumerate(np.unique(labels)):
        m = np.flatnonzero(labels == c)
        name = class_names[int(c)] if class_names is not None else str(c)
        common = dict(mode="markers", name=name, customdata=m,
                      text=[hover[j] for j in m] if hover is not None else None,
                      marker=dict(color=PALETTE[i % 10], size=6 if coords.shape[1] == 2 else 3),
                      hovertemplate="%{text}<extra>" + name + "</extra>" if hover is not None else None)
        if coords.shape[1] >= 3:
            fig.add_trace(go.Scatter3d(x=coords[m, 0], y=coords[m, 1], z=coords[m, 2], **common))
        else:
            fig.add_trace(go.Scatter(x=coords[m, 0], y=coords[m, 1], **common))
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10), legend_title="class",
                      dragmode="select" if coords.shape[1] == 2 else None)
    return fig
