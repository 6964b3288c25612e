"""One scheduler per server process: worker threads train the running runs in turn; pages only draw.

- **Training lane.** ``workers`` threads (from the cores and the device, ``$DLVIZ_WORKERS`` to override) take the
  running runs round-robin and train each for one slice (``slice_s``), so at most ``workers`` slices run at once
  and no run starves: with N runs, each gets a slice every N / workers turns. Training goes on between browser
  refreshes; a hidden tab or a slow projector never slows a run.
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
import itertools
import os
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
        self._drawers: dict[str, tuple[float, float]] = {}  # session -> (when it last redrew a live run, its cost)

    # -- drawing budget ---------------------------------------------------------------------------------
    def drew(self, session: str, seconds: float) -> None:
        """A session redrew the live area of a training run, which took ``seconds`` (a running mean per session)."""
        _, before = self._drawers.get(session, (0.0, seconds))
        self._drawers[session] = (time.monotonic(), before + 0.3 * (min(seconds, 2.0) - before))

    def drawing_sessions(self, within_s: float = 5.0) -> int:
        return len(self._recent(within_s))

    def _recent(self, within_s: float) -> list[float]:
        now = time.monotonic()
        for s, (t, _) in list(self._drawers.items()):
            if now - t > 60:
                self._drawers.pop(s, None)
        return [cost for t, cost in list(self._drawers.values()) if now - t <= within_s]

    def refresh_period(self, every_s: float) -> float:
        """The live redraw period for every session now: ``every_s`` while the server is lightly used, longer as
        more sessions watch, so that their redraws together take at most DRAW_SHARE of a core."""
        load = sum(self._recent(5.0))  # seconds of drawing per round of redraws of every watching session
        return round(min(5.0, max(every_s, load / DRAW_SHARE)), 2)

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
                self._ready.append(runner)
                self._cv.notify_all()  # the computation thread waits on the same condition

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
