"""Figures of the optimizer page: the race over a contour, loss and distance curves, schedules, the
condition-number map and mini-batch paths. Pure functions: arrays in, ``go.Figure`` out."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..analysis.trajectories import OPTIMIZERS
from .common import PALETTE
from ..i18n import N_, _


# The surface under the racers in light greys (low = darker): every racer's colour, light ones included, stays
# visible on it, which a coloured map cannot promise (SGD's blue vanished on a blue one).
SURFACE_SCALE = [[0.0, "#d6d6d6"], [0.5, "#ececec"], [1.0, "#fcfcfc"]]
OUTLINE = "#1a1a1a"  # a dark rim on every racer's markers, for the light colours of the palette


def color_of(name: str) -> str:
    """A fixed color per optimizer, so every figure of the page agrees."""
    names = list(OPTIMIZERS)
    return PALETTE[names.index(name) % 10] if name in names else PALETTE[hash(name) % 10]


def label_of(name: str) -> str:
    return OPTIMIZERS[name].label if name in OPTIMIZERS else str(name)


def view_around(bounds: tuple[float, float, float, float], points: np.ndarray) -> tuple[float, float, float, float]:
    """``bounds`` (xmin, xmax, ymin, ymax) widened to hold ``points`` (n, 2) with a 5% margin, rounded
    outward to halves so a growing path changes the view (and the cached contour) rarely."""
    x0, x1, y0, y1 = bounds
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(1)]
    if len(pts):
        px, py = 0.05 * (x1 - x0), 0.05 * (y1 - y0)
        x0, x1 = min(x0, pts[:, 0].min() - px), max(x1, pts[:, 0].max() + px)
        y0, y1 = min(y0, pts[:, 1].min() - py), max(y1, pts[:, 1].max() + py)
    return (float(np.floor(x0 * 2) / 2), float(np.ceil(x1 * 2) / 2), float(np.floor(y0 * 2) / 2),
            float(np.ceil(y1 * 2) / 2))


def contour_values(Z: np.ndarray) -> tuple[np.ndarray, str]:
    """The values to contour and their legend: log10(f - min) when f spans many orders (Rosenbrock), else f."""
    zs = Z - np.nanmin(Z)
    spread = np.nanmax(zs) / max(float(np.nanmedian(zs)), 1e-12)
    if spread > 30:
        return np.log10(zs + 1e-3 * max(float(np.nanmedian(zs)), 1e-12)), "log₁₀(f − min)"
    return Z, "f"


def race_figure(X: np.ndarray, Y: np.ndarray, Z: np.ndarray, paths: Mapping[str, np.ndarray], upto: int | None = None,
                minima: Sequence[tuple[float, float]] = (), view: tuple[float, float, float, float] | None = None,
                title: str = "", height: int = 480, axis_titles: tuple[str, str] = ("x", "y"),
                equal_aspect: bool = True) -> go.Figure:
    """Contour of f (X, Y, Z: (n, n) grids) with every path {name: (k, 2)} drawn up to step ``upto``.

    The view (xmin, xmax, ymin, ymax) defaults to the grid's extent; a path leaving it runs off the edge.
    """
    zc, zlabel = contour_values(Z)
    fig = go.Figure(go.Contour(x=X[0], y=Y[:, 0], z=zc, colorscale=SURFACE_SCALE, ncontours=30,
                               contours=dict(coloring="heatmap", showlines=True), line=dict(width=0.7, color="#8c8c8c"),
                               colorbar=dict(title=zlabel, thickness=12), hoverinfo="skip"))
    for name, p in paths.items():
        p = np.asarray(p)
        q = p if upto is None else p[: upto + 1]
        c = color_of(name)
        fig.add_trace(go.Scatter(x=q[:, 0], y=q[:, 1], mode="lines+markers", name=label_of(name),
                                 line=dict(color=c, width=3), marker=dict(size=7, color=c,
                                                                          line=dict(color=OUTLINE, width=1)),
                                 hovertemplate=f"{label_of(name)} step %{{customdata}}: (%{{x:.4g}}, %{{y:.4g}})"
                                               "<extra></extra>", customdata=np.arange(len(q))))
        fig.add_trace(go.Scatter(x=q[-1:, 0], y=q[-1:, 1], mode="markers", showlegend=False, hoverinfo="skip",
                                 marker=dict(size=14, color=c, line=dict(color=OUTLINE, width=2))))
    first = next(iter(paths.values()), None)
    if first is not None and len(first):
        fig.add_trace(go.Scatter(x=[first[0, 0]], y=[first[0, 1]], mode="markers", name=_("start"),
                                 marker=dict(symbol="x", size=12, color="black")))
    if len(minima):
        m = np.asarray(minima)
        fig.add_trace(go.Scatter(x=m[:, 0], y=m[:, 1], mode="markers", name=_("minimum"),
                                 marker=dict(symbol="star", size=14, color="gold", line=dict(color="black", width=1))))
    x0, x1, y0, y1 = view or (X.min(), X.max(), Y.min(), Y.max())
    fig.update_xaxes(range=[x0, x1], title_text=axis_titles[0], constrain="domain")
    fig.update_yaxes(range=[y0, y1], title_text=axis_titles[1], constrain="domain",
                     **(dict(scaleanchor="x", scaleratio=1) if equal_aspect else {}))
    # Drawn in the wider of two columns (3:2 at 1280 px): its title wraps at that width, not at half the page.
    fig.update_layout(title=title, height=height, margin=dict(l=50, r=10, t=50, b=40),
                      legend=dict(orientation="h"), uirevision="race", plot_bgcolor="white", meta={"wrap_px": 600})
    return fig


def curves_figure(losses: Mapping[str, np.ndarray], dists: Mapping[str, np.ndarray] | None, upto: int | None = None,
                  f_min: float | None = None, height: int = 340) -> go.Figure:
    """Left: f − f* on a log scale (or f itself when no minimum is known); right: distance to the nearest minimum."""
    panels = [_("f − f* (log scale)") if f_min is not None else "f"] + ([_("distance to nearest minimum (log)")] if dists else [])
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=panels)
    for name, loss in losses.items():
        loss = np.asarray(loss)[: None if upto is None else upto + 1]
        y = np.maximum(loss - f_min, 1e-16) if f_min is not None else loss
        mode = "lines+markers" if len(y) <= 40 else "lines"
        fig.add_trace(go.Scatter(x=np.arange(len(y)), y=y, mode=mode, name=label_of(name), legendgroup=name,
                                 line=dict(color=color_of(name), width=2)), row=1, col=1)
        if dists:
            d = np.maximum(np.asarray(dists[name])[: len(y)], 1e-16)
            fig.add_trace(go.Scatter(x=np.arange(len(d)), y=d, mode=mode, name=label_of(name), legendgroup=name,
                                     showlegend=False, line=dict(color=color_of(name), width=2)), row=1, col=2)
    for col in range(1, len(panels) + 1):
        fig.update_xaxes(title_text=_("step"), row=1, col=col)
        if col == 2 or f_min is not None:
            fig.update_yaxes(type="log", exponentformat="power", dtick=1, row=1, col=col)
    fig.update_layout(height=height, margin=dict(l=50, r=10, t=40, b=40), legend=dict(orientation="h"))
    return fig


def schedule_figure(lrs: Mapping[str, np.ndarray], schedule: str, height: int = 260) -> go.Figure:
    """The learning rate each racer used at each step (what torch's scheduler set)."""
    fig = go.Figure()
    for name, lr in lrs.items():
        fig.add_trace(go.Scatter(x=np.arange(len(lr)), y=lr, mode="lines", name=label_of(name),
                                 line=dict(color=color_of(name), width=2, shape="hv")))
    fig.update_layout(title=_("Learning rate per step ({schedule} schedule)").format(schedule=schedule), height=height, xaxis_title=_("step"),
                      yaxis_title=_("lr"), margin=dict(l=50, r=10, t=40, b=40), showlegend=False)
    return fig


def rate_map_figure(lrs: np.ndarray, betas: np.ndarray, rate: np.ndarray, best: Mapping[str, float],
                    height: int = 420) -> go.Figure:
    """Heatmap of the convergence rate over (lr, β) (rate ≥ 1: diverges), with the best GD and momentum marked."""
    fig = go.Figure(go.Heatmap(x=lrs, y=betas, z=np.minimum(rate, 1.0), colorscale="Viridis", zmin=0, zmax=1,
                               colorbar=dict(title=_("rate"), thickness=12),
                               hovertemplate="lr %{x:.3g}, β %{y:.2f}: rate %{z:.4f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[best["gd_lr"]], y=[0.0], mode="markers+text", name=_("best gradient descent"),
                             text=[f"GD: {best['gd_rate']:.3f}"], textposition="top right",
                             marker=dict(symbol="circle", size=14, color=color_of("sgd"), line=dict(color="white", width=2))))
    fig.add_trace(go.Scatter(x=[best["momentum_lr"]], y=[best["momentum_beta"]], mode="markers+text",
                             name=_("best momentum"), text=[f"momentum: {best['momentum_rate']:.3f}"],
                             textposition="top right", textfont=dict(color="white"),
                             marker=dict(symbol="star", size=16, color=color_of("momentum"),
                                         line=dict(color="white", width=2))))
    fig.update_layout(title=_("Rate per step over (η, β); yellow: no convergence"), height=height,
                      xaxis_title=_("learning rate η"), yaxis_title=_("momentum β"), margin=dict(l=50, r=10, t=40, b=40),
                      legend=dict(orientation="h"))
    return fig


def error_curves_figure(errors: Mapping[str, np.ndarray], height: int = 320) -> go.Figure:
    """Distance to the minimum per step (log scale) for named runs."""
    fig = go.Figure()
    for name, e in errors.items():
        key = "momentum" if "momentum" in name else "sgd"
        fig.add_trace(go.Scatter(x=np.arange(len(e)), y=np.maximum(e, 1e-16), mode="lines", name=name,
                                 line=dict(color=color_of(key), width=2)))
    fig.update_layout(title=_("Distance to the minimum"), height=height, xaxis_title=_("step"), yaxis_type="log",
                      yaxis_exponentformat="power", margin=dict(l=50, r=10, t=40, b=40),
                      legend=dict(orientation="h"))
    return fig


def batch_paths_figure(runs: Mapping[int, Mapping[str, np.ndarray]], true_w: tuple[float, float],
                       height: int = 420) -> go.Figure:
    """Left: (w1, w2) paths of mini-batch SGD per batch size; right: full-data loss per step (log scale)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=[_("paths in the (w₁, w₂) plane"), _("loss on all 1,000 points")])
    for i, (bs, r) in enumerate(runs.items()):
        c = PALETTE[(i + 3) % 10]
        fig.add_trace(go.Scatter(x=r["w"][:, 0], y=r["w"][:, 1], mode="lines", name=_("batch {bs}").format(bs=bs), legendgroup=str(bs),
                                 line=dict(color=c, width=1.5 if bs == 1 else 2.5)), row=1, col=1)
        fig.add_trace(go.Scatter(x=np.arange(len(r["loss"])), y=r["loss"], mode="lines", showlegend=False,
                                 legendgroup=str(bs), line=dict(color=c, width=2)), row=1, col=2)
    fig.add_trace(go.Scatter(x=[true_w[0]], y=[true_w[1]], mode="markers", name=_("true w"),
                             marker=dict(symbol="star", size=15, color="gold", line=dict(color="black", width=1))),
                  row=1, col=1)
    fig.update_xaxes(title_text="w₁", row=1, col=1)
    fig.update_yaxes(title_text="w₂", row=1, col=1)
    fig.update_xaxes(title_text=_("step"), row=1, col=2)
    fig.update_yaxes(type="log", exponentformat="power", row=1, col=2)
    fig.update_layout(height=height, margin=dict(l=50, r=10, t=40, b=40), legend=dict(orientation="h"))
    return fig


def network_curves_figure(history: Sequence[Mapping[str, float]], names: Sequence[str], height: int = 320) -> go.Figure:
    """Full-data loss (log scale) and accuracy per optimizer over steps, colored like the race."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=[_("loss on all points (log scale)"), _("accuracy")])
    steps = [r["step"] for r in history]
    for name in names:
        for col, key in ((1, f"loss_{name}"), (2, f"acc_{name}")):
            fig.add_trace(go.Scatter(x=steps, y=[r.get(key) for r in history], mode="lines", name=label_of(name),
                                     legendgroup=name, showlegend=col == 1,
                                     line=dict(color=color_of(name), width=2)), row=1, col=col)
    fig.update_yaxes(type="log", exponentformat="power", row=1, col=1)
    fig.update_xaxes(title_text=_("step"))
    fig.update_layout(height=height, margin=dict(l=50, r=10, t=40, b=40), legend=dict(orientation="h"))
    return fig
