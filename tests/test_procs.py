"""Training in a worker process (dlviz.procs): the same run as in process, controls that act at once, errors and a
dead worker that end in a message."""

from __future__ import annotations

import pytest

from dlviz import procs
from dlviz.demos import get_demo
from dlviz.runner import FAILED, PAUSED, Runner

DEMO = "critical-points"  # small: a 2-D descent, snapshots every few steps


@pytest.fixture
def workers(monkeypatch):
    monkeypatch.setenv("DLVIZ_TRAIN_PROCESS", "1")
    monkeypatch.setenv("DLVIZ_PROCESSES", "1")
    procs.use_processes(True)
    try:
        yield
    finally:
        procs.use_processes(False)
        procs._stop_all()


def _numbers(history):
    """The metrics, less the ones that time the machine (steps per second)."""
    return [{k: v for k, v in row.items() if "per_second" not in k and "seconds" not in k} for row in history]


def _drive(runner: Runner, snapshots: int) -> None:
    """Play until at least ``snapshots`` snapshots were recorded, then pause."""
    runner.play()
    while runner.snapshots_seen < snapshots and not runner.finished and runner.status != FAILED:
        runner.advance(0.01)
    runner.pause()


def test_a_run_in_a_worker_process_is_the_same_run_step_for_step(workers):
    demo = get_demo(DEMO)
    cfg = demo.default_config()
    procs.use_processes(False)
    here = Runner(demo, cfg)
    _drive(here, 12)
    procs.use_processes(True)
    there = Runner(demo, cfg)
    there.prime()
    assert isinstance(there._gen, procs.RemoteGen)
    for _ in range(3):
        there.step()  # Step: exactly one more snapshot, then paused (the item read ahead is kept for the next)
    assert there.status == PAUSED and there.snapshots_seen == 4  # step 0 and three steps
    _drive(there, 8)  # Resume, then Pause in the middle of the run
    seen = there.snapshots_seen
    assert there.step() is not None and there.snapshots_seen == seen + 1 and there.status == PAUSED
    _drive(there, 12)
    n = min(len(here.history), len(there.history))
    assert n >= 10 and _numbers(there.history[:n]) == _numbers(here.history[:n])
    assert there.compute_seconds > 0  # the worker's time, reported with each item
    there.reset()  # closes the remote run; a new one starts from step 0
    again = there.prime()
    assert again is not None and again.step == here.first.step


def test_an_error_in_the_worker_comes_back_as_the_run_failing_with_where(workers, monkeypatch):
    gen = procs.RemoteGen("no-such-demo", None, "cpu")
    with pytest.raises(KeyError) as err:
        next(gen)
    assert "no-such-demo" in str(err.value) and err.value.dlviz_where.endswith(".py:" + err.value.dlviz_where.rsplit(":", 1)[1])
    import dlviz.runner as runner_mod

    monkeypatch.setattr(runner_mod, "open_run", lambda demo, config, device: procs.RemoteGen("no-such-demo", None, "cpu"))
    r = Runner(get_demo(DEMO), get_demo(DEMO).default_config())
    r.prime()
    assert r.status == FAILED and "KeyError" in str(r.message) and "__init__.py:" in str(r.message)


def test_a_worker_that_dies_fails_its_runs_with_a_message_and_the_next_run_gets_a_new_worker(workers):
    demo = get_demo(DEMO)
    r = Runner(demo, demo.default_config())
    r.prime()
    victim = procs._WORKERS[0]
    victim.proc.kill()
    victim.proc.wait(10)
    _drive(r, 50)
    assert r.status == FAILED and "training process stopped" in str(r.message)
    fresh = Runner(demo, demo.default_config())
    assert fresh.prime() is not None and fresh.status != FAILED
    assert procs._WORKERS and procs._WORKERS[0] is not victim


def test_a_dead_worker_says_what_to_do_whichever_end_sees_it_first(workers):
    """The end of a worker is seen by the reader (EOF) or by a send (broken pipe), in either order (CI once showed
    the send's internal words on the page); both say what to do."""
    demo = get_demo(DEMO)
    Runner(demo, demo.default_config()).prime()
    victim = procs._WORKERS[0]
    victim.proc.kill()
    victim.proc.wait(10)
    victim._died()  # as if the reader had seen it first
    with pytest.raises(procs.WorkerDied) as dead:
        victim.send("next", 0)
    assert "Press Reset" in str(dead.value.args[0])


def test_workers_are_off_unless_asked(monkeypatch):
    monkeypatch.delenv("DLVIZ_TRAIN_PROCESS", raising=False)
    procs._ENABLED = None
    assert not procs.enabled()
    procs.use_processes(True)
    assert procs.enabled()
    monkeypatch.setenv("DLVIZ_TRAIN_PROCESS", "0")  # the server's setting wins over the app's default
    procs.use_processes(True)
    assert not procs.enabled()
    procs.use_processes(False)
    demo = get_demo(DEMO)
    assert not isinstance(procs.open_run(demo, demo.default_config(), "cpu"), procs.RemoteGen)


def test_each_run_resumes_with_its_own_autograd_mode():
    """One thread resumes many runs: a generator suspended inside no_grad must not switch gradients off for the
    others (ten runs in one worker failed when the GAN 1-D warm-up yielded inside no_grad)."""
    import torch

    from dlviz.demos.base import GradMode

    def quiet():
        with torch.no_grad():
            yield torch.is_grad_enabled()
            yield torch.is_grad_enabled()

    def learning():
        while True:
            yield torch.is_grad_enabled()

    a, b = quiet(), learning()
    ma, mb = GradMode(), GradMode()
    assert ma.next(a) is False and torch.is_grad_enabled()  # the thread keeps its own mode
    assert mb.next(b) is True
    assert ma.next(a) is False and mb.next(b) is True
    with torch.no_grad():  # the caller's mode does not reach a run either
        assert mb.next(b) is True and not torch.is_grad_enabled()
    gen_bare = quiet()
    next(gen_bare)
    assert not torch.is_grad_enabled()  # what GradMode prevents: a bare next() leaks the generator's mode
    torch.set_grad_enabled(True)


def test_the_gan_warm_up_leaves_gradients_on():
    import torch

    demo = get_demo("gan-1d")
    gen = demo.run(demo.default_config(), torch.device("cpu"))
    try:
        for _ in zip(range(8), gen):
            assert torch.is_grad_enabled()
    finally:
        gen.close()
        torch.set_grad_enabled(True)


def test_a_run_dropped_without_closing_frees_its_model_in_the_worker(workers):
    """A session that ends drops its runner without Reset: the worker must not keep the model for the day."""
    import gc

    demo = get_demo(DEMO)
    r = Runner(demo, demo.default_config())
    r.prime()
    worker = procs._WORKERS[0]
    assert worker.held() == 1
    del r
    gc.collect()
    assert worker.held() == 0  # closed at the next message to the worker
    kept = Runner(demo, demo.default_config())
    kept.prime()
    kept.reset()  # closed at once
    assert worker.held() == 0
