"""The server's scheduler: fair turns between runs, copies that replay exactly, housekeeping, the computation queue.

Toy demos stand in for training (a random walk drawn from the run's own generator, with a little sleep per step);
each test uses a scheduler of its own, so nothing here depends on the app's process-wide one.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from dataclasses import dataclass

import torch

from dlviz.config import param
from dlviz.demos.base import Demo, Pacer, Snapshot, heartbeat
from dlviz.device import run_generator
from dlviz.i18n import language, tr
from dlviz.runner import DONE, PAUSED, RUNNING, Runner
from dlviz.scheduler import Scheduler


@dataclass(frozen=True)
class WalkConfig:
    steps: int = param(300, "steps", lo=1, hi=100_000)
    every: int = param(5, "steps per snapshot", lo=1, hi=1000)
    work_s: float = param(0.001, "seconds of fake compute per step", lo=0.0, hi=1.0)
    seed: int = param(0, "seed", lo=0, hi=2**31 - 1, widget=False)


def walk(config: WalkConfig, device):
    g, x, pacer = run_generator(config.seed), 0.0, Pacer(0.01)
    yield Snapshot(0, {"x": x})
    for step in range(1, config.steps + 1):
        x += float(torch.randn(1, generator=g))
        time.sleep(config.work_s)
        if step % config.every == 0 or step == config.steps:
            pacer.reset()
            yield Snapshot(step, {"x": x})
        elif pacer.due():
            yield heartbeat(step)


WALK = Demo(name="walk", title="Random walk", summary="", config_cls=WalkConfig, presets={}, run=walk)


def _until(cond, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _started(sched: Scheduler, config: WalkConfig, session: str | None = None) -> Runner:
    r = Runner(WALK, config)
    r.prime()
    r.play()
    if session is not None:
        r.seen(session)
    sched.start(r, session)
    return r


class _Occupancy:
    """Records, from many threads, the order parts entered and the most that ran at once."""

    def __init__(self):
        self.lock, self.inside, self.most, self.order = threading.Lock(), 0, 0, []

    def hold(self, name, seconds: float) -> None:
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
            self.order.append(name)
        time.sleep(seconds)
        with self.lock:
            self.inside -= 1

def test_round_robin_lets_no_run_starve():
    sched = Scheduler(workers=1, slice_s=0.02)
    runs = [_started(sched, WalkConfig(steps=100_000, seed=i)) for i in range(6)]
    time.sleep(1.5)
    progress = [r.progress_step for r in runs]
    sched.cancel_all()
    assert min(progress) > 0
    assert min(progress) >= 0.5 * statistics.median(progress), progress


def test_a_run_trains_in_the_background_to_the_end_like_a_run_to_the_end():
    sched = Scheduler(workers=2, slice_s=0.02)
    live = _started(sched, WalkConfig(steps=120, work_s=0.0, seed=4))
    assert _until(lambda: live.status == DONE)
    alone = Runner(WALK, WalkConfig(steps=120, work_s=0.0, seed=4))
    alone.run_to_end()
    assert live.history == alone.history


def test_a_copy_replays_to_the_same_step_then_goes_on_like_the_original():
    sched = Scheduler(workers=1, slice_s=0.02)
    config = WalkConfig(steps=200, work_s=0.0, seed=9)
    original = _started(sched, config)
    assert _until(lambda: original.latest.step >= 60)
    copy = Runner.copy_of(original)  # a session leaves the shared run at this step
    at = copy.latest.step
    assert copy.status == PAUSED and copy.replaying and copy.history[-1]["step"] == at
    copy.play()
    sched.start(copy)
    assert _until(lambda: copy.status == DONE and original.status == DONE)
    assert copy.history == original.history  # nothing recorded twice, nothing missing, same numbers


def test_a_released_run_replays_on_resume():
    sched = Scheduler(workers=1, slice_s=0.02)
    config = WalkConfig(steps=150, work_s=0.0, seed=2)
    r = _started(sched, config)
    assert _until(lambda: r.latest.step >= 40)
    r.pause()
    assert _until(lambda: r.release("freed"))
    assert r.replaying and r.notice == "freed"
    r.play()
    assert r.notice == ""
    sched.start(r)
    assert _until(lambda: r.status == DONE)
    alone = Runner(WALK, config)
    alone.run_to_end()
    assert r.history == alone.history


def test_a_run_nobody_watches_pauses_with_a_message():
    sched = Scheduler(workers=1, slice_s=0.02, unwatched_s=0.3)
    r = _started(sched, WalkConfig(steps=100_000), session="tab")
    assert _until(lambda: r.status == PAUSED, 10)
    assert "no page showed this run" in r.notice


def test_one_running_training_per_session():
    sched = Scheduler(workers=1, slice_s=0.02)
    first = _started(sched, WalkConfig(steps=100_000), session="s1")
    second = _started(sched, WalkConfig(steps=100_000, seed=1), session="s1")
    other = _started(sched, WalkConfig(steps=100_000, seed=2), session="s2")
    assert first.status == PAUSED and "one run trains per session" in first.notice
    assert second.status == RUNNING and other.status == RUNNING
    with language("zh"):  # a Msg: English in the run, shown in the reader's language by live.py's tr()
        assert "每个会话只训练一个运行" in tr(first.notice)
    sched.cancel_all()


def test_identical_starts_share_one_run_until_it_stops():
    sched = Scheduler(workers=1, slice_s=0.02)
    config = WalkConfig(steps=100_000)
    r = Runner(WALK, config)
    r.prime()
    r.play()
    key = ("walk", repr(config))
    sched.start(r, "s1", key)
    assert sched.shared(key) is r
    assert sched.shared(("walk", repr(WalkConfig(steps=100_000, seed=1)))) is None
    r.pause()
    assert sched.shared(key) is None  # a paused run is nobody's to attach to
    sched.cancel_all()


def test_computations_queue_in_order_and_say_how_many_are_ahead():
    sched = Scheduler(workers=1)
    gate = threading.Event()
    first = sched.submit("slow", gate.wait, 10)
    assert _until(lambda: first.started)
    second = sched.submit("two", lambda: 2)
    third = sched.submit("three", lambda: 3)
    assert (second.ahead(), third.ahead()) == (1, 2)
    gate.set()
    assert third.wait(10) == 3 and second.wait(10) == 2
    assert third.ahead() == 0
    failing = sched.submit("bad", lambda: 1 / 0)
    try:
        failing.wait(10)
    except ZeroDivisionError:
        pass
    else:
        raise AssertionError("the computation's error reaches the caller")


def test_redraws_slow_down_as_more_sessions_watch():
    sched = Scheduler(workers=1)
    sched.drew("a", 0.05)
    assert sched.refresh_period(0.2) == 0.2  # one session: the page's own period
    for i in range(20):
        for _ in range(10):
            sched.drew(f"s{i}", 0.05)
    period = sched.refresh_period(0.2)
    assert 1.5 <= period <= 2.5  # 21 sessions x 50 ms per redraw within half a core: about every 2 s
    assert sched.drawing_sessions() == 21


def test_the_period_counts_sessions_that_pressed_start_and_ignores_one_costly_redraw():
    """Forty students press Start in the same second: the first timers are set for the load to come; and the
    session that builds a snapshot's shared figures (once for all) does not stretch everyone's period."""
    sched = Scheduler(workers=1)
    r = Runner(WALK, WalkConfig(steps=100_000, work_s=0.001))
    r.prime()
    r.play()
    sched.start(r, "s0")
    try:
        alone, quiet = sched.refresh_period(0.2), not sched.crowded()
        for i in range(1, 40):
            r.seen(f"s{i}")  # watching, not drawn yet
        crowd = sched.refresh_period(0.2)
        assert alone == 0.2 and crowd > 0.6 and quiet and sched.crowded(), (alone, crowd)  # 40 x DRAW_GUESS_S (10 ms) / half a core = 0.8 s
        for i in range(40):
            sched.drew(f"s{i}", 0.004)
        calm = sched.refresh_period(0.2)
        sched.drew("s0", 0.8)  # the builder of a new snapshot's figures
        assert sched.refresh_period(0.2) == calm == 0.4  # 40 x 4 ms / 0.5 = 0.32 s: the ladder's 0.4
    finally:
        sched.cancel_all()


def _turn_from_another_thread(gate, timeout_s: float) -> list:
    """Another session's redraw asks ``gate`` for its turn (while this thread holds something); returns [seconds
    it waited], or [] if it did not get in within ``timeout_s``."""
    waited = []

    def late():
        with gate.turn() as w:
            waited.append(w)

    t = threading.Thread(target=late)
    t.start()
    t.join(timeout_s)
    return waited


def test_the_draw_gate_lets_one_redraw_in_at_a_time_and_keeps_drawing_to_its_share():
    from dlviz.scheduler import DrawGate

    gate, seen = DrawGate(share=0.5), _Occupancy()
    order = seen.order

    def redraw(i):
        with gate.turn():
            with gate.turn():  # a redraw inside a redraw does not wait for itself
                seen.hold(i, 0.05)

    t0 = time.monotonic()
    threads = [threading.Thread(target=redraw, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
        time.sleep(0.005)  # in this order
    for t in threads:
        t.join(10)
    took = time.monotonic() - t0
    assert seen.most == 1 and sorted(order) == list(range(6))
    assert order == list(range(6))  # first come, first served
    assert took >= (6 * 0.05 - gate.burst_s) / 0.5 - 0.02  # past its burst, drawing took at most half the time
    gate = DrawGate(share=0.5, max_wait_s=0.2)
    with gate.turn():
        waited = _turn_from_another_thread(gate, 2)
    assert waited and 0.15 < waited[0] < 1.0  # a redraw never hangs: after max_wait_s it draws anyway


def test_full_runs_take_turns_first_come_first_served_and_a_waiting_one_lets_the_next_start(monkeypatch):
    """Forty Starts in one second, run side by side, all finished together; in turn, each is done in its own time.
    A full run that waits for a computation, or holds its turn past FULL_TURN_S, lets the next one start."""
    from dlviz import scheduler as sched_mod
    from dlviz.scheduler import DrawGate

    turn_s = 0.2
    monkeypatch.setattr(sched_mod, "FULL_TURN_S", turn_s)
    gate, seen = DrawGate(), _Occupancy()
    order = seen.order

    def page(i, work_s):
        with gate.full_run():
            with gate.full_run():  # re-entrant: a full run inside a full run does not wait for itself
                seen.hold(i, work_s)

    threads = [threading.Thread(target=page, args=(i, 0.03)) for i in range(5)]
    for t in threads:
        t.start()
        time.sleep(0.005)  # in this order
    for t in threads:
        t.join(10)
    assert seen.most == 1 and order == list(range(5))
    # A full run waiting for a computation steps aside (away): the next one starts at once. One that holds its
    # turn past FULL_TURN_S lets the next start beside it, not after it ends.
    starts = {}

    def timed(i, work_s, away=False):
        with gate.full_run():
            starts[i] = time.monotonic()
            with gate.away() if away else contextlib.nullcontext():
                time.sleep(work_s)

    for away, expect in ((True, (0.0, 0.15)), (False, (turn_s - 0.02, 2 * turn_s))):
        t0 = time.monotonic()
        long = threading.Thread(target=timed, args=("long", 4 * turn_s, away))
        long.start()
        time.sleep(0.01)
        short = threading.Thread(target=timed, args=("short", 0.01))
        short.start()
        short.join(5)
        long.join(5)
        assert expect[0] <= starts["short"] - t0 < expect[1], (away, starts["short"] - t0)


def test_timed_redraws_of_a_crowded_server_wait_for_full_runs_but_not_inside_one():
    from dlviz.scheduler import FULL_WAIT_S, DrawGate

    gate, events = DrawGate(), []

    def page():
        with gate.full_run():
            with gate.turn() as waited:  # the page's own live area, drawn in its full run: no wait
                events.append(("own redraw", waited))
            time.sleep(0.2)
            events.append(("page done", time.monotonic()))

    def timer():
        time.sleep(0.05)
        with gate.turn():
            events.append(("timed redraw", time.monotonic()))

    threads = [threading.Thread(target=page), threading.Thread(target=timer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    kinds = [e[0] for e in events]
    assert kinds == ["own redraw", "page done", "timed redraw"] and events[0][1] == 0.0
    # A full run that never ends does not hold redraws back for longer than FULL_WAIT_S.
    with gate.full_run():
        waited = _turn_from_another_thread(gate, FULL_WAIT_S + 2)
    assert waited and FULL_WAIT_S - 0.05 <= waited[0] < FULL_WAIT_S + 1.0


def test_identical_starts_at_the_same_instant_make_one_run():
    """Start is atomic: 20 sessions pressing it at once on the same settings make one run they all watch."""
    sched = Scheduler(workers=1)
    config = WalkConfig(steps=100_000, work_s=0.001)
    runners = [Runner(WALK, config) for _ in range(20)]
    for r in runners:
        r.prime()
    got, barrier = [None] * 20, threading.Barrier(20)

    def press(i):
        barrier.wait()
        got[i] = sched.start_or_join(runners[i], f"s{i}", ("walk", repr(config)))

    threads = [threading.Thread(target=press, args=(i,)) for i in range(20)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert len({id(g) for g in got}) == 1 and got[0].status == RUNNING
        assert got[0].watchers() == 20 and sched.running() == 1
    finally:
        sched.cancel_all()


def test_a_paced_run_delivers_at_most_one_snapshot_per_pace():
    sched = Scheduler(workers=1, slice_s=0.05)
    r = Runner(WALK, WalkConfig(steps=100_000, every=1, work_s=0.0))
    r.prime()
    r.pace_s = 0.25
    r.play()
    sched.start(r)
    time.sleep(1.6)
    sched.cancel_all()
    assert 4 <= r.snapshots_seen - 1 <= 8  # about 1.6 / 0.25 = 6.4; unpaced it would be thousands


def test_exports_of_a_run_read_back():
    import csv
    import io
    import json

    from dlviz.ui.live import history_csv, run_json

    r = Runner(WALK, WalkConfig(steps=20, every=5, work_s=0.0, seed=7))
    r.run_to_end()
    rows = list(csv.DictReader(io.StringIO(history_csv(r.history))))
    assert [int(row["step"]) for row in rows] == [0, 5, 10, 15, 20]
    assert [float(row["x"]) for row in rows] == [h["x"] for h in r.history]  # repr: exact round trip
    meta = json.loads(run_json(r, "http://host/walk?seed=7"))
    assert meta["config"]["seed"] == 7 and meta["steps"] == 20 and meta["status"] == "done"


def test_a_busy_server_redraws_the_heavier_views_less_often_than_the_curves():
    from dlviz.ui.live import BUSY_VIEWS, EVERY_S, SLOW_EVERY_S, views_rounds

    calm = views_rounds(EVERY_S)
    assert calm == SLOW_EVERY_S / EVERY_S  # 1.5 s apart at the 0.2 s period: every 7.5 live redraws
    assert views_rounds(0.6) == BUSY_VIEWS * calm > calm  # the period grew: the curves keep more of the budget
    assert views_rounds(0.3, every_s=0.3, slow_every_s=1.5) == 5.0  # a page's own slower period is not "busy"


def test_a_full_run_passes_its_turn_on_once_its_live_area_is_drawn_and_finishes_after_the_heads_behind_it():
    """Forty Starts: each full run draws its live area (head), then lets the next full run's head go before its
    own rest (tail); the rests follow in their order, and only one part runs at a time."""
    from dlviz.scheduler import DrawGate

    gate, seen = DrawGate(), _Occupancy()
    events = seen.order

    def page(i):
        with gate.full_run():
            seen.hold(f"head{i}", 0.02)
            gate.head_done()
            gate.head_done()  # a second call is a no-op (a page with two live areas)
            seen.hold(f"tail{i}", 0.02)

    threads = [threading.Thread(target=page, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
        time.sleep(0.005)  # they queue in this order behind the first
    for t in threads:
        t.join(10)
    assert seen.most == 1
    assert events[:4] == ["head0", "head1", "head2", "head3"] and events[4:] == ["tail0", "tail1", "tail2", "tail3"]
    assert not gate._full_runs and not gate._tail_queue and not gate._full_queue
    gate.head_done()  # outside a full run (a fragment's own rerun): nothing to pass on
