"""Figures of the self-supervised learning page: live metrics of one or two runs, spectrum, PCA, augmented pairs."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..i18n import _
from .common import PALETTE, embedding_scatter, image_grid

RUN_STYLES = (dict(color=PALETTE[0], dash="solid"), dict(color=PALETTE[3], dash="dash"))
BASELINE = dict(color="#7f7f7f", dash="dot", width=1.5)


def ssl_curves(history: Sequence[dict], labels: Sequence[str], output_std_ref: float,
               knn_random: float | None = None, knn_pixels: float | None = None, height: int = 330) -> go.Figure:
    """SimSiam Fig. 2 live: loss, output std (vs 1/sqrt(d)), kNN accuracy (vs baselines), and the collapse-aware
    effective rank (``spread_rank``: effective rank x total variance of z/||z||, near 0 for a collapse).

    Run i's metrics are ``key`` (i = 0) or ``b_key`` (i = 1); all runs share the step axis.
    """
    panels = [(_("loss"), "loss"), (_("output std of z/‖z‖"), "output_std"), (_("kNN accuracy (test)"), "knn_acc"),
              (_("effective rank × variance of z/‖z‖"), "spread_rank")]
    fig = make_subplots(rows=1, cols=4, subplot_titles=[t for t, _unused in panels], horizontal_spacing=0.06)
    for col, (_unused, key) in enumerate(panels, start=1):
        for i, label in enumerate(labels):
            k = ("b_" if i else "") + key
            rows = [r for r in history if k in r]
            fig.add_trace(go.Scatter(x=[r["step"] for r in rows], y=[r[k] for r in rows], mode="lines", name=label,
                                     line=dict(width=2.5, **RUN_STYLES[i]), legendgroup=label,
                                     showlegend=col == 1), row=1, col=col)
        fig.update_xaxes(title_text=_("step"), row=1, col=col)
    last_step = max([r["step"] for r in history] + [1])

    def hline(y, col, text):
        fig.add_trace(go.Scatter(x=[0, last_step], y=[y, y], mode="lines", line=BASELINE, name=text,
                                 hovertemplate=f"{text}: {y:.3f}<extra></extra>", showlegend=False), row=1, col=col)
        fig.add_annotation(x=0, y=y, text=text, showarrow=False, xanchor="left", yanchor="bottom",
                           font=dict(size=11, color="#555"), row=1, col=col)

    hline(output_std_ref, 2, "1/√d")
    fig.update_yaxes(range=[0, 1.3 * output_std_ref], row=1, col=2)
    if knn_random is not None:
        hline(knn_random, 3, _("random encoder"))
    if knn_pixels is not None:
        hline(knn_pixels, 3, _("raw pixels"))
    if all(r.get(k, 0) <= 0.2 for r in history for k in ("loss", "b_loss")):  # cosine losses: fixed [-1, 0]
        fig.update_yaxes(range=[-1.05, 0.2], row=1, col=1)
    fig.update_layout(height=height, margin=dict(l=40, r=10, t=40, b=40), legend=dict(orientation="h", y=-0.28))
    return fig


def spectrum_figure(spectra: Sequence[tuple[str, np.ndarray]], height: int = 320) -> go.Figure:
    """Singular values (log scale) of the normalized embeddings, one line per (label, values)."""
    fig = go.Figure()
    styles = [dict(color="#aaaaaa", dash="dot"), *RUN_STYLES, dict(color=PALETTE[2], dash="dot")]
    for i, (label, s) in enumerate(spectra):
        s = np.maximum(np.asarray(s, dtype=np.float64), 1e-8)
        fig.add_trace(go.Scatter(x=np.arange(1, len(s) + 1), y=s, mode="lines+markers", name=label,
                                 line=dict(width=2, **styles[i % len(styles)]), marker=dict(size=4)))
    fig.update_yaxes(type="log", title_text=_("singular value"))
    fig.update_xaxes(title_text=_("index (sorted)"))
    fig.update_layout(title=_("Singular values of the embeddings (dimensional collapse = a falling tail)"),
                      height=height, margin=dict(l=50, r=10, t=40, b=40), legend=dict(orientation="h", y=-0.3))
    return fig


def pca_figure(coords: np.ndarray, labels: np.ndarray, title: str, class_names: Sequence[str] | None = None,
               height: int = 380) -> go.Figure:
    """PCA of the L2-normalized outputs on FIXED axes, so a collapsing cloud visibly shrinks to a point."""
    fig = embedding_scatter(coords, labels, title, class_names=class_names, height=height)
    fig.update_xaxes(range=[-1.05, 1.05], title_text=_("PC 1"), zeroline=False)
    fig.update_yaxes(range=[-1.05, 1.05], title_text=_("PC 2"), zeroline=False, scaleanchor="x")
    fig.update_layout(dragmode="zoom")
    return fig


def pairs_figure(originals: np.ndarray, view1: np.ndarray, view2: np.ndarray) -> go.Figure:
    """Columns of (original, view 1, view 2): each column is one positive pair."""
    n = len(originals)
    images = np.concatenate([originals, view1, view2])
    titles = [f"#{i}" for i in range(n)] + [_("view 1")] * n + [_("view 2")] * n
    return image_grid(images, titles, ncols=n, tile_px=80,
                      title=_("Positive pairs: each column is one digit (top) and two random views of it"))


def negatives_figure(history: Sequence[dict], labels: Sequence[str], height: int = 300) -> go.Figure:
    """Where a contrastive run's negatives come from (MoCo's queue, InstDisc's bank), per run over steps:
    consistency (mean cosine of a stored negative with what the network that made it outputs now for the same
    input), mean age in steps, and (MoCo) the key encoder's drift ||θk - θq|| / ||θq||."""
    panels = [(_("consistency of stored negatives"), "neg_consistency"),
              (_("mean age of negatives (steps)"), "neg_age"), (_("key encoder drift (relative)"), "key_drift")]
    fig = make_subplots(rows=1, cols=3, subplot_titles=[t for t, _unused in panels], horizontal_spacing=0.08)
    for col, (_unused, key) in enumerate(panels, start=1):
        for i, label in enumerate(labels):
            k = ("b_" if i else "") + key
            rows = [r for r in history if k in r and np.isfinite(r[k])]
            fig.add_trace(go.Scatter(x=[r["step"] for r in rows], y=[r[k] for r in rows], mode="lines", name=label,
                                     line=dict(width=2.5, **RUN_STYLES[i]), legendgroup=label,
                                     showlegend=col == 1), row=1, col=col)
        fig.update_xaxes(title_text=_("step"), row=1, col=col)
    fig.update_yaxes(range=[-0.05, 1.05], row=1, col=1)
    fig.update_layout(height=height, margin=dict(l=40, r=10, t=40, b=40), legend=dict(orientation="h", y=-0.3))
    return fig


def queue_sweep_figure(rows: Sequence[dict], knn_random: float | None = None, height: int = 300) -> go.Figure:
    """kNN accuracy against the number of negatives K (log axis), one marker per seed and the mean per K."""
    fig = go.Figure()
    ks = sorted({r["queue_size"] for r in rows})
    fig.add_trace(go.Scatter(x=[r["queue_size"] for r in rows], y=[r["knn_acc"] for r in rows], mode="markers",
                             name=_("one seed"), marker=dict(size=7, color=PALETTE[0], opacity=0.45)))
    means = [float(np.mean([r["knn_acc"] for r in rows if r["queue_size"] == k])) for k in ks]
    fig.add_trace(go.Scatter(x=ks, y=means, mode="lines+markers", name=_("mean over seeds"),
                             line=dict(width=2.5, color=PALETTE[0]), marker=dict(size=9)))
    if knn_random is not None and ks:
        fig.add_trace(go.Scatter(x=[ks[0], ks[-1]], y=[knn_random, knn_random], mode="lines", line=BASELINE,
                                 name=_("random encoder")))
    fig.update_xaxes(type="log", title_text=_("queue size K"), tickvals=ks, ticktext=[str(k) for k in ks])
    fig.update_yaxes(title_text=_("kNN accuracy (test)"), tickformat=".0%")
    fig.update_layout(title=_("MoCo: kNN accuracy against the queue size K"), height=height,
                      margin=dict(l=50, r=10, t=40, b=40), legend=dict(orientation="h", y=-0.3))
    return fig
