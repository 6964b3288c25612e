"""Figures of the recurrent-networks page: curves per cell, gate heatmaps, hidden paths, gradients per step,
k-step-ahead predictions. Pure functions: arrays in, plotly figures out; one color per cell everywhere."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from ..i18n import N_, _

CELL_COLORS = {"rnn": "#d62728", "gru": "#1f77b4", "lstm": "#2ca02c"}
CELL_LABELS = {"rnn": "plain RNN", "gru": "GRU", "lstm": "LSTM"}
K_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
_MARGIN = dict(l=50, r=10, t=50, b=40)


def _line(history: Sequence[dict], key: str, **kwargs) -> go.Scatter:
    """A line of metric ``key`` over steps (rows without it, e.g. after a cell diverged, are skipped)."""
    rows = [r for r in history if key in r]
    return go.Scatter(x=[r["step"] for r in rows], y=[r[key] for r in rows], mode="lines", **kwargs)


def _log_dtick(values) -> str | int:
    """Log-axis ticks that do not crowd a small chart: 1, 2 and 5 per decade over at most three decades (plotly's
    default labelled every digit, 1, 9, 8, ..., 2, on a chart 200 px tall), else one tick per decade."""
    pos = [float(v) for v in values if v is not None and math.isfinite(float(v)) and float(v) > 0]
    if not pos:
        return "D2"
    return "D2" if math.log10(max(pos) / min(pos)) <= 3 else 1


def training_curves(history: Sequence[dict], cells: Sequence[str], classify: bool, baseline: float | None = None,
                    clip: float = 0.0, height: int = 330) -> go.Figure:
    """Test (solid) and train (dotted) loss per cell, test accuracy (recall) and the gradient norm before clipping.

    ``baseline``: the loss of the trivial answer (dashed line); ``clip``: the clipping threshold (0 = off).
    """
    titles = [_("loss (cross-entropy)") if classify else _("loss (MSE)")] + ([_("test accuracy")] if classify else []) \
        + [_("gradient norm before clipping (max per snapshot)")]
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles)
    for c in cells:
        color, name = CELL_COLORS[c], CELL_LABELS[c]
        fig.add_trace(_line(history, f"test_loss_{c}", name=_("{name} test").format(name=name), legendgroup=c,
                            line=dict(color=color, width=2.5)), row=1, col=1)
        fig.add_trace(_line(history, f"train_loss_{c}", name=_("{name} train").format(name=name), legendgroup=c,
                            line=dict(color=color, width=1, dash="dot")), row=1, col=1)
        if classify:
            fig.add_trace(_line(history, f"test_acc_{c}", name=_("{name} accuracy").format(name=name), legendgroup=c, showlegend=False,
                                line=dict(color=color, width=2.5)), row=1, col=2)
        fig.add_trace(_line(history, f"grad_norm_{c}", name=_("{name} gradient norm").format(name=name), legendgroup=c,
                            showlegend=False, line=dict(color=color, width=1.5)), row=1, col=len(titles))
    # Reference levels as legend entries (hline annotations land in the wrong place on log axes).
    steps = [history[0]["step"], history[-1]["step"]] if history else [0, 1]
    if baseline is not None:
        fig.add_trace(go.Scatter(x=steps, y=[baseline] * 2, mode="lines", name=_("trivial answer"),
                                 line=dict(color="gray", dash="dash", width=1.5)), row=1, col=1)
    if clip > 0:
        fig.add_trace(go.Scatter(x=steps, y=[clip] * 2, mode="lines", name=_("clipping threshold {clip:g}").format(clip=clip),
                                 line=dict(color="black", dash="dash", width=1.5)), row=1, col=len(titles))
    for col, prefix in ((1, ("test_loss_", "train_loss_")), (len(titles), ("grad_norm_",))):
        values = [v for r in history for k, v in r.items() if k.startswith(prefix)]
        fig.update_yaxes(type="log", exponentformat="power", dtick=_log_dtick(values), row=1, col=col)
    if classify:
        fig.update_yaxes(range=[0, 1.02], tickformat=".0%", row=1, col=2)
    fig.update_xaxes(title_text=_("step"))
    fig.update_layout(height=height, margin=_MARGIN, legend=dict(orientation="h", y=-0.22))
    return fig


def gate_heatmaps(gates: Mapping[str, np.ndarray], cell: str, marks: Sequence[int] = (), height: int = 300
                  ) -> go.Figure:
    """One heatmap per gate, (T, H) values in [0, 1]: time left to right, hidden unit top to bottom.

    ``marks``: time steps to flag (the marked numbers of the adding problem, the symbol to recall).
    """
    names = list(gates)
    fig = make_subplots(rows=1, cols=len(names), horizontal_spacing=0.04,
                        subplot_titles=[f"{CELL_LABELS[cell]} {n} gate" for n in names])
    for i, n in enumerate(names, start=1):
        z = np.asarray(gates[n]).T  # (H, T)
        fig.add_trace(go.Heatmap(z=z, x=np.arange(z.shape[1]), zmin=0, zmax=1, colorscale="Viridis",
                                 showscale=i == len(names), colorbar=dict(title=_("gate"), len=0.9),
                                 hovertemplate=f"{n} gate<br>step %{{x}}<br>unit %{{y}}<br>%{{z:.2f}}<extra></extra>"),
                      row=1, col=i)
        fig.update_xaxes(title_text=_("time step t"), row=1, col=i)
        fig.update_yaxes(autorange="reversed", showticklabels=i == 1, row=1, col=i)
    fig.update_yaxes(title_text=_("hidden unit"), row=1, col=1)
    # One batch of shapes: add_vline per subplot costs milliseconds each.
    fig.layout.shapes = [dict(type="line", x0=t, x1=t, y0=0, y1=1, xref=f"x{i if i > 1 else ''}",
                              yref=f"y{i if i > 1 else ''} domain", line=dict(color="white", width=1.5, dash="dot"))
                         for i in range(1, len(names) + 1) for t in marks]
    fig.update_layout(height=height, margin=_MARGIN)
    return fig


def hidden_paths(paths: Mapping[str, np.ndarray], ratios: Mapping[str, np.ndarray], marks: Sequence[int] = (),
                 height: int = 340) -> go.Figure:
    """Each cell's hidden state H_t of one sequence in the plane of its top two principal components.

    The path is colored by time (dark = early); ``marks`` are ringed.
    """
    cells = list(paths)
    fig = make_subplots(rows=1, cols=len(cells), subplot_titles=[
        f"{CELL_LABELS[c]} (PCA {100 * float(np.sum(ratios[c])):.0f}% of variance)" for c in cells])
    for i, c in enumerate(cells, start=1):
        p = np.asarray(paths[c])
        t = np.arange(len(p))
        fig.add_trace(go.Scatter(x=p[:, 0], y=p[:, 1], mode="lines", line=dict(color="lightgray", width=1),
                                 showlegend=False, hoverinfo="skip"), row=1, col=i)
        fig.add_trace(go.Scatter(x=p[:, 0], y=p[:, 1], mode="markers", showlegend=False, customdata=t,
                                 marker=dict(color=t, colorscale="Plasma", size=7, showscale=i == len(cells),
                                             colorbar=dict(title="t", len=0.9)),
                                 hovertemplate="t = %{customdata}<extra></extra>"), row=1, col=i)
        m = [int(s) for s in marks if 0 <= s < len(p)]
        if m:
            fig.add_trace(go.Scatter(x=p[m, 0], y=p[m, 1], mode="markers", showlegend=False,
                                     marker=dict(size=15, color="rgba(0,0,0,0)", line=dict(color="black", width=2)),
                                     hovertemplate="marked step<extra></extra>"), row=1, col=i)
        fig.update_xaxes(title_text=_("PC 1"), row=1, col=i)
        fig.update_yaxes(title_text=_("PC 2") if i == 1 else None, row=1, col=i)
    fig.update_layout(height=height, margin=_MARGIN)
    return fig


def input_gradient_figure(grads: Mapping[str, np.ndarray], marks: Sequence[int] = (), height: int = 320
                          ) -> go.Figure:
    """Mean ||∂ loss / ∂ x_t|| per input step t (log scale), one line per cell: vanishing gradients fall to the left."""
    fig = go.Figure()
    for c, g in grads.items():
        g = np.maximum(np.asarray(g, dtype=float), 1e-30)
        fig.add_trace(go.Scatter(x=np.arange(len(g)), y=g, mode="lines+markers", name=CELL_LABELS[c],
                                 line=dict(color=CELL_COLORS[c], width=2), marker=dict(size=4)))
    for t in marks:
        fig.add_vline(x=t, line=dict(color="gray", dash="dot"))
    fig.update_layout(title=_("Gradient of the loss with respect to each input step"), height=height, margin=_MARGIN,
                      xaxis_title=_("input step t"), yaxis_title=_("mean ‖∂ℓ/∂x_t‖"), yaxis_type="log",
                      yaxis_exponentformat="power",
                      legend=dict(orientation="h", y=-0.25))
    return fig


def sequence_figure(x: np.ndarray, task: str, marks: Sequence[int] = (), height: int = 220) -> go.Figure:
    """The chosen input sequence: the numbers (marked ones in red) or the symbol at each step."""
    x = np.asarray(x)
    t = np.arange(len(x))
    if task == "adding":
        colors = np.where(x[:, 1] > 0, "#d62728", "#bbbbbb")
        fig = go.Figure(go.Bar(x=t, y=x[:, 0], marker_color=colors, showlegend=False,
                               hovertemplate="t %{x}: %{y:.3f}<extra></extra>"))
        m = np.flatnonzero(x[:, 1] > 0)
        fig.add_trace(go.Scatter(x=m, y=[1.12] * len(m), mode="markers+text", text=[f"{x[i, 0]:.2f}" for i in m],
                                 textposition="middle right", marker=dict(symbol="triangle-down", size=12,
                                                                          color="#d62728"), showlegend=False,
                                 hovertemplate="marked: t %{x}<extra></extra>"))
        fig.update_yaxes(range=[0, 1.25])
        title, ytitle = _("Input: numbers, the two marked ones in red (▼)"), _("value")
    elif task == "recall":
        sym = x[:, :-1].argmax(1).astype(float)
        sym[x[:, -1] > 0] = np.nan
        colors = ["#d62728" if i in marks else "#7f7f7f" for i in t]
        fig = go.Figure(go.Scatter(x=t, y=sym, mode="markers", marker=dict(color=colors, size=9)))
        title, ytitle = "Input: symbol to recall (red), distractors, then the query", "symbol"
    else:
        fig = go.Figure(go.Scatter(x=t, y=x[:, 0], mode="lines+markers"))
        title, ytitle = "Input window", "x"
    fig.update_layout(title=title, height=height, margin=dict(l=50, r=10, t=40, b=30), xaxis_title=_("time step t"),
                      yaxis_title=ytitle)
    return fig


def kstep_figure(time: np.ndarray, series: np.ndarray, table: np.ndarray, tau: int, ks: Sequence[int],
                 n_train: int, cell: str, height: int = 360) -> go.Figure:
    """The noisy sine and the k-step-ahead predictions of one cell (d2l figure 9.1), train/test boundary dashed."""
    fig = go.Figure(go.Scatter(x=time, y=series, mode="lines", name=_("data"), line=dict(color="#cccccc", width=1)))
    rows = np.arange(len(table))
    for i, k in enumerate(ks):
        idx = rows + tau + k - 1
        fig.add_trace(go.Scatter(x=time[idx], y=table[:, tau + k - 1], mode="lines", name=_("{k}-step").format(k=k),
                                 line=dict(color=K_COLORS[i % len(K_COLORS)], width=1.8)))
    fig.add_vline(x=time[n_train + tau - 1], line=dict(color="gray", dash="dash"), annotation_text="test →")
    fig.update_layout(title=_("{value}: k-step-ahead predictions fed with their own outputs").format(value=CELL_LABELS[cell]),
                      height=height, margin=_MARGIN, xaxis_title=_("time t"), yaxis_title="x",
                      legend=dict(orientation="h", y=-0.2))
    return fig


def kstep_error_figure(mse: Mapping[str, Mapping[int, float]], noise_var: float | None = None, height: int = 360
                       ) -> go.Figure:
    """Test MSE against the number of steps k predicted from the model's own outputs, one line per cell."""
    fig = go.Figure()
    for c, per_k in mse.items():
        ks = sorted(per_k)
        fig.add_trace(go.Scatter(x=ks, y=[per_k[k] for k in ks], mode="lines+markers", name=CELL_LABELS[c],
                                 line=dict(color=CELL_COLORS[c], width=2.5), marker=dict(size=9)))
    if noise_var is not None:  # a trace, not add_hline: its annotation lands in the wrong place on log axes
        all_k = sorted({k for per_k in mse.values() for k in per_k}) or [1]
        fig.add_trace(go.Scatter(x=[all_k[0], all_k[-1]], y=[noise_var] * 2, mode="lines", name=_("noise variance (best possible)"),
                                 line=dict(color="gray", dash="dash", width=1.5)))
    fig.update_layout(title=_("Error grows with the prediction horizon"), height=height, margin=_MARGIN,
                      xaxis=dict(title=_("steps ahead k"), type="log", tickvals=[1, 4, 16, 64, 256]),
                      yaxis=dict(title=_("test MSE"), type="log"), legend=dict(orientation="h", y=-0.25))
    return fig
