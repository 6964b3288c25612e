"""On-demand computations through the server's queue: the page says how many are ahead, then shows the result."""

from __future__ import annotations

from typing import Any, Callable

import streamlit as st

from ..i18n import _
from ..scheduler import scheduler


def queued(label: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` on the server's computation lane, one at a time across all sessions, first come
    first served; while it waits the page says "2 computations ahead of yours". Returns the result or raises
    what ``fn`` raised. The training lane keeps going meanwhile."""
    job = scheduler().submit(label, fn, *args, **kwargs)
    box = st.empty()
    while not job.done.wait(0.25):
        ahead = job.ahead()
        box.info((_("{label}: 1 computation ahead of yours, waiting...") if ahead == 1 else
                  _("{label}: {n} computations ahead of yours, waiting...")).format(label=label, n=ahead)
                 if ahead else f"{label}...", icon="⏳")
    box.empty()
    return job.wait(0)
