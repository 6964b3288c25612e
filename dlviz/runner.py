"""The live runner without a UI: drives a demo generator in time slices, keeps a bounded history.

The streamlit layer (``dlviz.ui.live``) holds one Runner per page in ``st.session_state``; the CLI and the
benchmark drive the same object to the end.
"""

from __future__ import annotations

import math
import time
import traceback
from typing import Any

import torch

from .demos.base import Demo, DivergedError, Snapshot

IDLE, RUNNING, PAUSED, DONE, FAILED = "idle", "running", "paused", "done", "failed"


class Runner:
    """Play, pause, one step, reset over ``demo.run(config, device)``.

    Attributes: ``status``; ``history`` (one dict of scalar metrics per snapshot, with ``step``; bounded by
    thinning old rows); ``first`` and ``latest`` snapshots (with arrays); ``message`` (why a run failed);
    ``compute_seconds`` (time spent inside the generator: the training time).
    """

    def __init__(self, demo: Demo, config: Any, device: torch.device | str = "cpu", max_history: int = 4000):
        self.demo, self.config, self.device = demo, config, torch.device(device)
        self.max_history = max_history
        self.reset()

    def reset(self) -> None:
        self._gen = None
        self.status = IDLE
        self.history: list[dict[str, float]] = []
        self.first: Snapshot | None = None
        self.latest: Snapshot | None = None
        self.message = ""
        self.compute_seconds = 0.0  # time inside the generator after its first snapshot: training
        self.setup_seconds = 0.0  # time to the first snapshot: data loading, model build, first evaluation
        self.snapshots_seen = 0

    # -- control -------------------------------------------------------------------------------------
    def play(self) -> None:
        if self.status in (IDLE, PAUSED):
            self.status = RUNNING

    def pause(self) -> None:
        if self.status == RUNNING:
            self.status = PAUSED

    @property
    def finished(self) -> bool:
        return self.status in (DONE, FAILED)

    def step(self) -> Snapshot | None:
        """Advance exactly one snapshot (pauses a running run first)."""
        if self.finished:
            return None
        if self.status == RUNNING:
            self.status = PAUSED
        snap = self._next()
        if self.status == IDLE and not self.finished:
            self.status = PAUSED
        return snap

    def advance(self, budget_s: float) -> int:
        """Pull snapshots for about ``budget_s`` seconds (at least one); return how many arrived."""
        start, n = time.perf_counter(), 0
        while not self.finished:
            if self._next() is None:
                break
            n += 1
            if time.perf_counter() - start >= budget_s:
                break
        return n

    def run_to_end(self, max_seconds: float | None = None, until=None) -> None:
        """Drive to the end (CLI, bench); stop early after ``max_seconds`` or when ``until(snapshot)``."""
        self.status = RUNNING
        start = time.perf_counter()
        while not self.finished:
            snap = self._next()
            if snap is None or (until is not None and until(snap)):
                break
            if max_seconds is not None and time.perf_counter() - start > max_seconds:
                break
        if not self.finished:
            self.status = PAUSED

    # -- internals -----------------------------------------------------------------------------------
    def _next(self) -> Snapshot | None:
        if self._gen is None:
            self._gen = self.demo.run(self.config, self.device)
        t0 = time.perf_counter()
        try:
            snap = next(self._gen)
        except StopIteration:
            self.status = DONE
            return None
        except DivergedError as exc:
            return self._fail(str(exc))
        except torch.cuda.OutOfMemoryError:
            return self._fail("The GPU ran out of memory: lower the batch size or model size, or force CPU in the sidebar.")
        except Exception as exc:  # a demo bug must not take the app down; say what happened
            last = traceback.extract_tb(exc.__traceback__)[-1]
            return self._fail(f"The run stopped with an error: {type(exc).__name__}: {exc} "
                              f"({last.filename.rsplit('/', 1)[-1]}:{last.lineno}). Press Reset to start over.")
        finally:
            if self.first is None:
                self.setup_seconds += time.perf_counter() - t0
            else:
                self.compute_seconds += time.perf_counter() - t0
        bad = [k for k, v in snap.metrics.items() if "loss" in k and not math.isfinite(float(v))]
        if bad:
            lr = getattr(self.config, "lr", None)
            return self._fail(
                f"The {bad[0].replace('_', ' ')} became {snap.metrics[bad[0]]} at step {snap.step}: training diverged. "
                f"The learning rate{f' ({lr:g})' if lr is not None else ''} is most likely too high: "
                "lower it (try 10x smaller) and press Reset.")
        self._record(snap)
        return snap

    def _record(self, snap: Snapshot) -> None:
        self.snapshots_seen += 1
        if self.first is None:
            self.first = snap
        self.latest = snap
        self.history.append({"step": snap.step, **{k: float(v) for k, v in snap.metrics.items()}})
        if len(self.history) > self.max_history:
            # Thin the older half by two: the curve keeps its shape, memory stays bounded.
            half = len(self.history) // 2
            self.history = self.history[:half:2] + self.history[half:]

    def _fail(self, message: str) -> None:
        self.status = FAILED
        self.message = message
        self._gen = None
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
