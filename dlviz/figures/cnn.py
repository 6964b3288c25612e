"""Figures of the CNN page: confusion matrix, misclassified gallery, feature maps."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from .common import heatmap, image_grid
from ..i18n import N_, _


def confusion_figure(cm: np.ndarray, classes: Sequence[str]) -> go.Figure:
    """Counts of (true, predicted) test labels; the diagonal is what the network gets right."""
    acc = np.trace(cm) / max(cm.sum(), 1)
    fig = heatmap(cm, x=list(classes), y=list(classes), title=_("Confusion matrix (test accuracy {acc:.1%})").format(acc=acc),
                  x_title=_("predicted"), y_title=_("true"), text=True, height=380)
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    return fig


def misclassified_figure(images: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str],
                         limit: int = 24) -> go.Figure | None:
    """The first ``limit`` test images the network gets wrong, titled "pred → true"; None when there are none."""
    wrong = np.flatnonzero(np.asarray(y_true) != np.asarray(y_pred))[:limit]
    if len(wrong) == 0:
        return None
    titles = [f"{classes[y_pred[i]]} (true {classes[y_true[i]]})" for i in wrong]
    return image_grid(images[wrong], titles, ncols=12, tile_px=80,
                      title=_("Misclassified test images: {int} of {len}, predicted (true)").format(int=int((y_true != y_pred).sum()), len=len(y_true)))


def feature_maps_figure(maps: np.ndarray, layer: str) -> go.Figure:
    """Every channel of one layer's activation for one image, (C, H, W)."""
    return image_grid(maps, [f"{layer}[{c}]" for c in range(len(maps))], ncols=8, colorscale="Viridis",
                      tile_px=95, title=_("{layer}: {value} maps of {value2}x{value3}").format(
                                            layer=layer,
                                            value=maps.shape[0],
                                            value2=maps.shape[1],
                                            value3=maps.shape[2]))
