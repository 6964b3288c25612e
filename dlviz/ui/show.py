"""Drawing helpers: plotly figures sized for the room, and the short explanation box of each page."""

from __future__ import annotations

import contextlib
import contextvars
import re

import plotly.graph_objects as go
import streamlit as st

from ..figures.common import FONT_FAMILY, metric_name
from ..i18n import _
from .settings import lecture_mode

# Every ASCII punctuation character: CommonMark lets a backslash escape each of them, and a backslash before
# anything else is shown as is. Escaping all of them also disarms Streamlit's own syntax (``$`` math,
# ``:red[...]`` colors, ``:material/...:`` icons) and HTML.
_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")
TITLE_COLOR = "#262730"  # streamlit's text colour
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
    """``st.plotly_chart`` with larger fonts in lecture mode; returns the selection event when ``on_select``.
    A rewound run's curves get a cursor at the step shown (:func:`cursor_at`)."""
    fig = with_cursor(fig, _CURSOR.get())
    if lecture_mode():
        fig.update_layout(font=dict(size=18))
        fig.update_annotations(font_size=18)
    # Titles dark, not the theme's light grey: they must read from the back of the room. The font list puts the
    # CJK fonts a Chinese desktop has after the Latin ones, so Chinese text never shows as boxes.
    fig.update_layout(title_font_color=TITLE_COLOR, font_family=FONT_FAMILY)
    for note in fig.layout.annotations or ():  # subplot titles; annotations that chose a colour keep it
        if note.font is None or note.font.color is None:
            note.font.color = TITLE_COLOR
    return st.plotly_chart(fig, key=key, width="stretch", config={"displaylogo": False}, **kwargs)


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
