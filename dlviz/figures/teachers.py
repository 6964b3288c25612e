"""Figures of the teacher-and-student page: softened distributions, class similarity, student curves, T sweep, EMA."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..i18n import _
from .common import PALETTE, heatmap

KD, HARD, TEACHER, EMA = PALETTE[0], PALETTE[1], PALETTE[6], PALETTE[2]


def _softmax(z: np.ndarray, t: float) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64) / t
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def softened_figure(logits: np.ndarray, temperatures: Sequence[float], label: int,
                    classes: Sequence[str] = tuple("0123456789"), height: int = 330) -> go.Figure:
    """Grouped bars: softmax(z/T) of one digit's teacher logits (C,) at each temperature; the true class marked."""
    fig = go.Figure()
    colors = (PALETTE[0], PALETTE[4], PALETTE[3], PALETTE[5])
    for i, t in enumerate(temperatures):
        q = _softmax(logits, t)
        fig.add_trace(go.Bar(x=list(classes), y=q, name=f"T = {t:g}", marker_color=colors[i % len(colors)],
                             hovertemplate="class %{x}: %{y:.3f}<extra>" + f"T = {t:g}" + "</extra>"))
    fig.add_annotation(x=classes[label], y=1.0, yref="paper", text=_("true class"), showarrow=False,
                       yanchor="bottom", font=dict(size=12))
    fig.update_layout(barmode="group", height=height, margin=dict(l=40, r=10, t=50, b=60),
                      title=_("The teacher's softmax(z/T) for this digit"), xaxis_title=_("class"),
                      yaxis=dict(title=_("probability"), range=[0, 1.05]), legend=dict(orientation="h", y=-0.3))
    fig.update_xaxes(type="category")
    return fig


def similarity_figure(matrix: np.ndarray, temperature: float, classes: Sequence[str] = tuple("0123456789"),
                      height: int = 360) -> go.Figure:
    """(C, C) mean soft target per true class with the diagonal blanked: which wrong classes the teacher finds alike."""
    m = np.array(matrix, dtype=np.float64)
    np.fill_diagonal(m, np.nan)
    fig = heatmap(np.round(m, 3), x=list(classes), y=list(classes), colorscale="Blues", text=False, height=height,
                  title=_("Mean soft target at T = {t:g}, true class off").format(t=temperature),
                  x_title=_("class the teacher gives mass to"), y_title=_("true class"))
    fig.update_traces(hovertemplate="true %{y} → %{x}: %{z:.3f}<extra></extra>", hoverongaps=False)
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    return fig


def distill_curves(history: Sequence[dict], teacher_acc: float, height: int = 300) -> go.Figure:
    """Left: test accuracy of the distilled and the hard-label student (teacher as a dashed line); right: losses."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=[_("test accuracy"), _("training loss")])
    series = [("kd_acc", _("distilled student"), KD, 1), ("hard_acc", _("hard labels only"), HARD, 1),
              ("kd_loss", _("distilled student"), KD, 2), ("hard_loss", _("hard labels only"), HARD, 2)]
    for key, name, color, col in series:
        rows = [r for r in history if key in r]
        fig.add_trace(go.Scatter(x=[r["step"] for r in rows], y=[r[key] for r in rows], mode="lines", name=name,
                                 line=dict(color=color, width=2.5), legendgroup=name, showlegend=col == 1),
                      row=1, col=col)
    steps = [r["step"] for r in history] or [0]
    fig.add_trace(go.Scatter(x=[min(steps), max(steps)], y=[teacher_acc] * 2, mode="lines", name=_("teacher"),
                             line=dict(color=TEACHER, dash="dash", width=1.5)), row=1, col=1)
    fig.update_xaxes(title_text=_("step"))
    fig.update_yaxes(range=[_floor(history, ("kd_acc", "hard_acc"), teacher_acc), 1.0], row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_layout(height=height, margin=dict(l=40, r=10, t=40, b=60), legend=dict(orientation="h", y=-0.33))
    return fig


def _floor(history: Sequence[dict], keys: Sequence[str], other: float) -> float:
    """A lower y limit that shows the gap between the curves: 5 points under the lowest value after the first
    quarter of the steps (the climb from chance would squash the rest), at least 0."""
    end = history[-1]["step"] if history else 0
    vals = [r[k] for r in history if r["step"] >= 0.25 * end and r["step"] > 0 for k in keys if k in r]
    return max(0.0, min(vals + [other]) - 0.05) if vals else 0.0


def sweep_figure(rows: Sequence[dict], height: int = 300) -> go.Figure:
    """Distilled student's test accuracy against T (log axis), the hard-label twin as a dashed line."""
    t = [r["temperature"] for r in rows]
    fig = go.Figure(go.Scatter(x=t, y=[r["kd_acc"] for r in rows], mode="lines+markers", name=_("distilled student"),
                               line=dict(color=KD, width=2.5)))
    if rows:
        fig.add_trace(go.Scatter(x=[min(t), max(t)], y=[rows[0]["hard_acc"]] * 2, mode="lines",
                                 name=_("hard labels only"), line=dict(color=HARD, dash="dash")))
    fig.update_layout(height=height, margin=dict(l=40, r=10, t=40, b=40), title=_("Temperature sweep"),
                      xaxis=dict(title="T", type="log", tickvals=t), yaxis_title=_("test accuracy"),
                      legend=dict(orientation="h", y=-0.35))
    return fig


def ema_curves(history: Sequence[dict], height: int = 300) -> go.Figure:
    """Left: test accuracy of the student and its EMA, the last quarter of the steps shaded; right: test loss."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=[_("test accuracy"), _("test loss")])
    for key, name, color in (("raw", _("student (raw weights)"), HARD), ("ema", _("EMA of its weights"), EMA)):
        for col, metric in ((1, f"{key}_acc"), (2, f"{key}_test_loss")):
            rows = [r for r in history if metric in r]
            fig.add_trace(go.Scatter(x=[r["step"] for r in rows], y=[r[metric] for r in rows], mode="lines",
                                     name=name, line=dict(color=color, width=2.5 if key == "ema" else 1.8),
                                     legendgroup=key, showlegend=col == 1), row=1, col=col)
    if history and history[-1]["step"] > 0:
        end = history[-1]["step"]
        for col in (1, 2):
            fig.add_vrect(x0=0.75 * end, x1=end, fillcolor="#999999", opacity=0.15, line_width=0, row=1, col=col)
    fig.update_xaxes(title_text=_("step"))
    fig.update_yaxes(range=[_floor(history, ("raw_acc", "ema_acc"), 1.0), 1.0], row=1, col=1)
    fig.update_layout(height=height, margin=dict(l=40, r=10, t=40, b=60), legend=dict(orientation="h", y=-0.33))
    return fig
