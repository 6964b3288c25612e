"""Slide downloads: the HTML replay's structure (frames, slider, offline, escaping, size) and the GIF's pixels
(the rasterizer draws the data where plotly would), without a browser."""

import html
import io
import json
import re

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from PIL import Image
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from dlviz.export import parse_color, rasterize, replay_gif, replay_html

RED, BLUE = (255, 0, 0), (0, 0, 255)
PLOT_BG = parse_color(pio.templates["plotly"].layout.plot_bgcolor)  # plotly's own template's axes area


@pytest.fixture(autouse=True)
def _plotly_template():
    """Streamlit makes its own template the default once a page has drawn a chart (other tests in this process):
    these tests draw with plotly's."""
    before, pio.templates.default = pio.templates.default, "plotly"
    yield
    pio.templates.default = before


def _plot_args(doc: str) -> tuple[list, dict, list]:
    """(data, layout, frames) as the page hands them to Plotly.newPlot / Plotly.addFrames."""
    js = doc.replace(get_plotlyjs(), "")
    dec, ws = json.JSONDecoder(), re.compile(r"\s*")

    def value_after_comma(i: int):
        return dec.raw_decode(js, ws.match(js, js.index(",", i) + 1).end())

    data, i = value_after_comma(js.index("Plotly.newPlot("))
    layout, _ = value_after_comma(i)
    frames, _ = value_after_comma(js.index("Plotly.addFrames("))
    return data, layout, frames


def _heat_run(n: int = 3) -> list[tuple[int, go.Figure]]:
    """n checkpoints of a heatmap whose values and title change."""
    return [(10 * k, go.Figure(go.Heatmap(z=[[0.123456789 * (k + 1), 1.0], [2.0, 3.0]], colorscale="Viridis"),
                               layout_title_text=f"epoch {k}")) for k in range(n)]


def _near(img: Image.Image, xy: tuple[int, int], colour: tuple[int, int, int], r: int = 3, tol: int = 60) -> bool:
    """Whether a pixel within r of xy has roughly this colour."""
    a = np.asarray(img.convert("RGB"), dtype=int)[xy[1] - r:xy[1] + r + 1, xy[0] - r:xy[0] + r + 1]
    return bool((np.abs(a - colour).sum(-1) < tol).any())


def _area(img: Image.Image, colour: tuple[int, int, int]) -> tuple[int, int, int, int]:
    """Bounding box (left, top, right, bottom) of the pixels of exactly this colour: an empty axes area."""
    ys, xs = np.nonzero((np.asarray(img.convert("RGB")) == colour).all(-1))
    return xs.min(), ys.min(), xs.max(), ys.max()


def test_html_replays_every_checkpoint_with_slider_and_buttons():
    run = _heat_run()
    data, layout, frames = _plot_args(replay_html(run, "Heatmap run", step_label="epoch"))
    assert [f["name"] for f in frames] == ["0", "10", "20"]
    steps = layout["sliders"][0]["steps"]
    assert [s["label"] for s in steps] == ["epoch 0", "epoch 10", "epoch 20"]
    assert [s["args"][0] for s in steps] == [["0"], ["10"], ["20"]]
    assert all(s["method"] == "animate" and s["args"][1]["frame"]["redraw"] for s in steps)
    play, pause = layout["updatemenus"][0]["buttons"]
    assert (play["label"], pause["label"]) == ("Play", "Pause") and play["args"][1]["frame"]["redraw"]
    # Each frame keeps its own data (rounded to 4 significant digits) and its own title.
    assert [f["data"][0]["z"][0][0] for f in frames] == [0.1235, 0.2469, 0.3704]
    assert [f["layout"]["title"]["text"] for f in frames] == ["epoch 0", "epoch 1", "epoch 2"]
    assert data[0]["z"] == frames[0]["data"][0]["z"] and data[0]["type"] == "heatmap"
    # plotly.js does not autorange while animating: each frame carries its axes' ranges (the heatmap's edges).
    assert frames[0]["layout"]["xaxis"]["range"] == [-0.5, 1.5]
    with pytest.raises(ValueError):
        replay_html([], "empty")


def test_html_is_offline_and_escapes_user_text():
    title = '<script>alert("t")</script> & <b>'
    run = [(0, go.Figure(go.Scatter(y=[1, 2]), layout_title_text="</script><script>alert('f')</script>"))]
    doc = replay_html(run, title)
    assert doc.count(get_plotlyjs()) == 1  # plotly.js embedded once, nothing fetched
    assert f"<title>{html.escape(title)}</title>" in doc and title not in doc
    assert "<script>alert" not in doc
    assert 'src="http' not in doc and "<script src" not in doc
    # Outside the bundle (whose own strings name plotly.com, map tiles...) there is no URL at all.
    assert not re.search(r"https?://", doc.replace(get_plotlyjs(), ""))


def test_html_pads_a_missing_trace_hidden_and_keeps_an_extra_one():
    def fig(n: int) -> go.Figure:
        return go.Figure([go.Scatter(y=[i, i + 1], xaxis="x", yaxis="y") for i in range(n)])
    data, _, frames = _plot_args(replay_html([(0, fig(2)), (1, fig(1)), (2, fig(3))], "ragged"))
    assert [len(f["data"]) for f in frames] == [3, 3, 3] and len(data) == 3
    assert frames[1]["data"][1] == {"type": "scatter", "xaxis": "x", "yaxis": "y", "visible": False}
    assert frames[2]["data"][2]["visible"] is True and frames[2]["data"][2]["y"] == [2, 3]
    assert data[2]["visible"] is False


def test_html_frame_ranges_follow_growing_data_but_not_text_bars_or_set_ranges():
    def fig(n: int) -> go.Figure:
        f = make_subplots(1, 3)
        f.add_trace(go.Scatter(x=np.arange(n), y=np.arange(n) ** 2), 1, 1)
        f.add_trace(go.Scatter(x=["a", "b"], y=[1, n]), 1, 2)
        f.add_trace(go.Bar(x=[1, 2], y=[1, n]), 1, 3)
        return f.update_yaxes(range=[0, 5], row=1, col=1)
    _, _, frames = _plot_args(replay_html([(0, fig(3)), (1, fig(11))], "ranges"))
    axes = [f["layout"] for f in frames]
    assert [a["xaxis"]["range"] for a in axes] == [[-0.1, 2.1], [-0.5, 10.5]]  # data +5%
    assert [a["yaxis2"]["range"] for a in axes] == [[0.9, 3.1], [0.5, 11.5]]
    assert all(a["yaxis"]["range"] == [0, 5] for a in axes)
    assert all("range" not in a[k] for a in axes for k in ("xaxis2", "xaxis3", "yaxis3"))


def test_html_of_50_heatmap_checkpoints_stays_small():
    rng = np.random.default_rng(0)
    run = []
    for k in range(50):
        f = make_subplots(1, 2)
        f.add_trace(go.Heatmap(z=rng.normal(0, 0.05, (28, 170)), colorscale="RdBu_r", zmid=0), 1, 1)
        for scale in (30, 40):
            f.add_trace(go.Scatter(x=np.arange(100), y=np.exp(-np.arange(100) / scale)), 1, 2)
        run.append((k, f))
    frames_bytes = len(replay_html(run, "size").encode()) - len(get_plotlyjs().encode())
    assert frames_bytes < 2.6e6  # measured 2.2 MB; unrounded (base64 float64) 5.4 MB


@pytest.mark.parametrize("trace", [go.Heatmap, go.Contour])
def test_heatmap_colours_follow_data_and_nan_is_background(trace):
    # Bottom row (z[0]): high left, low right on RdBu_r around 0; top row NaN.
    img = rasterize(go.Figure(trace(z=[[1.0, -1.0], [np.nan, np.nan]], colorscale="RdBu_r", zmid=0)), 400, 300)
    (lr, _, lb), (rr, _, rb) = img.getpixel((120, 225)), img.getpixel((300, 225))
    assert lr > lb + 50 and rb > rr + 50  # reddish | bluish
    assert img.getpixel((200, 90)) == PLOT_BG


def test_list_colorscale_and_reversed_y_axis():
    scale = [[0, "black"], [1, "#fff"]]
    fig = go.Figure(go.Heatmap(z=[[1.0], [0.0]], colorscale=scale))  # z[0] (white) is the bottom row
    assert rasterize(fig, 300, 300).getpixel((150, 250)) == (255, 255, 255)
    assert rasterize(fig.update_yaxes(autorange="reversed"), 300, 300).getpixel((150, 250)) == (0, 0, 0)


def test_line_and_markers_stay_in_their_subplot():
    fig = make_subplots(1, 2, subplot_titles=("line", "points"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0.5, 0.5], mode="lines", line_color="red"), 1, 1)
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="markers", marker=dict(size=12, color=["blue", "rgb(0,128,0)"])),
                  1, 2)
    a = np.asarray(rasterize(fig, 600, 300), dtype=int)
    is_red = (np.abs(a - RED).sum(-1) < 60)
    assert is_red[:, :300].sum() > 200 and is_red[:, 300:].sum() == 0
    assert (np.abs(a[:, 300:] - BLUE).sum(-1) < 60).sum() > 50 and (np.abs(a[:, :300] - BLUE).sum(-1) < 60).sum() == 0
    assert (np.abs(a[:, 300:] - (0, 128, 0)).sum(-1) < 60).sum() > 50
    assert (a[:40] < 100).all(-1).sum() > 20  # the subplot titles, in dark text above the axes


def test_log_y_axis_and_gaps():
    def fig(kind: str, y: list) -> go.Figure:
        return go.Figure(go.Scatter(x=[0, 1, 2, 3], y=y, mode="lines", line_color="red")).update_yaxes(type=kind)
    # 1, 10, 100, 1000 at equal steps is a straight line on a log axis, through the axes' centre.
    for kind, centred in (("log", True), ("linear", False)):
        img = rasterize(fig(kind, [1, 10, 100, 1000]), 400, 300)
        x0, y0, x1, y1 = _area(img, PLOT_BG)
        assert _near(img, ((x0 + x1) // 2, (y0 + y1) // 2), RED) is centred
    # None breaks the line: red around x = 0.5, none around x = 2 (between the gap and the lone last point).
    img = rasterize(fig("linear", [0, 0, None, 0]), 400, 300)
    x0, y0, x1, y1 = _area(img, PLOT_BG)
    cols = np.asarray(img, dtype=int)[y0:y1, x0:x1]
    red_cols = (np.abs(cols - RED).sum(-1) < 60).any(0)
    w = x1 - x0
    assert red_cols[round(0.2 * w)] and not red_cols[round(0.55 * w):round(0.75 * w)].any()


def test_unsupported_traces_are_skipped_and_the_title_drawn():
    surface = go.Figure(go.Surface(z=np.ones((3, 3))), layout_title_text="only 3-D 三维")
    img = rasterize(surface, 400, 300)
    assert img.size == (400, 300)
    assert (np.asarray(img)[:25] < 100).all(-1).sum() > 20 and (np.asarray(img)[60:] < 100).all(-1).sum() == 0
    mixed = go.Figure([go.Bar(x=[1, 2], y=[3, 4]), go.Scatter(x=[0, 1], y=[0, 1], line_color="red")])
    assert (np.abs(np.asarray(rasterize(mixed, 400, 300), dtype=int) - RED).sum(-1) < 60).sum() > 100


def test_parse_color():
    assert parse_color("#ff8000") == (255, 128, 0) and parse_color("#f80") == (255, 136, 0)
    assert parse_color("rgb(1, 2, 3)") == (1, 2, 3) and parse_color("rgba(0,0,0,0.5)") == (128, 128, 128)
    assert parse_color("rgba(0,0,0,0)") == (255, 255, 255)
    assert [parse_color(c) for c in ("black", "white", "red", "blue", "green", "grey", "gray", "orange", "purple")] \
        == [(0, 0, 0), (255, 255, 255), RED, BLUE, (0, 128, 0), (128,) * 3, (128,) * 3, (255, 165, 0), (128, 0, 128)]
    assert parse_color("no-such-colour") == (128, 128, 128) and parse_color(None) == (128, 128, 128)


def test_gif_has_one_image_per_checkpoint_with_step_text():
    data = replay_gif(_heat_run(4), width=320, height=200, ms_per_frame=120, caption="lecture 3")
    assert data[:6] == b"GIF89a"
    gif = Image.open(io.BytesIO(data))
    assert (gif.n_frames, gif.size, gif.info["loop"], gif.info["duration"]) == (4, (320, 200), 0, 120)
    assert (np.asarray(gif.convert("RGB"))[:12] < 100).all(-1).sum() > 20  # "step 0 · lecture 3" on top
    with pytest.raises(ValueError):
        replay_gif([])


def test_gif_thins_evenly_to_max_frames_keeping_first_and_last():
    run = [(k, go.Figure(go.Heatmap(z=[[k]], zmin=0, zmax=24, colorscale=[[0, "black"], [1, "white"]])))
           for k in range(25)]
    gif = Image.open(io.BytesIO(replay_gif(run, width=200, height=150, max_frames=6)))
    assert gif.n_frames == 6
    levels = []
    for i in range(6):
        gif.seek(i)
        levels.append(gif.convert("RGB").getpixel((100, 90))[0])
    # Kept checkpoints 0, 5, 10, 14, 19, 24 of 0..24 -> grey levels k / 24 * 255.
    assert levels == pytest.approx([k / 24 * 255 for k in (0, 5, 10, 14, 19, 24)], abs=3)
