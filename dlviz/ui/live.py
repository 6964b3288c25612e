"""The live runner in streamlit: Start, Pause, Step, Reset; the server's workers train, the page only draws.

Buttons only *request* (``dlviz.runner.Runner``); the process-wide scheduler (``dlviz.scheduler``) trains every
running run in turn on its worker threads, between and during browser refreshes. A fragment redraws the live
figures every ``every_s`` while the run trains, from its latest snapshot, so drawing never waits for training and
a slow browser never slows the run. A Start identical to a run already training on the server attaches to it;
Pause, Step or Reset then gives the session a run of its own (a copy that replays to the same step).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import os
import threading
import time
import uuid
from typing import Callable

import streamlit as st
import torch

from ..demos.base import Demo
from ..figures.common import apply_theme, metric_curves
from ..i18n import N_, _, current_language, tr
from ..runner import DONE, FAILED, IDLE, PAUSED, RUNNING, Runner
from ..scheduler import scheduler
from .compute import queued
from .show import _CURSOR, _themed_json, cursor_at, freeze, plain, show, with_cursor

PACES = {N_("full speed"): 0.0, N_("10 snapshots/s"): 0.1, N_("3 snapshots/s"): 1 / 3, N_("1 snapshot/s"): 1.0,
         N_("1 every 3 s"): 3.0}  # at least this long between snapshots: a 0.3 s phenomenon slowed down to narrate
EVERY_S = 0.2  # redraw period while running: 0.1 s of training every 0.2 s measured 3.7-4.0 refreshes/s on the
# CNN page (2 cores, Chromium on the same cores) vs 3.1-3.2 for 0.15 s every 0.25 s, in the same training time
BUSY_VIEWS = 2.0  # on a busy server (a live period above every_s) the heavier views are redrawn this much less often
# than SLOW_EVERY_S says, relative to the curves: they were half of a round's drawing time, and the curves are the
# run's pulse
FEED_AREA_S = 1.0  # with the live feed (dlviz.ui.feed) the browser redraws the main chart itself; the Streamlit area
# around it (status line, metrics) then reruns at most this often
FEED_WATCHERS = int(os.environ.get("DLVIZ_FEED_WATCHERS", "6"))  # the feed draws the charts once this many sessions
# watch training runs. Fewer, the page's own reruns carry the figure (5 a second): in Chromium on 2 cores one
# session's chart refreshed 1.0-1.5 times a second from the feed (the browser also drew the reruns) against 1.5-2.0
# when the reruns carried it; forty light clients got p10 1.3-1.6 from the reruns against 2.4-3.9 from the feed
SLOW_EVERY_S = 1.5  # heavier views (filters, embeddings, galleries): every 1.5 s rather than 1 s took the CNN
# page from 2.6-2.8 to 3.3-3.4 curve refreshes/s in Chromium on 2 cores (its main thread was ~70% busy drawing them)


def session_id() -> str:
    """This browser session's id (one per tab; kept in its session state), "local" outside a script run."""
    try:
        ss = st.session_state
        if "dlviz._session" not in ss:
            ss["dlviz._session"] = uuid.uuid4().hex
        return ss["dlviz._session"]
    except Exception:  # no script run (bare mode): one id for the process
        return "local"


def share_key(demo: Demo, config, device: torch.device) -> tuple:
    """Runs with equal keys give equal numbers: demo, config (seed included), device and the code (the module's
    functions are new objects after a code reload)."""
    return demo.name, repr(config), str(device), id(demo.run)


def _others_watch(runner: Runner, me: str) -> bool:
    return any(s != me for s, t in list(runner.viewers.items()) if time.monotonic() - t <= 10.0)


def _leave(runner: Runner, me: str) -> None:
    """This session stops using ``runner``: a shared run goes on for the others; an own run is cancelled."""
    if _others_watch(runner, me):
        runner.viewers.pop(me, None)
    else:
        runner.cancel()


def _fresh(demo: Demo, config, device: torch.device, pace_s: float) -> Runner:
    runner = Runner(demo, config, device)
    runner.pace_s = pace_s
    runner.prime()  # the untrained state: figures appear before anyone presses Start
    return runner


def _runner_for(key: str, demo: Demo, config, device: torch.device, pace_s: float) -> Runner:
    """The page's runner; a new one (with its step-0 snapshot) when settings change while nothing is running."""
    ss, rk = st.session_state, f"{key}._runner"
    runner: Runner | None = ss.get(rk)
    stale = runner is not None and (runner.config != config or runner.device != device)
    if runner is None or (stale and runner.status in (IDLE, DONE, FAILED)):
        if runner is not None:
            _leave(runner, session_id())
        runner = ss[rk] = _fresh(demo, config, device, pace_s)
    return runner


def _control_row(key: str, runner: Runner, config, device, pace_s: float, main_view: Callable | None) -> None:
    ss, rk, me, sched = st.session_state, f"{key}._runner", session_id(), scheduler()

    def own() -> Runner:
        """This session's own run: a shared run is left for a paused copy at the same step."""
        r: Runner = ss[rk]
        if _others_watch(r, me):
            r.viewers.pop(me, None)
            r = ss[rk] = Runner.copy_of(r)
            r.seen(me)
        return r

    def reset():
        _leave(ss[rk], me)
        ss[rk] = _fresh(runner.demo, config, device, pace_s)

    def play():
        if ss[rk].finished:  # Start after a finished run starts a fresh one
            reset()
        r: Runner = ss[rk]
        k = share_key(r.demo, r.config, r.device)
        if r.status != IDLE:  # Resume
            r.play()
            sched.start(r, me, k)
            return
        joined = sched.start_or_join(r, me, k)
        if joined is not r:  # the same run trains already: watch it
            r.cancel()
            ss[rk] = joined

    def pause():
        r: Runner = ss[rk]
        if _others_watch(r, me):
            own()  # the copy is paused; the others' run goes on
        else:
            r.pause()

    def step():
        ss.pop(f"{key}.rewind", None)  # the timeline goes to the new step (a fast Step kept it at the old one)
        r = own()
        r.request_step()
        sched.start(r, me)

    # Paused or finished, the timeline takes the speed slider's place: the first screen of a projector keeps its
    # height. The speed is kept meanwhile (a widget not drawn would lose its value).
    rewinding = _can_rewind(runner)
    c = st.columns([1, 1, 1, 1, 1.2, 0.7])  # wide enough for the label and its key at 1280 px, sidebar open
    running = runner.status == RUNNING
    # Keyboard (Streamlit reserves C and R; S did not reach the Step button once the speed slider was added, N
    # does): Space starts and pauses (only one of the two is enabled), N steps,
    # Home resets. Keys typed into a text box stay there.
    c[0].button(_("▶ Start") if runner.status == IDLE or runner.finished else _("▶ Resume"), key=f"{key}.play",
                on_click=play, disabled=running, type="primary", width="stretch", shortcut=None if running else "Space",
                help=_("Train live (key: Space)."))
    c[1].button(_("⏸ Pause"), key=f"{key}.pause", on_click=pause, disabled=not running, width="stretch",
                shortcut=None if not running else "Space", help=_("Pause at the next yield (key: Space)."))
    c[2].button(_("⏭ Step"), key=f"{key}.step", on_click=step, disabled=runner.finished, width="stretch",
                shortcut="N", help=_("Advance one snapshot (next) and pause (key: N)."))
    c[3].button(_("↺ Reset"), key=f"{key}.reset", on_click=reset, width="stretch", shortcut="Home",
                help=_("A fresh run with the current controls (key: Home)."))
    if rewinding:
        if f"{key}.pace" in ss:
            ss[f"{key}.pace"] = ss[f"{key}.pace"]
        with c[4]:
            _timeline(key, runner)
    else:
        ss.pop(f"{key}.rewind", None)  # the next pause starts at the latest step
        c[4].select_slider(_("Speed"), list(PACES), key=f"{key}.pace", label_visibility="collapsed", format_func=_,
                           help=_("Training speed: full speed, or at most this many snapshots per second, to "
                                  "narrate a fast phenomenon. It changes the pace, not the numbers."))
    if runner.config != config or runner.device != device:
        st.warning(_("Controls changed during this run: press Reset to apply them."), icon="⚙️")
    with c[5]:
        _export(key, runner, main_view)


def feeding() -> bool:
    """Whether running charts are drawn from the live feed now: it is served, and FEED_WATCHERS sessions or more
    watch training runs (the server decides for everyone at once, so sessions switch together)."""
    from . import feed

    return feed.enabled() and scheduler().watchers() >= FEED_WATCHERS


def _period(every_s: float) -> float:
    """The live area's redraw period: longer when many sessions watch (see scheduler.DRAW_SHARE), and at least
    FEED_AREA_S while the browsers redraw the charts from the feed."""
    period = scheduler().refresh_period(every_s)
    return max(period, FEED_AREA_S) if feeding() else period


def _can_rewind(runner: Runner) -> bool:
    return runner.status in (PAUSED, DONE) and len(runner.checkpoints) >= 2 and not runner.replaying


def _timeline(key: str, runner: Runner) -> None:
    """After a pause or the end: a slider over the run's checkpoints; every figure of the page shows that step
    (the curves with a cursor)."""
    ss, rk = st.session_state, f"{key}.rewind"
    steps = [c.step for c in runner.checkpoints]
    if ss.get(rk) not in steps:
        ss[rk] = steps[-1]
    st.select_slider(_("Rewind"), steps, key=rk, label_visibility="collapsed",
                     format_func=lambda s: _("step {step}").format(step=s),
                     help=_("Scrub the run: every figure shows the run at this step (the {n} checkpoints kept). "
                            "Resume or Step go on from step {last}.").format(n=len(steps), last=steps[-1]))


def _shown(key: str, runner: Runner) -> Runner:
    """What the page draws: the run as it is, or rewound to the timeline's step."""
    return runner.at_step(st.session_state.get(f"{key}.rewind")) if _can_rewind(runner) else runner.frozen()


def history_csv(rows: list[dict]) -> str:
    """A run's metrics history as CSV: one column per metric (in order of appearance), one row per snapshot."""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    return "\n".join([",".join(cols)] + [",".join("" if r.get(c) is None else repr(r[c]) for c in cols)
                                          for r in rows]) + "\n"


def run_json(runner: Runner, link: str = "") -> str:
    """A run's demo, config (seed included), device, link, step and status as JSON: the run, reproducible."""
    return json.dumps({"demo": runner.demo.name, "config": dataclasses.asdict(runner.config),
                       "device": str(runner.device), "link": link,
                       "steps": runner.latest.step if runner.latest else 0, "status": runner.status},
                      indent=2, default=str)


def default_main_view(runner: Runner):
    """The run's loss (and accuracy) curves: the main view of a page that names none, for the replay files."""
    keys = list(dict.fromkeys(k for r in runner.history for k in r if k != "step"))
    panels = [(title, ks[:3]) for title, ks in ((_("loss"), [k for k in keys if "loss" in k]),
                                                (_("accuracy"), [k for k in keys if "acc" in k])) if ks]
    if not panels:  # a demo without loss or accuracy: its first metric
        panels = [(keys[0], keys[:1])] if keys else [("", [])]
    return metric_curves(runner.history, panels)


def replay_frames(runner: Runner, main_view: Callable, progress: Callable[[float], None] | None = None) -> list:
    """(step, figure) for every checkpoint of ``runner``: the main view as it was then, curves up to that step,
    in the app's theme at lecture sizes (the files are for slides)."""
    frames, steps = [], [c.step for c in runner.checkpoints]
    for i, step in enumerate(steps):
        view = runner.at_step(step)
        view.history = [h for h in view.history if h["step"] <= step]
        view.cursor = None
        frames.append((step, apply_theme(main_view(view), lecture=True)))  # for slides: the projector's sizes
        if progress is not None:
            progress((i + 1) / len(steps))
    return frames


def _replay_files(key: str, runner: Runner, main_view: Callable) -> None:
    """The replay of the main view: a standalone HTML page (plotly.js inside, a slider over the checkpoints,
    works offline) and an animated GIF, made on request with a progress bar, then offered for download."""
    from ..export import replay_gif, replay_html

    ss, slot = st.session_state, f"{key}._replay"
    stamp = (id(runner.token), runner.snapshots_seen)
    if len(runner.checkpoints) < 2:
        st.caption(_("The replay needs at least two snapshots: start the run first."))
        return
    if st.button(_("Make the replay (HTML and GIF)"), key=f"{key}.make_replay", width="stretch",
                 help=_("The page's main view at each of the {n} checkpoints kept, as a page that plays offline "
                        "and as a GIF for slides.").format(n=len(runner.checkpoints))):
        bar = st.progress(0.0, text=_("Drawing the checkpoints..."))
        try:
            frames = replay_frames(runner.frozen(), main_view,
                                   lambda f: bar.progress(f, text=_("Drawing the checkpoints...")))
            title = f"{_(runner.demo.title)} · seed {getattr(runner.config, 'seed', '')}"
            html = queued(_("Writing the replay"), replay_html, frames, title)
            gif = queued(_("Encoding the GIF"), replay_gif, frames, caption=title)
            ss[slot] = (stamp, html, gif)
        except Exception as exc:  # a view that cannot draw an old checkpoint: a message, never a traceback
            st.error(plain(_("The replay could not be made ({error}). The CSV and JSON still work.").format(
                error=f"{type(exc).__name__}: {exc}"[:200])), icon="🛑")
        bar.empty()
    made = ss.get(slot)
    if made is not None:
        if made[0] != stamp:
            st.caption(_("The run went on since the replay was made: make it again to include the new steps."))
        st.download_button(_("Replay (HTML, offline)"), made[1], file_name=f"{key}-replay.html", mime="text/html",
                           key=f"{key}.export_html", on_click="ignore")
        st.download_button(_("Animation (GIF)"), made[2], file_name=f"{key}-replay.gif", mime="image/gif",
                           key=f"{key}.export_gif", on_click="ignore")


def _export(key: str, runner: Runner, main_view: Callable | None = None) -> None:
    """Downloads of the run on screen, made when clicked (from the run as it is then, on a thread of the server
    that has no session: the runner is captured here): its metrics history as CSV, its config, seed and link as
    JSON; and, on request, the replay of its main view as HTML and GIF."""
    def run_now() -> Runner:
        return runner.frozen()

    try:
        link = str(st.context.url or "") + ("?" + "&".join(f"{k}={v}" for k, v in st.query_params.to_dict().items())
                                            if st.query_params else "")
    except Exception:  # no browser context (bare runs, tests)
        link = ""

    def csv() -> str:
        return history_csv(run_now().history)

    def config_json() -> str:
        return run_json(run_now(), link)

    with st.popover("⬇", help=_("Export: the run's metrics (CSV), its settings and link (JSON), as they are "
                                "when you click, and a replay of its main view (HTML and GIF).")):
        st.download_button(_("Metrics history (CSV)"), csv, file_name=f"{key}-metrics.csv", mime="text/csv",
                           key=f"{key}.export_csv", on_click="ignore")
        st.download_button(_("Config and link (JSON)"), config_json, file_name=f"{key}-run.json",
                           mime="application/json", key=f"{key}.export_json", on_click="ignore",
                           help=_("The page's address is the link too: opening it (or refreshing the page) restores "
                                  "the settings, the seed, lecture mode and what the page shows; the run itself "
                                  "starts over from step 0, to the same numbers."))
        _replay_files(key, runner, main_view or default_main_view)


def _status(key: str, runner: Runner, draw_ms: float | None, period: float) -> None:
    step = max(runner.latest.step if runner.latest else 0, runner.checkpoints[-1].step if runner.checkpoints else 0)
    if runner.status == RUNNING:  # between snapshots the heartbeats say how far training got; paused, the run's
        step = max(step, runner.progress_step)  # step is its last snapshot's, rewound or not (a pause that landed
        # on a heartbeat read "step 820", then "step 825" once rewound, with nothing changed)
    label = {IDLE: _("ready"), RUNNING: _("training"), PAUSED: _("paused"), DONE: _("finished"),
             FAILED: _("stopped")}[runner.status]
    if runner.stepping:
        label = _("stepping")
    if runner.replaying and runner.status == RUNNING:
        label = _("catching up (replaying to step {step})").format(step=runner._replay_to)
    rewound = "" if runner.cursor is None else " · **" + _("rewound to step {step} of {last}").format(
        step=runner.cursor, last=runner.checkpoints[-1].step if runner.checkpoints else step) + "**"
    watchers = runner.watchers()
    shared = _(" · shared: {n} sessions watch this run").format(n=watchers) if watchers > 1 else ""
    slow = st.session_state.get(f"{key}._slow_ms")
    cost = (_(" · draw {ms} ms").format(ms=f"{draw_ms:.0f}")
            + (_(", views {ms} ms").format(ms=f"{slow:.0f}") if slow is not None else "")
            if draw_ms is not None else "")
    busy = scheduler().running()
    if busy > 1 and runner.status == RUNNING:
        cost += _(" · {n} runs training on this server").format(n=busy)
    if period > EVERY_S * 1.5 and runner.status == RUNNING:
        cost += _(" · redrawn every {s} s (a busy server)").format(s=f"{period:.1f}")
    # The loadtest client and the browser tests read "step N ·" and " of compute on " (English, the default).
    st.caption(f"**{label}** · "
               + _("step {step} · {s} s of compute on {device}").format(
                   step=step, s=f"{runner.compute_seconds:.1f}", device=runner.device.type)
               + f"{rewound}{shared}{cost}")
    if shared:
        st.caption(_("Pause, Step or Reset gives you a run of your own at this step; the others' run goes on."))
    if runner.notice:  # written by the server's threads in English: shown translated when the catalogue has it
        st.info(plain(tr(runner.notice)), icon="⏸")
    if runner.status == FAILED:
        st.error(plain(tr(runner.message)), icon="🛑")  # messages may quote a formula or a value from a link


_BUILDS = threading.Condition()  # guards _BUILDING: the shared views being built now, by (views dict id, key)
_BUILDING: set = set()
_REBUILD_S: contextvars.ContextVar[float] = contextvars.ContextVar("dlviz_rebuild_s", default=0.0)


@contextlib.contextmanager
def _redraw(r: Runner, period_s: float):
    """One redraw of an area showing ``r``; yields a list whose item is set to the seconds it took. On a crowded
    server a training run's redraws take turns (scheduler.DrawGate); shared views drawn inside are rebuilt at most
    once per ``period_s`` (a little less) while the run trains."""
    sched, took = scheduler(), [0.0]
    gated = r.status == RUNNING and sched.crowded()
    token = _REBUILD_S.set(period_s * 0.9)
    try:
        with sched.gate.turn() if gated else contextlib.nullcontext():
            t0 = time.perf_counter()
            yield took
            took[0] = time.perf_counter() - t0
    finally:
        _REBUILD_S.reset(token)


def shared_view(runner: Runner, name: str, build: Callable[[], object], *parts) -> object:
    """``build()`` once per snapshot of ``runner`` (per lecture mode and ``parts``), shared by every session that
    draws this run: a class watching one shared run costs one build of each figure per snapshot, not one per
    student and redraw (building a plotly figure is most of a redraw: 49 ms vs 1 ms to serialize it). Sessions
    in different languages share the run but not its figures (titles and legends are text).

    While the run trains, a view is rebuilt at most once per redraw period of the area drawing it (live_run sets
    it; the period grows with the sessions watching), and one session builds it while the others draw the last
    one: with 20 sessions a new snapshot reached some session's heavier views at every one of their redraws, and
    their builds took 40% of the interpreter. A paused or rewound run's views are the step shown, always."""
    return stamped_view(runner, name, build, parts)[1]


def view_key(name: str, parts: tuple = ()) -> tuple:
    """The key of a run's view in its cache (``runner._views``) for this context's lecture mode and language:
    figures carry text, so one per language."""
    from .settings import lecture_mode

    return name, lecture_mode(), current_language(), parts


def stamped_view(runner: Runner, name: str, build: Callable[[], object], parts: tuple = (),
                 rebuild_s: float | None = None) -> tuple[tuple, object]:
    """``shared_view``, with the (snapshots seen, status, cursor) of the run the view was built at;
    ``rebuild_s``: the least age of a running run's view before it is rebuilt (default: the drawing area's)."""
    key = view_key(name, parts)
    stamp = (runner.snapshots_seen, runner.status, runner.cursor)  # a rewound view is another picture
    views, mine = runner._views, (id(runner._views), key)
    live = stamp[1] == RUNNING and stamp[2] is None
    rebuild_s = _REBUILD_S.get() if rebuild_s is None else rebuild_s
    with _BUILDS:
        while True:
            hit = views.get(key)
            if hit is not None and hit[0] == stamp:
                return hit[0], hit[1]
            recent = live and hit is not None and hit[0][1] == RUNNING and hit[0][2] is None
            if recent and time.monotonic() - hit[2] < rebuild_s:
                return hit[0], hit[1]  # built less than a redraw period ago
            if mine not in _BUILDING:
                _BUILDING.add(mine)
                break
            if recent:
                return hit[0], hit[1]  # the next one is being built: this redraw shows the last one
            _BUILDS.wait(0.5)
    try:
        value = freeze(build(), key[1])  # themed before others see it, serialized once (dlviz.ui.show.freeze)
        views[key] = (stamp, value, time.monotonic())
        return stamp, value
    finally:
        with _BUILDS:
            _BUILDING.discard(mine)
            _BUILDS.notify_all()


_LIVE: contextvars.ContextVar[Runner | None] = contextvars.ContextVar("dlviz_live_runner", default=None)


def live_chart(runner: Runner, name: str, build: Callable[[Runner], object], key: str, *parts) -> None:
    """A page's main live chart, ``build(runner)`` (a plotly figure), built once per snapshot for all the run's
    viewers (``shared_view``). Where the live feed is served (dlviz.ui.feed), the chart is its component: while
    a run trains on a busy server (``feeding``) the browser draws it from the feed, several times a second,
    between the page's own redraws; otherwise each redraw sends the figure of the step shown (Plotly.react
    redraws it in place). Without the feed: ``show(shared_view(...), key=key)``."""
    from . import feed
    from .settings import lecture_mode

    fig = shared_view(runner, name, lambda: build(runner), *parts)
    if not feed.enabled():
        show(fig, key=key)
        return
    live, step = _LIVE.get(), runner.latest.step if runner.latest is not None else 0
    if live is not None and runner.status == RUNNING and runner.cursor is None and feeding():
        token = feed.register((session_id(), key), live, name, build, parts, current_language(), lecture_mode())
        feed.chart(key, feed=token, height=fig.layout.height, step=step)
    else:
        fig = with_cursor(fig, _CURSOR.get())
        feed.chart(key, spec=_themed_json(fig, lecture_mode()), height=fig.layout.height, step=step)


def views_rounds(period: float, every_s: float = EVERY_S, slow_every_s: float = SLOW_EVERY_S) -> float:
    """Live redraws per redraw of the heavier views: ``slow_every_s / every_s``, times BUSY_VIEWS when the server
    has lengthened the live period (many sessions watch). Measured on 2 cores, 40 clients on one CNN run
    (dlviz.ui.loadtest, 15 s): 1.5-1.7 curve refreshes/s each with the views every 7.5 rounds, 2.0 with 15."""
    return slow_every_s / every_s * (BUSY_VIEWS if period > every_s + 1e-9 else 1.0)


def live_run(key: str, demo: Demo, config, device: torch.device, draw: Callable[[Runner], None],
             draw_slow: Callable[[Runner], None] | None = None, every_s: float = EVERY_S,
             slow_every_s: float = SLOW_EVERY_S, pace_s: float = 0.0, stage=None, views=None,
             main_view: Callable[[Runner], object] | None = None) -> Runner:
    """Controls plus a live area that ``draw(runner)`` fills; returns the page's runner.

    ``draw`` (metrics, curves) refreshes every ``every_s`` while training; ``draw_slow`` (heavier views) sits in
    a sibling fragment below it that refreshes every ``slow_every_s``, so costly figures do not slow the curves.
    ``pace_s``: at least this long between snapshots (one snapshot per redraw: an animation). Widgets inside
    either area rerun only that area.

    Figure first: ``stage`` (a container the page made right under its title) receives the buttons and the live
    area, so the first screen of a projector shows them above the controls and the explanation; ``views`` (a
    container below those) receives the heavier views. Both default to here.

    Paused or finished, a timeline rewinds every figure to a checkpoint (``Runner.at_step``); ``main_view(runner)``
    (a plotly figure; default: the loss and accuracy curves) is what the HTML and GIF replays show.
    """
    pace_s = max(pace_s, PACES.get(st.session_state.get(f"{key}.pace"), 0.0))  # the page's own pace, or slower
    runner = _runner_for(key, demo, config, device, pace_s)
    if runner.pace_s != pace_s and _others_watch(runner, session_id()):
        runner = st.session_state[f"{key}._runner"] = Runner.copy_of(runner)  # a slower run of one's own:
        runner.seen(session_id())  # it replays to the shared run's step, then goes on at its own pace
        runner.play()
        scheduler().start(runner, session_id())
    runner.pace_s = pace_s  # presentation only: the numbers do not depend on it
    with stage if stage is not None else contextlib.nullcontext():
        _control_row(key, runner, config, device, pace_s, main_view)
    st.session_state[f"{key}._buttons"] = runner.status
    me, sched = session_id(), scheduler()
    period = _period(every_s)
    st.session_state[f"{key}._period"] = (period, time.monotonic())

    @st.fragment(run_every=period if runner.status == RUNNING else None)
    def live_area():
        ss = st.session_state
        r: Runner = ss[f"{key}._runner"]
        r.seen(me)
        if r.status == RUNNING:
            sched.start(r)  # a no-op while it trains; puts back a run that lost its place
        with _redraw(r, ss[f"{key}._period"][0]) as took:
            frozen = _shown(key, r)  # one consistent state for every figure of this redraw; the worker trains on
            _status(key, frozen, ss.get(f"{key}._draw_ms"), ss[f"{key}._period"][0])
            live_token = _LIVE.set(r)
            try:
                with cursor_at(frozen.cursor):
                    draw(frozen)
            finally:
                _LIVE.reset(live_token)
        spent = took[0]
        ss[f"{key}._draw_ms"] = spent * 1000
        if r.status == RUNNING:  # timed redraws only: a page drawn once does not load the server
            sched.drew(me, spent)
        if (r.status == RUNNING) != (ss.get(f"{key}._buttons") == RUNNING):
            st.rerun()  # the run ended or paused since the buttons were drawn: redraw them, set the timer
        used, since = ss[f"{key}._period"]
        wanted = _period(every_s)
        if r.status == RUNNING and time.monotonic() - since > 3 and not 0.5 <= wanted / used <= 2.0:
            st.rerun()  # the server got busier or quieter: a full run sets the new period

    with stage if stage is not None else contextlib.nullcontext():
        live_area()
    sched.gate.head_done()  # the figure a Start waits for is out: the next full run's goes before our rest
    if draw_slow is not None:
        rounds = views_rounds(period, every_s, slow_every_s)
        slow_s = rounds * period

        @st.fragment(run_every=slow_s if runner.status == RUNNING else None)
        def slow_area():
            r: Runner = st.session_state[f"{key}._runner"]
            with _redraw(r, slow_s) as took:
                shown = _shown(key, r)
                with cursor_at(shown.cursor):
                    draw_slow(shown)
            spent = took[0]
            st.session_state[f"{key}._slow_ms"] = spent * 1000
            if r.status == RUNNING:  # in the drawing budget too, as its share of each round of live redraws
                sched.drew(me, spent / rounds, part="views")

        with views if views is not None else contextlib.nullcontext():
            slow_area()
    return runner


__all__ = ["live_run", "live_chart", "session_id", "share_key", "shared_view", "default_main_view", "replay_frames", "RUNNING", "PAUSED", "DONE", "FAILED", "IDLE"]
