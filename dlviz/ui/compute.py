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
    sched = scheduler()
    job = sched.submit(label, fn, *args, **kwargs)
    box = st.empty()
    with sched.gate.away():  # the other sessions' clicks need not wait for this one's computation
        while not job.done.wait(0.25):
            ahead = job.ahead()
            box.info((_("{label}: 1 computation ahead of yours, waiting...") if ahead == 1 else
                      _("{label}: {n} computations ahead of yours, waiting...")).format(label=label, n=ahead)
                     if ahead else f"{label}...", icon="⏳")
    box.empty()
    return job.wait(0)


def on_request(key: str, name: str, runner, step: int, fn: Callable[[], Any]) -> tuple[int | None, Any]:
    """A button "Compute {name} at step {step}" that runs ``fn`` through the queue; the result is kept for this
    run (session state ``{key}.{name}``) and returned as (the step it was computed at, result), or (None, None)
    before the first press. ``name`` is English, marked N_() by the caller; the button shows it translated."""
    store, shown = f"{key}.{name}", _(name)
    if st.button(_("Compute {name} at step {step}").format(name=shown, step=step), key=f"{key}.{name}_go"):
        try:
            st.session_state[store] = (runner.token, step, queued(_("Computing the {name}").format(name=shown), fn))
        except (ValueError, RuntimeError) as exc:
            st.warning(_("Could not compute the {name}: {exc}").format(name=shown, exc=exc))
    cache = st.session_state.get(store)
    # The run's token, not an id(): a new run may reuse a freed one's id and show the old run's slices.
    return (cache[1], cache[2]) if cache and cache[0] is runner.token else (None, None)
