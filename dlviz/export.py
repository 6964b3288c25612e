"""Downloads for slides: a run's checkpoints as a self-contained HTML replay or an animated GIF.

Works offline and without kaleido or a browser: the HTML embeds plotly.js, and the GIF comes from a small
numpy/Pillow rasterizer of the trace types the main views use (heatmap, contour drawn as heatmap, scatter).
"""

from __future__ import annotations

import functools
import html
import io
import re

import numpy as np
import plotly.colors as pcolors
import plotly.graph_objects as go
import plotly.io as pio
from PIL import Image, ImageColor, ImageDraw, ImageFont

SIG_DIGITS = 4  # frame data are rounded to this many significant digits (sizes in replay_html's docstring)
GREY = (128, 128, 128)
# CJK-capable first (the Simplified Chinese face of the collection) so zh_CN labels render; then DejaVu.
_FONTS = (("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2), ("NotoSansCJK-Regular.ttc", 2),
          ("DejaVuSans.ttf", 0))
_RGBA = re.compile(r"rgba?\(\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*(?:,\s*([\d.]+)\s*)?\)")
_FRAME_LAYOUT_SKIP = {"template", "sliders", "updatemenus", "margin", "height", "width"}
_DOC = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title><style>body {{font-family: sans-serif}}</style></head>
<body><h2>{title}</h2>\n{div}\n</body></html>\n"""


def _round_sig(a: np.ndarray) -> np.ndarray:
    """Round to SIG_DIGITS significant digits, so that JSON writes 0.01234 rather than 0.012340118..."""
    with np.errstate(divide="ignore", invalid="ignore"):
        k = SIG_DIGITS - 1 - np.floor(np.log10(np.abs(a)))
    k = np.clip(np.where(np.isfinite(k), k, 0), -300, 300)
    # Only exact powers of ten multiply or divide, so each result is the double nearest its short decimal.
    up, down = 10.0 ** np.maximum(k, 0), 10.0 ** np.maximum(-k, 0)
    return np.where(k >= 0, np.round(a * up) / up, np.round(a / down) * down)


def _compact(obj: object) -> object:
    """JSON-ready copy with floats rounded and arrays as lists (plotly would write numpy as base64 float64)."""
    if isinstance(obj, dict):
        return {k: _compact(v) for k, v in obj.items()}
    if isinstance(obj, float):
        return float(_round_sig(np.array(obj)))
    if isinstance(obj, (list, tuple, np.ndarray)):
        try:
            a = np.asarray(obj)
        except ValueError:  # ragged
            return [_compact(v) for v in obj]
        if a.dtype.kind in "fiub":
            return (_round_sig(a) if a.dtype.kind == "f" else a).tolist()
        return [_compact(v) for v in obj]  # strings, None, mixed [position, colour] pairs
    return obj


def parse_color(c: object) -> tuple[int, int, int]:
    """A plotly/CSS colour string as RGB; alpha is blended onto white (the slide); anything unknown is grey."""
    if isinstance(c, str):
        m = _RGBA.fullmatch(c.strip().lower())
        if m:
            a = min(1.0, float(m.group(4) or 1))
            return tuple(round(min(255.0, float(v)) * a + 255 * (1 - a)) for v in m.groups()[:3])
        try:
            return ImageColor.getrgb(c.strip())[:3]
        except ValueError:
            pass
    return GREY


def _colours(values: np.ndarray, scale: object, reverse: bool, lo: float, hi: float) -> np.ndarray:
    """Values (any shape) as uint8 RGB (shape + (3,)) through a plotly colorscale, a name ("RdBu_r") or
    [position, colour] pairs, clipped to [lo, hi]; NaN gets the low colour."""
    try:
        pairs = pcolors.get_colorscale(scale) if isinstance(scale, str) else list(scale)
    except pcolors.PlotlyError:
        pairs = pcolors.get_colorscale("Viridis")
    pos, rgb = [float(p) for p, _ in pairs], np.array([parse_color(c) for _, c in pairs], dtype=float)
    f = np.nan_to_num(np.clip((values - lo) / (hi - lo if hi != lo else 1.0), 0, 1))
    f = 1 - f if reverse else f
    return np.stack([np.interp(f, pos, rgb[:, k]) for k in range(3)], -1).round().astype(np.uint8)


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The first TrueType font of _FONTS at this size, else Pillow's default."""
    for path, index in _FONTS:
        try:
            return ImageFont.truetype(path, size, index=index)
        except OSError:
            continue
    return ImageFont.load_default(size)


def _text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], s: object, size: int, anchor: str = "mm") -> None:
    """Plotly label text (tags such as <b> and <br> dropped, entities decoded) at xy."""
    s = html.unescape(re.sub(r"<[^>]+>", "", re.sub(r"<br\s*/?>", " ", str(s))))
    draw.text(xy, s, fill=(40, 40, 40), font=_font(size), anchor=anchor)


def _num(v: object, axis: dict) -> np.ndarray:
    """Coordinates as floats (None -> NaN; text, i.e. categories, -> 0..n-1); on a log axis their log10."""
    try:
        a = np.array([np.nan if e is None else e for e in v], dtype=float)
    except (TypeError, ValueError):
        a = np.arange(len(v), dtype=float)
    if axis.get("type") == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(a > 0, np.log10(a), np.nan)
    return a


def _edges(t: dict, letter: str, n: int, axis: dict) -> np.ndarray:
    """n+1 heatmap cell edges: the given edges, else midpoints between the given centres (or 0..n-1)."""
    c = _num(t[letter], axis) if letter in t else np.arange(n, dtype=float)
    if len(c) == n + 1:
        return c
    c = c if len(c) == n else np.arange(n, dtype=float)
    if n == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[2 * c[0] - mid[0]], mid, [2 * c[-1] - mid[-1]]])


def _cells(edges: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The cell index holding each coordinate (edges ascending or descending); -1 outside or NaN."""
    flip = edges[-1] < edges[0]
    e = edges[::-1] if flip else edges
    i = np.searchsorted(e, at, side="right") - 1
    return np.where((at >= e[0]) & (at < e[-1]), len(e) - 2 - i if flip else i, -1)


def _span(a: np.ndarray) -> list[tuple[float, float]]:
    f = a[np.isfinite(a)]
    return [(float(f.min()), float(f.max()))] if f.size else []


def _axis_range(axis: dict, exact: list[tuple[float, float]], padded: list[tuple[float, float]]) -> tuple[float, float]:
    """(left/bottom, right/top) in axis units: the layout's range if set, else the data's (scatters +5%)."""
    if axis.get("range") and None not in axis["range"]:
        return float(axis["range"][0]), float(axis["range"][1])
    if padded:
        lo, hi = min(p[0] for p in padded), max(p[1] for p in padded)
        exact = exact + [(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))]
    lo, hi = (min(s[0] for s in exact), max(s[1] for s in exact)) if exact else (0.0, 1.0)
    lo, hi = (lo - 0.5, hi + 0.5) if hi <= lo else (lo, hi)
    return (hi, lo) if "reversed" in str(axis.get("autorange", "")) else (lo, hi)


def _is_text(v: object) -> bool:
    """Whether coordinates hold something other than numbers and None (categories, dates)."""
    return np.asarray(v).dtype.kind not in "fiub" and any(not isinstance(e, (int, float, type(None))) for e in v)


def _geometry(fig: go.Figure) -> tuple[dict, list, dict, set[str]]:
    """The layout, the drawable traces as (axis refs, trace dict, coordinates), each axes area's ranges, and
    the axes whose range this does not measure as plotly would (text coordinates, undrawn trace types)."""
    lay = fig.layout.to_plotly_json()
    items, exact, padded, unmeasured = [], {}, {}, set()

    def axis(ref: str) -> dict:
        return lay.get(ref[0] + "axis" + ref[1:], {})

    for i, tr in enumerate(fig.data):
        t = tr.to_plotly_json()
        refs = (t.get("xaxis", "x"), t.get("yaxis", "y"))
        if t.get("visible", True) is not True:
            continue
        unmeasured |= {ref for ref, k in zip(refs, "xy") if k in t and _is_text(t[k])}
        try:
            z = np.array(t["z"], dtype=float) if t.get("type") in ("heatmap", "contour") else None
        except (KeyError, TypeError, ValueError):  # no z, ragged or text
            z = None
        if z is not None and z.ndim == 2 and z.size:
            coords = (_edges(t, "x", z.shape[1], axis(refs[0])), _edges(t, "y", z.shape[0], axis(refs[1])), z)
            into = exact
        elif t.get("type") in ("scatter", "scattergl") and "y" in t:
            y = _num(t["y"], axis(refs[1]))
            x = _num(t["x"], axis(refs[0])) if "x" in t else np.arange(len(y), dtype=float)
            coords, into = (x[:len(y)], y[:len(x)], i), padded
        else:
            unmeasured |= set(refs)
            continue
        items.append((refs, t, coords))
        for ref, v in zip(refs, coords):
            into.setdefault(ref, []).extend(_span(v))
    # Empty subplots keep their frame: every x axis of the layout anchored to a y axis is an axes area.
    pairs = {refs for refs, _, _ in items} | {("x" + k[5:], a["anchor"]) for k, a in lay.items()
                                              if re.fullmatch(r"xaxis\d*", k) and str(a.get("anchor")).startswith("y")}
    ranges = {pair: tuple(_axis_range(axis(ref), exact.get(ref, []), padded.get(ref, [])) for ref in pair)
              for pair in pairs}
    return lay, items, ranges, unmeasured | (set(ref for pair in ranges for ref in pair)
                                             - {ref for refs, _, _ in items for ref in refs})


def replay_html(frames: list[tuple[int, go.Figure]], title: str, step_label: str = "step") -> str:
    """One standalone HTML page replaying the run: the first figure, one plotly frame per checkpoint (named by
    step, with its own layout), a slider under the plot and Play/Pause. plotly.js is embedded: opens offline.

    Measured (plotly 7.1): 50 frames of a 28x170 heatmap + two 100-point scatters make 7.1 MB: 4.8 MB of
    plotly.js, 2.2 MB of frames (5.4 MB unrounded, as plotly writes numpy arrays in base64 float64).
    """
    if not frames:
        raise ValueError("no checkpoints to replay")
    n = max(len(fig.data) for _, fig in frames)
    # A trace missing from a checkpoint is sent hidden (same type and axes), so no stale data stays on screen.
    protos = [next(fig.data[i] for _, fig in frames if len(fig.data) > i).to_plotly_json() for i in range(n)]
    hidden = [{k: p[k] for k in ("type", "xaxis", "yaxis") if k in p} | {"visible": False} for p in protos]

    def traces(fig: go.Figure) -> list[dict]:
        return [{"visible": True, **_compact(t.to_plotly_json())} for t in fig.data] + hidden[len(fig.data):]

    def layout(fig: go.Figure) -> dict:
        lay, _, ranges, unmeasured = _geometry(fig)
        lay = {k: v for k, v in lay.items() if k not in _FRAME_LAYOUT_SKIP}
        # plotly.js does not autorange while animating: each frame carries the range its own data need.
        for pair, rng in ranges.items():
            for ref, r in zip(pair, rng):
                ax = lay.setdefault(ref[0] + "axis" + ref[1:], {})
                if ref not in unmeasured and "range" not in ax:
                    ax.update(range=[round(v, 6) for v in r], autorange=False)
        return lay

    anim = {"mode": "immediate", "transition": {"duration": 0}}
    base = frames[0][1].layout.to_plotly_json()
    base["margin"] = {**base.get("margin", {}), "b": max(base.get("margin", {}).get("b", 80), 120)}
    base["sliders"] = [{"active": 0, "x": 0.1, "len": 0.9, "y": 0, "yanchor": "top", "pad": {"t": 50}, "steps": [
        {"label": f"{step_label} {step}", "method": "animate",
         "args": [[str(step)], {**anim, "frame": {"duration": 0, "redraw": True}}]} for step, _ in frames]}]
    base["updatemenus"] = [{"type": "buttons", "direction": "left", "showactive": False, "x": 0.1, "y": 0,
                            "xanchor": "right", "yanchor": "top", "pad": {"t": 60, "r": 10}, "buttons": [
        {"label": "Play", "method": "animate",
         "args": [None, {**anim, "fromcurrent": True, "frame": {"duration": 400, "redraw": True}}]},
        {"label": "Pause", "method": "animate", "args": [[None], {**anim, "frame": {"duration": 0}}]}]}]
    fig_dict = {"data": traces(frames[0][1]), "layout": base,
                "frames": [{"name": str(step), "data": traces(fig), "layout": layout(fig)} for step, fig in frames]}
    div = pio.to_html(fig_dict, include_plotlyjs=True, full_html=False, auto_play=False, validate=False,
                      default_height="85vh", config={"displaylogo": False, "responsive": True})
    return _DOC.format(title=html.escape(title), div=div)


def _draw_heat(canvas: Image.Image, t: dict, coords: tuple, rng: tuple, scale: object) -> Image.Image:
    """The heatmap sampled at each pixel centre (z[0] is the bottom row unless the y axis is reversed);
    NaN cells and pixels outside the cells keep the canvas (plot background)."""
    (ex, ey, z), ((x0, x1), (y0, y1)), (w, h) = coords, rng, canvas.size
    cols = _cells(ex, x0 + (np.arange(w) + 0.5) / w * (x1 - x0))
    rows = _cells(ey, y1 - (np.arange(h) + 0.5) / h * (y1 - y0))
    finite = z[np.isfinite(z)]
    lo = float(t.get("zmin", finite.min() if finite.size else 0))
    hi = float(t.get("zmax", finite.max() if finite.size else 1))
    if "zmid" in t and "zmin" not in t and "zmax" not in t:  # plotly centres the automatic range on zmid
        half = max(abs(hi - t["zmid"]), abs(lo - t["zmid"]))
        lo, hi = t["zmid"] - half, t["zmid"] + half
    rgb = _colours(z, t.get("colorscale", scale), t.get("reversescale", False), lo, hi)
    r, c = rows.clip(0)[:, None], cols.clip(0)[None, :]
    show = (rows >= 0)[:, None] & (cols >= 0)[None, :] & np.isfinite(z)[r, c]
    arr = np.array(canvas)
    arr[show] = rgb[r, c][show]
    return Image.fromarray(arr)


def _draw_scatter(canvas: Image.Image, t: dict, coords: tuple, rng: tuple, scale: object, colorway: list) -> None:
    """Lines (broken at None/NaN) and/or round markers; dashes, fills and line shapes are drawn plain."""
    (x, y, index), ((x0, x1), (y0, y1)), (w, h) = coords, rng, canvas.size
    draw = ImageDraw.Draw(canvas)
    # Clamped near the canvas: Pillow takes C ints, and points beyond a set range must not overflow them.
    px = np.clip((x - x0) / (x1 - x0) * w, -4 * w, 5 * w)
    py = np.clip((1 - (y - y0) / (y1 - y0)) * h, -4 * h, 5 * h)
    ok = np.isfinite(px) & np.isfinite(py)
    mode = t.get("mode") or ("lines+markers" if len(y) < 20 else "lines")  # plotly's default
    line, marker, colour = t.get("line", {}), t.get("marker", {}), colorway[index % len(colorway)]
    if "lines" in mode:
        for seg in np.split(np.arange(len(px)), np.flatnonzero(~ok)):
            if ok[seg].sum() > 1:
                draw.line(list(zip(px[seg[ok[seg]]], py[seg[ok[seg]]])), fill=parse_color(line.get("color", colour)),
                          width=max(1, round(line.get("width", 2))), joint="curve")
    if "markers" in mode:
        mc = marker.get("color", colour)
        if isinstance(mc, str):
            colours = [parse_color(mc)]
        elif np.asarray(mc).dtype.kind in "fiu":  # numbers go through the marker's colorscale
            v = np.atleast_1d(np.asarray(mc, dtype=float))
            colours = [tuple(c) for c in _colours(v, marker.get("colorscale", scale), marker.get("reversescale", False),
                                                  marker.get("cmin", np.nanmin(v)), marker.get("cmax", np.nanmax(v)))]
        else:
            colours = [parse_color(c) for c in mc]
        sizes = np.resize(np.asarray(marker.get("size", 6), dtype=float), px.shape) / 2  # scalar or per point
        for j in np.flatnonzero(ok):
            s = sizes[j]
            draw.ellipse((px[j] - s, py[j] - s, px[j] + s, py[j] + s), fill=colours[j % len(colours)])


def rasterize(fig: go.Figure, width: int, height: int) -> Image.Image:
    """An RGB image of the figure's heatmaps, contours (as heatmaps) and scatters, placed by their axes'
    domains, with a frame per axes area, the title and the annotations (subplot titles). Other trace types
    are skipped; no ticks, grid, legend or colorbar."""
    lay, items, ranges, _ = _geometry(fig)
    tpl = fig.layout.template.layout
    colorway, scale = lay.get("colorway") or tpl.colorway or pcolors.qualitative.Plotly, tpl.colorscale.sequential
    img = Image.new("RGB", (width, height), parse_color(lay.get("paper_bgcolor") or tpl.paper_bgcolor or "white"))
    bg = parse_color(lay.get("plot_bgcolor") or tpl.plot_bgcolor or "white")
    fs = max(10, round(height / 36))
    plot = (3 * fs, round(2.6 * fs), width - fs, height - 2 * fs)  # left, top, right, bottom of the paper
    pw, ph = plot[2] - plot[0], plot[3] - plot[1]
    boxes = {}
    for xr, yr in ranges:
        (d0, d1) = lay.get("xaxis" + xr[1:], {}).get("domain", [0, 1])
        (e0, e1) = lay.get("yaxis" + yr[1:], {}).get("domain", [0, 1])
        box = (plot[0] + round(d0 * pw), plot[1] + round((1 - e1) * ph),
               plot[0] + round(d1 * pw), plot[1] + round((1 - e0) * ph))
        boxes[xr, yr] = (box, Image.new("RGB", (max(1, box[2] - box[0]), max(1, box[3] - box[1])), bg))
    for refs, t, coords in items:
        box, canvas = boxes[refs]
        if t["type"] in ("heatmap", "contour"):
            boxes[refs] = (box, _draw_heat(canvas, t, coords, ranges[refs], scale or "Viridis"))
        else:
            _draw_scatter(canvas, t, coords, ranges[refs], scale or "Viridis", colorway)
    draw = ImageDraw.Draw(img)
    for box, canvas in boxes.values():
        img.paste(canvas, box[:2])
        draw.rectangle(box, outline=(90, 90, 90))
    if (lay.get("title") or {}).get("text"):
        _text(draw, (width / 2, 0.9 * fs), lay["title"]["text"], round(1.15 * fs))

    def place(ref: str, v: object, k: int) -> float | None:
        """Pixel x (k=0) or y (k=1) of an annotation coordinate in paper, '<axis> domain' or data units."""
        found = [(b, r[k]) for pair, (b, _) in boxes.items() for r in [ranges[pair]] if pair[k] == ref.split()[0]]
        if not isinstance(v, (int, float)) or (ref != "paper" and not found):
            return None
        box, (r0, r1) = (plot, (0, 1)) if ref == "paper" else found[0]
        f = v if ref == "paper" or ref.endswith(" domain") else (v - r0) / (r1 - r0)
        return box[0] + f * (box[2] - box[0]) if k == 0 else box[3] + f * (box[1] - box[3])

    for a in lay.get("annotations", []):
        x, y = place(a.get("xref", "x"), a.get("x", 0.5), 0), place(a.get("yref", "y"), a.get("y", 0.5), 1)
        if x is not None and y is not None and a.get("text"):
            anchor = ({"left": "l", "right": "r"}.get(a.get("xanchor"), "m")
                      + {"top": "a", "bottom": "d"}.get(a.get("yanchor"), "m"))
            _text(draw, (x, y), a["text"], fs, anchor)
    return img


def replay_gif(frames: list[tuple[int, go.Figure]], width: int = 960, height: int = 540, ms_per_frame: int = 250,
               caption: str = "", max_frames: int = 60) -> bytes:
    """An endlessly looping GIF, one image per checkpoint ("step N · caption" above the rasterized figure),
    thinned evenly to at most max_frames (first and last kept) to bound the encode time and the size."""
    if not frames:
        raise ValueError("no checkpoints to replay")
    keep = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), max(2, max_frames))).round().astype(int))
    fs = max(10, round(height / 36))
    head = round(1.8 * fs)
    images = []
    for k in keep:
        step, fig = frames[k]
        img = Image.new("RGB", (width, height), "white")
        img.paste(rasterize(fig, width, height - head), (0, head))
        label = f"step {step}" + (f" · {caption}" if caption else "")
        _text(ImageDraw.Draw(img), (fs // 2, head / 2), label, fs, "lm")
        # Fast octree: an eighth of median cut's time here (measured), and no dither to blur the heatmap cells.
        images.append(img.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE))
    buf = io.BytesIO()
    images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=ms_per_frame, loop=0)
    return buf.getvalue()
