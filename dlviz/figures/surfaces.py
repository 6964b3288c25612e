"""Figures for analytic surfaces: 3-D surface beside a contour map, critical points, gradient field, descent paths."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import PALETTE
from ..i18n import N_, _

# Colour-blind safe (Okabe & Ito) and told apart by shape too.
KIND_STYLE = {"minimum": (PALETTE[2], "circle"), "maximum": (PALETTE[1], "triangle-up"),
              "saddle": (PALETTE[4], "x"), "degenerate": ("#999999", "diamond")}
LINE, CASING = "#1a1a1a", "white"  # lines over the colour map: dark, on a white casing that shows on dark colours


def _cased_lines(xs: list, ys: list, name: str, width: float, dash: str = "solid") -> list[go.Scatter]:
    """A dark line over a wider white one: visible on every colour of the map, and a dark (not a white,
    invisible) swatch in the legend."""
    group = f"cased:{name}"
    return [go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=CASING, width=width + 2.5), hoverinfo="skip",
                       showlegend=False, legendgroup=group),
            go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=LINE, width=width, dash=dash), hoverinfo="skip",
                       name=name, legendgroup=group)]


def display_z(Z: np.ndarray) -> tuple[np.ndarray, str]:
    """Values to color by: Z itself, or log10(1 + Z - min) when a few huge values would flatten the rest
    (Rosenbrock, Himmelblau); NaN/inf become gaps."""
    Z = np.where(np.isfinite(Z), Z, np.nan)
    if np.isnan(Z).all():
        return Z, "f"
    lo, med, hi = np.nanmin(Z), np.nanmedian(Z), np.nanmax(Z)
    if hi - lo > 50 * max(med - lo, 1e-12):
        return np.log10(1 + Z - lo), "log10(1 + f - min f)"
    return Z, "f"


def surface_figure(X: np.ndarray, Y: np.ndarray, Z: np.ndarray, critical: Sequence[dict] = (),
                   probe: tuple[float, float] | None = None, field: tuple[np.ndarray, ...] | None = None,
                   paths: dict[str, np.ndarray] | None = None, title: str = "", height: int = 460,
                   revision: str = "") -> go.Figure:
    """3-D surface (left) and contour map (right) of Z on the (X, Y) grid, with critical points (dicts with x, y,
    kind, f), a probe point, a gradient field (Xs, Ys, U, V: arrows of -grad) and descent paths {name: (T, 2)}."""
    C, clabel = display_z(Z)
    x, y = X[0], Y[:, 0]
    fig = make_subplots(rows=1, cols=2, specs=[[{"type": "scene"}, {"type": "xy"}]], column_widths=[0.5, 0.5],
                        horizontal_spacing=0.06)
    fig.add_trace(go.Surface(x=x, y=y, z=np.where(np.isfinite(Z), Z, np.nan), surfacecolor=C, colorscale="Viridis",
                             showscale=False, opacity=0.95, hovertemplate="x=%{x:.3f}<br>y=%{y:.3f}<br>f=%{z:.4g}"
                             "<extra></extra>", name="f"), row=1, col=1)
    fig.add_trace(go.Contour(x=x, y=y, z=C, colorscale="Viridis", ncontours=30, line=dict(width=0.5),
                             colorbar=dict(title=dict(text=clabel, side="right"), thickness=12),
                             hovertemplate="x=%{x:.3f}<br>y=%{y:.3f}<extra></extra>", name=clabel), row=1, col=2)
    zmin = np.nanmin(Z[np.isfinite(Z)]) if np.isfinite(Z).any() else 0.0
    for kind, (color, symbol) in KIND_STYLE.items():
        pts = [p for p in critical if p["kind"] == kind]
        if not pts:
            continue
        text = [f"{kind} ({p['x']:.3g}, {p['y']:.3g})<br>eigenvalues {p['eigenvalues'][0]:.3g}, "
                f"{p['eigenvalues'][1]:.3g}" for p in pts]
        fig.add_trace(go.Scatter(x=[p["x"] for p in pts], y=[p["y"] for p in pts], mode="markers", name=kind,
                                 marker=dict(color=color, symbol=symbol, size=11, line=dict(color="white", width=1)),
                                 text=text, hovertemplate="%{text}<extra></extra>", legendgroup=kind), row=1, col=2)
        fig.add_trace(go.Scatter3d(x=[p["x"] for p in pts], y=[p["y"] for p in pts], z=[p.get("f", zmin) for p in pts],
                                   mode="markers", marker=dict(color=color, size=5), showlegend=False,
                                   legendgroup=kind, text=text, hovertemplate="%{text}<extra></extra>"), row=1, col=1)
    if field is not None:
        fx, fy, u, v = field
        segs_x, segs_y = [], []
        for a, b, du, dv in zip(fx.ravel(), fy.ravel(), u.ravel(), v.ravel()):
            segs_x += [a, a + du, None]
            segs_y += [b, b + dv, None]
        for trace in _cased_lines(segs_x, segs_y, _("-gradient"), 1.2):
            fig.add_trace(trace, row=1, col=2)
        fig.add_trace(go.Scatter(x=(fx + u).ravel(), y=(fy + v).ravel(), mode="markers", showlegend=False,
                                 marker=dict(color=LINE, size=5, line=dict(color=CASING, width=1)), hoverinfo="skip",
                                 legendgroup=f"cased:{_('-gradient')}"), row=1, col=2)
    for i, (name, path) in enumerate((paths or {}).items()):
        color = PALETTE[(i + 3) % 10]
        fig.add_trace(go.Scatter(x=path[:, 0], y=path[:, 1], mode="lines+markers", name=name,
                                 line=dict(color=color, width=2), marker=dict(size=3)), row=1, col=2)
    if probe is not None:
        fig.add_trace(go.Scatter(x=[probe[0]], y=[probe[1]], mode="markers", name=_("probe point"),
                                 marker=dict(color="#e377c2", size=13, symbol="star", line=dict(color="black", width=1))),
                      row=1, col=2)
    fig.update_xaxes(title_text="x", range=[x[0], x[-1]], row=1, col=2)
    fig.update_yaxes(title_text="y", range=[y[0], y[-1]], row=1, col=2)
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      # Seen from a little farther and flatter than a cube: the front corner's tick labels
                      # (x, y and z meet there) stay inside the scene and apart.
                      scene=dict(xaxis_title="x", yaxis_title="y", zaxis_title="f", aspectmode="manual",
                                 aspectratio=dict(x=1, y=1, z=0.75), camera=dict(eye=dict(x=1.75, y=-1.75, z=1.1)),
                                 zaxis=dict(range=_z_range(Z))),
                      legend=dict(orientation="h"), uirevision=revision or title)
    return fig


def _z_range(Z: np.ndarray) -> list[float] | None:
    """The z axis with room below the surface: its lowest tick label then sits above the corner where the x and y
    axes' labels meet (they overlapped there)."""
    finite = Z[np.isfinite(Z)]
    if not finite.size:
        return None
    lo, hi = float(finite.min()), float(finite.max())
    span = hi - lo or 1.0
    return [lo - 0.15 * span, hi + 0.02 * span]


def descent_curves(history: Sequence[dict], height: int = 300) -> go.Figure:
    """Loss (left) and gradient norm on a log axis (right) of the descent and the escape step over steps."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=[_("loss f(x_t)"), _("gradient norm (log scale)")])
    for i, (key, name) in enumerate([("", _("a hair off the saddle")), ("escape_", _("escape step"))]):
        rows = [r for r in history if f"{key}loss" in r]
        if not rows:
            continue
        steps = [r["step"] for r in rows]
        style = dict(color=PALETTE[(i + 3) % 10], width=2)
        fig.add_trace(go.Scatter(x=steps, y=[r[f"{key}loss"] for r in rows], name=name, line=style,
                                 legendgroup=name), row=1, col=1)
        fig.add_trace(go.Scatter(x=steps, y=[max(r[f"{key}grad_norm"], 1e-16) for r in rows], name=name, line=style,
                                 showlegend=False, legendgroup=name), row=1, col=2)
    fig.update_yaxes(type="log", exponentformat="power", row=1, col=2)
    fig.update_xaxes(title_text=_("step"))
    fig.update_layout(height=height, margin=dict(l=40, r=10, t=40, b=40), legend=dict(orientation="h"))
    return fig


def curves_figure(curves: Sequence[tuple[str, np.ndarray, np.ndarray, Sequence[tuple[float, str, float]]]],
                  height: int = 280) -> go.Figure:
    """1-D curves side by side: (title, xs, ys, critical points as (x, kind, f''))."""
    fig = make_subplots(rows=1, cols=len(curves), subplot_titles=[c[0] for c in curves])
    for col, (_unused, xs, ys, crit) in enumerate(curves, start=1):
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=PALETTE[0], width=2), showlegend=False),
                      row=1, col=col)
        for x0, kind, h in crit:
            color, symbol = KIND_STYLE[kind]
            fig.add_trace(go.Scatter(x=[x0], y=[np.interp(x0, xs, ys)], mode="markers+text", text=[kind],
                                     textposition="top center", marker=dict(color=color, symbol=symbol, size=11),
                                     hovertemplate=f"{kind} at x=%{{x:.4f}}<br>f''={h:.3g}<extra></extra>",
                                     showlegend=False), row=1, col=col)
        fig.update_xaxes(title_text="x", row=1, col=col)
    fig.update_layout(height=height, margin=dict(l=40, r=10, t=40, b=40))
    return fig


def loss_pair_figure(surfaces: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], paths: dict[str, np.ndarray],
                     height: int = 420) -> go.Figure:
    """Side-by-side 3-D surfaces ({title: (X, Y, Z)}) with a descent path on each ({title: (T, 3) x, y, f})."""
    titles = list(surfaces)
    fig = make_subplots(rows=1, cols=len(titles), specs=[[{"type": "scene"}] * len(titles)], subplot_titles=titles,
                        horizontal_spacing=0.02)
    for col, t in enumerate(titles, start=1):
        X, Y, Z = surfaces[t]
        fig.add_trace(go.Surface(x=X[0], y=Y[:, 0], z=Z, colorscale="Viridis", showscale=False, opacity=0.9,
                                 hovertemplate="w1=%{x:.2f}<br>w2=%{y:.2f}<br>loss=%{z:.3f}<extra></extra>"),
                      row=1, col=col)
        p = paths.get(t)
        if p is not None:
            fig.add_trace(go.Scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="lines+markers", showlegend=False,
                                       line=dict(color="#d62728", width=5), marker=dict(size=2, color="#d62728")),
                          row=1, col=col)
    scene = dict(xaxis_title="w1", yaxis_title="w2", zaxis_title=_("loss"), aspectmode="cube",
                 camera=dict(eye=dict(x=1.6, y=-1.4, z=0.9)))
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=40, b=0), scene=scene, scene2=scene, uirevision="pair")
    return fig


def loss_steps_figure(losses: dict[str, np.ndarray], grad_norms: dict[str, np.ndarray], height: int = 280) -> go.Figure:
    """Loss and gradient norm over steps, one line per loss function."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=[_("loss"), _("gradient norm (log scale)")])
    for i, name in enumerate(losses):
        style = dict(color=PALETTE[i % 10], width=2)
        fig.add_trace(go.Scatter(y=losses[name], name=name, line=style, legendgroup=name), row=1, col=1)
        fig.add_trace(go.Scatter(y=np.maximum(grad_norms[name], 1e-16), name=name, line=style, showlegend=False,
                                 legendgroup=name), row=1, col=2)
    fig.update_yaxes(type="log", exponentformat="power", row=1, col=2)
    fig.update_xaxes(title_text=_("step"))
    fig.update_layout(height=height, margin=dict(l=40, r=10, t=40, b=40), legend=dict(orientation="h"))
    return fig


def contour_paths_figure(X: np.ndarray, Y: np.ndarray, Z: np.ndarray, critical: Sequence[dict],
                         paths: dict[str, np.ndarray], pivot: np.ndarray | None = None,
                         eigenvectors: Sequence[Sequence[float]] | None = None, eigenvalues: Sequence[float] = (),
                         height: int = 420) -> go.Figure:
    """Contour map with descent paths {name: (T, 2)}, the critical points and a saddle's eigenvectors."""
    C, clabel = display_z(Z)
    x, y = X[0], Y[:, 0]
    fig = go.Figure(go.Contour(x=x, y=y, z=C, colorscale="Viridis", ncontours=30, line=dict(width=0.5),
                               colorbar=dict(title=dict(text=clabel, side="right"), thickness=12), hoverinfo="skip"))
    for kind, (color, symbol) in KIND_STYLE.items():
        pts = [p for p in critical if p["kind"] == kind]
        if pts:
            fig.add_trace(go.Scatter(x=[p["x"] for p in pts], y=[p["y"] for p in pts], mode="markers", name=kind,
                                     marker=dict(color=color, symbol=symbol, size=10, line=dict(color="white", width=1))))
    if pivot is not None and eigenvectors is not None:
        L = 0.15 * max(x[-1] - x[0], y[-1] - y[0])
        for v, lam, dash in zip(eigenvectors, eigenvalues, ("solid", "dot")):
            fig.add_traces(_cased_lines([pivot[0] - L * v[0], pivot[0] + L * v[0]],
                                        [pivot[1] - L * v[1], pivot[1] + L * v[1]],
                                        _("eigenvector, λ = {lam:.3g}").format(lam=lam), 3, dash))
    for i, (name, path) in enumerate(paths.items()):
        fig.add_trace(go.Scatter(x=path[:, 0], y=path[:, 1], mode="lines+markers", name=name,
                                 line=dict(color=PALETTE[(i + 3) % 10], width=2), marker=dict(size=3)))
        fig.add_trace(go.Scatter(x=path[-1:, 0], y=path[-1:, 1], mode="markers", showlegend=False,
                                 marker=dict(color=PALETTE[(i + 3) % 10], size=12, line=dict(color="black", width=1))))
    fig.update_xaxes(title_text="x", range=[x[0], x[-1]])
    fig.update_yaxes(title_text="y", range=[y[0], y[-1]])
    fig.update_layout(height=height, margin=dict(l=40, r=10, t=30, b=40), legend=dict(orientation="h"),
                      uirevision="paths")
    return fig
