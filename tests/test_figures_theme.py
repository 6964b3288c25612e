"""The shared figure theme (dlviz.figures.common.apply_theme) and the colours of the figures it was made for, checked by
structure and by contrast ratios, not pixels. tests/test_browser_figures.py draws the same figures with plotly.js and
measures where their texts land."""

from __future__ import annotations

import numpy as np
import pytest

from dlviz.figures import attention, common, gan, optimizers, surfaces
from dlviz.figures.common import (CAPTION, CAPTION_PX, LECTURE, PALETTE, SCREEN, apply_theme, contrast, legend_entries,
                                  scale_colors, text_px, wrap_text)


def _history(keys, n=20):
    return [{"step": 10 * i, **{k: 1.0 / (i + 1 + j) for j, k in enumerate(keys)}} for i in range(n)]


def _curves():
    return common.metric_curves(_history(["train_loss", "test_loss", "train_acc", "test_acc"]),
                                [("loss", ["train_loss", "test_loss"]), ("accuracy", ["train_acc", "test_acc"])])


def _grid(n=40):
    g = np.linspace(-2, 2, n)
    X, Y = np.meshgrid(g, g)
    return X, Y, (1 - X * Y) ** 2


def _plane():
    rng = np.random.default_rng(0)
    g = np.linspace(-3, 3, 30)
    X, _ = np.meshgrid(g, g)
    return {"bounds": (-3, 3, -3, 3), "grid_x": g, "grid_y": g, "d_grid": 1 / (1 + np.exp(-X)), "modes": [(2.0, 0.0)],
            "mode_std": 0.05, "manifold": rng.normal(size=(20, 2)), "real": rng.normal(size=(50, 2)),
            "fake": rng.normal(size=(50, 2)), "arrow_vec": rng.normal(size=(10, 2)), "arrow_from": rng.normal(size=(10, 2))}


# -- placement -------------------------------------------------------------------------------------------------------

def test_a_horizontal_legend_sits_below_the_x_axis_title_never_in_its_band():
    """metric_curves put its legend at y=-0.25 of the plot area, right where the "step" title is drawn. Themed, the
    legend is anchored to the bottom edge of the whole figure, where plotly adds its band under what the axes take."""
    fig = apply_theme(_curves(), lecture=True)
    legend = fig.layout.legend
    assert legend_entries(fig) == ["train loss", "test loss", "train acc", "test acc"]
    assert (legend.orientation, legend.yref, legend.y, legend.yanchor) == ("h", "container", 0, "bottom")
    assert legend.xref == "paper" and legend.x == 0  # within the plot's width
    assert all(ax.automargin for ax in fig.select_xaxes())  # tick labels and title push the margin, the legend below
    assert fig.layout.margin.b <= 10  # no slack in the layout's own margin: plotly adds the legend's band in full
    assert fig.layout.height > 320  # the band is added to the figure, not taken from the plot


def test_titles_and_subplot_titles_get_bands_of_their_own_at_the_top():
    fig = apply_theme(common.metric_curves(_history(["d_loss"]), [("losses", ["d_loss"])], height=300), True)
    fig.update_layout(title="Step 500")
    fig.layout.meta = None  # theme it again from scratch, with a title
    apply_theme(fig, True)
    title_band = common.row_px(LECTURE.title) + common.PAD_PX
    note_band = common.row_px(LECTURE.note)
    assert fig.layout.margin.t >= title_band + note_band
    assert fig.layout.title.yref == "container" and fig.layout.title.yanchor == "bottom"
    assert (1 - fig.layout.title.y) * fig.layout.height <= common.PAD_PX + common.row_px(LECTURE.title) + 1


def test_lecture_text_is_readable_from_the_back():
    """Tick labels of every kind (2-D, 3-D, colour bars) at 14 px or more, dark; legend and notes larger."""
    figs = [_curves(), surfaces.surface_figure(*_grid(), probe=(0.5, 0.5)), gan.gan_plane_figure(_plane(), True),
            optimizers.race_figure(*_grid(), {"sgd": np.zeros((3, 2))}, 2)]
    for fig in figs:
        apply_theme(fig, True)
        ticks = [ax.tickfont for ax in (*fig.select_xaxes(), *fig.select_yaxes())]
        for name in [k for k in fig.layout.to_plotly_json() if k.startswith("scene")]:
            scene = fig.layout[name]
            ticks += [scene.xaxis.tickfont, scene.yaxis.tickfont, scene.zaxis.tickfont]
            assert scene.xaxis.nticks <= 4  # fewer ticks in a small 3-D box: they overlapped
        ticks += [t.colorbar.tickfont for t in fig.data if "colorbar" in t]
        assert ticks and all(f.size >= 14 and f.color == common.TEXT for f in ticks)
        assert any(t.type == "surface" for t in fig.data) <= ("scene" in fig.layout.to_plotly_json())
        assert fig.layout.legend.font.size >= 16 and fig.layout.font.size >= 18
        assert all(a.font.size >= 14 for a in fig.layout.annotations)


def test_the_theme_applies_once_and_switches_modes_from_the_figure_s_own_size():
    fig = _curves()
    apply_theme(fig, True)
    height = fig.layout.height
    apply_theme(fig, True)  # a shared figure shown again
    assert fig.layout.height == height
    apply_theme(fig, False)
    apply_theme(fig, True)
    assert fig.layout.height == height and fig.layout.font.size == LECTURE.font
    assert apply_theme(_curves(), False).layout.font.size == SCREEN.font


def test_long_titles_wrap_instead_of_running_off_the_figure():
    title = "Ill-conditioned quadratic 0.1x² + 2y²: step 20, start (-5, -2)"
    lines = wrap_text(title, 20, 300).split("<br>")
    assert len(lines) >= 2 and " ".join(lines) == title
    assert all(text_px(line, 20) <= 300 for line in lines)
    assert wrap_text("short", 20, 300) == "short" and wrap_text("a<br>b", 20, 1) == "a<br>b"
    chinese = "注意力：从核回归到 Transformer 的注意力头"
    assert all(text_px(line, 18) <= 160 for line in wrap_text(chinese, 18, 160).split("<br>"))


# -- colours ---------------------------------------------------------------------------------------------------------

def test_every_series_gets_its_own_colour_from_the_colour_blind_safe_palette():
    fig = apply_theme(_curves(), True)
    colors = [t.line.color for t in fig.data]
    assert len(set(colors)) == len(colors) and set(colors) <= set(PALETTE)
    assert tuple(fig.layout.colorway) == PALETTE
    assert len({optimizers.color_of(n) for n in optimizers.OPTIMIZERS}) == len(optimizers.OPTIMIZERS)


def test_gan_samples_stand_out_on_every_colour_of_the_discriminator_field():
    """Purple samples vanished on the purple field. Samples now have a dark outline that contrasts (3:1, WCAG's bar
    for marks) with every colour of the field, fills that differ from it, and the field's middle (D = 1/2) is grey
    as the page's caption says, not white."""
    field = scale_colors(gan.D_SCALE)
    for fill in (gan.REAL, gan.FAKE):
        assert min(contrast(gan.OUTLINE, c) for c in field) >= 3
        assert min(contrast(fill, c) for c in field) >= 1.5
    fig = gan.gan_plane_figure(_plane(), True)
    samples = [t for t in fig.data if t.name in ("real", "generated")]
    assert len(samples) == 2 and all(t.marker.line.color == gan.OUTLINE and t.marker.line.width >= 1 for t in samples)
    r, g, b = common._rgb(scale_colors(gan.D_SCALE, 3)[1])
    assert abs(r - g) < 0.02 and abs(g - b) < 0.02 and common.luminance(scale_colors(gan.D_SCALE, 3)[1]) < 0.85


def test_every_racer_is_visible_on_the_surface_it_races_on():
    """SGD's blue path vanished on the blue contour map: the surface is now in light greys, and every racer's
    colour differs from all of them, its markers ringed in a dark outline."""
    surface = scale_colors(optimizers.SURFACE_SCALE)
    for name in optimizers.OPTIMIZERS:
        assert min(contrast(optimizers.color_of(name), c) for c in surface) >= 1.5, name
    assert min(contrast(optimizers.OUTLINE, c) for c in surface) >= 3
    fig = optimizers.race_figure(*_grid(), {"sgd": np.zeros((3, 2)), "adam": np.ones((3, 2))}, 2)
    paths = [t for t in fig.data if t.name in ("SGD", "Adam")]
    assert len(paths) == 2 and all(t.marker.line.color == optimizers.OUTLINE for t in paths)


def test_no_legend_entry_is_white_on_the_white_legend():
    """The saddle's eigenvectors were white lines: invisible swatches in the legend (and the gradient field too)."""
    X, Y, Z = _grid()
    crit = [{"x": 0.0, "y": 0.0, "kind": "saddle", "f": 1.0, "eigenvalues": (-2.0, 2.0)}]
    field = (X[::8, ::8], Y[::8, ::8], np.ones_like(X[::8, ::8]) * 0.1, np.zeros_like(X[::8, ::8]))
    figs = [surfaces.contour_paths_figure(X, Y, Z, crit, {"path": np.zeros((3, 2))}, np.zeros(2),
                                          [(0.7, 0.7), (0.7, -0.7)], [-2.0, 2.0]),
            surfaces.surface_figure(X, Y, Z, crit, field=field)]
    for fig in figs:
        shown = [t for t in fig.data if t.showlegend is not False and t.type not in ("contour", "surface")]
        assert len([t for t in shown if "λ" in (t.name or "") or "gradient" in (t.name or "")]) >= 1
        for t in shown:
            color = (t.line.color if t.mode and "lines" in t.mode else t.marker.color) or PALETTE[0]
            assert contrast(color, "#ffffff") >= 1.5, (t.name, color)


def test_attention_frames_sit_on_the_cell_borders_not_on_the_numbers():
    q = 6
    w = np.full((q, q), 1 / q)
    fig = attention.attention_map(w, [str(i) for i in range(q)], [str(i) for i in range(q)], "head 1",
                                  np.arange(q)[::-1])
    frames = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(frames) == q
    for i, s in enumerate(frames):
        assert (s.x1 - s.x0, s.y1 - s.y0) == (1.0, 1.0) and s.x0 == q - 1 - i - 0.5 and s.y0 == i - 0.5
    markers = [t for t in fig.data if t.type == "scatter"]
    assert all(all(x is None for x in t.x) for t in markers)  # the legend's sample only: nothing over a number
    assert "<br>" not in fig.layout.title.text  # the subtitle that covered the column labels is now the axis titles
    assert fig.layout.xaxis.side == "top" and fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    apply_theme(fig, True)
    band = common.row_px(LECTURE.title) + common.PAD_PX + common.row_px(LECTURE.tick) + common.row_px(LECTURE.font)
    assert fig.layout.margin.t >= band  # title, then the column labels and their title, each in its own band


@pytest.mark.parametrize("w, tile_px", [(8, 80), (8, 48), (28, 90), (7, 70)])
def test_tile_captions_get_a_gutter_as_tall_as_their_line(w, tile_px):
    """The t-SNE neighbours' captions ("#1197: 3") were drawn over the digit above: the gutter is sized in screen
    pixels for the caption's line, and the theme keeps the caption's size."""
    gap = common.caption_gap(w, tile_px)
    assert gap * tile_px / (w + gap) >= 1.3 * CAPTION_PX
    fig = common.image_grid(np.zeros((9, w, w)), [f"#{1000 + i}: 3" for i in range(9)], ncols=3, tile_px=tile_px)
    apply_theme(fig, True)
    assert all(a.name == CAPTION and a.font.size == CAPTION_PX for a in fig.layout.annotations)
    assert fig.layout.plot_bgcolor == "white" and fig.layout.paper_bgcolor == "white"  # opaque: see dlviz.ui.show


# -- the slots dlviz.ui.show stacks a chart's drawings in ----------------------------------------------------------

def test_a_changed_chart_goes_into_another_slot_on_top_of_the_drawings_before_it():
    """Each new figure mounts a new chart in the browser, empty until plotly draws it: it goes into a slot of its own
    on top, and the two previous drawings stay under it (a browser one redraw behind still shows one of them)."""
    from dlviz.ui.show import HOLD_S, SLOTS, _place

    figs = [common.metric_curves(_history(["loss"], n), [("loss", ["loss"])]) for n in (3, 4, 5, 6)]
    slots = _place(None, figs[0], 0.0)
    assert slots.order == [0] and SLOTS == 3
    for i, t in ((1, 0.2), (2, 0.4)):
        slots = _place(slots, figs[i], t)
        assert slots.figs[slots.order[0]] is figs[i] and len(slots.order) == i + 1
    slots = _place(slots, figs[3], 0.6)  # the oldest drawing's slot takes the newest
    assert [slots.figs[i] for i in slots.order] == [figs[3], figs[2], figs[1]]
    rebuilt = common.metric_curves(_history(["loss"], 6), [("loss", ["loss"])])  # the same chart, built again
    assert _place(slots, rebuilt, 0.8).order[0] == slots.order[0] and len(slots.order) == 3
    slots = _place(slots, rebuilt, 0.6 + HOLD_S + 1)  # on top long enough to be drawn: the others go
    assert len(slots.order) == 1 and slots.figs.count(None) == SLOTS - 1
    taller = common.metric_curves(_history(["loss"], 7), [("loss", ["loss"])], height=500)
    slots = _place(_place(slots, figs[0], 10.0), taller, 10.2)  # a drawing of another height would show around it
    assert [slots.figs[i] for i in slots.order] == [taller]


def test_a_curve_of_one_or_two_points_shows_its_markers_and_a_longer_one_is_a_plain_line():
    """The first snapshots of a run: a line of one point draws nothing, so such a series shows markers."""
    one = common.metric_curves(_history(["loss"], n=1), [("loss", ["loss"])])
    two = common.metric_curves(_history(["loss"], n=2), [("loss", ["loss"])])
    many = common.metric_curves(_history(["loss"], n=3), [("loss", ["loss"])])
    assert [f.data[0].mode for f in (one, two, many)] == ["lines+markers", "lines+markers", "lines"]


def test_a_chart_made_from_its_json_is_the_element_st_plotly_chart_makes(monkeypatch):
    """dlviz.ui.show sends a figure's JSON made once (a class sharing a run serializes each figure once, not once
    per student and redraw); the element must be the one st.plotly_chart makes from the figure, to the byte, and
    its size too, or the browser would draw something else (and remount every chart on each redraw)."""
    import importlib

    from streamlit.delta_generator import DeltaGenerator
    from streamlit.testing.v1 import AppTest

    show_mod = importlib.import_module("dlviz.ui.show")
    assert show_mod._FAST is not None, "streamlit's plotly chart internals moved: update plotly_json_chart"
    sent = []
    enqueue = DeltaGenerator._enqueue

    def recording(self, delta_type, element_proto, layout_config=None, *args, **kwargs):
        if delta_type == "plotly_chart":
            sent.append((element_proto.SerializeToString(), repr(layout_config)))
        return enqueue(self, delta_type, element_proto, layout_config, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "_enqueue", recording)

    def script(fast: bool, select):
        import streamlit as st

        from dlviz.figures import common
        from dlviz.ui.show import _to_json, plotly_json_chart

        fig = common.apply_theme(common.metric_curves(
            [{"step": i, "loss": 1 / (i + 1)} for i in range(5)], [("loss", ["loss"])], height=333), True)
        with st.container(key="box"):
            if fast:
                value = plotly_json_chart(_to_json(fig), fig.layout.height, "chart", {"displaylogo": False}, select)
            elif select:
                value = st.plotly_chart(fig, key="chart", width="stretch", config={"displaylogo": False},
                                        on_select="rerun", selection_mode=select)
            else:
                st.plotly_chart(fig, key="chart", width="stretch", config={"displaylogo": False})
                value = None
        st.session_state["value"] = repr(value)

    for select in (None, ("points", "box")):
        sent.clear()
        values = []
        for fast in (False, True):
            at = AppTest.from_function(script, args=(fast, select)).run()
            assert not at.exception and len(at.get("plotly_chart")) == 1
            values.append(at.session_state["value"])
        (slow, slow_size), (fast, fast_size) = sent
        assert fast == slow and fast_size == slow_size and values[0] == values[1]
        assert b'"dlviz_height":333' in fast and "height=" in fast_size  # a real figure, a size
        assert (values[0] == "None") == (select is None)  # a selectable chart returns its (empty) selection


def test_md_table_escapes_pipes_and_aligns_columns():
    from streamlit.testing.v1 import AppTest

    def script():
        from dlviz.ui.show import md_table

        md_table([{"layer": "conv1", "|z| > 3": "12%", "n": "1,024"}, {"layer": "fc3", "n": "84"}], align="llr")
        md_table([])  # nothing to show: nothing drawn

    at = AppTest.from_function(script).run()
    assert not at.exception and len(at.markdown) == 1
    lines = at.markdown[0].value.splitlines()
    assert lines[0] == "| layer | \\|z\\| > 3 | n |"  # a pipe in a header or cell stays text
    assert lines[1] == "|---|---|---:|" and lines[3] == "| fc3 |  | 84 |"  # missing cells are empty
