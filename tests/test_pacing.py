"""Pause and Reset take effect within a fraction of a second on every demo, even at its heaviest settings.

The live runner stops only where a demo generator yields: a snapshot, or a heartbeat (``dlviz.demos.base.Pacer``)
inside a long stretch of training or evaluation. So the gap between two consecutive yields after the first
(setup) snapshot bounds how long Pause or Reset can take. ``python tools/pacing.py`` prints the gaps of every demo
and variant; these tests check each demo's heaviest variant, that pausing at heartbeats changes nothing a run
computes, and that Pause from another thread ends a long slice at once.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
import torch

from dlviz.demos import base, get_demo
from dlviz.runner import PAUSED, Runner

CPU = torch.device("cpu")
MAX_GAP_S = 0.5  # generous for a busy 2-core CI machine: heartbeats come every 0.1 s (measured gaps: ~0.1-0.3 s)
# A longer gap in which this process got less CPU than this was the machine's doing (other processes had the
# cores), not the demo's: the work between two yields is what the pacing controls.
STARVED_CPU_S = 0.25

# The heaviest variant of each demo: every size at the top of its range (learning rates and the like as they are),
# with a snapshot interval short enough that a periodic evaluation falls inside the measured window. Single steps
# that take seconds (transformer, DINO, SSL at their largest settings) run in the pacer's worker thread.
HEAVY = {
    "transformer": dict(task="sort", length=16, vocab=20, d_model=128, heads=8, layers=4, batch_size=512,
                        steps=20000, eval_every=2),
    "kernel-regression": dict(n_train=200, steps=500),
    "cnn": dict(input_size=28, batch_size=256, epochs=60, eval_every=20),
    # The largest DINO (width 192, depth 6, K 2048, batch 128, 6 local crops) takes ~10 s a step on a CPU core:
    # tools/pacing.py covers it; here the sizes that cost the most per step short of that.
    "dino": dict(out_dim=2048, local_crops=6, batch_size=128, steps=20000, eval_every=1),
    "tsne": dict(perplexity=100.0, n_points=1797, iterations=2000, every=50),
    "gan": dict(loss="wgan-gp", g_depth=6, g_width=256, d_depth=6, d_width=256, d_steps=10, batch_size=512,
                steps=50000, eval_every=1),
    "gan-1d": dict(loss="wgan-gp", width=64, d_steps=10, d_warmup=2000, batch_size=256, steps=20000, eval_every=200),
    "gan-digits": dict(loss="wgan-gp", noise_dim=64, g_width=512, d_width=512, d_steps=10, batch_size=256,
                       steps=30000, eval_every=1),
    "critical-points": dict(surface="six-hump-camel", steps=3000, every=50),
    "landscape": dict(model="lenet", batch_size=1024, steps=5000, every=50),
    "optimizers": dict(surface="six-hump-camel", steps=1000, nesterov=True, adamw=True),
    "optimizers-network": dict(nesterov=True, adagrad=True, adamw=True, hidden=64, batch_size=512, steps=5000,
                               eval_every=100),
    "rnn": dict(task="recall", lag=200, cells="rnn+gru+lstm", hidden=128, batch_size=256, steps=20000, eval_every=2),
    "ssl": dict(compare="stop_grad", batch_size=256, out_dim=128, width=32, input_size=28, steps=5000, eval_every=1),
    "clip": dict(batch_size=256, embed_dim=128, width=32, layers=2, steps=10000, eval_every=1),
    "distill": dict(n_labels=500, hidden=64, teacher_epochs=40, steps=5000, eval_every=1),
    "ema": dict(batch_size=128, hidden=64, steps=5000, eval_every=1),
    "mil": dict(instances="clutter", bag_size=50, size_spread=0.5, test_bags=300, batch_bags=32, width=32, dim=128,
                attn_dim=64, steps=5000, eval_every=1),
}


def _gaps(name: str, seconds: float = 2.5, hard_s: float = 30.0) -> tuple[list[tuple[float, float]], int, float]:
    """((wall, process CPU) seconds between consecutive yields after the first snapshot, real snapshots among
    them, setup seconds): at least ``seconds`` of running and at least one more real snapshot (an evaluation),
    at most ``hard_s``."""
    demo = get_demo(name)
    gen = demo.run(dataclasses.replace(demo.default_config(), **HEAVY[name]), CPU)
    gaps, real = [], 0
    try:
        t0 = time.perf_counter()
        next(gen)
        setup = time.perf_counter() - t0
        start = last = time.perf_counter()
        last_cpu = time.process_time()
        while True:
            try:
                snap = next(gen)
            except StopIteration:
                break
            now, cpu = time.perf_counter(), time.process_time()
            gaps.append((now - last, cpu - last_cpu))
            last, last_cpu = now, cpu
            real += not snap.heartbeat
            if now - start > hard_s or (now - start > seconds and real):
                break
    finally:
        gen.close()
        base.wait_for_background_calls()  # a closed run finishes its current call: not in the next test's time
    return gaps, real, setup


def test_every_demo_has_a_heavy_variant():
    from dlviz.demos import all_demos

    assert set(HEAVY) == set(all_demos())
    for name, changes in HEAVY.items():
        demo = get_demo(name)
        fields = {f.name for f in dataclasses.fields(demo.config_cls)}
        assert set(changes) <= fields, name


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(HEAVY))
def test_pause_point_at_least_every_half_second_at_the_heaviest_settings(name):
    gaps, real, setup = _gaps(name)
    wall = sorted(w for w, _ in gaps)
    print(f"{name}: max gap {wall[-1]:.3f} s (CPU {max(c for _, c in gaps):.3f} s), median "
          f"{wall[len(wall) // 2]:.3f} s over {len(gaps)} yields ({real} snapshots), setup {setup:.2f} s")
    assert real >= 1, f"{name}: no evaluation within the window"
    long = [(w, c) for w, c in gaps if w >= MAX_GAP_S and c >= STARVED_CPU_S]
    assert not long, f"{name}: {long[0][0]:.2f} s between two yields ({long[0][1]:.2f} s of CPU)"


# -- pausing at heartbeats changes nothing ----------------------------------------------------------------------
TIMING = ("seconds", "per_second")  # wall-clock metrics: the only ones that may differ between two runs


def _counting(demo, counts):
    def run(config, device):
        for snap in demo.run(config, device):
            counts[snap.heartbeat] += 1
            yield snap

    return dataclasses.replace(demo, run=run)


def _comparable(history):
    return [{k: v for k, v in row.items() if not any(t in k for t in TIMING)} for row in history]


@pytest.mark.parametrize("name, changes", [
    ("rnn", dict(lag=20, hidden=16, batch_size=32, steps=20, eval_every=10)),
    ("ssl", dict(compare="stop_grad", batch_size=32, input_size=12, width=8, steps=6, eval_every=3)),
])
def test_a_run_paused_at_heartbeats_computes_exactly_what_an_uninterrupted_run_does(name, changes, monkeypatch):
    # A heartbeat after every paced call (between steps, between cells, between evaluations) and every 10 ms while
    # a call runs in the pacer's worker thread, which takes every call longer than 5 ms (SSL's steps and
    # evaluations, the RNN's cells on a busy CPU).
    monkeypatch.setattr(base.Pacer.__init__, "__defaults__", (0.01,))
    monkeypatch.setattr(base.Pacer, "due", lambda self: True)
    demo = get_demo(name)
    config = dataclasses.replace(demo.default_config(), **changes)
    whole = Runner(demo, config)
    whole.run_to_end()
    counts = {True: 0, False: 0}
    sliced = Runner(_counting(demo, counts), config)
    sliced.prime()
    while not sliced.finished:
        sliced.play()
        sliced.advance(0.0)  # one yield per slice: a snapshot or a heartbeat
        sliced.pause()
    assert whole.status == sliced.status == "done"
    assert counts[True] >= config.steps, "the run did not pause at every step"
    assert _comparable(sliced.history) == _comparable(whole.history)


# -- Pause and Reset from another thread --------------------------------------------------------------------------
@pytest.mark.slow
def test_pause_and_reset_from_another_thread_end_a_long_slice_at_once():
    """The largest RNN (3 cells, lag 200, hidden 128, batch 256, 500 steps per snapshot): Pause, then Reset, each
    pressed during a 10 s slice, end it within half a second."""
    demo = get_demo("rnn")
    config = dataclasses.replace(demo.default_config(), **{**HEAVY["rnn"], "eval_every": 500})
    r = Runner(demo, config)
    try:
        r.prime()
        for press in (r.pause, r.cancel):
            r.play()
            t = threading.Thread(target=r.advance, args=(10.0,))
            t.start()
            time.sleep(1.0)
            t0 = time.perf_counter()
            press()
            t.join(5)
            took = time.perf_counter() - t0
            assert not t.is_alive() and took < MAX_GAP_S, f"{press.__name__}: the slice ended after {took:.2f} s"
            assert r.status == PAUSED and r.progress_step > 0 and len(r.history) == 1
    finally:
        r.cancel()
        base.wait_for_background_calls()  # a closed run finishes its current call: not in the next test's time
