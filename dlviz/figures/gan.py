"""Figures of the GAN page: the 2-D plane (GAN Lab's view), the 1-D picture of the original paper, digit diversity."""

from __future__ import annotations

from typing import Collection

import numpy as np
import plotly.graph_objects as go
from ..i18n import N_, _

# GAN Lab's colors: green = real, purple = fake (a pair colour-blind readers tell apart). The discriminator's field
# stays light, pale purple through grey (D = 1/2) to pale green, so that samples of either colour, each with a dark
# outline, stand out on any part of it (tests/test_figures_theme.py checks the contrast).
REAL, FAKE = "#178a3f", "#7b3294"
OUTLINE = "#1a1a1a"
D_SCALE = [[0.0, "#c3a6d2"], [0.25, "#d6cadb"], [0.5, "#dadada"], [0.75, "#c8e3c2"], [1.0, "#a3d69e"]]
SAMPLE_MARKER = dict(size=7, line=dict(color=OUTLINE, width=1))
GRADIENT = "#d95f02"  # orange: neither a sample's colour nor the field's
LAYERS = ("discriminator", "real", "generated", "gradients", "manifold")


def _segments(start: np.ndarray, end: np.ndarray) -> tuple[list, list]:
    """x and y lists drawing one line per (start, end) pair in a single trace (None breaks the line)."""
    xs, ys = [], []
    for (x0, y0), (x1, y1) in zip(start, end):
        xs += [x0, x1, None]
        ys += [y0, y1, None]
    return xs, ys


def gan_plane_figure(a: dict, probability: bool = True, layers: Collection[str] = LAYERS, title: str = "",
                     height: int = 560) -> go.Figure:
    """The 2-D GAN at one snapshot (arrays of :func:`dlviz.demos.gan.run`).

    Layers: D's output over the plane (``probability``: colors fixed to [0, 1] with grey at 1/2, else the
    critic's values), real and generated samples, arrows -grad_x of G's loss on generated samples (scaled so
    the longest is 8% of the frame; lengths are relative within a frame), the image of a noise-space grid,
    and circles of 3 standard deviations around each mode.
    """
    x0, x1, y0, y1 = a["bounds"]
    fig = go.Figure()
    if "discriminator" in layers:
        z = a["d_grid"]
        fig.add_trace(go.Heatmap(
            x=a["grid_x"], y=a["grid_y"], z=z, colorscale=D_SCALE, zsmooth="best",
            zmin=0.0 if probability else None, zmax=1.0 if probability else None,
            zmid=None if probability else float(np.median(z)), name="D(x)",
            colorbar=dict(title="D(x)" if probability else _("critic f(x)"), len=0.8, thickness=12),
            hovertemplate="x=%{x:.2f}, y=%{y:.2f}<br>" + ("D" if probability else "f") + "=%{z:.3f}<extra></extra>"))
    if a.get("modes") is not None:
        t = np.linspace(0, 2 * np.pi, 25)
        r = 3 * a["mode_std"]
        xs = np.concatenate([np.r_[cx + r * np.cos(t), np.nan] for cx, _unused in a["modes"]])
        ys = np.concatenate([np.r_[cy + r * np.sin(t), np.nan] for _unused, cy in a["modes"]])
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="#444", width=1, dash="dot"),
                                 name=_("mode ± 3σ"), hoverinfo="skip"))
    if "manifold" in layers:
        m = a["manifold"]
        fig.add_trace(go.Scatter(x=m[:, 0], y=m[:, 1], mode="lines", line=dict(color=FAKE, width=1),
                                 opacity=0.45, name=_("G(noise grid)"), hoverinfo="skip", connectgaps=False))
    if "real" in layers:
        fig.add_trace(go.Scatter(x=a["real"][:, 0], y=a["real"][:, 1], mode="markers", name=_("real"),
                                 marker=dict(color=REAL, **SAMPLE_MARKER)))
    if "generated" in layers:
        fig.add_trace(go.Scatter(x=a["fake"][:, 0], y=a["fake"][:, 1], mode="markers", name=_("generated"),
                                 marker=dict(color=FAKE, **SAMPLE_MARKER)))
    if "gradients" in layers:
        vec = np.asarray(a["arrow_vec"], dtype=np.float64)
        norm = np.linalg.norm(vec, axis=1).max()
        scale = 0.08 * max(x1 - x0, y1 - y0) / norm if norm > 0 else 0.0
        start = a["arrow_from"]
        end = start + scale * vec
        xs, ys = _segments(start, end)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=GRADIENT, width=2),
                                 name=_("G's gradient"), hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=end[:, 0], y=end[:, 1], mode="markers", showlegend=False, hoverinfo="skip",
                                 marker=dict(color=GRADIENT, size=4, symbol="circle")))
    fig.update_xaxes(range=[x0, x1], constrain="domain", title_text="x₁")
    fig.update_yaxes(range=[y0, y1], scaleanchor="x", scaleratio=1, constrain="domain", title_text="x₂")
    fig.update_layout(title=title, height=height, margin=dict(l=40, r=10, t=40 if title else 10, b=40),
                      legend=dict(orientation="h"), plot_bgcolor="white", uirevision="plane")
    return fig


def gan_1d_figure(a: dict, data_mean: float, title: str = "", height: int = 440) -> go.Figure:
    """Goodfellow et al. (2014), Figure 1: data density (black dots), generator density (green), D(x) (blue
    dashed, right axis) and, below, how G maps a uniform z line onto x."""
    x = a["x"]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=a["data_pdf"], mode="lines", name=_("data density p_data(x)"),
                             line=dict(color="black", width=3, dash="dot")))
    fig.add_trace(go.Scatter(x=x, y=a["gen_pdf"], mode="lines", name=_("generator density p_g(x)"),
                             line=dict(color=REAL, width=2.5)))
    fig.add_trace(go.Scatter(x=x, y=a["d_x"], mode="lines", name="D(x)", yaxis="y2",
                             line=dict(color="#1f5fbf", width=2.5, dash="dash")))
    fig.add_trace(go.Scatter(x=[x[0], x[-1]], y=[0.5, 0.5], mode="lines", yaxis="y2", name="D = 1/2",
                             line=dict(color="#1f5fbf", width=1, dash="dot"), hoverinfo="skip"))
    top = max(float(np.max(a["data_pdf"])), 0.2) * 1.15
    z_row = -0.35 * top
    xs, ys = _segments(np.stack([a["z"], np.full_like(a["z"], z_row)], 1),
                       np.stack([a["g_z"], np.zeros_like(a["g_z"])], 1))
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="z → G(z)", line=dict(color="#888", width=1)))
    fig.add_trace(go.Scatter(x=[-1, 1], y=[z_row, z_row], mode="lines", line=dict(color="black", width=2),
                             showlegend=False, hoverinfo="skip"))
    fig.add_annotation(x=1.05, y=z_row, text="z ~ U(-1, 1)", showarrow=False, xanchor="left")
    fig.update_layout(title=title, height=height, margin=dict(l=50, r=50, t=40 if title else 10, b=40),
                      xaxis=dict(title="x", range=[float(x[0]), float(x[-1])]),
                      yaxis=dict(title=_("density"), range=[z_row * 1.15, top]),
                      yaxis2=dict(title="D(x)", overlaying="y", side="right", range=[-0.35 * 1.15, 1.0],
                                  showgrid=False, tickvals=[0, 0.5, 1]),
                      legend=dict(orientation="h"), plot_bgcolor="white")
    return fig


def class_histogram_figure(hist: np.ndarray, entropy: float, height: int = 300) -> go.Figure:
    """Share of generated digits per predicted class; the dotted line is a uniform 1/10."""
    hist = np.asarray(hist)
    fig = go.Figure(go.Bar(x=[str(i) for i in range(len(hist))], y=hist, marker_color=FAKE,
                           hovertemplate="class %{x}: %{y:.1%}<extra></extra>"))
    fig.add_hline(y=1 / len(hist), line=dict(color="#444", dash="dot"))
    fig.update_layout(title=_("Predicted classes · entropy of the mean prediction {entropy:.2f} (max {log:.2f})").format(entropy=entropy, log=np.log(len(hist))),
                      height=height, margin=dict(l=40, r=10, t=40, b=40), xaxis_title=_("predicted class"),
                      yaxis=dict(title=_("share"), tickformat=".0%", range=[0, max(0.5, float(hist.max()) * 1.1)]))
    return fig
