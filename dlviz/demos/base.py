"""The demo contract: every live demo is ``Config`` + ``PRESETS`` + ``run(config, device) -> Iterator[Snapshot]``.

The same generator serves the page (advanced a time slice per refresh), the CLI, the tests and the benchmark.
A demo never prints, never touches streamlit and never mutates shared state.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Iterable, Iterator, Mapping

import torch

from ..i18n import N_, Msg


@dataclass
class Snapshot:
    """One observation of a running demo.

    ``metrics`` are flat scalars (the history keeps them all); ``arrays`` are what the figures need now
    (numpy arrays or small CPU tensors, detached) and only the latest and first snapshots keep them.
    """

    step: int
    metrics: dict[str, float]
    arrays: dict[str, Any] = field(default_factory=dict)
    # A pause point inside a long stretch of training (no new metrics or arrays): the runner records nothing
    # but may stop here, so Pause and Reset take effect within a fraction of a second at any setting.
    heartbeat: bool = False


def heartbeat(step: int) -> Snapshot:
    """A yield point with nothing to draw: ``if pacer.due(): yield heartbeat(step)`` inside a long loop."""
    return Snapshot(step, {}, heartbeat=True)


class Pacer:
    """Says when a long loop should yield a :func:`heartbeat`: at most ``every_s`` seconds between yields.

    Demos whose snapshot interval (or evaluation) can take longer than that at their largest settings call
    ``due()`` (or ``yield from pacer.beat(step)``) after every optimizer step; it costs one clock read. A single
    call that may itself take longer goes through ``value = yield from pacer.call(step, fn, *args)``.
    Heartbeats never change what a run computes: a yield leaves the generator's state untouched.
    """

    def __init__(self, every_s: float = 0.1):
        self.every_s = every_s
        self._last = time.perf_counter()
        self.idle_s = 0.0  # time the consumer kept the generator suspended at this pacer's heartbeats
        self._costs: dict[str, float] = {}  # seconds the last call of each function took (see call)
        self._worker: _Worker | None = None

    def due(self) -> bool:
        now = time.perf_counter()
        if now - self._last >= self.every_s:
            self._last = now
            return True
        return False

    def reset(self) -> None:
        """Call when the demo yields a real snapshot: the clock restarts."""
        self._last = time.perf_counter()

    def beat(self, step: int) -> Iterator[Snapshot]:
        """``yield from pacer.beat(step)`` after every step of a long loop: a heartbeat when one is due.

        The time the consumer keeps the generator suspended there (a pause, a redraw between slices) is added to
        ``idle_s`` and the clock restarts on resuming; :meth:`clock` leaves that time out of rates.
        """
        if self.due():
            t = time.perf_counter()
            yield heartbeat(step)
            self._last = now = time.perf_counter()
            self.idle_s += now - t

    def clock(self) -> float:
        """``time.perf_counter()`` less the time spent suspended at heartbeats: for steps-per-second figures."""
        return time.perf_counter() - self.idle_s

    def call(self, step: int, fn: Callable[..., Any], *args: Any) -> Iterator[Snapshot]:
        """``value = yield from pacer.call(step, fn, *args)``: ``fn(*args)``, then a heartbeat when one is due.

        For one call that cannot be split (an optimizer step of a large model, a library's fit): on its first
        call, and whenever its last call (by qualified name) took over half of ``every_s``, it runs in this
        pacer's worker thread while the generator yields a heartbeat every ``every_s``; otherwise it runs here
        (a hand-off costs a millisecond or more on a busy machine). Either way it returns, or raises, what calling
        it here would: the worker runs with the caller's grad mode, and the generator waits for it. If the run is
        reset meanwhile, the call finishes in the background and its result is dropped.
        """
        key = getattr(fn, "__qualname__", None) or repr(fn)
        if self._costs.get(key, math.inf) < self.every_s / 2:
            t = time.perf_counter()
            value = fn(*args)
            self._costs[key] = time.perf_counter() - t
        else:
            if self._worker is None:
                self._worker = _Worker()
            done, box, grad = threading.Event(), {}, torch.is_grad_enabled()

            def work() -> None:
                t = time.perf_counter()
                try:
                    with torch.set_grad_enabled(grad):
                        box["value"] = fn(*args)
                except BaseException as exc:  # re-raised in the generator
                    box["error"] = exc
                finally:
                    # The call's own time, not the hand-off's: on a loaded machine waking a thread can take longer
                    # than a small call, which must not keep every later call in the worker.
                    self._costs[key] = time.perf_counter() - t
                    done.set()

            self._worker.submit(work, done)
            while not done.wait(max(0.0, self._last + self.every_s - time.perf_counter())):
                yield from self.beat(step)
            if "error" in box:
                raise box["error"]
            value = box["value"]
        yield from self.beat(step)
        return value


class _Worker:
    """A daemon thread that runs a pacer's calls one at a time (one thread per run, so per-thread library state is
    set up once, and one run's long call never waits behind another's); it ends after ``IDLE_S`` without work."""

    IDLE_S = 10.0

    def __init__(self):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._alive = False

    def submit(self, job: Callable[[], None], done: threading.Event) -> None:
        with _IN_FLIGHT_LOCK:
            _IN_FLIGHT.add(done)
        with self._lock:
            self._jobs.put((job, done))
            if not self._alive:
                self._alive = True
                # The call runs with the run's own torch thread count (the count changes rounding).
                threading.Thread(target=self._loop, args=(torch.get_num_threads(),), name="dlviz-pacer-worker",
                                 daemon=True).start()

    def _loop(self, threads: int) -> None:
        torch.set_num_threads(threads)
        while True:
            try:
                job, done = self._jobs.get(timeout=self.IDLE_S)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():
                        self._alive = False
                        return
                continue
            try:
                job()
            finally:
                with _IN_FLIGHT_LOCK:
                    _IN_FLIGHT.discard(done)


_IN_FLIGHT: set[threading.Event] = set()  # calls running (or queued) in pacer workers
_IN_FLIGHT_LOCK = threading.Lock()


def wait_for_background_calls(timeout: float = 60.0) -> bool:
    """Wait until no pacer call runs in a worker (a run reset or closed mid-call finishes that call there);
    for tests and benchmarks that time what comes next. True if none is left."""
    deadline = time.perf_counter() + timeout
    while True:
        with _IN_FLIGHT_LOCK:
            pending = list(_IN_FLIGHT)
        if not pending:
            return True
        if not pending[0].wait(max(0.0, deadline - time.perf_counter())):
            return False


class GradMode:
    """Autograd on or off is per thread, and one thread resumes many runs' generators in turn: a generator that
    yields inside ``torch.no_grad()`` would leave it off for every run resumed after it (the GAN 1-D demo's warm-up
    did: ten runs in one worker all failed with "element 0 of tensors does not require grad"). ``mode.next(gen)``
    resumes ``gen`` with its own mode (on at first) and gives the thread back the mode it had."""

    def __init__(self):
        self.enabled = True

    def next(self, gen):
        outside = torch.is_grad_enabled()
        torch.set_grad_enabled(self.enabled)
        try:
            return next(gen)
        finally:
            self.enabled = torch.is_grad_enabled()
            torch.set_grad_enabled(outside)


def finish(gen: Generator[Snapshot, None, Any]) -> Any:
    """Run a helper that paces with heartbeats (``yield from pacer.call(...)``) to its end here, heartbeats
    dropped, and return its value: for the step-0 snapshot, so a demo's first yield is always a real snapshot."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def snapshots(it: Iterable[Snapshot]) -> Iterator[Snapshot]:
    """The real snapshots of a demo generator, heartbeats left out: for code that iterates ``run`` directly."""
    return (s for s in it if not s.heartbeat)


@dataclass(frozen=True)
class Claim:
    """What a preset promises, as a check on its run's summary (``Runner.summary()``: the CLI's final JSON).

    One definition serves the page (the text, next to the preset note), ``python -m dlviz verify`` (the check,
    over seeds nobody tuned on) and the benchmark. ``figures`` are the summary keys printed beside pass/fail.
    """

    text: str  # the statement as a student would copy it: "best-head IoU >= 0.5, above the brightness baseline"
    check: Callable[[dict], bool]  # summary -> holds?
    figures: tuple[str, ...] = ()  # summary keys that show why
    max_seconds: float | None = None  # wall-time cap for one verification run (None: to the end)
    # Stop a verification run at the first snapshot at or past this step (None: to the end): for claims about the
    # first N steps of a long preset, a budget that does not depend on how busy the machine is.
    max_steps: int | None = None
    # True when the preset's point is that the run stops with a message ("learning rate too high"): then only a
    # failed run can hold, and ``check`` reads its ``message``; otherwise a failed run never holds.
    diverges: bool = False
    # A claim about a lottery ("on about half of the seeds ..."): ``check`` is the event, and over seeds the claim
    # holds when at least this share of them pass. None: the event itself is claimed (4 of 5 unseen seeds).
    share: float | None = None

    def holds(self, summary: dict) -> bool:
        """The check, with a missing figure or a failed run counted as not holding (never an exception)."""
        if (summary.get("status") == "failed") != self.diverges:
            return False
        try:
            return bool(self.check(summary))
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return False


@dataclass(frozen=True)
class Preset:
    """A named config that reproduces one phenomenon in one click."""

    title: str  # what it shows, as a lecturer would say it
    config: Any  # the demo's Config instance
    note: str = ""  # one sentence: what to watch for
    claim: Claim | None = None  # what it promises, checked by ``python -m dlviz verify``


class DivergedError(RuntimeError):
    """Training produced a non-finite value; the message names the likely cause and what to do. Raise it with a
    constant text or a :class:`dlviz.i18n.Msg` (English, shown translated by the page)."""


DIVERGED_HINT = N_("The learning rate is most likely too high: lower it (try 10x smaller) and press Reset.")


def check_finite(value: float | torch.Tensor, step: int, what: str = "loss", hint: str | None = None) -> float:
    """Return ``value`` as a float, or raise :class:`DivergedError` if it is NaN or infinite. ``what`` (a constant,
    extracted for translation) and ``hint`` (a constant or a ``Msg``) say what diverged and what to do."""
    v = float(value)
    if not math.isfinite(v):
        head = Msg(N_("The {what} became {value} at step {step}: training diverged."), what=Msg(what),
                   value=Msg(N_("NaN") if math.isnan(v) else N_("infinite")), step=step)
        hint = hint if isinstance(hint, Msg) else Msg(hint or DIVERGED_HINT)
        raise DivergedError(Msg("{head} {hint}", head=head, hint=hint))
    return v


RunFn = Callable[[Any, torch.device], Iterator[Snapshot]]


@dataclass(frozen=True)
class Demo:
    """A live demo as the registry, CLI, pages and benchmark see it."""

    name: str  # CLI slug, e.g. "cnn"
    title: str  # human title
    summary: str  # one line
    config_cls: type  # the frozen Config dataclass
    presets: Mapping[str, Preset]  # slug -> preset
    run: RunFn  # the generator
    # Final JSON of the CLI from (latest snapshot, runner); default: latest metrics + steps + train_seconds.
    summarize: Callable[[Snapshot, Any], dict] | None = None
    # Benchmark entries: name -> fn(device) -> dict of measured figures.
    benchmarks: Mapping[str, Callable[[torch.device], dict]] = field(default_factory=dict)

    def default_config(self):
        return self.config_cls()

    def preset_config(self, slug: str):
        if slug not in self.presets:
            raise KeyError(f"unknown preset {slug!r} for {self.name}; known: {', '.join(self.presets)}")
        return self.presets[slug].config
