"""The live runner in streamlit: play, pause, one step, reset; a fragment advances training in time slices.

Each refresh of the fragment trains for ``budget_s`` seconds (many optimizer steps), then redraws only the live
figures; the page around it does not rerun. When the run ends the timer turns off.
"""

from __future__ import annotations

import time
from typing import Callable

import streamlit as st
import torch

from ..demos.base import Demo
from ..runner import DONE, FAILED, IDLE, PAUSED, RUNNING, Runner
from .show import plain

BUDGET_S = 0.1  # training time per refresh
EVERY_S = 0.2  # refresh period while running: 0.1 s of training every 0.2 s measured 3.7-4.0 refreshes/s on
# the CNN page (2 cores, Chromium on the same cores) vs 3.1-3.2 for 0.15 s every 0.25 s, in the same training time
SLOW_EVERY_S = 1.5  # heavier views (filters, embeddings, galleries): every 1.5 s rather than 1 s took the CNN
# page from 2.6-2.8 to 3.3-3.4 curve refreshes/s in Chromium on 2 cores (its main thread was ~70% busy drawing them)


def _runner_for(key: str, demo: Demo, config, device: torch.device) -> Runner:
    """The page's runner; a new one (with its step-0 snapshot) when settings change while nothing is running."""
    ss, rk = st.session_state, f"{key}._runner"
    runner: Runner | None = ss.get(rk)
    stale = runner is not None and (runner.config != config or runner.device != device)
    if runner is None or (stale and runner.status in (IDLE, DONE, FAILED)):
        if runner is not None:
            runner.cancel()
        runner = Runner(demo, config, device)
        runner.prime()  # the untrained state: figures appear before anyone presses Start
        ss[rk] = runner
    return runner


def _control_row(key: str, runner: Runner, config, device) -> None:
    ss, rk = st.session_state, f"{key}._runner"

    # Callbacks only request: the slice running in another script thread (fast reruns) sees the request at
    # the generator's next yield. Reset replaces the run; the old one stops there and closes its generator.
    def reset():
        old = ss.get(rk)
        if old is not None:
            old.cancel()
        new = Runner(demo=runner.demo, config=config, device=device)
        new.prime()
        ss[rk] = new

    def play():
        r = ss[rk]
        if r.finished:  # Start after a finished run starts a fresh one
            reset()
        ss[rk].play()

    c = st.columns([1, 1, 1, 1, 3])
    running = runner.status == RUNNING
    c[0].button("▶ Start" if runner.status == IDLE or runner.finished else "▶ Resume", key=f"{key}.play",
                on_click=play, disabled=running, type="primary", width="stretch")
    c[1].button("⏸ Pause", key=f"{key}.pause", on_click=lambda: ss[rk].pause(), disabled=not running,
                width="stretch")
    c[2].button("⏭ Step", key=f"{key}.step", on_click=lambda: ss[rk].request_step(), disabled=runner.finished,
                width="stretch", help="Advance one snapshot and pause.")
    c[3].button("↺ Reset", key=f"{key}.reset", on_click=reset, width="stretch")
    if runner.config != config or runner.device != device:
        c[4].warning("Controls changed during this run: press Reset to apply them.", icon="⚙️")


def _status(key: str, runner: Runner, timing: tuple[float, float] | None) -> None:
    step = max(runner.latest.step if runner.latest else 0, runner.progress_step)
    label = {IDLE: "ready", RUNNING: "training", PAUSED: "paused", DONE: "finished", FAILED: "stopped"}[runner.status]
    if runner.stepping:
        label = "stepping"
    # The last refresh's cost (train slice + drawing) lets a lecturer see why a page feels slow.
    cost = f" · refresh: train {timing[0] * 1000:.0f} ms, draw {timing[1] * 1000:.0f} ms" if timing else ""
    slow = st.session_state.get(f"{key}._slow_ms")
    cost += f", views {slow:.0f} ms" if slow is not None and timing else ""
    st.caption(f"**{label}** · step {step} · {runner.compute_seconds:.1f} s of compute on {runner.device.type}{cost}")
    if runner.status == FAILED:
        st.error(plain(runner.message), icon="🛑")  # messages may quote a formula or a value from a link


def live_run(key: str, demo: Demo, config, device: torch.device, draw: Callable[[Runner], None],
             draw_slow: Callable[[Runner], None] | None = None, budget_s: float = BUDGET_S,
             every_s: float = EVERY_S, slow_every_s: float = SLOW_EVERY_S) -> Runner:
    """Controls plus a live area that ``draw(runner)`` fills; returns the page's runner.

    ``draw`` (metrics, curves) refreshes every ``every_s`` while training; ``draw_slow`` (heavier views) sits in
    a sibling fragment below it that refreshes every ``slow_every_s``, so costly figures do not slow the curves.
    Widgets inside either area rerun only that area.
    """
    runner = _runner_for(key, demo, config, device)
    _control_row(key, runner, config, device)

    @st.fragment(run_every=every_s if runner.status == RUNNING else None)
    def live_area():
        r: Runner = st.session_state[f"{key}._runner"]
        tk = f"{key}._timing"
        if r.status == RUNNING:
            t0 = time.perf_counter()
            r.advance(budget_s)
            if r.status != RUNNING:
                st.rerun()  # the run ended: redraw the buttons and turn the timer off
            st.session_state[tk] = (time.perf_counter() - t0, st.session_state.get(tk, (0, 0))[1])
        _status(key, r, st.session_state.get(tk))
        t1 = time.perf_counter()
        draw(r)
        st.session_state[tk] = (st.session_state.get(tk, (0, 0))[0], time.perf_counter() - t1)

    live_area()
    if draw_slow is not None:
        @st.fragment(run_every=slow_every_s if runner.status == RUNNING else None)
        def slow_area():
            t0 = time.perf_counter()
            draw_slow(st.session_state[f"{key}._runner"])
            st.session_state[f"{key}._slow_ms"] = (time.perf_counter() - t0) * 1000

        slow_area()
    return runner


__all__ = ["live_run", "RUNNING", "PAUSED", "DONE", "FAILED", "IDLE"]
