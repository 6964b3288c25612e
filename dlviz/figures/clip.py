"""Figures of the CLIP page: live curves, the similarity matrix with its images, the joint PCA, caption rankings."""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..i18n import N_, _
from .common import PALETTE

BASELINE = dict(color="#7f7f7f", dash="dot", width=1.5)
# Legend names, marked N_() and shown with _() (the prompt in quotes is English data: the model reads English).
ACCURACIES = (("zs_acc", N_("zero-shot: 'a photo of the number …'")), ("zs_ensemble", N_("zero-shot: ensemble of 5")),
              ("zs_bare", N_("zero-shot: bare word")), ("probe_acc", N_("linear probe")),
              ("r_at_5", N_("retrieval R@5")))


def rgb_tiles(images: np.ndarray, scale: int = 1, gap: int = 2) -> np.ndarray:
    """(N, 3, H, W) floats in [0, 1] -> one (H*scale, N*(W*scale+gap)-gap, 3) uint8 strip, grey gutters."""
    images = np.asarray(images, dtype=np.float32)
    n, _unused, h, w = images.shape
    tiles = np.clip(images, 0, 1).transpose(0, 2, 3, 1).repeat(scale, 1).repeat(scale, 2)
    out = np.full((h * scale, n * (w * scale + gap) - gap, 3), 0.85, dtype=np.float32)
    for i, t in enumerate(tiles):
        out[:, i * (w * scale + gap):i * (w * scale + gap) + w * scale] = t
    return (out * 255).astype(np.uint8)


def shorten(text: str, width: int = 24) -> str:
    """``text`` cut to at most ``width`` characters at a word boundary, with "…" (whole words: the model's)."""
    if len(text) <= width:
        return text
    ends = [m.end() for m in re.finditer(r"\w+", text) if m.end() <= width - 1]
    return text[:ends[-1] if ends else width - 1] + "…"


def clip_curves(history: Sequence[dict], height: int = 340) -> go.Figure:
    """Loss (with chance log N), the accuracies of zero-shot / probe / retrieval, and the learned temperature."""
    fig = make_subplots(rows=1, cols=3,
                        subplot_titles=[_("symmetric loss"), _("held-out accuracy"), _("temperature τ")],
                        column_widths=[0.3, 0.45, 0.25], horizontal_spacing=0.07)
    rows = [r for r in history if "loss" in r]
    last = max([r["step"] for r in history] + [1])
    fig.add_trace(go.Scatter(x=[r["step"] for r in rows], y=[r["loss"] for r in rows], mode="lines+markers",
                             marker=dict(size=5), name=_("loss"),
                             line=dict(color=PALETTE[6], width=2.5), showlegend=False), row=1, col=1)
    if history and "loss_chance" in history[-1]:
        c = history[-1]["loss_chance"]
        fig.add_trace(go.Scatter(x=[0, last], y=[c, c], mode="lines", line=BASELINE, showlegend=False,
                                 hovertemplate=_("chance log N = {c:.2f}").format(c=c) + "<extra></extra>"),
                      row=1, col=1)
        fig.add_annotation(x=0, y=c, text=_("chance: log N"), showarrow=False, xanchor="left", yanchor="bottom",
                           font=dict(size=11, color="#555"), row=1, col=1)
    for i, (k, label) in enumerate(ACCURACIES):
        pts = [r for r in history if k in r]
        fig.add_trace(go.Scatter(x=[r["step"] for r in pts], y=[r[k] for r in pts], mode="lines", name=_(label),
                                 line=dict(color=PALETTE[i], width=2.5 if i < 2 else 2,
                                           dash="dash" if k in ("probe_acc", "r_at_5") else "solid")),
                      row=1, col=2)
    fig.add_trace(go.Scatter(x=[0, last], y=[0.1, 0.1], mode="lines", line=BASELINE, showlegend=False,
                             hovertemplate=_("chance 10%") + "<extra></extra>"), row=1, col=2)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", row=1, col=2)
    pts = [r for r in history if "temperature" in r]
    fig.add_trace(go.Scatter(x=[r["step"] for r in pts], y=[r["temperature"] for r in pts], mode="lines",
                             name=_("τ = 1 / logit scale"), line=dict(color=PALETTE[7], width=2.5),
                             showlegend=False),
                  row=1, col=3)
    fig.add_trace(go.Scatter(x=[0, last], y=[0.01, 0.01], mode="lines", line=BASELINE, showlegend=False,
                             hovertemplate=_("clip: τ ≥ 0.01 (scale ≤ 100)") + "<extra></extra>"), row=1, col=3)
    fig.update_yaxes(type="log", range=[np.log10(0.008), np.log10(1.3)], row=1, col=3)
    for col in (1, 2, 3):
        fig.update_xaxes(title_text=_("step"), row=1, col=col)
    fig.update_layout(height=height, margin=dict(l=40, r=10, t=40, b=40),
                      legend=dict(orientation="h", y=-0.3, x=0.1, font=dict(size=12)))
    return fig


def similarity_figure(sim: np.ndarray, image_labels: Sequence[str], captions: Sequence[str], scale: float,
                      height: int = 360) -> go.Figure:
    """The (n, n) cosine similarity of n images (columns, named by their attributes) and their n captions (rows).

    Training pushes the diagonal (each image with its own caption) up and the rest down; the loss sees these
    cosines times the logit scale.
    """
    n = len(sim)
    short = [shorten(c) for c in captions]  # the full caption is in the hover
    cols = list(image_labels) if len(set(image_labels)) == n else [f"{lab} ({i})" for i, lab in enumerate(image_labels)]
    fig = go.Figure(go.Heatmap(z=np.asarray(sim).T, x=cols, y=short, colorscale="Viridis", zmin=-0.2, zmax=1.0,
                               colorbar=dict(thickness=10, len=0.9, tickfont=dict(size=11)),
                               customdata=np.array(captions, dtype=object)[:, None].repeat(n, 1),
                               hovertemplate=_("image %{x}<br>caption: %{customdata}<br>cos %{z:.2f}")
                               + "<extra></extra>"))
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=11))
    fig.update_xaxes(tickfont=dict(size=12), title_text=_("test image (its digit)"), type="category")
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=40, b=10),
                      title=dict(text=_("images × captions: cosine (logits = cos × {scale:.0f})").format(scale=scale),
                                 font=dict(size=14)))
    return fig


def joint_pca_figure(img_xy: np.ndarray, digits: np.ndarray, txt_xy: np.ndarray, words: Sequence[str],
                     height: int = 420) -> go.Figure:
    """One PCA of image embeddings (dots, coloured by digit) and the 10 class prompts (labelled stars)."""
    fig = go.Figure()
    for k in range(10):
        m = digits == k
        fig.add_trace(go.Scatter(x=img_xy[m, 0], y=img_xy[m, 1], mode="markers", name=words[k],
                                 marker=dict(color=PALETTE[k], size=6, opacity=0.6), legendgroup=str(k)))
        fig.add_trace(go.Scatter(x=txt_xy[k:k + 1, 0], y=txt_xy[k:k + 1, 1], mode="markers+text",
                                 text=[f"“{words[k]}”"], textposition="top center", showlegend=False,
                                 marker=dict(color=PALETTE[k], size=16, symbol="star", line=dict(color="black", width=1)),
                                 legendgroup=str(k), hovertemplate=_("prompt: {prompt}").format(
                                     prompt=f"a photo of the number {words[k]}") + "<extra></extra>"))
    fig.update_layout(title=_("One PCA of both: test images (dots) and class prompts (stars)"), height=height,
                      margin=dict(l=10, r=10, t=40, b=10), legend=dict(title=_("digit"), font=dict(size=11)))
    fig.update_xaxes(title_text=_("PC 1"), zeroline=False)
    fig.update_yaxes(title_text=_("PC 2"), zeroline=False)
    return fig


def ranking_figure(labels: Sequence[str], probs: np.ndarray, highlight: int | None = None,
                   title: str = "", height: int = 320) -> go.Figure:
    """Horizontal bars: probability of each caption (softmax of logit scale × cosine), best at the top."""
    order = np.argsort(-np.asarray(probs))
    colours = [PALETTE[2] if i == highlight else PALETTE[0] for i in order]
    fig = go.Figure(go.Bar(x=np.asarray(probs)[order], y=[labels[i] for i in order], orientation="h",
                           marker_color=colours, text=[f"{probs[i]:.0%}" for i in order], textposition="outside",
                           hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=12))
    fig.update_xaxes(range=[0, 1.15], tickformat=".0%")
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=30))
    return fig


def template_bars(metrics: dict, templates: Sequence[str], height: int = 300) -> go.Figure:
    """Zero-shot accuracy of the bare word, each held-out template, and their ensemble."""
    # The templates are English data (what the model reads); the two other rows are translated.
    names = ["{word} " + _("(bare)")] + list(templates) + [_("ensemble of the 5")]
    vals = [metrics.get("zs_bare", 0.0)] + [metrics.get(f"zs_t{i}", 0.0) for i in range(len(templates))] \
        + [metrics.get("zs_ensemble", 0.0)]
    colours = [PALETTE[2]] + [PALETTE[0]] * len(templates) + [PALETTE[1]]
    fig = go.Figure(go.Bar(x=vals, y=names, orientation="h", marker_color=colours,
                           text=[f"{v:.1%}" for v in vals], textposition="outside"))
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=12))
    fig.update_xaxes(range=[0, 1.12], tickformat=".0%")
    fig.update_layout(title=_("Zero-shot accuracy by prompt (held-out test images)"), height=height,
                      margin=dict(l=10, r=10, t=40, b=30))
    return fig


__all__ = ["shorten", "clip_curves", "similarity_figure", "joint_pca_figure", "ranking_figure", "template_bars", "rgb_tiles"]
