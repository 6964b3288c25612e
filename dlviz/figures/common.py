"""Figures every page uses: metric curves, heatmaps, image grids, embeddings."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
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
TEXT = "#262730"  # streamlit's text colour: titles, tick labels and legends dark, not the theme's light grey
CAPTION = "dlviz-caption"  # the name of an annotation whose size its figure chose (tile captions): kept by the theme

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
            # A line needs two points: a series of one or two (the first snapshots of a run) shows its markers.
            fig.add_trace(go.Scatter(x=[r[x] for r in rows], y=[r[k] for r in rows],
                                     mode="lines" if len(rows) > 2 else "lines+markers",
                                     name=metric_name(k), line=dict(color=PALETTE[n % 10], width=2.5)),
                          row=1, col=col)
            n += 1
        fig.update_xaxes(title_text=metric_name(x), row=1, col=col)
        if log_y and log_y[col - 1]:
            fig.update_yaxes(type="log", row=1, col=col)
    # A horizontal legend: the theme (dlviz.ui.show) puts it under the x axes' titles, in a band of its own.
    fig.update_layout(height=height, margin=dict(l=40, r=10, t=40, b=40), legend=dict(orientation="h"))
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


CAPTION_PX = 14  # tile captions: readable from the back, yet as wide as an 80 px tile ("8 (true 9)")


def caption_gap(w: int, tile_px: int, caption_px: int = CAPTION_PX) -> int:
    """Gutter (in image pixels) above tiles ``w`` pixels wide drawn ``tile_px`` screen px apart, tall enough for a
    line of captions at ``caption_px``: a tile and its gutter take ``tile_px``, so the gutter is
    gap * tile_px / (w + gap) screen px."""
    line = 1.3 * caption_px + 2
    return max(2, math.ceil(line * w / max(tile_px - line, 1.0)))


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
    gap = max(1, h // 6) if titles is None else caption_gap(w, tile_px)
    z = montage(images, ncols, gap)
    zmax = 1.0 if normalize_each else float(np.nanmax(np.abs(z))) or 1.0
    fig = go.Figure(go.Heatmap(z=z, colorscale="RdBu_r" if symmetric else colorscale, showscale=False,
                               zmin=-zmax if symmetric else None, zmax=zmax if symmetric else None,
                               hoverongaps=False, hovertemplate="%{z:.3f}<extra></extra>"))
    # One batch of annotations: add_annotation per tile costs milliseconds each.
    fig.layout.annotations = [dict(x=(i % ncols) * (w + gap) + (w - 1) / 2, y=(i // ncols) * (h + gap) - 0.6,
                                   text=t, showarrow=False, yanchor="bottom", name=CAPTION,
                                   font=dict(size=CAPTION_PX))
                              for i, t in enumerate(titles or ())]
    fig.update_xaxes(visible=False, range=[-0.5, z.shape[1] - 0.5])
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", range=[z.shape[0] - 0.5, -gap])
    width_px = max(ncols * tile_px, 120)
    fig.update_layout(title=title, height=int(nrows * tile_px * (h + gap) / (w + gap)) + 70 + (12 if titles else 0),
                      margin=dict(l=5, r=5, t=50 if title else 10, b=5), plot_bgcolor="white",
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


# -- colour checks -----------------------------------------------------------------------------------------------

def _rgb(color: str) -> tuple[float, float, float]:
    """"#rrggbb" or "rgb(r, g, b)" -> (r, g, b) in [0, 1]."""
    c = color.strip()
    if c.startswith("#"):
        return tuple(int(c[i:i + 2], 16) / 255 for i in (1, 3, 5))
    parts = re.findall(r"[\d.]+", c)[:3]
    return tuple(float(v) / 255 for v in parts)


def luminance(color: str) -> float:
    """WCAG relative luminance of a colour: 0 for black, 1 for white."""
    lin = [v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4 for v in _rgb(color)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two colours, 1 (the same) to 21 (black on white); 3 is enough for marks and lines."""
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def scale_colors(scale: Sequence[tuple[float, str]], n: int = 21) -> list[str]:
    """``n`` colours evenly spaced along a plotly colour scale [[0, "#..."], ..., [1, "#..."]], as "#rrggbb"."""
    stops = [(float(t), np.array(_rgb(c))) for t, c in scale]
    out = []
    for t in np.linspace(0, 1, n):
        j = next(i for i in range(1, len(stops)) if t <= stops[i][0] + 1e-12)
        (t0, c0), (t1, c1) = stops[j - 1], stops[j]
        c = c0 + (c1 - c0) * ((t - t0) / (t1 - t0) if t1 > t0 else 0.0)
        out.append("#" + "".join(f"{int(round(v * 255)):02x}" for v in c))
    return out


# -- the theme every figure gets from dlviz.ui.show ----------------------------------------------------------------

@dataclass(frozen=True)
class Theme:
    """Text sizes in px for one kind of screen."""
    name: str
    font: int  # axis titles, hover labels and anything else without its own size
    tick: int  # tick labels of 2-D axes and colorbars
    title: int  # the figure's title
    legend: int
    note: int  # subplot titles and other annotations
    scene_tick: int  # tick labels of 3-D axes (a scene is small: fewer, smaller ticks that do not overlap)
    scene_ticks: int  # at most this many ticks per 3-D axis


SCREEN = Theme("screen", font=13, tick=12, title=16, legend=13, note=14, scene_tick=11, scene_ticks=6)
# A projector at 1280x720 read from the back of a room: nothing below 14 px.
LECTURE = Theme("lecture", font=18, tick=16, title=20, legend=16, note=18, scene_tick=14, scene_ticks=4)
TYPICAL_PX = 540  # a chart's usual width at 1280x720 (half the main area): the height a legend adds is sized for it
PAD_PX = 6  # above the title, and below a legend
# Traces plotly leaves out of the legend unless asked (their colour scale explains them).
_NO_LEGEND = {"heatmap", "contour", "surface", "histogram2d", "histogram2dcontour", "image", "mesh3d", "cone",
              "streamtube", "volume", "isosurface", "densitymap", "choroplethmap", "choropleth"}
_MARKUP = re.compile(r"<[^>]+>")


def text_px(text: str, size: float) -> float:
    """A generous estimate of the width of ``text`` (plotly markup removed) at ``size`` px: capitals and wide
    letters 0.8 em, other Latin letters and digits 0.6 em, CJK and other wide glyphs 1 em."""
    plain = _MARKUP.sub("", str(text or ""))
    return sum(size * (1.0 if ord(c) >= 0x2E80 else 0.8 if c.isupper() or c in "mwMW" else 0.35 if c in " .,:;'|!il"
                       else 0.6) for c in plain)


_TOKEN = re.compile(r"[\u2E80-\uFFFF]|[^\s\u2E80-\uFFFF]+\s*|\s+")


def wrap_text(text: str, size: float, width_px: float) -> str:
    """``text`` broken into lines (plotly's ``<br>``) no wider than ``width_px`` at ``size`` px, at spaces (or
    between CJK characters); text that already has line breaks or markup is left as it is. Plotly never wraps a
    title itself: a long one runs off the figure."""
    if not text or "<" in str(text) or text_px(text, size) <= width_px:
        return text
    lines, line = [], ""
    for token in _TOKEN.findall(str(text)):
        if line.strip() and text_px(line + token.rstrip(), size) > width_px:
            lines.append(line.rstrip())
            line = token.lstrip()
        else:
            line += token
    return "<br>".join(lines + [line.rstrip()])


def _lines(text) -> int:
    return str(text).count("<br>") + 1 if text else 0


def row_px(size: int) -> int:
    """Height of one line of text at ``size`` px (a legend row is as tall, plotly measured: 24 px at 16 px)."""
    return math.ceil(1.3 * size) + 3


def legend_entries(fig: go.Figure) -> list[str]:
    """The names plotly lists in the figure's legend (empty when it shows none)."""
    return _legend_names([t.to_plotly_json() for t in fig.data], fig.layout.to_plotly_json())


def _legend_names(traces: list[dict], layout: dict) -> list[str]:
    names = [t.get("name") or f"trace {i}" for i, t in enumerate(traces) if t.get("visible") is not False
             and (t["showlegend"] if t.get("showlegend") is not None else t.get("type") not in _NO_LEGEND)]
    names += [s.get("name") or "shape" for s in layout.get("shapes") or () if s.get("showlegend")]
    shown = layout.get("showlegend")
    return names if shown or (shown is None and len(names) > 1) else []


def legend_rows(names: Sequence[str], size: int, width_px: float = TYPICAL_PX) -> int:
    """Rows of a horizontal legend of ``names`` at ``size`` px in a plot area ``width_px`` wide, packed as plotly
    does: entries of their own widths on one row when they fit, else a grid of the widest entry's width."""
    widths = [40 + text_px(n, size) + 5 for n in names]
    if not widths or sum(widths) < width_px:
        return len(widths) and 1
    return math.ceil(len(widths) / max(1, int(width_px // max(widths))))


def _is_subplot_title(a: dict) -> bool:
    """An annotation set on top of a plot area (make_subplots' titles): it needs a band of the top margin."""
    return (a.get("name") != CAPTION and str(a.get("yref", "")).endswith(("paper", "domain"))
            and a.get("yanchor") == "bottom" and (a.get("y") or 0) >= 0.98 and not a.get("showarrow", True))


def _opaque(color) -> bool:
    c = str(color or "").replace(" ", "").lower()
    return bool(c) and c not in ("transparent", "rgba(0,0,0,0)") and not (c.startswith("rgba(") and c.endswith(",0)"))


_SCENE_TRACES = {"scatter3d", "surface", "mesh3d", "cone", "streamtube", "volume", "isosurface"}
_NOT_CARTESIAN = _SCENE_TRACES | {"pie", "sunburst", "treemap", "icicle", "funnelarea", "sankey", "table", "parcoords",
                                  "parcats", "scatterpolar", "scatterpolargl", "barpolar", "scattergeo", "choropleth",
                                  "scattermap", "choroplethmap", "densitymap", "scatterternary", "indicator"}
_AXIS = re.compile(r"^[xy]axis\d*$")
_SCENE = re.compile(r"^scene\d*$")


def apply_theme(fig: go.Figure, lecture: bool) -> go.Figure:
    """Restyle ``fig`` in place for the screen (``lecture``: a projector) and return it: the one place that decides
    text sizes and colours, the palette, and where titles and legends go.

    Nothing is left to guesses about text widths where a guess could make text collide: plotly itself stacks what
    it measures. A horizontal legend is anchored to the bottom of the figure, so plotly adds its band under the x
    axes' tick labels and title (it adds a container-anchored legend's band to the room the axes take); a vertical
    one stays on the right unless a colour bar is there. The title, wrapped to the chart's usual width, is anchored
    to the top; subplot titles and the labels of an x axis drawn on top get bands under it. Backgrounds are opaque
    (a redrawn chart covers the one it replaces, see dlviz.ui.show). Applying it again (a figure shown twice, or in
    the other mode) starts from the figure's own height. The figure is read as plain JSON and changed by one update
    of its layout: plotly's property-by-property API took 55-75 ms a figure, on every live redraw.
    """
    theme = LECTURE if lecture else SCREEN
    lay = fig.layout.to_plotly_json()
    meta = lay.get("meta") if isinstance(lay.get("meta"), dict) else ({} if lay.get("meta") is None else None)
    base_height = (meta or {}).get("dlviz_height", lay.get("height") or 450)
    if meta is not None and meta.get("dlviz_theme") == theme.name:
        return fig
    traces = [{"type": t.type, "colorbar": "colorbar" in t,  # not every trace type has every property (go.Image)
               **{k: t[k] if k in t else None for k in ("showlegend", "visible", "name", "showscale")}}
              for t in fig.data]
    for t in traces:
        if t["type"] == "image":
            t["showlegend"] = False
    types = {t["type"] for t in traces}
    text = dict(color=TEXT)
    up: dict = dict(font=dict(family=FONT_FAMILY, size=theme.font, color=TEXT), colorway=list(PALETTE),
                    paper_bgcolor="white", title=dict(font=dict(size=theme.title, **text)),
                    legend=dict(font=dict(size=theme.legend, **text), title=dict(font=dict(size=theme.legend, **text))),
                    hoverlabel=dict(font=dict(family=FONT_FAMILY)))
    if meta is not None:
        up["meta"] = {**meta, "dlviz_theme": theme.name, "dlviz_height": base_height}
    if not _opaque(lay.get("plot_bgcolor")):
        up["plot_bgcolor"] = "white"
    axes = {k for k in lay if _AXIS.match(k)} | ({"xaxis", "yaxis"} if types - _NOT_CARTESIAN else set())
    for k in axes:
        up[k] = dict(tickfont=dict(size=theme.tick, **text), title=dict(font=dict(size=theme.font, **text)),
                     automargin=lay.get(k, {}).get("automargin", True))
    scenes = {k for k in lay if _SCENE.match(k)} | ({"scene"} if types & _SCENE_TRACES else set())
    scene_axis = dict(tickfont=dict(size=theme.scene_tick, **text), nticks=theme.scene_ticks,
                      title=dict(font=dict(size=theme.tick, **text)))
    for k in scenes:
        up[k] = dict(xaxis=scene_axis, yaxis=scene_axis, zaxis=scene_axis)

    notes = lay.get("annotations") or []
    title = (lay.get("title") or {}).get("text")
    if title:  # a figure drawn narrower than usual says so (meta "wrap_px"): its title wraps to that width
        title = wrap_text(title, theme.title, (meta or {}).get("wrap_px", TYPICAL_PX - 20))
    subtitles = [i for i, a in enumerate(notes) if _is_subplot_title(a)]
    # Side by side over panels of about equal width; three panels or more: drawn across the main area.
    across = TYPICAL_PX * (2 if len(subtitles) >= 3 else 1)
    wrapped = {i: wrap_text(notes[i].get("text"), theme.note, 0.9 * across / len(subtitles)) for i in subtitles}
    title_px = row_px(theme.title) * _lines(title) + PAD_PX if title else 0
    subtitle_px = max((row_px(theme.note) * _lines(t) for t in wrapped.values()), default=0)
    top_axis_px = max((row_px(theme.tick) + 4 + (row_px(theme.font) + 4 if (lay[k].get("title") or {}).get("text")
                                                 else 0)
                       for k in axes if k.startswith("x") and lay.get(k, {}).get("side") == "top"), default=0)
    # The top margin: the title, then subplot titles or the labels of an x axis drawn on top, then the y axes' top
    # tick labels, which stick out above the plot by half a line. (Not plotly's title automargin: it places a title
    # of several lines above the figure, out of sight, measured in Chromium.)
    up["margin"] = dict(t=max(PAD_PX + title_px + subtitle_px + top_axis_px + row_px(theme.tick) // 2 + PAD_PX, 10))
    names = _legend_names(traces, lay)
    colorbar = any(t["colorbar"] and t["showscale"] is not False and t["type"] in _NO_LEGEND for t in traces)
    # A taller top band than the figure's own adds to the figure: the plot keeps the size its builder gave it.
    own_top = (meta or {}).get("dlviz_top", (lay.get("margin") or {}).get("t", 100))  # the builder's top margin
    height = base_height + max(0, up["margin"]["t"] - own_top)
    if meta is not None:
        up["meta"]["dlviz_top"] = own_top
    if names and ((lay.get("legend") or {}).get("orientation") == "h" or colorbar):
        # Entries in one flow, groups or not ("grouped" stacks each group on rows of its own).
        up["legend"].update(orientation="h", xref="paper", x=0, xanchor="left", yref="container", y=0,
                            yanchor="bottom", bgcolor="rgba(255,255,255,0)", traceorder="normal")
        up["margin"]["b"] = 10  # the axes' tick labels and title push it; the legend's band is added below them
        height += legend_rows(names, theme.legend) * row_px(theme.legend) + 2 * PAD_PX
    up["height"] = height
    if title:  # anchored by the bottom of its first line, later lines below it
        up["title"].update(text=title, yref="container", y=1 - (PAD_PX + row_px(theme.title)) / height,
                           yanchor="bottom", automargin=False)
    if notes:
        for i, a in enumerate(notes):
            font = a.setdefault("font", {})
            if a.get("name") != CAPTION and (lecture or font.get("size") is None):
                font["size"] = theme.note
            font.setdefault("color", TEXT)  # annotations that chose a colour keep it
            if i in wrapped:
                a["text"] = wrapped[i]
        up["annotations"] = notes
    _merge_into(fig.layout, lay, up)
    bar = dict(tickfont=dict(size=theme.tick, **text), title=dict(font=dict(size=theme.tick, **text)))
    for trace in fig.data:
        if "colorbar" in trace:
            _merge_into(trace, {"colorbar": trace.colorbar.to_plotly_json()}, {"colorbar": bar})
    return fig


def _deep_merge(base: dict, changes: dict) -> dict:
    out = dict(base)
    for k, v in changes.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _merge_into(obj, current: dict, changes: dict) -> None:
    """Set each key of ``changes`` on the plotly object ``obj``, merged into its ``current`` value (plain JSON).
    The values are this module's own, valid by construction: plotly's validation is switched off while they are set,
    as plotly itself does for its default template (validated updates took 55-75 ms a figure, on every redraw).
    Were that switch ever gone, the same values go through plotly's validating update instead."""
    merged = {k: _deep_merge(current.get(k) or {}, v) if isinstance(v, dict) else v for k, v in changes.items()}
    if getattr(obj, "_validate", None) is not True:
        obj.update(merged)
        return
    obj._validate = False
    try:
        for k, v in merged.items():
            obj[k] = v
    finally:
        obj._validate = True
