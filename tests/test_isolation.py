"""Runs are isolated: a config and a seed give the same numbers whatever else the process does meanwhile.

Each run draws from its own generators (``dlviz.device.run_generator``) and builds its models under
``dlviz.device.seeded``; nothing it does while training reads torch's, numpy's or python's global generators. The
checks scramble those global generators between every two steps of a run (what other sessions' threads do on a
busy server) and interleave two runs on two threads; the metrics must equal a lone run's, bit for bit.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time

import numpy as np
import pytest
import torch

from dlviz.demos import all_demos

SNAPSHOTS = 2  # step 0 (the initial weights) and one after training steps
TIMING = lambda key: "second" in key or key.endswith("_ms")  # noqa: E731  wall-clock figures differ by nature


def _small(demo):
    """The default config, with a snapshot every few steps so the snapshots are quick."""
    config = demo.default_config()
    names = {f.name for f in dataclasses.fields(config)}
    changes = {"seed": 3} if "seed" in names else {}
    if "eval_every" in names:
        changes["eval_every"] = 2
    return dataclasses.replace(config, **changes)


def _metrics(demo, config, scramble: bool = False) -> list[dict]:
    """Metrics of the first SNAPSHOTS real snapshots; with ``scramble``, the global generators are reseeded at random
    before every pull (heartbeats included)."""
    noise = random.Random(1234)
    gen, out = demo.run(config, torch.device("cpu")), []
    try:
        while len(out) < SNAPSHOTS:
            if scramble:
                torch.manual_seed(noise.randrange(2**31))
                torch.rand(noise.randrange(1, 50))
                np.random.seed(noise.randrange(2**31))
                random.seed(noise.randrange(2**31))
            snap = next(gen, None)
            if snap is None:
                break
            if not snap.heartbeat:
                out.append({k: v for k, v in snap.metrics.items() if not TIMING(k)})
    finally:
        gen.close()
    return out


DEMOS = [name for name in all_demos() if name != "tsne"]  # t-SNE has no model and no random draws while it runs


@pytest.mark.parametrize("name", DEMOS)
def test_global_generators_never_reach_a_run(name):
    demo = all_demos()[name]
    config = _small(demo)
    lone = _metrics(demo, config)
    assert len(lone) == SNAPSHOTS, "too few snapshots to compare"
    assert _metrics(demo, config, scramble=True) == lone


def test_runs_trained_by_the_scheduler_beside_others_equal_lone_runs():
    """The server's path: two runs trained at once by two workers of a scheduler, while another thread keeps
    building models under ``seeded`` (other sessions starting runs), equal the same runs trained alone."""
    from dlviz.device import seeded
    from dlviz.runner import DONE, Runner
    from dlviz.scheduler import Scheduler

    demos = all_demos()
    jobs = [(demos["cnn"], dataclasses.replace(_small(demos["cnn"]), epochs=1)),
            (demos["gan"], dataclasses.replace(_small(demos["gan"]), steps=120))]
    lone = []
    for demo, config in jobs:
        r = Runner(demo, config)
        r.run_to_end()
        lone.append([{k: v for k, v in h.items() if not TIMING(k)} for h in r.history])
    stop = threading.Event()

    def other_sessions():
        i = 0
        while not stop.is_set():
            with seeded(i):
                torch.nn.Linear(64, 64)
            i += 1

    noise = threading.Thread(target=other_sessions, daemon=True)
    noise.start()
    sched = Scheduler(workers=2, slice_s=0.02)
    runs = [Runner(demo, config) for demo, config in jobs]
    for r in runs:
        r.play()
        sched.start(r)
    deadline = time.monotonic() + 120
    while any(r.status != DONE for r in runs) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    noise.join()
    assert [[{k: v for k, v in h.items() if not TIMING(k)} for h in r.history] for r in runs] == lone


def test_seeded_builds_the_same_model_and_restores_the_global_state():
    from dlviz.device import seeded

    torch.manual_seed(7)
    expected_next = torch.rand(3)
    torch.manual_seed(7)
    with seeded(5):
        a = torch.nn.Linear(4, 4).weight.detach().clone()
    assert torch.equal(torch.rand(3), expected_next)  # the caller's stream is untouched
    with seeded(5):
        b = torch.nn.Linear(4, 4).weight.detach().clone()
    assert torch.equal(a, b)
