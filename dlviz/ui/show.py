"""Drawing helpers: plotly figures sized for the room, and the short explanation box of each page."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from .settings import lecture_mode


def show(fig: go.Figure, key: str | None = None, **kwargs):
    """``st.plotly_chart`` with larger fonts in lecture mode; returns the selection event when ``on_select``."""
    if lecture_mode():
        fig.update_layout(font=dict(size=18))
        fig.update_annotations(font_size=18)
    return st.plotly_chart(fig, key=key, width="stretch", config={"displaylogo": False}, **kwargs)


def metric_row(items: dict[str, str]) -> None:
    """One row of big numbers: label -> formatted value."""
    for col, (label, value) in zip(st.columns(len(items)), items.items()):
        col.metric(label, value)


def explain(text: str, *formulas: str, claim: str | None = None) -> None:
    """A short explanation: markdown, the formulas (LaTeX), and the claim the demo shows."""
    with st.expander("What this shows", expanded=not lecture_mode()):
        st.markdown(text)
        for f in formulas:
            st.latex(f)
        if claim:
            st.info(f"**Claim:** {claim}")
