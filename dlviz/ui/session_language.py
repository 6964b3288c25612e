"""The session language for :mod:`dlviz.i18n`, read from the calling streamlit script thread's session state."""

from __future__ import annotations

from ..i18n import STATE_KEY, set_session_hook


def session_language() -> str | None:
    """The language stored in the session of the calling script thread (full runs and fragment reruns alike);
    None outside a script run (scheduler threads) or when streamlit's internal API moved (English then)."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx(suppress_warning=True)
        if ctx is None:
            return None
        state = ctx.session_state
        return state[STATE_KEY] if STATE_KEY in state else None
    except Exception:
        return None


set_session_hook(session_language)
