"""Drawing helpers: plotly figures sized for the room, and the short explanation box of each page."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import re
import threading
import time

import plotly.graph_objects as go
import streamlit as st

from ..figures.common import TEXT, apply_theme, metric_name
from ..i18n import _
from .settings import lecture_mode

# Every ASCII punctuation character: CommonMark lets a backslash escape each of them, and a backslash before
# anything else is shown as is. Escaping all of them also disarms Streamlit's own syntax (``$`` math,
# ``:red[...]`` colors, ``:material/...:`` icons) and HTML.
_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")
TITLE_COLOR = TEXT  # streamlit's text colour
_AUTOLINK_START = re.compile(r"(?i)(https?|ftp|www|mailto)")


def plain(text: object) -> str:
    """``text`` escaped so that st.markdown / st.error / st.warning / st.caption show it literally.

    Use for anything a user typed or a link carried: ``![](http://host/p.png)`` must not become an image the
    browser fetches, nor ``[x](http://host)`` a link. Line breaks become spaces (one-line messages).
    GFM also turns bare ``http://...``, ``www.x`` and ``a@b.c`` into links, escaped or not (it runs on the
    parsed text), so an invisible word joiner (U+2060) goes after ``http``/``ftp``/``www``/``mailto`` and
    before ``@``: the text looks the same and no autolink starts.
    """
    s = _AUTOLINK_START.sub("\\1\u2060", " ".join(str(text).splitlines())).replace("@", "\u2060@")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", s)


# The step a rewound run is drawn at (dlviz.ui.live sets it around a page's drawing): curves over training steps
# get a cursor there. A context variable, so each session's script thread has its own.
_CURSOR: contextvars.ContextVar[int | None] = contextvars.ContextVar("dlviz_cursor", default=None)
_STEP_TITLES = ("step", "iteration", "epoch")


@contextlib.contextmanager
def cursor_at(step: int | None):
    token = _CURSOR.set(step)
    try:
        yield
    finally:
        _CURSOR.reset(token)


def with_cursor(fig: go.Figure, step: int | None) -> go.Figure:
    """A copy of ``fig`` with a vertical line at ``step`` on every x axis titled step/iteration (the figure may
    be shared by other sessions: it is never changed in place). Without such an axis, ``fig`` itself."""
    if step is None:
        return fig
    titles = {metric_name(t) for t in _STEP_TITLES} | set(_STEP_TITLES)
    axes = [(name, ax) for name, ax in fig.layout.to_plotly_json().items()
            if name.startswith("xaxis") and isinstance(ax, dict) and (ax.get("title") or {}).get("text") in titles]
    if not axes:
        return fig
    fig = go.Figure(fig)
    for name, ax in axes:
        suffix = name[len("xaxis"):]
        yref = (ax.get("anchor") or "y" + suffix) + " domain"
        fig.add_shape(type="line", xref="x" + suffix, yref=yref, x0=step, x1=step, y0=0, y1=1,
                      line=dict(color="#262730", width=2, dash="dash"))
    return fig


def show(fig: go.Figure, key: str | None = None, **kwargs):
    """``st.plotly_chart`` in the app's theme (:func:`dlviz.figures.common.apply_theme`: larger text in lecture
    mode, dark titles and tick labels, legends clear of the axes); returns the selection event when ``on_select``.
    A rewound run's curves get a cursor at the step shown (:func:`cursor_at`). A chart with a ``key`` is
    buffered (:func:`_buffered`) so that a live redraw never shows an empty frame."""
    fig = with_cursor(fig, _CURSOR.get())  # a copy (not frozen) when there is a cursor to draw
    config = {"displaylogo": False}
    if key is not None and _FAST is not None and kwargs.get("on_select") == "rerun" and set(kwargs) <= {
            "on_select", "selection_mode"}:  # a selectable chart is a widget: one element, no slots
        modes = kwargs.get("selection_mode", _ALL_MODES)
        return plotly_json_chart(_themed_json(fig, lecture_mode()), fig.layout.height, key, config,
                                 (modes,) if isinstance(modes, str) else tuple(modes))
    if key is None or kwargs.get("on_select", "ignore") != "ignore":
        apply_theme(fig, lecture_mode())
        return st.plotly_chart(fig, key=key, width="stretch", config=config, **kwargs)
    return _buffered(fig, _themed_json(fig, lecture_mode()), key, config, **kwargs)


# -- buffered charts ------------------------------------------------------------------------------------------------
# Streamlit names a plotly chart by a hash of its figure, and the browser keys the chart's element by that name:
# every new figure mounts a new element, and react-plotly draws it only after the browser has shown the empty one.
# A chart redrawn several times a second was empty in 6 of 150 samples on the GAN page (every 50 ms in Chromium;
# 23-39 of 150 with the machine's 2 cores busy; the CNN page's curves 19 of 60). So a chart has SLOTS slots stacked
# in one grid cell (STEADY_CSS in dlviz.ui.settings), the newest on top: a new figure replaces the oldest, and the
# others are sent again unchanged
# (same name: the browser keeps their drawings; over 10 kB one travels as a reference to the message the browser
# has cached). Until the new one is drawn its slot is empty and transparent and the previous drawing shows through;
# once drawn, its opaque background (apply_theme) covers the others. Two slots were not enough on a busy machine:
# a browser that falls one redraw behind mounts both at once (2 of 150 samples empty on the GAN page, 4 of 60 on
# the CNN page); three keep a drawing from two redraws back (0 of 150; tests/test_browser_figures.py samples it).
# A figure that stays on top for HOLD_S sheds the others. A figure is compared with the one on top by its JSON
# (made once anyway, see below): only a changed figure takes a slot.
SLOTS = 3
HOLD_S = 3.0
_CHARTS = "dlviz._charts"  # session state: chart key -> _Slots
_MAX_CHARTS = 64  # per session, the least recently drawn forgotten first


@dataclasses.dataclass
class _Slots:
    figs: list  # the figure in each slot (None: empty)
    order: list  # the slots holding a figure, newest first
    since: float = 0.0  # time.monotonic() when the newest figure was put in
    specs: list = dataclasses.field(default_factory=lambda: [None] * SLOTS)  # each slot's figure as JSON


_SLOT = ".slot"  # the keys of a chart's other slots: "cnn.curves.slot1", "cnn.curves.slot2"


def chart_key(element_key: str) -> str:
    """The key a page gave :func:`show` for a chart element of any of its slots (tests count charts by it)."""
    return re.sub(re.escape(_SLOT) + r"\d+$", "", element_key)


# -- a figure's JSON, made once ---------------------------------------------------------------------------------
# st.plotly_chart copies the figure (to_dict) and serializes it on every call: 2-3 ms a chart on the CNN page, for
# each slot, session and redraw, the largest part of a live redraw on a server a class shares (a py-spy profile of
# 20 sessions on one run: 19% of the interpreter's time in to_dict, 5% in to_json, 4% more to compare figures).
# So a figure is serialized once: when a slot takes it (the JSON is kept with the slot, and is what the browser is
# sent until the slot takes another figure) and, for a figure every session of a run shares (``freeze``, which
# dlviz.ui.live.shared_view does), once for all sessions. A shared figure is themed before anyone can see it, never
# after: sessions restyling one figure at once made another session's reader fail ("dictionary changed size during
# iteration", seen under load with 20 sessions). The chart element is then made from that JSON exactly as
# st.plotly_chart makes it (tests/test_figures_theme.py compares the two); on a streamlit whose internals differ,
# st.plotly_chart draws it.
_FROZEN = "_dlviz_json"  # attribute of a frozen figure: [its lecture mode, its JSON once made]
_FREEZING = threading.Lock()


def freeze(fig, lecture: bool):
    """``fig`` in the app's theme for ``lecture``, marked as never changed again: it may now be shared by
    sessions (their threads only read it) and is serialized once. Anything else is returned as it is."""
    if isinstance(fig, go.Figure) and getattr(fig, _FROZEN, None) is None:
        apply_theme(fig, lecture)
        object.__setattr__(fig, _FROZEN, [lecture, None])
    return fig


def _to_json(fig: go.Figure) -> str:
    import plotly.io

    return plotly.io.to_json(fig.to_dict(), validate=False)  # what st.plotly_chart sends


def _themed_json(fig: go.Figure, lecture: bool) -> str:
    """``fig`` in the app's theme, as the JSON the browser draws; made once for a frozen figure (another mode's
    drawing of it is made from a copy: other threads may be reading it)."""
    frozen = getattr(fig, _FROZEN, None)
    if frozen is None or frozen[0] != lecture:
        fig = go.Figure(fig) if frozen is not None else fig
        apply_theme(fig, lecture)
        return _to_json(fig)
    with _FREEZING:  # made once, not once by each session that draws it at the same moment
        if frozen[1] is None:
            frozen[1] = _to_json(fig)
        return frozen[1]


def _key_class(key: str) -> str:
    """The CSS class streamlit gives the element of ``key`` (dlviz.browser.key_class, without importing it)."""
    return "st-key-" + re.sub(r"[^a-zA-Z0-9_-]", "-", key.strip())


def _fast_chart_parts():
    """What st.plotly_chart uses to make its element, or None where this streamlit's internals differ."""
    try:
        from streamlit.elements import plotly_chart as pc
        from streamlit.elements.lib import agent_spec
        from streamlit.elements.lib.form_utils import current_form_id
        from streamlit.elements.lib.layout_utils import LayoutConfig
        from streamlit.elements.lib.policies import check_widget_policies
        from streamlit.elements.lib.utils import compute_and_register_element_id
        from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx
        from streamlit.runtime.state import register_widget

        return dict(form_id=current_form_id, layout=LayoutConfig, element_id=compute_and_register_element_id,
                    height=pc._resolve_content_height, proto=pc.PlotlyChartProto, data=pc._plotly_data,
                    agent=agent_spec.element, policies=check_widget_policies, ctx=get_script_run_ctx,
                    register=register_widget, serde=pc.PlotlyChartSelectionSerde, modes=pc.parse_selection_mode,
                    modes_named=pc._SELECTION_MODE_FROM_PROTO)
    except (ImportError, AttributeError):
        return None


_FAST = _fast_chart_parts()
_ALL_MODES = ("points", "box", "lasso")


def plotly_json_chart(spec: str, height, key: str, config: dict, selection_mode=None):
    """The chart element ``st.plotly_chart(figure, key=key, width="stretch", config=config)`` makes, from the
    figure's JSON ``spec`` and layout ``height`` (streamlit's theme). ``selection_mode`` (e.g. ``("points",
    "box")``): a selectable chart, as with ``on_select="rerun"``; it returns the selection as st.plotly_chart does."""
    import json

    f, dg = _FAST, st._main
    select = selection_mode is not None
    if select:
        f["policies"](dg, key, on_change=None, default_value=None, writes_allowed=False,
                      enable_check_callback_rules=False)
    proto = f["proto"]()
    proto.theme = "streamlit"
    proto.form_id = f["form_id"](dg)
    proto.spec = spec
    proto.config = json.dumps(config)
    proto.id = f["element_id"]("plotly_chart", user_key=key, key_as_main_identity=False, dg=dg, plotly_spec=spec,
                               plotly_config=proto.config, selection_mode=selection_mode or _ALL_MODES,
                               is_selection_activated=select, theme="streamlit", width="stretch", height="content",
                               alt=None)
    layout = f["layout"](width="stretch", height=f["height"]("content", {"layout": {"height": height}}))
    if not select:
        dg._enqueue("plotly_chart", proto, layout_config=layout, agent_props=f["agent"](
            "plotly_chart", key=key, data_builder=lambda: f["data"](spec), alt=None))
        return None
    proto.selection_mode.extend(f["modes"](selection_mode))
    serde = f["serde"]()
    state = f["register"](proto.id, on_change_handler=None, deserializer=serde.deserialize,
                          serializer=serde.serialize, ctx=f["ctx"](), value_type="string_value")
    dg._enqueue("plotly_chart", proto, layout_config=layout, agent_props=f["agent"](
        "plotly_chart", key=proto.id, data_builder=lambda: f["data"](spec), support="action_unsupported",
        selection_mode=sorted(f["modes_named"][m] for m in proto.selection_mode) or None, on_select="rerun",
        alt=None))
    return state.value


def _place(slots: _Slots | None, fig: go.Figure, now: float, spec: str | None = None) -> _Slots:
    """Put ``fig`` (its JSON ``spec``) in a slot: the top one if it shows the same figure (the same object, or the
    same JSON: a rerun that rebuilds an unchanged chart leaves it alone), else an empty slot or the oldest, which
    becomes the top."""
    spec = _to_json(fig) if spec is None else spec
    if slots is None:
        return _Slots([fig] + [None] * (SLOTS - 1), [0], now, [spec] + [None] * (SLOTS - 1))
    top = slots.order[0]
    if fig is slots.figs[top] or spec == slots.specs[top]:
        slots.figs[top], slots.specs[top] = fig, spec
        if now - slots.since > HOLD_S:  # drawn long ago: the others can go
            slots.figs = [fig if i == top else None for i in range(SLOTS)]
            slots.specs = [spec if i == top else None for i in range(SLOTS)]
            slots.order = [top]
        return slots
    free = [i for i in range(SLOTS) if slots.figs[i] is None]
    slot = free[0] if free else slots.order[-1]
    slots.figs[slot], slots.specs[slot] = fig, spec
    slots.order = [slot] + [i for i in slots.order if i != slot]
    slots.since = now
    # A drawing of another height would show under or beside the new one (a grid that gained a row): it goes.
    height = fig.layout.height
    for i in slots.order[1:]:
        if slots.figs[i].layout.height != height:
            slots.figs[i] = slots.specs[i] = None
    slots.order = [i for i in slots.order if slots.figs[i] is not None]
    return slots


def _buffered(fig: go.Figure, spec: str, key: str, config: dict, **kwargs):
    charts = st.session_state.setdefault(_CHARTS, {})
    slots = charts[key] = _place(charts.pop(key, None), fig, time.monotonic(), spec)
    while len(charts) > _MAX_CHARTS:
        charts.pop(next(iter(charts)))
    keys = [key] + [f"{key}{_SLOT}{i}" for i in range(1, SLOTS)]
    out = None
    with st.container(key=f"dlviz_buf_{key}"):
        for slot, shown in enumerate(slots.figs):
            if shown is None:
                st.empty()
            elif _FAST is not None and not kwargs:
                plotly_json_chart(slots.specs[slot], shown.layout.height, keys[slot], config)
            else:
                drawn = st.plotly_chart(shown, key=keys[slot], width="stretch", config=config, **kwargs)
                out = drawn if slot == slots.order[0] else out
        # After the charts, newest on top: until this arrives, the previous order holds.
        st.markdown("<style>" + " ".join(f".{_key_class(keys[slot])} {{ z-index: {SLOTS - rank}; }}"
                                         for rank, slot in enumerate(slots.order)) + "</style>",
                    unsafe_allow_html=True)
    return out


def md_table(rows: list[dict], align: str = "") -> None:
    """A small table (a list of dicts, one per row; the first row's keys are the columns) as markdown: a few rows
    drawn in every (live) run cost 7% of the CNN page's full run as an ``st.dataframe`` (pandas and Arrow).
    ``align``: one character per column, "r" right-aligns it."""
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    if not rows:
        return
    cols = list(rows[0])
    rule = "|".join("---:" if align[i:i + 1] == "r" else "---" for i in range(len(cols)))
    st.markdown("\n".join([f"| {' | '.join(cell(c) for c in cols)} |", f"|{rule}|"]
                           + [f"| {' | '.join(cell(r.get(c, '')) for c in cols)} |" for r in rows]))


def metric_row(items: dict[str, str]) -> None:
    """One row of big numbers: label -> formatted value."""
    for col, (label, value) in zip(st.columns(len(items)), items.items()):
        col.metric(label, value)


def explain(text: str, *formulas: str, claim: str | None = None) -> None:
    """A short explanation: markdown, the formulas (LaTeX), and the claim the demo shows.

    ``text`` and ``claim`` are shown as given (pages pass them through ``_()``; a claim from a ``Claim`` object
    is extracted by dlviz.i18n_extract) and translated here once more, which is harmless for translated text."""
    with st.expander(_("What this shows"), expanded=not lecture_mode()):
        st.markdown(_(text))
        for f in formulas:
            st.latex(f)
        if claim:
            st.info("**" + _("Claim:") + "** " + _(claim))
