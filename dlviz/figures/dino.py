"""DINO figures: attention heads over the image with their 60%-mass masks, collapse entropies, IoU comparisons."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from .common import PALETTE, metric_curves
from ..i18n import N_, _

# Legend names of the metrics drawn by iou_curves (metric_curves shows a key with "_" as spaces, translated).
METRIC_NAMES = (N_("attn iou best"), N_("attn iou mean"), N_("student iou best"), N_("attn iou random init"),
                N_("brightness iou"), N_("attn mass best"), N_("object share"))

# Viridis anchors (what the DINO visualization and most papers use for attention).
_VIRIDIS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float32)
MASK_RGB = np.array([255, 80, 40], dtype=np.float32)  # kept patches are tinted orange
OBJECT_RGB = np.array([40, 200, 255], dtype=np.float32)  # ground-truth object outline, cyan


def _viridis(v: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> RGB (..., 3) float in [0, 255]."""
    x = np.clip(v, 0, 1) * (len(_VIRIDIS) - 1)
    lo = np.floor(x).astype(int).clip(0, len(_VIRIDIS) - 2)
    f = (x - lo)[..., None]
    return _VIRIDIS[lo] * (1 - f) + _VIRIDIS[lo + 1] * f


def _gray(img: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] or (H, W, 3) -> (H, W, 3) float in [0, 255]."""
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.clip(img, 0, 1) * 255


def _upsample(m: np.ndarray, h: int, w: int) -> np.ndarray:
    """Nearest upsampling of a (gh, gw) patch map to (h, w) pixels."""
    return np.repeat(np.repeat(m, h // m.shape[0], axis=0), w // m.shape[1], axis=1)


def _outline(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a boolean mask."""
    m = mask.astype(bool)
    inner = m.copy()
    inner[1:-1, 1:-1] = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return m & ~inner


def attention_tiles(image: np.ndarray, maps: np.ndarray, keep_masks: np.ndarray,
                    object_mask: np.ndarray | None = None) -> list[np.ndarray]:
    """RGB tiles for one image: the image (object outlined), each head's attention, each head's kept mask.

    image (H, W) or (H, W, 3) in [0, 1]; maps (heads, gh, gw); keep_masks (heads, gh, gw) bool.
    """
    h, w = image.shape[:2]
    base = _gray(image)
    first = base.copy()
    if object_mask is not None:
        first[_outline(object_mask)] = OBJECT_RGB
    tiles = [first]
    for a in maps:
        a = a / (a.max() + 1e-12)
        tiles.append(_viridis(_upsample(a, h, w)))
    for k in keep_masks:
        up = _upsample(k.astype(np.float32), h, w)[..., None]
        tiles.append(base * (1 - 0.55 * up) + MASK_RGB * 0.55 * up)
    return tiles


def attention_figure(images: np.ndarray, maps: np.ndarray, keep_masks: np.ndarray,
                     object_masks: np.ndarray | None = None, title: str = "", tile_px: int = 96,
                     row_labels: Sequence[str] | None = None) -> go.Figure:
    """One row per image: image | head 1..H attention (viridis) | head 1..H mask keeping the attention mass.

    images (N, H, W[, 3]) in [0, 1]; maps (N, heads, gh, gw); keep_masks (N, heads, gh, gw) bool.
    Drawn as one RGB image (fast enough to redraw live).
    """
    n, heads = maps.shape[:2]
    h, w = images.shape[1:3]
    gap = max(2, h // 16)
    cols = 1 + 2 * heads
    canvas = np.full((n * (h + gap) - gap, cols * (w + gap) - gap, 3), 255.0, dtype=np.float32)
    for r in range(n):
        tiles = attention_tiles(images[r], maps[r], keep_masks[r],
                                None if object_masks is None else object_masks[r])
        for c, t in enumerate(tiles):
            canvas[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = t
    fig = go.Figure(go.Image(z=canvas.astype(np.uint8), hoverinfo="skip"))
    # Two lines: on one, "image (object outlined)" ran into the next tile's label.
    names = [_("image") + ("<br>" + _("(outlined)") if object_masks is not None else "")]
    names += [_("head {n}").format(n=i + 1) for i in range(heads)]
    names += [_("mask {n}").format(n=i + 1) for i in range(heads)]
    fig.layout.annotations = [dict(x=c * (w + gap) + (w - 1) / 2, y=-gap, text=t, showarrow=False,
                                   yanchor="bottom", font=dict(size=11)) for c, t in enumerate(names)]
    if row_labels:
        fig.layout.annotations += tuple(dict(x=-gap, y=r * (h + gap) + h / 2, text=t, showarrow=False,
                                             xanchor="right", font=dict(size=11)) for r, t in enumerate(row_labels))
    # Tiles are at most ``tile_px`` wide, and the whole canvas fits a ~900 px wide page column: with 6 heads (13 tiles)
    # the page width decides, and a height from tile_px alone left a blank band above the image.
    scale = min(tile_px / w, 900 / canvas.shape[1])
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, range=[canvas.shape[0] - 0.5, -h * 0.35])
    fig.update_layout(title=title, height=int(canvas.shape[0] * scale * 1.15) + 80,
                      margin=dict(l=60 if row_labels else 5, r=5, t=50 if title else 20, b=5),
                      meta={"heads": heads, "images": n})
    return fig


def entropy_figure(history: Sequence[dict], log_k: float, height: int = 320) -> go.Figure:
    """Teacher entropies over training with the two collapse levels: 0 (one dimension) and log K (uniform)."""
    fig = go.Figure()
    for i, (key, name) in enumerate((("teacher_entropy", _("entropy of the mean output")),
                                     ("teacher_sample_entropy", _("mean per-image entropy")))):
        rows = [r for r in history if key in r]
        fig.add_trace(go.Scatter(x=[r["step"] for r in rows], y=[r[key] for r in rows], mode="lines", name=name,
                                 line=dict(color=PALETTE[i], width=2)))
    fig.add_hline(y=log_k, line_dash="dash", line_color="gray", annotation_text="log K: uniform",
                  annotation_position="bottom right")
    fig.add_hline(y=0, line_dash="dash", line_color="gray", annotation_text="0: one dimension",
                  annotation_position="top right")
    fig.update_layout(title=_("Collapse monitor: the teacher's output entropy (nats)"), height=height,
                      xaxis_title=_("step"), yaxis=dict(range=[-0.2, log_k * 1.08]),
                      margin=dict(l=40, r=10, t=40, b=40), legend=dict(orientation="h", y=-0.25))
    return fig


def iou_curves(history: Sequence[dict], height: int = 320) -> go.Figure:
    """IoU with the object over training (teacher best head / mean over heads, student, the two baselines), the
    best head's share of attention on the object against the object's share of the patches, and the loss."""
    history = [h for h in history if h.get("eval_step", h.get("step")) == h.get("step")]  # measured rows only
    return metric_curves(history, [(_("IoU with the object (60% mask)"),
                                    ["attn_iou_best", "attn_iou_mean", "student_iou_best",
                                     "attn_iou_random_init", "brightness_iou"]),
                                   (_("Attention on the object (best head)"), ["attn_mass_best", "object_share"]),
                                   (_("DINO loss"), ["loss"])], height=height)


def iou_bars(values: dict[str, float], head_iou: Sequence[float] | None = None) -> go.Figure:
    """Bars comparing IoUs (DINO vs baselines), and the IoU of each teacher head."""
    names, vals = list(values), [values[k] for k in values]
    fig = go.Figure(go.Bar(x=names, y=vals, marker_color=[PALETTE[i % 10] for i in range(len(names))],
                           text=[f"{v:.2f}" for v in vals], textposition="outside", name=_("IoU")))
    if head_iou is not None:
        fig.add_trace(go.Bar(x=[_("head {n}").format(n=i + 1) for i in range(len(head_iou))], y=list(head_iou),
                             marker_color="#bbbbbb", text=[f"{v:.2f}" for v in head_iou], textposition="outside",
                             name=_("per head (teacher)")))
    fig.update_layout(title=_("IoU with the object mask (mean over held-out images)"), height=340, showlegend=False,
                      yaxis=dict(range=[0, 1.05], title=_("IoU")), margin=dict(l=40, r=10, t=40, b=40))
    return fig
