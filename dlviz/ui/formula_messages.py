"""One-line messages for a typed formula (or a surface) that cannot be read or analysed: never a traceback."""

from __future__ import annotations

import streamlit as st

from ..i18n import _, tr
from .show import plain


def formula_unreadable(exc, formula: str) -> None:
    """The formula does not parse: where (a caret under the character) and what is allowed."""
    st.error(plain(_("The formula cannot be read: {reason} (character {value}).").format(
        reason=tr(exc.reason), value=exc.position + 1)), icon="✏️")
    st.code(f"{formula}\n{' ' * exc.position}^", language=None)
    st.caption(_("Use numbers, x, y, + - * / ^, parentheses and sin, cos, tan, exp, log, tanh, sqrt, abs, "
                 "e.g. x^4 - 2x^2 + y^2."))


def analysis_failed(config, exc: Exception) -> None:
    """One line naming the surface (or the formula) and what went wrong, instead of a traceback."""
    custom = config.surface == "custom"
    what = f"f(x, y) = {config.formula.strip()}" if custom else _("the surface {name}").format(name=config.surface)
    todo = _("Try a simpler formula, e.g. x^4 - 2x^2 + y^2.") if custom else _("Choose another surface.")
    st.error(plain(_("Could not analyse {what} ({name}: {value}). {todo}").format(
        what=what, name=type(exc).__name__, value=str(exc)[:150], todo=todo)), icon="✏️")
