"""The live runner without a UI: drives a demo generator in time slices, keeps a bounded history.

The streamlit layer (``dlviz.ui.live``) holds one Runner per page in ``st.session_state``; the CLI and the
benchmark drive the same object to the end.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import threading
import time
import traceback
from typing import Any

import numpy as np
import torch

from .demos.base import DIVERGED_HINT, Demo, DivergedError, GradMode, Snapshot, heartbeat
from .i18n import N_, Msg
from .procs import WorkerDied, open_run
from .profile import checkpoint_limits
from .profile import max_history as profile_max_history

IDLE, RUNNING, PAUSED, DONE, FAILED = "idle", "running", "paused", "done", "failed"


class Runner:
    """Play, pause, one step, reset over ``demo.run(config, device)``; safe to drive from several threads.

    Attributes: ``status``; ``history`` (one dict of scalar metrics per snapshot, with ``step``; bounded by
    thinning old rows); ``first`` and ``latest`` snapshots (with arrays); ``checkpoints`` (snapshots with their
    arrays for rewinding and export: at most 50 and a memory budget, thinned like the history, the first and the
    latest always kept); ``message`` (why a run failed);
    ``compute_seconds`` (time spent inside the generator: the training time); ``progress_step`` (the step of
    the last yield, heartbeats included).

    The runner owns its generator: only :meth:`advance` (and the synchronous :meth:`step` / :meth:`run_to_end`
    built on it) calls ``next()``, under one lock, so two slices never overlap. Buttons only *request*
    (:meth:`play`, :meth:`pause`, :meth:`request_step`, :meth:`cancel`); a running slice sees a request at the
    generator's next yield (a snapshot or a heartbeat, see ``demos.base.Pacer``) and stops there.
    """

    def __init__(self, demo: Demo, config: Any, device: torch.device | str = "cpu", max_history: int | None = None):
        self.demo, self.config, self.device = demo, config, torch.device(device)
        self.max_history = max_history or profile_max_history()  # 4,000 rows; 1,000 in the classroom profile
        self.created = time.monotonic()
        self.pace_s = 0.0  # at least this long between snapshots in live slices (a narrated, slow run); 0: no limit
        self._next_due = 0.0
        self._lock = threading.Lock()  # held while the generator runs
        self._state = threading.Lock()  # makes each status transition atomic (requests vs the slice)
        self.reset()

    def reset(self) -> None:
        """Forget the run (the generator is closed by whoever holds the lock next)."""
        with self._lock:
            self._close()
            self.status = IDLE
            self.history: list[dict[str, float]] = []
            self.first: Snapshot | None = None
            self.latest: Snapshot | None = None
            self.checkpoints: list[Snapshot] = []
            self.cursor: int | None = None  # a rewound view's step (at_step); None: the latest
            self._prev_arrays: tuple[dict, dict] = ({}, {})  # the last snapshot's arrays: as yielded, as kept
            self.message = ""
            self.compute_seconds = 0.0  # time inside the generator after its first snapshot: training
            self.setup_seconds = 0.0  # time to the first snapshot: data loading, model build, first evaluation
            self.snapshots_seen = 0
            self.progress_step = 0
            self.notice = ""  # why the server paused or released the run (not an error)
            self.viewers: dict[str, float] = {}  # session id -> when it last drew this run
            self.token = object()  # this run's identity: shared by its frozen() copies, new after a reset
            self._views: dict = {}  # figures built for this run, shared by its viewers (dlviz.ui.live.shared_view)
            self._pause_after_snapshot = False
            self._cancelled = False
            self._replay_to: int | None = None  # replaying silently up to this step (a copy, or a released run)

    # -- copies and replays (identical runs are deterministic: per-run generators, a fixed thread count) ------
    @classmethod
    def copy_of(cls, other: "Runner") -> "Runner":
        """A paused run of one's own that shows ``other``'s history so far; Resume or Step first replays the
        config from step 0 to that step, without drawing, then goes on. Used to leave a shared run."""
        new = cls(other.demo, other.config, other.device, other.max_history)
        latest = other.latest  # read once: the run may record another snapshot meanwhile
        new.first, new.latest, new.pace_s = other.first, latest, other.pace_s
        new.history = [h for h in other.history if latest is None or h["step"] <= latest.step]
        new.checkpoints = [c for c in other.checkpoints if latest is None or c.step <= latest.step]
        new.snapshots_seen, new.compute_seconds = other.snapshots_seen, other.compute_seconds
        new.progress_step = latest.step if latest is not None else 0
        new._replay_to = new.progress_step if new.progress_step > 0 else None
        new.status = DONE if other.status == DONE else PAUSED
        return new

    def release(self, notice: str) -> bool:
        """Free the model and optimizer of a paused run; Resume replays to the same step. False if it is busy."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self.status != PAUSED or self._gen is None or self.latest is None:
                return False
            self._close()
            self._replay_to = self.latest.step if self.latest.step > 0 else None
            self.notice = notice
            return True
        finally:
            self._lock.release()

    @property
    def replaying(self) -> bool:
        return self._replay_to is not None

    def seen(self, session: str) -> None:
        """A session drew this run now (the scheduler pauses runs nobody watches)."""
        self.viewers[session] = time.monotonic()

    def watchers(self, within_s: float = 10.0) -> int:
        """Sessions that drew this run in the last ``within_s`` seconds."""
        now = time.monotonic()
        return sum(1 for t in list(self.viewers.values()) if now - t <= within_s)

    @property
    def last_seen(self) -> float:
        return max(self.viewers.values(), default=self.created)

    # -- requests (any thread; they never train) ---------------------------------------------------
    def play(self) -> None:
        with self._state:
            if self.status in (IDLE, PAUSED, RUNNING) and not self._cancelled:
                self._pause_after_snapshot = False  # Start during a Step: keep running
                self.status = RUNNING
                self.notice = ""

    def pause_with(self, notice: str) -> None:
        """The server pauses the run (nobody watching it, its session started another); the page says why."""
        with self._state:
            if self.status == RUNNING:
                self._pause_after_snapshot = False
                self.status = PAUSED
                self.notice = notice

    def pause(self) -> None:
        with self._state:
            if self.status == RUNNING:
                self._pause_after_snapshot = False
                self.status = PAUSED

    def request_step(self) -> None:
        """Ask for one more snapshot, then a pause: the live area's next slices deliver it."""
        with self._state:
            if self.finished or self._cancelled:
                return
            self._pause_after_snapshot = True
            self.status = RUNNING
            self.notice = ""

    def cancel(self) -> None:
        """This run is being replaced (Reset): any slice stops at the next yield; the generator is closed."""
        with self._state:
            self._cancelled = True
            if not self.finished:
                self.status = PAUSED
        if self._lock.acquire(blocking=False):
            try:
                self._close()
            finally:
                self._lock.release()

    @property
    def finished(self) -> bool:
        return self.status in (DONE, FAILED)

    @property
    def stepping(self) -> bool:
        """A Step was requested and its snapshot has not arrived yet."""
        return self.status == RUNNING and self._pause_after_snapshot

    # -- training (one thread at a time) -----------------------------------------------------------
    def prime(self) -> Snapshot | None:
        """The step-0 snapshot (the untrained state), so figures appear before anyone presses Start."""
        with self._lock:
            while self.first is None and not self.finished and not self._cancelled:
                if self._pull() is None:
                    break
            return self.first

    def advance(self, budget_s: float) -> int:
        """Train for about ``budget_s`` seconds while the run is RUNNING; return how many snapshots arrived.

        Returns 0 at once when another thread is inside a slice of this run. Stops at the first yield after
        the budget, a pause, a cancel, or (after :meth:`request_step`) the next snapshot.
        """
        if self.pace_s and time.monotonic() < self._next_due:
            return 0
        if not self._lock.acquire(blocking=False):
            return 0
        try:
            start, n = time.perf_counter(), 0
            while self.status == RUNNING and not self._cancelled:
                snap = self._pull()
                if snap is None:
                    break
                if not snap.heartbeat:
                    n += 1
                    with self._state:
                        stepped = self._pause_after_snapshot
                        if stepped:
                            self._pause_after_snapshot = False
                            if self.status == RUNNING:
                                self.status = PAUSED
                    if stepped:
                        break
                    if self.pace_s:
                        self._next_due = time.monotonic() + self.pace_s
                        break
                if time.perf_counter() - start >= budget_s:
                    break
            if self._cancelled:
                self._close()
            return n
        finally:
            self._lock.release()

    def step(self, timeout_s: float = 600.0) -> Snapshot | None:
        """Advance exactly one snapshot and pause (synchronous: CLI, tests)."""
        if self.finished:
            return None
        seen = self.snapshots_seen
        self.request_step()
        deadline = time.perf_counter() + timeout_s
        while self.stepping and time.perf_counter() < deadline:
            if self.advance(0.5) == 0 and self.stepping:
                time.sleep(0.005)  # another thread holds the slice
        if self.status == RUNNING:  # timed out
            self.pause()
        return self.latest if self.snapshots_seen > seen else None

    def run_to_end(self, max_seconds: float | None = None, until=None) -> None:
        """Drive to the end (CLI, bench); stop early after ``max_seconds`` or when ``until(snapshot)``."""
        with self._lock:
            with self._state:
                if not self.finished:
                    self.status = RUNNING
            start = time.perf_counter()
            while not self.finished and not self._cancelled:
                snap = self._pull()
                if snap is None:
                    break
                if not snap.heartbeat and until is not None and until(snap):
                    break
                if max_seconds is not None and time.perf_counter() - start > max_seconds:
                    break
            with self._state:
                if not self.finished:
                    self.status = PAUSED

    # -- internals (the caller holds the lock) -----------------------------------------------------
    def _close(self) -> None:
        gen, self._gen = getattr(self, "_gen", None), None
        if gen is not None:
            with contextlib.suppress(Exception):
                gen.close()

    def _pull(self) -> Snapshot | None:
        if self.finished:
            return None
        if self._gen is None:
            self._gen = open_run(self.demo, self.config, self.device)  # here, or in a worker process
            self._grad = GradMode()
        t0, replaying, gen = time.perf_counter(), self._replay_to is not None, self._gen
        try:
            snap = self._grad.next(gen)
        except StopIteration:
            with self._state:
                self.status = DONE
            self._gen = None
            return None
        except DivergedError as exc:  # its message may be a Msg (English that the page shows translated): kept
            return self._fail(exc.args[0] if len(exc.args) == 1 and isinstance(exc.args[0], str) else str(exc))
        except WorkerDied as exc:
            return self._fail(exc.args[0])
        except torch.cuda.OutOfMemoryError:
            return self._fail(Msg(N_("The GPU ran out of memory: lower the batch size or model size, or force CPU in "
                                     "the sidebar.")))
        except Exception as exc:  # a demo bug must not take the app down; say what happened
            where = getattr(exc, "dlviz_where", None)  # raised in a worker process: it said where
            if where is None:
                last = traceback.extract_tb(exc.__traceback__)[-1]
                where = f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno}"
            return self._fail(Msg(N_("The run stopped with an error: {error} ({where}). Press Reset to start over."),
                                  error=f"{type(exc).__name__}: {exc}", where=where))
        finally:
            # in a worker process: the time it computed (read ahead, the item may be ready when asked for)
            spent = getattr(gen, "last_s", None)
            spent = time.perf_counter() - t0 if spent is None else spent
            if self.first is None:
                self.setup_seconds += spent
            elif not replaying:
                self.compute_seconds += spent
        if replaying:  # the snapshots up to the copied step are already in the history: nothing to record
            if not snap.heartbeat and snap.step >= self._replay_to:
                self._replay_to = None
            return heartbeat(snap.step)
        self.progress_step = snap.step
        if snap.heartbeat:
            return snap
        bad = [k for k, v in snap.metrics.items() if "loss" in k and not math.isfinite(float(v))]
        if bad:
            lr = getattr(self.config, "lr", None)
            head = Msg(N_("The {what} became {value} at step {step}: training diverged."),
                       what=Msg(bad[0].replace("_", " ")), value=snap.metrics[bad[0]], step=snap.step)
            hint = (Msg(N_("The learning rate ({lr}) is most likely too high: lower it (try 10x smaller) and press "
                           "Reset."), lr=f"{lr:g}") if lr is not None else Msg(DIVERGED_HINT))
            return self._fail(Msg("{head} {hint}", head=head, hint=hint))
        self._record(snap)
        return snap

    def _record(self, snap: Snapshot) -> None:
        history = self.history + [{"step": snap.step, **{k: float(v) for k, v in snap.metrics.items()}}]
        if len(history) > self.max_history:
            # Thin the older half by two: the curve keeps its shape, memory stays bounded.
            half = len(history) // 2
            history = history[:half:2] + history[half:]
        snap = self._owned(snap)
        kept = self.checkpoints[:-1] if self.checkpoints and self.checkpoints[-1].step == snap.step else \
            self.checkpoints  # one checkpoint per step (a demo may show step 0 twice: before and after a warm-up)
        checkpoints = _thinned(kept + [snap], *checkpoint_limits())
        with self._state:  # a reader's frozen() sees the snapshot, its history row and the count together
            self.snapshots_seen += 1
            if self.first is None:
                self.first = snap
            self.latest = snap
            self.history = history
            self.checkpoints = checkpoints

    def _owned(self, snap: Snapshot) -> Snapshot:
        """``snap`` with arrays of its own: numpy views of live tensors (``tensor.numpy()`` on the CPU) would
        change as training goes on. An array the previous snapshot also carried (one evaluation repeated by
        light snapshots) is copied once."""
        prev_raw, prev_kept = self._prev_arrays
        kept = {k: prev_kept[k] if prev_raw.get(k) is v and k in prev_kept else _own(v) for k, v in snap.arrays.items()}
        self._prev_arrays = (snap.arrays, kept)
        return snap if all(kept[k] is snap.arrays[k] for k in kept) else dataclasses.replace(snap, arrays=kept)

    def at_step(self, step: int | None) -> "Runner":
        """A frozen view rewound to the last checkpoint at or before ``step`` (None: as is): ``latest`` is that
        checkpoint and ``cursor`` its step; the history stays whole, so curves show the run with a cursor."""
        view = self.frozen()
        if step is None or not view.checkpoints or view.latest is None or step >= view.latest.step:
            return view
        view.latest = max((c for c in view.checkpoints if c.step <= step), key=lambda c: c.step,
                          default=view.checkpoints[0])
        view.cursor = view.latest.step
        return view

    def frozen(self) -> "Runner":
        """A shallow copy for one redraw: ``latest``, ``history``, ``status`` as of now, while the worker trains
        on. Figures drawn from it agree with each other. Shares the run's view cache (``shared_view``)."""
        with self._state:
            return copy.copy(self)

    def _fail(self, message: str) -> None:
        with self._state:
            self.status = FAILED
            self.message = message
        self._close()
        return None

    # -- reporting -----------------------------------------------------------------------------------
    def summary(self) -> dict:
        """The CLI's final JSON: the demo's own summary, or the latest metrics with steps and time."""
        out: dict = {"demo": self.demo.name, "status": self.status}
        if self.message:
            out["message"] = self.message
        if self.latest is not None:
            if self.demo.summarize is not None:
                out.update(self.demo.summarize(self.latest, self))
            else:
                out.update(self.latest.metrics)
            out.setdefault("steps", self.latest.step)
        out.setdefault("train_seconds", round(self.compute_seconds, 3))
        out.setdefault("setup_seconds", round(self.setup_seconds, 3))
        out["device"] = str(self.device)
        return out


def _nbytes(value: Any, seen: set[int]) -> int:
    """Bytes of the arrays in ``value`` not counted yet (snapshots may share an evaluation's arrays)."""
    if id(value) in seen:
        return 0
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_nbytes(v, seen) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v, seen) for v in value)
    return 64


def _size(checkpoints: list[Snapshot]) -> int:
    seen: set[int] = set()
    return sum(_nbytes(c.arrays, seen) for c in checkpoints)


def _own(value: Any) -> Any:
    """``value`` with numpy views copied (``tensor.numpy()`` on the CPU shares the live weights' memory)."""
    if isinstance(value, np.ndarray):
        return value if value.flags.owndata else value.copy()
    if isinstance(value, dict):
        return {k: _own(v) for k, v in value.items()}
    return value


def _thinned(checkpoints: list[Snapshot], most: int, budget: int) -> list[Snapshot]:
    """Drop every other checkpoint of the older half (the first and the newest stay) until at most ``most`` are
    kept and their arrays fit ``budget`` bytes (one checkpoint over the budget: the first and the latest only)."""
    while len(checkpoints) > 2 and (len(checkpoints) > most or _size(checkpoints) > budget):
        half = max(2, len(checkpoints) // 2)
        checkpoints = checkpoints[:1] + checkpoints[1:half][1::2] + checkpoints[half:]
    return checkpoints
