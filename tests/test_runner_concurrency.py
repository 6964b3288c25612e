"""The runner owns its generator: slices and button requests from several threads never break a run.

In the app, Streamlit's fast reruns start a new script thread while the previous one is still inside a training
slice: a Step, Pause or Reset callback then runs beside ``advance``. These tests do that on purpose, many times.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

from dlviz.config import param
from dlviz.demos.base import Demo, Pacer, Snapshot, heartbeat
from dlviz.runner import FAILED, PAUSED, RUNNING, Runner


@dataclass(frozen=True)
class SlowConfig:
    steps: int = param(400, "optimizer steps", lo=1, hi=10_000)
    every: int = param(5, "steps per snapshot", lo=1, hi=1000)
    work_s: float = param(0.0005, "seconds of fake compute per step", lo=0.0, hi=1.0)
    seed: int = param(0, "seed", lo=0, hi=2**31 - 1, widget=False)


def slow_run(config: SlowConfig, device):
    """A deterministic toy: loss = 1 / (1 + step); sleeps to stand in for compute; heartbeats between snapshots."""
    pacer = Pacer(0.01)
    yield Snapshot(0, {"loss": 1.0})
    for step in range(1, config.steps + 1):
        time.sleep(config.work_s)
        if step % config.every == 0 or step == config.steps:
            pacer.reset()
            yield Snapshot(step, {"loss": 1.0 / (1 + step)})
        elif pacer.due():
            yield heartbeat(step)


SLOW = Demo(name="slow", title="slow", summary="", config_cls=SlowConfig, presets={}, run=slow_run)


def _ordered(r: Runner) -> bool:
    steps = [h["step"] for h in r.history]
    return steps == sorted(set(steps))


def test_requests_from_another_thread_never_fail_the_run():
    """One thread slices like the live fragment; another presses Step / Pause / Start at random moments."""
    for round_ in range(20):
        rng = random.Random(round_)
        r = Runner(SLOW, SlowConfig(steps=300, work_s=0.0002))
        r.prime()
        r.play()
        stop = threading.Event()

        def slicer():
            while not stop.is_set() and not r.finished:
                if r.advance(0.005) == 0:
                    time.sleep(0.0005)

        t = threading.Thread(target=slicer)
        t.start()
        for _ in range(40):
            rng.choice([r.play, r.pause, r.request_step, r.step, lambda: None])()
            time.sleep(rng.uniform(0, 0.003))
        r.play()
        deadline = time.time() + 20
        while not r.finished and time.time() < deadline:
            time.sleep(0.01)
        stop.set()
        t.join(5)
        assert r.status != FAILED, f"round {round_}: {r.message}"
        assert r.status == "done", f"round {round_}: {r.status}"
        assert _ordered(r), f"round {round_}: history out of order"
        assert r.history[-1]["step"] == 300


def test_two_slices_of_one_run_never_overlap():
    """Two threads both call advance (two script threads of one session): the second returns 0 at once."""
    r = Runner(SLOW, SlowConfig(steps=2000, every=50, work_s=0.0005))
    r.prime()
    r.play()
    inside, overlaps = [0], [0]
    original = r._pull

    def counting_pull():
        inside[0] += 1
        if inside[0] > 1:
            overlaps[0] += 1
        try:
            return original()
        finally:
            inside[0] -= 1

    r._pull = counting_pull
    threads = [threading.Thread(target=lambda: [r.advance(0.02) for _ in range(30)]) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps[0] == 0 and r.status != FAILED and _ordered(r)


def test_pause_takes_effect_at_the_next_heartbeat():
    """A snapshot every 1,000 steps (~1 s), heartbeats every 10 ms: Pause stops a 10 s slice within 0.2 s."""
    r = Runner(SLOW, SlowConfig(steps=10_000, every=1000, work_s=0.001))
    r.prime()
    r.play()
    t = threading.Thread(target=r.advance, args=(10.0,))
    t0 = time.perf_counter()
    t.start()
    time.sleep(0.1)
    r.pause()
    t.join(5)
    assert not t.is_alive() and time.perf_counter() - t0 < 0.5
    assert r.status == PAUSED and r.progress_step > 0


def test_step_waits_for_a_whole_snapshot_across_slices():
    """Step asks for the next real snapshot, however many short slices that takes, then pauses."""
    r = Runner(SLOW, SlowConfig(steps=100, every=20, work_s=0.001))
    r.prime()
    r.request_step()
    slices = 0
    while r.stepping:
        r.advance(0.003)
        slices += 1
    assert slices > 1 and r.status == PAUSED and r.latest.step == 20


def test_reset_during_a_slice_stops_the_old_run_and_closes_its_generator():
    """The page replaces the runner and cancels the old one: the old slice ends at its next yield."""
    closed = threading.Event()

    def run(config, device):
        try:
            yield from slow_run(config, device)
        finally:
            closed.set()

    demo = Demo(name="slow2", title="", summary="", config_cls=SlowConfig, presets={}, run=run)
    old = Runner(demo, SlowConfig(steps=10_000, every=1000, work_s=0.001))
    old.prime()
    old.play()
    t = threading.Thread(target=old.advance, args=(10.0,))
    t.start()
    time.sleep(0.05)
    t0 = time.perf_counter()
    old.cancel()
    new = Runner(demo, SlowConfig(steps=10))
    new.prime()
    t.join(5)
    assert time.perf_counter() - t0 < 0.5 and closed.wait(1)
    old.play()  # a stale button on the old runner does nothing
    assert old.status != RUNNING and old.advance(0.1) == 0
    new.run_to_end()
    assert new.status == "done" and new.latest.step == 10


def test_sliced_run_equals_a_run_to_the_end():
    """Slices, pauses and heartbeats do not change what the generator computes."""
    whole = Runner(SLOW, SlowConfig(steps=200, work_s=0.0))
    whole.run_to_end()
    sliced = Runner(SLOW, SlowConfig(steps=200, work_s=0.0))
    sliced.prime()
    while not sliced.finished:
        sliced.play()
        sliced.advance(0.0)
        sliced.pause()
    assert sliced.history == whole.history
