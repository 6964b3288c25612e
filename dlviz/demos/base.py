"""The demo contract: every live demo is ``Config`` + ``PRESETS`` + ``run(config, device) -> Iterator[Snapshot]``.

The same generator serves the page (advanced a time slice per refresh), the CLI, the tests and the benchmark.
A demo never prints, never touches streamlit and never mutates shared state.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import torch


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
    ``due()`` after every optimizer step; it costs one clock read.
    """

    def __init__(self, every_s: float = 0.1):
        self.every_s = every_s
        self._last = time.perf_counter()

    def due(self) -> bool:
        now = time.perf_counter()
        if now - self._last >= self.every_s:
            self._last = now
            return True
        return False

    def reset(self) -> None:
        """Call when the demo yields a real snapshot: the clock restarts."""
        self._last = time.perf_counter()


@dataclass(frozen=True)
class Preset:
    """A named config that reproduces one phenomenon in one click."""

    title: str  # what it shows, as a lecturer would say it
    config: Any  # the demo's Config instance
    note: str = ""  # one sentence: what to watch for


class DivergedError(RuntimeError):
    """Training produced a non-finite value; the message names the likely cause and what to do."""


def check_finite(value: float | torch.Tensor, step: int, what: str = "loss", hint: str | None = None) -> float:
    """Return ``value`` as a float, or raise :class:`DivergedError` if it is NaN or infinite."""
    v = float(value)
    if not math.isfinite(v):
        raise DivergedError(
            f"The {what} became {'NaN' if math.isnan(v) else 'infinite'} at step {step}: training diverged. "
            + (hint or "The learning rate is most likely too high: lower it (try 10x smaller) and press Reset.")
        )
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
