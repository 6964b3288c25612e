"""One scheduler per server process: worker threads train the running runs in turn; pages only draw.

- **Training lane.** ``workers`` threads (from the cores and the device, ``$DLVIZ_WORKERS`` to override) take the
  running runs round-robin and train each for one slice (``slice_s``), so at most ``workers`` slices run at once
  and no run starves: with N runs, each gets a slice every N / workers turns. Training goes on between browser
  refreshes; a hidden tab or a slow projector never slows a run. In the app the runs' generators live in worker
  processes (``dlviz.procs``): a training thread here only pulls their snapshots, and drawing has this process's
  interpreter to itself.
- **Computation lane.** On-demand computations (a landscape slice, the labelled ViT, t-SNE of a snapshot) wait in
  one queue, first come first served, on their own thread; :meth:`Job.ahead` says how many are before yours.
- **Housekeeping.** A session has one running training: starting another pauses the first. A run no page has
  drawn for ``unwatched_s`` pauses (the tab was closed). A run paused and unseen for ``release_s`` frees its
  model; Resume replays it to the same step (runs are deterministic, see ``dlviz.device``).
- **Shared runs.** A Start identical to a run already training (demo, config, device, code) attaches to that run;
  ``dlviz.ui.live`` gives the session a copy of its own on Pause, Step or Reset (:meth:`Runner.copy_of`).

Every worker thread uses the server's torch thread count (``dlviz.device.server_threads``): the count changes
floating-point rounding, so a fixed count is part of what makes a run reproducible.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import itertools
import os
import statistics
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .demos.base import wait_for_background_calls
from .device import server_threads
from .i18n import N_, Msg
from .runner import PAUSED, RUNNING, Runner

SLICE_S = 0.1  # training per turn: short enough that ten runs each move several times a second
DRAW_SHARE = 0.5  # of one core: what all sessions' live redraws may take together (python holds one lock, the
# GIL, for drawing and for the training loop's own python: without a cap, five sessions redrawing the CNN page
# five times a second cut a shared run's training from 700 to 107 steps in 15 s; measured with dlviz.ui.loadtest)


CROWDED_S = 0.5  # a round of everyone's redraws longer than this (at DRAW_SHARE): they take turns (crowded)
FULL_TURN_S = 0.5  # a full run holds its turn at most this long (a wait that did not step aside, see away())
FULL_QUEUE_CAP_S = 20.0  # a full run waits for its turn at most this long (then it runs beside the others)
FULL_WAIT_S = 1.0  # a timed redraw of a crowded server waits at most this long for full runs (DrawGate.full_run)
PERIODS = (0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8, 1.2, 1.6, 2.4, 3.2, 5.0)  # live redraw periods the server chooses
DRAW_GUESS_S = 0.01  # a round of redraws before any was measured (the CNN page on 2 cores: curves 3-4 ms, plus
# its heavier views, 20 ms every 7.5 rounds)


class DrawGate:
    """Timed redraws of training runs take turns: one session draws at a time, first come first served, and
    drawing time is budgeted (a token bucket: it accrues at ``share`` seconds per second, at most ``burst_s``
    ahead), so that drawing holds at most ``share`` of the wall clock and the training threads have the
    interpreter to themselves the rest. A lightly used server never waits (a gate that shut after every redraw
    for as long again cut 10 sessions from 2.2 to 1.2 refreshes/s).

    Why: python runs one thread at a time (the GIL). Every torch call of a training step lets go of it and must
    take it back; with twenty script threads redrawing, each take waited for another thread's turn (up to the
    5 ms switch interval), and a shared CNN run on 2 cores fell from 1,085 steps in 12 s (one session) to 30 (20
    sessions) while the interpreter was busy only half the time. Queued here, a session's thread sleeps and does
    not compete. A redraw waits at most ``max_wait_s`` (then draws anyway: a gate never hangs a page)."""

    def __init__(self, share: float = DRAW_SHARE, max_wait_s: float = 10.0, burst_s: float = 0.1):
        self.share, self.max_wait_s = share, max_wait_s
        self._cv = threading.Condition()
        self._queue: collections.deque = collections.deque()
        self._busy = False
        self._credit, self._credited_at = burst_s, time.monotonic()  # seconds of drawing allowed now
        self.burst_s = burst_s
        self._inside = threading.local()
        self._full_queue: collections.deque = collections.deque()  # full runs waiting for their turn
        self._tail_queue: collections.deque = collections.deque()  # full runs past their live area (head_done)
        self._full_runs: dict = {}  # the full runs in progress -> when each started

    @contextlib.contextmanager
    def full_run(self):
        """A page's full run (a click, a link, a Start). Full runs take turns, first come first served: forty
        Starts in one second, run side by side, all finished together 1.7 s after the first click (each waited
        for the others' share of the interpreter); one at a time, each is done in its own 40 ms. A full run that
        waits (for a queued computation) steps aside meanwhile (:meth:`away`); one that holds its turn past
        ``FULL_TURN_S`` (a long synchronous drawing, the replay's frames) lets the next one start beside it.
        Once its live area is drawn (:meth:`head_done`) the rest of a full run waits for the heads of the full
        runs queued behind it. Timed redraws of a crowded server wait for full runs (at most ``FULL_WAIT_S``)."""
        if getattr(self._inside, "full", False):
            yield
            return
        me = object()
        with self._cv:
            self._wait_full_turn(me, self._full_queue)
        self._inside.full, self._inside.token, self._inside.tail = True, me, False
        try:
            yield
        finally:
            self._inside.full = False
            with self._cv:
                self._full_runs.pop(me, None)
                self._cv.notify_all()

    def _wait_full_turn(self, me: object, queue: collections.deque) -> None:
        """Wait in ``queue`` (heads, or tails: behind every head) for the turn, then hold it (the lock is held)."""
        t_ask = time.monotonic()
        queue.append(me)
        try:
            while time.monotonic() - t_ask < FULL_QUEUE_CAP_S:  # the queue moves at least every FULL_TURN_S
                now = time.monotonic()
                newest = max(self._full_runs.values(), default=None)
                ahead = queue[0] is me and (queue is self._full_queue or not self._full_queue)
                if ahead and (newest is None or now - newest > FULL_TURN_S):
                    break
                self._cv.wait(0.05 if newest is None else max(0.005, FULL_TURN_S - (now - newest)))
        finally:
            queue.remove(me)
        self._full_runs[me] = time.monotonic()

    def head_done(self) -> None:
        """Inside a full run, once the page's live area is drawn (the figure a Start waits for): the rest of this
        full run (controls below, the heavier views, the explanation) waits until the full runs queued behind it
        have drawn theirs. Forty Starts in one second: the slowest first update was 1.4-2.1 s when each full
        run held its turn to the end (35-70 ms), 0.2-0.4 s when the turn passed on at its live area (17-20 ms in)."""
        me = getattr(self._inside, "token", None) if getattr(self._inside, "full", False) else None
        if me is None or self._inside.tail:
            return
        self._inside.tail = True
        with self._cv:
            self._full_runs.pop(me, None)
            self._cv.notify_all()
            self._wait_full_turn(me, self._tail_queue)

    @contextlib.contextmanager
    def away(self):
        """Inside a full run, a wait that uses no interpreter (a queued computation): the next full run may go."""
        me = getattr(self._inside, "token", None) if getattr(self._inside, "full", False) else None
        if me is None:
            yield
            return
        with self._cv:
            started = self._full_runs.pop(me, None)
            self._cv.notify_all()
        try:
            yield
        finally:
            with self._cv:
                if started is not None:
                    self._full_runs[me] = time.monotonic()

    @contextlib.contextmanager
    def turn(self):
        """Draw inside ``with gate.turn():``; yields the seconds this redraw waited for its turn. First come, first
        served: live curves and heavier views alike (a session's two areas run on one thread, so holding its views
        back held its curves back too)."""
        if getattr(self._inside, "on", False) or getattr(self._inside, "full", False):  # a redraw inside a
            yield 0.0  # redraw, or a full run's own drawing (which goes first anyway)
            return
        t_ask = time.monotonic()
        me = object()
        with self._cv:
            self._queue.append(me)
            try:
                while True:
                    now = time.monotonic()
                    if now - t_ask > self.max_wait_s:
                        break
                    self._refill(now)
                    first = not self._busy and self._queue[0] is me
                    full = self._full_queue or self._tail_queue or self._full_runs  # waiting or running
                    # (not stepped aside), heads and the rests behind them
                    if first and self._credit >= 0 and (not full or now - t_ask > FULL_WAIT_S):
                        break
                    if first and self._credit < 0:
                        self._cv.wait(min(self.max_wait_s, -self._credit / self.share))
                    else:  # behind another redraw or a full run: they notify when done
                        self._cv.wait(0.25)
            finally:
                self._queue.remove(me)
            self._busy = True
        t0 = time.monotonic()
        self._inside.on = True
        try:
            yield t0 - t_ask
        finally:
            self._inside.on = False
            spent = time.monotonic() - t0
            with self._cv:
                self._busy = False
                self._refill(time.monotonic())
                self._credit -= min(spent, 2.0)
                self._cv.notify_all()

    def _refill(self, now: float) -> None:
        """Drawing time accrues at ``share`` seconds per second, up to ``burst_s`` (the caller holds the lock)."""
        self._credit = min(self.burst_s, self._credit + (now - self._credited_at) * self.share)
        self._credited_at = now


def default_workers(device_type: str = "cpu") -> int:
    """Training slices at once: one per two torch threads' worth of free cores (the server and the browsers need
    some), at least one; a GPU takes two so that one run's Python overhead overlaps another's kernels."""
    env = os.environ.get("DLVIZ_WORKERS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    cores = os.cpu_count() or 2
    return max(2 if device_type == "cuda" else 1, cores // (2 * server_threads()))


@dataclass
class Job:
    """One queued computation: ``wait`` for it; ``ahead()`` is how many computations run or wait before it."""

    fn: Callable[..., Any]
    args: tuple
    kwargs: dict
    label: str
    number: int
    scheduler: "Scheduler"
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None
    started: bool = False

    def ahead(self) -> int:
        return self.scheduler.ahead_of(self)

    def wait(self, timeout: float | None = None) -> Any:
        if not self.done.wait(timeout):
            raise TimeoutError(self.label)
        if self.error is not None:
            raise self.error
        return self.result


class Scheduler:
    def __init__(self, workers: int | None = None, slice_s: float = SLICE_S, unwatched_s: float = 60.0,
                 release_s: float = 900.0):
        self.workers = workers or default_workers("cuda" if torch.cuda.is_available() else "cpu")
        self.slice_s, self.unwatched_s, self.release_s = slice_s, unwatched_s, release_s
        self._cv = threading.Condition()
        self._ready: collections.deque[Runner] = collections.deque()
        self._in_lane: dict[int, Runner] = {}  # runners waiting in _ready or in a worker's hands, by id
        self._jobs: collections.deque[Job] = collections.deque()
        self._running_job: Job | None = None
        self._numbers = itertools.count(1)
        self._shared: dict[tuple, Runner] = {}
        self._session_run: dict[str, Runner] = {}
        self._known: weakref.WeakSet[Runner] = weakref.WeakSet()
        self._threads: list[threading.Thread] = []
        self.slices = 0  # slices trained (the load benchmark reads it)
        self.gate = DrawGate()  # the timed redraws take turns (see DrawGate)
        self._drawers: dict[tuple[str, str], tuple[float, float]] = {}  # (session, part) -> (when drawn, cost a round)

    # -- drawing budget ---------------------------------------------------------------------------------
    def drew(self, session: str, seconds: float, part: str = "live") -> None:
        """A session redrew ``part`` of a page whose run trains, which took ``seconds`` per round of live redraws
        (a part redrawn every k rounds reports its time / k)."""
        self._drawers[(session, part)] = (time.monotonic(), min(seconds, 2.0))

    def _round_cost(self) -> float:
        """A session's typical cost of one round of redraws: the median over sessions of each part's last cost.
        A median, not a mean: the session that happens to build a new snapshot's shared figures (once for all)
        took 10-50 times the others' time, and a mean made the period jump from 0.6 to 1.6 s and back."""
        now, parts = time.monotonic(), {}
        for (_, part), (t, cost) in list(self._drawers.items()):
            if now - t <= 10.0:
                parts.setdefault(part, []).append(cost)
        return sum(statistics.median(costs) for costs in parts.values()) if parts else DRAW_GUESS_S

    def drawing_sessions(self, within_s: float = 5.0) -> int:
        return len(self._recent(within_s))

    def _recent(self, within_s: float) -> set[str]:
        """Sessions that drew within ``within_s``."""
        now, out = time.monotonic(), set()
        for (session, part), (t, _) in list(self._drawers.items()):
            if now - t > 60:
                self._drawers.pop((session, part), None)
            elif now - t <= within_s:
                out.add(session)
        return out

    def _watching(self) -> set[str]:
        """Sessions that showed a training run in the last 10 s (each will redraw it)."""
        now = time.monotonic()
        with self._cv:
            runs = list(self._in_lane.values())
        return {s for r in runs if r.status == RUNNING for s, t in list(r.viewers.items()) if now - t <= 10.0}

    def _demand(self) -> float:
        """Seconds of a core that one round of redraws by every watching session takes, over DRAW_SHARE."""
        return self.watchers() * self._round_cost() / DRAW_SHARE

    def watchers(self) -> int:
        """Sessions watching a training run now, or that drew one in the last 5 s."""
        return len(self._watching() | self._recent(5.0))

    def crowded(self) -> bool:
        """Redraws of training runs would take more than half a core at a period of CROWDED_S: they then take turns
        (DrawGate). Measured on 2 cores (dlviz.ui.loadtest, 12 s windows, one CNN run): with turns 40 sessions went
        from 0.24 to 0.56-0.67 refreshes/s each and 20 from 0.71 to 0.87-1.3; but turns for 10 sessions, whose
        redraws fit, cut them from 2.2-4.1 to 1.4-1.7 (a threshold of 0.2 s engaged them there)."""
        return self._demand() > CROWDED_S

    def refresh_period(self, every_s: float) -> float:
        """The live redraw period for every session now: ``every_s`` while the server is lightly used, longer as
        more sessions watch, so that their redraws together take at most DRAW_SHARE of a core: sessions watching
        a training run (those that pressed Start but have not drawn yet included: 20 students press Start in the
        same second, and timers set from the load so far asked for several cores' worth of redraws) times the
        typical cost of a round of redraws (DRAW_GUESS_S before any was measured). Periods come from a ladder, so
        that small changes in the load do not make every page rerun in full to set a new timer."""
        wanted = max(every_s, self._demand())
        return next((p for p in PERIODS if p >= wanted - 1e-9 and p >= every_s), PERIODS[-1])

    # -- training ----------------------------------------------------------------------------------------
    def start(self, runner: Runner, session: str | None = None, key: tuple | None = None) -> None:
        """Train ``runner`` (already asked to play or step) in the training lane. ``session``: its other running
        run pauses. ``key``: identical Starts may attach to this run while it trains (:meth:`shared`)."""
        self._ensure_threads()
        with self._cv:
            if session is not None:
                other = self._session_run.get(session)
                if other is not None and other is not runner and other.status == RUNNING and len(other.viewers) <= 1:
                    other.pause_with(Msg(N_("Paused when you started {demo}: one run trains per session. "
                                            "Resume it here."), demo=Msg(runner.demo.title)))
                self._session_run[session] = runner
                runner.seen(session)
            if key is not None:
                self._shared[key] = runner
            self._known.add(runner)
            if id(runner) not in self._in_lane:
                self._in_lane[id(runner)] = runner
                if runner.progress_step == 0:  # a run just started goes first: its first step shows at once
                    self._ready.appendleft(runner)  # (the others lose one slice of 0.1 s)
                else:
                    self._ready.append(runner)
                self._cv.notify_all()  # the computation thread waits on the same condition

    def start_or_join(self, runner: Runner, session: str, key: tuple) -> Runner:
        """Start's one step, atomic: the run with ``key`` already training on the server, which ``session`` now
        watches, or else ``runner``, asked to play and started (and the run identical Starts join). Two students
        pressing Start in the same instant used to start two runs, each a shared run of its own (a class of 40
        trained 3 runs)."""
        with self._cv:
            twin = self.shared(key)
            if twin is not None and twin is not runner:
                twin.seen(session)
                return twin
            runner.play()
            self.start(runner, session, key)
            return runner

    def shared(self, key: tuple) -> Runner | None:
        """A run with this key that is training now, for an identical Start to attach to."""
        with self._cv:
            r = self._shared.get(key)
            if r is not None and (r.status != RUNNING or r.stepping or r._cancelled):
                del self._shared[key]
                r = None
            return r

    def cancel_all(self) -> int:
        """Stop every run in the training lane (tests; a server shutting down). Returns how many."""
        with self._cv:
            runs = list(self._in_lane.values())
        for r in runs:
            r.cancel()
        return len(runs)

    def running(self) -> int:
        with self._cv:
            return len(self._in_lane)

    def _train_loop(self) -> None:
        torch.set_num_threads(server_threads())
        while True:
            with self._cv:
                while not self._ready:
                    if not self._cv.wait(timeout=5.0):
                        self._housekeeping()
                r = self._ready.popleft()
            t0 = time.perf_counter()
            if r.status == RUNNING and not r._cancelled:
                if r.viewers and time.monotonic() - r.last_seen > self.unwatched_s:
                    r.pause_with(Msg(N_("Paused: no page showed this run for {seconds} s (a closed or sleeping "
                                        "tab). Resume goes on."), seconds=f"{self.unwatched_s:.0f}"))
                else:
                    r.advance(self.slice_s)
                    self.slices += 1
            with self._cv:
                if r.status == RUNNING and not r._cancelled:
                    self._ready.append(r)
                else:
                    self._in_lane.pop(id(r), None)
            if time.perf_counter() - t0 < 0.001:
                time.sleep(0.002)  # another thread held the run (a synchronous step): do not spin

    def _housekeeping(self) -> None:
        """Free the models of runs paused and unseen for ``release_s`` (called with the lock held, when idle)."""
        now = time.monotonic()
        for r in list(self._known):
            if r.status == PAUSED and now - r.last_seen > self.release_s:
                r.release(Msg(N_("This run was paused and unseen for {minutes} minutes, so the server freed its "
                                 "model. Resume replays it to the same step first."),
                              minutes=f"{self.release_s / 60:.0f}"))

    # -- computations ---------------------------------------------------------------------------------------
    def submit(self, label: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Job:
        self._ensure_threads()
        with self._cv:
            job = Job(fn, args, kwargs, label, next(self._numbers), self)
            self._jobs.append(job)
            self._cv.notify_all()
            return job

    def ahead_of(self, job: Job) -> int:
        with self._cv:
            if job.done.is_set() or job.started:
                return 0
            waiting = next((i for i, j in enumerate(self._jobs) if j is job), len(self._jobs))
            return waiting + (self._running_job is not None)

    def _job_loop(self) -> None:
        torch.set_num_threads(server_threads())
        while True:
            with self._cv:
                while not self._jobs:
                    self._cv.wait()
                job = self._jobs.popleft()
                job.started, self._running_job = True, job
            try:
                job.result = job.fn(*job.args, **job.kwargs)
            except BaseException as exc:  # the page shows it as a one-line message
                job.error = exc
            finally:
                with self._cv:
                    self._running_job = None
                job.done.set()

    def _ensure_threads(self) -> None:
        with self._cv:
            if self._threads:
                return
            for i in range(self.workers):
                self._threads.append(threading.Thread(target=self._train_loop, name=f"dlviz-train-{i}", daemon=True))
            self._threads.append(threading.Thread(target=self._job_loop, name="dlviz-compute", daemon=True))
            for t in self._threads:
                t.start()


_SCHEDULER: Scheduler | None = None
_LOCK = threading.Lock()


def _quiet_exit() -> None:
    """Stop the runs before the interpreter exits: a daemon thread still inside torch at exit aborts the process."""
    s = _SCHEDULER
    if s is None:
        return
    s.cancel_all()
    deadline = time.monotonic() + 5.0
    while s.running() and time.monotonic() < deadline:
        time.sleep(0.02)
    wait_for_background_calls(5.0)


atexit.register(_quiet_exit)


def scheduler() -> Scheduler:
    """The process's scheduler (created on first use)."""
    global _SCHEDULER
    with _LOCK:
        if _SCHEDULER is None:
            _SCHEDULER = Scheduler()
        return _SCHEDULER
