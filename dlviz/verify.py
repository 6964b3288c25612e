"""``python -m dlviz verify``: run presets on seeds and check each preset's claim on the run's summary.

A claim is tuned on some seeds and must hold on others nobody tuned on (``--seeds 100-104``): the table says
how many seeds it held on, the figures behind it, and the seconds it took. This is a benchmark, not a test.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import torch

from .demos import all_demos
from .demos.base import Demo, Preset
from .runner import Runner

PASS_SHARE = 0.8  # 4 of 5: the bar every preset's claim must clear on seeds nobody tuned on


def parse_seeds(text: str) -> list[int]:
    """``"100-104"`` -> [100, ..., 104]; ``"3,7,9"``; ``"0-3,10"``."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            if int(hi) < int(lo):
                raise ValueError(f"seed range {part!r} runs backwards")
            out.extend(range(int(lo), int(hi) + 1))
        else:
            out.append(int(part))
    if not out:
        raise ValueError("no seeds given")
    return out


@dataclass
class Outcome:
    """One preset over several seeds."""

    demo: str
    preset: str
    claim: str
    seeds: list[int]
    passed: list[bool] = field(default_factory=list)
    figures: list[dict] = field(default_factory=list)  # per seed: the claim's figures from the summary
    seconds: list[float] = field(default_factory=list)  # wall time per seed
    share: float = PASS_SHARE  # the share of seeds that must pass (a claim about a share states its own)

    @property
    def passes(self) -> int:
        return sum(self.passed)

    @property
    def holds(self) -> bool:
        """At least 4 of 5 (80%) of the seeds, or the share a claim about a lottery states."""
        return self.passes >= math.ceil(self.share * len(self.seeds) - 1e-9)

    def as_dict(self) -> dict:
        return {"demo": self.demo, "preset": self.preset, "claim": self.claim, "seeds": self.seeds,
                "passed": self.passed, "passes": self.passes, "share": self.share, "holds": self.holds,
                "figures": self.figures,
                "seconds": [round(s, 2) for s in self.seconds]}


def run_claim(demo: Demo, slug: str, preset: Preset, seed: int, device: torch.device) -> tuple[bool, dict, float]:
    """Run ``preset`` with ``seed`` to the end (or the claim's step or time cap); (held?, figures, wall seconds)."""
    claim = preset.claim
    config = dataclasses.replace(preset.config, seed=seed)
    t0 = time.perf_counter()
    runner = Runner(demo, config, device)
    max_steps = claim.max_steps if claim else None
    runner.run_to_end(max_seconds=claim.max_seconds if claim else None,
                      until=(lambda snap: snap.step >= max_steps) if max_steps is not None else None)
    summary = runner.summary()
    seconds = time.perf_counter() - t0
    figures = {k: summary.get(k) for k in (claim.figures if claim else ())}
    if summary.get("status") == "failed":
        figures["message"] = summary.get("message", "")
    return (claim.holds(summary) if claim else False), figures, seconds


def select(demo_name: str | None = None, preset: str | None = None) -> list[tuple[Demo, str, Preset]]:
    demos = all_demos()
    if demo_name is not None and demo_name not in demos:
        raise KeyError(f"unknown demo {demo_name!r}; known: {', '.join(demos)}")
    out = []
    for name, demo in demos.items():
        if demo_name is not None and name != demo_name:
            continue
        for slug, p in demo.presets.items():
            if preset is None or slug == preset:
                out.append((demo, slug, p))
    if preset is not None and not out:
        raise KeyError(f"no preset {preset!r}" + (f" in {demo_name}" if demo_name else ""))
    return out


def verify(items: list[tuple[Demo, str, Preset]], seeds: list[int], device: torch.device,
           progress=None) -> list[Outcome]:
    """Every (demo, preset) on every seed; ``progress(outcome, seed)`` after each run."""
    results = []
    for demo, slug, preset in items:
        out = Outcome(demo.name, slug, preset.claim.text if preset.claim else "(no claim)", list(seeds),
                      share=preset.claim.share if preset.claim and preset.claim.share is not None else PASS_SHARE)
        for seed in seeds:
            ok, figs, secs = run_claim(demo, slug, preset, seed, device)
            out.passed.append(ok)
            out.figures.append(figs)
            out.seconds.append(secs)
            if progress is not None:
                progress(out, seed)
        results.append(out)
    return results


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def table(results: list[Outcome]) -> str:
    """One line per preset: demo/preset, passes/seeds, mean seconds, claim; then the figures per seed."""
    lines = [f"{'demo/preset':38s} {'held':>6s} {'s/run':>6s}  claim"]
    for r in results:
        mark = "ok " if r.holds else "NO "
        mean = sum(r.seconds) / max(len(r.seconds), 1)
        lines.append(f"{mark}{r.demo + '/' + r.preset:35s} {r.passes:>2d}/{len(r.seeds):<3d} {mean:6.1f}  {r.claim}")
        for seed, ok, figs in zip(r.seeds, r.passed, r.figures):
            shown = ", ".join(f"{k}={_fmt(v)}" for k, v in figs.items())
            lines.append(f"{'':6s}seed {seed:<6d} {'pass' if ok else 'FAIL'}  {shown}")
    return "\n".join(lines)
