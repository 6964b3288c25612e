"""Figures of the feature explorer: explained variance, the selected point and its neighbours, and t-SNE small
multiples over perplexity."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import PALETTE
from ..i18n import N_, _


def explained_variance_figure(ratio: np.ndarray, height: int = 300) -> go.Figure:
    """Bars: variance explained by each principal component; line: the cumulative share. ``ratio`` (k,)."""
    ratio = np.asarray(ratio, dtype=float)
    pcs = [f"PC{i + 1}" for i in range(len(ratio))]
    fig = go.Figure([go.Bar(x=pcs, y=ratio, name=_("per component"), marker_color=PALETTE[0]),
                     go.Scatter(x=pcs, y=np.cumsum(ratio), name=_("cumulative"), mode="lines+markers",
                                line=dict(color=PALETTE[1]))])
    fig.update_layout(title=_("Explained variance per principal component"), height=height,
                      margin=dict(l=40, r=10, t=40, b=40), yaxis=dict(title=_("share of variance"), range=[0, 1.02],
                                                                     tickformat=".0%"),
                      legend=dict(orientation="h", y=1.12, x=1, xanchor="right"))
    return fig


def mark_selection(fig: go.Figure, coords: np.ndarray, point: int | None, neighbours: Sequence[int] = ()) -> go.Figure:
    """Circle the selected point (black) and its original-space neighbours (open rings) on an embedding figure."""
    if point is None:
        return fig
    coords = np.asarray(coords)
    idx = np.asarray(list(neighbours), dtype=int)
    three = coords.shape[1] >= 3
    for ids, name, marker in ((idx, _("original-space neighbours"), dict(size=13, symbol="circle-open",
                                                                      color="black", line=dict(width=2))),
                              (np.array([point]), _("selected #{point}").format(point=point), dict(size=16, symbol="x", color="black"))):
        if not len(ids):
            continue
        common = dict(mode="markers", name=name, marker=marker, customdata=ids, hoverinfo="skip")
        if three:
            fig.add_trace(go.Scatter3d(x=coords[ids, 0], y=coords[ids, 1], z=coords[ids, 2], **common))
        else:
            fig.add_trace(go.Scatter(x=coords[ids, 0], y=coords[ids, 1], **common))
    return fig


def small_multiples(embeddings: Sequence[np.ndarray], labels: np.ndarray, titles: Sequence[str],
                    class_names: Sequence[str] | None = None, height: int = 330) -> go.Figure:
    """One 2-D scatter per embedding side by side, colored by class (legend shown once); axes hidden because
    t-SNE axes have no units worth reading."""
    labels = np.asarray(labels)
    fig = make_subplots(rows=1, cols=len(embeddings), subplot_titles=list(titles), horizontal_spacing=0.02)
    for col, coords in enumerate(embeddings, start=1):
        for i, c in enumerate(np.unique(labels)):
            m = labels == c
            name = class_names[int(c)] if class_names else str(c)
            fig.add_trace(go.Scattergl(x=coords[m, 0], y=coords[m, 1], mode="markers", name=name, legendgroup=name,
                                       showlegend=col == 1, marker=dict(size=3, color=PALETTE[i % 10])),
                          row=1, col=col)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=height, margin=dict(l=5, r=5, t=40, b=5), legend_title=_("class"),
                      legend=dict(itemsizing="constant"))
    return fig
