"""Figures for a network's loss landscape: 1-D interpolation, 2-D slices, slices per direction seed, PCA path,
curvature by batch size."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import PALETTE
from ..i18n import N_, _


def interpolation_figure(alphas: np.ndarray, train: np.ndarray, test: np.ndarray, height: int = 320) -> go.Figure:
    """Loss along (1 - a) init + a trained: a = 0 is the initialization, a = 1 the trained weights."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=alphas, y=train, name=_("train loss"), line=dict(color=PALETTE[0], width=2)))
    fig.add_trace(go.Scatter(x=alphas, y=test, name=_("test loss"), line=dict(color=PALETTE[1], width=2, dash="dash")))
    for a, label in ((0.0, "init"), (1.0, "trained")):
        fig.add_vline(x=a, line=dict(color="gray", dash="dot"), annotation_text=label, annotation_position="top")
    fig.update_layout(height=height, margin=dict(l=40, r=10, t=40, b=40), xaxis_title="a  (θ = (1 − a) θ₀ + a θ*)",
                      yaxis_title=_("cross-entropy"), title=_("1-D: from initialization to the trained weights, and beyond"),
                      legend=dict(orientation="h", y=-0.25))
    return fig


def _clip(Z: np.ndarray, cap: float | None) -> np.ndarray:
    Z = np.where(np.isfinite(Z), Z, np.nan)
    return np.minimum(Z, cap) if cap is not None else Z


def _cap(Z: np.ndarray, q: float = 0.9) -> float:
    """Upper end of the color scale: the q-quantile, so a few huge losses at the edges do not flatten the basin."""
    lo, hi = float(np.nanmin(Z)), float(np.nanquantile(Z, q))
    return max(hi, lo + 1e-6)


def slice_figure(coords: np.ndarray, train: np.ndarray, test: np.ndarray, height: int = 420) -> go.Figure:
    """3-D train-loss surface, and contour maps of train and test loss, on a filter-normalized 2-D slice."""
    cap = _cap(train)
    fig = make_subplots(rows=1, cols=3, specs=[[{"type": "scene"}, {"type": "xy"}, {"type": "xy"}]],
                        subplot_titles=[_("train loss (3-D)"), _("train loss"), _("test loss")], horizontal_spacing=0.06,
                        column_widths=[0.38, 0.31, 0.31])
    Zt, Ze = _clip(train, cap), _clip(test, cap)
    fig.add_trace(go.Surface(x=coords, y=coords, z=Zt, colorscale="Viridis", showscale=False,
                             hovertemplate="a=%{x:.2f}<br>b=%{y:.2f}<br>loss=%{z:.3f}<extra></extra>"), row=1, col=1)
    for col, Z in ((2, Zt), (3, Ze)):
        fig.add_trace(go.Contour(x=coords, y=coords, z=Z, colorscale="Viridis", ncontours=25, zmin=float(np.nanmin(Zt)),
                                 zmax=cap, showscale=col == 3, colorbar=dict(title=_("loss"), thickness=12),
                                 hovertemplate="a=%{x:.2f}<br>b=%{y:.2f}<br>loss=%{z:.3f}<extra></extra>"),
                      row=1, col=col)
        fig.add_trace(go.Scatter(x=[0], y=[0], mode="markers", marker=dict(symbol="x", size=10, color="white"),
                                 name=_("trained weights"), showlegend=col == 2), row=1, col=col)
        fig.update_xaxes(title_text=_("a (direction 1)"), row=1, col=col)
        fig.update_yaxes(title_text=_("b (direction 2)"), row=1, col=col)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), uirevision="slice",
                      scene=dict(xaxis_title="a", yaxis_title="b", zaxis_title=_("loss"), aspectmode="cube"),
                      legend=dict(orientation="h", y=-0.15))
    return fig


def seeds_figure(coords: np.ndarray, losses: np.ndarray, seeds: Sequence[int], height: int = 300) -> go.Figure:
    """One contour map per direction seed, on a shared color scale (one random slice can mislead)."""
    lo, cap = float(np.nanmin(losses)), _cap(losses)
    fig = make_subplots(rows=1, cols=len(seeds), subplot_titles=[f"directions seed {s}" for s in seeds],
                        horizontal_spacing=0.04)
    for col, (s, Z) in enumerate(zip(seeds, losses), start=1):
        fig.add_trace(go.Contour(x=coords, y=coords, z=_clip(Z, cap), colorscale="Viridis", ncontours=20, zmin=lo,
                                 zmax=cap, showscale=col == len(seeds), colorbar=dict(title=_("loss"), thickness=12),
                                 hovertemplate="loss=%{z:.3f}<extra></extra>"), row=1, col=col)
        fig.update_xaxes(title_text="a", row=1, col=col)
    fig.update_layout(height=height, margin=dict(l=30, r=10, t=40, b=30))
    return fig


def pca_path_figure(alphas: np.ndarray, betas: np.ndarray, losses: np.ndarray, coords: np.ndarray,
                    explained: np.ndarray, height: int = 440) -> go.Figure:
    """The training path projected on its first two PCA directions, over the loss in that plane."""
    cap = _cap(losses, 0.95)
    fig = go.Figure(go.Contour(x=alphas, y=betas, z=_clip(losses, cap), colorscale="Viridis", ncontours=30,
                               colorbar=dict(title=_("train loss"), thickness=12),
                               hovertemplate="loss=%{z:.3f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=coords[:, 0], y=coords[:, 1], mode="lines+markers", name=_("training path"),
                             line=dict(color="#d62728", width=2), marker=dict(size=4)))
    fig.add_trace(go.Scatter(x=coords[:1, 0], y=coords[:1, 1], mode="markers+text", text=["init"],
                             textposition="top center", marker=dict(size=11, color="white", line=dict(width=1)),
                             showlegend=False))
    fig.add_trace(go.Scatter(x=[0], y=[0], mode="markers+text", text=["now"], textposition="bottom center",
                             marker=dict(size=12, symbol="x", color="white"), showlegend=False))
    fig.update_layout(height=height, margin=dict(l=40, r=10, t=40, b=40),
                      title=_("Training path on its first two PCA directions"),
                      xaxis_title=_("PC1 ({value:.1%} of the path's variance)").format(value=explained[0]),
                      yaxis_title=_("PC2 ({value:.1%} of the path's variance)").format(value=explained[1]), legend=dict(orientation="h", y=-0.2))
    return fig


def curvature_figure(results: dict[str, dict], height: int = 300, threshold: float | None = None,
                     threshold_label: str = "2/η") -> go.Figure:
    """Largest and smallest Hessian eigenvalue per model ({label: {"lambda_max", "lambda_min"}}); ``threshold``
    (e.g. 2/η, the edge of stability of gradient descent) is drawn as a dashed line on the λ_max panel."""
    labels = list(results)
    fig = make_subplots(rows=1, cols=2, subplot_titles=[_("largest eigenvalue λ_max (sharpness)"),
                                                        _("smallest eigenvalue λ_min")])
    for col, key in ((1, "lambda_max"), (2, "lambda_min")):
        vals = [results[k][key] for k in labels]
        fig.add_trace(go.Bar(x=labels, y=vals, marker_color=[PALETTE[i % 10] for i in range(len(labels))],
                             text=[f"{v:.3g}" for v in vals], textposition="auto", showlegend=False), row=1, col=col)
    if threshold is not None:
        fig.add_hline(y=threshold, line_dash="dash", line_color="#555", row=1, col=1,
                      annotation_text=f"{threshold_label} = {threshold:.3g}", annotation_position="top left")
    fig.update_layout(height=height, margin=dict(l=40, r=10, t=40, b=40))
    return fig
