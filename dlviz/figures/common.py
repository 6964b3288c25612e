"""Figures every page uses: metric curves, heatmaps, image grids, embeddings."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..i18n import N_, _

# Colour-blind safe: Okabe & Ito's eight (yellow left out: invisible on white), then two of Paul Tol's.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#882255",
           "#44AA99", "#999933")
# Latin text first, then the CJK fonts a Chinese desktop has (Linux, macOS, Windows), so Chinese never shows as boxes.
FONT_FAMILY = ('"Open Sans", "Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", '
               '"WenQuanYi Micro Hei", sans-serif')

# Legend names of the metrics the pages plot (a metric key with "_" as spaces); translated where drawn.
METRIC_NAMES = (N_("train loss"), N_("test loss"), N_("train acc"), N_("test acc"), N_("loss"), N_("accuracy"),
                N_("d loss"), N_("g loss"), N_("d real"), N_("d fake"), N_("diversity"), N_("class entropy"),
                N_("confidence"), N_("diag mass"), N_("kl divergence"), N_("seq acc"), N_("token acc"),
                N_("mse learned"), N_("mse nonparametric"), N_("step"), N_("iteration"))


def metric_name(key: str) -> str:
    """A metric key as a legend shows it: ``test_acc`` -> "test acc", translated when the catalogue has it."""
    return _(key.replace("_", " "))


def metric_curves(history: Sequence[dict], panels: Sequence[tuple[str, Sequence[str]]], x: str = "step",
                  log_y: Sequence[bool] | None = None, height: int = 320) -> go.Figure:
    """One panel per (title, metric keys) with a line per key over ``x``; rows lacking a key are skipped."""
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[t for t, _ in panels])
    n = 0  # one colour per series across the panels: the shared legend names each line once, unambiguously
    for col, (_title, keys) in enumerate(panels, start=1):
        for k in keys:
            rows = [r for r in history if k in r]
            fig.add_trace(go.Scatter(x=[r[x] for r in rows], y=[r[k] for r in rows], mode="lines",
                                     name=metric_name(k), line=dict(color=PALETTE[n % 10], width=2.5),
                                     legendgroup=str(col)), row=1, col=col)
            n += 1
        fig.update_xaxes(title_text=metric_name(x), row=1, col=col)
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


def montage(images: np.ndarray, ncols: int, gap: int = 1) -> np.ndarray:
    """Tile (N, H, W) images into one (rows*(H+gap), cols*(W+gap)) array with NaN gutters (drawn blank)."""
    images = np.asarray(images, dtype=np.float32)
    n, h, w = images.shape
    nrows = int(np.ceil(n / ncols))
    out = np.full((nrows * (h + gap) - gap, ncols * (w + gap) - gap), np.nan, dtype=np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, ncols)
        out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = img
    return out


def image_grid(images: np.ndarray, titles: Sequence[str] | None = None, ncols: int = 8, title: str = "",
               colorscale: str = "gray_r", symmetric: bool = False, tile_px: int = 90,
               normalize_each: bool | None = None) -> go.Figure:
    """Small multiples of (N, H, W) images as one heatmap (fast to build and send, so it can redraw live).

    ``symmetric`` centers a red-blue scale on 0 (filters). ``normalize_each`` (default: on for symmetric or
    feature maps) scales every tile to its own range so faint maps stay visible; titles sit above each tile.
    """
    images = np.asarray(images, dtype=np.float32)
    n, h, w = images.shape
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    if normalize_each is None:
        normalize_each = symmetric
    if normalize_each:
        lim = np.abs(images).reshape(n, -1).max(1).reshape(n, 1, 1)
        images = images / np.where(lim > 0, lim, 1.0)
    gap = max(1, h // 6) if titles is None else max(2, h // 3)
    z = montage(images, ncols, gap)
    zmax = 1.0 if normalize_each else float(np.nanmax(np.abs(z))) or 1.0
    fig = go.Figure(go.Heatmap(z=z, colorscale="RdBu_r" if symmetric else colorscale, showscale=False,
                               zmin=-zmax if symmetric else None, zmax=zmax if symmetric else None,
                               hoverongaps=False, hovertemplate="%{z:.3f}<extra></extra>"))
    # One batch of annotations: add_annotation per tile costs milliseconds each.
    fig.layout.annotations = [dict(x=(i % ncols) * (w + gap) + (w - 1) / 2, y=(i // ncols) * (h + gap) - 0.6,
                                   text=t, showarrow=False, yanchor="bottom", font=dict(size=11))
                              for i, t in enumerate(titles or ())]
    fig.update_xaxes(visible=False, range=[-0.5, z.shape[1] - 0.5])
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", range=[z.shape[0] - 0.5, -gap])
    width_px = max(ncols * tile_px, 120)
    fig.update_layout(title=title, height=int(nrows * tile_px * (h + gap) / (w + gap)) + 70 + (12 if titles else 0),
                      margin=dict(l=5, r=5, t=50 if title else 10, b=5), plot_bgcolor="rgba(0,0,0,0)",
                      meta={"tiles": n, "width_px": width_px})
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
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10), legend_title=_("class"),
                      dragmode="select" if coords.shape[1] == 2 else None)
    return fig
