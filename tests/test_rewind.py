"""Rewind: a run keeps bounded checkpoints with arrays of their own; a view rewound to a step draws that step,
and curves over steps get a cursor there."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dlviz.config import param
from dlviz.demos.base import Demo, Snapshot
from dlviz.figures.common import metric_curves
from dlviz.profile import checkpoint_limits
from dlviz.runner import Runner, _thinned
from dlviz.ui.show import with_cursor


@dataclass(frozen=True)
class ToyConfig:
    steps: int = param(300, "steps", lo=1, hi=100_000)
    big: int = param(10, "floats per array", lo=1, hi=10_000_000)
    seed: int = param(0, "seed", lo=0, hi=2**31 - 1, widget=False)


def toy(config: ToyConfig, device):
    """A 'weight' trained in place; every snapshot shows it as ``w.numpy()``: a view of the live tensor."""
    w = torch.zeros(config.big)
    for step in range(config.steps + 1):
        if step:
            w.add_(1.0)
        yield Snapshot(step, {"w": float(w[0])}, {"w": w.numpy(), "same": SHARED})


SHARED = np.arange(4.0)[::2]  # not owning its data: a view, repeated by every snapshot
TOY = Demo(name="toy", title="Toy", summary="", config_cls=ToyConfig, presets={}, run=toy)


def test_checkpoints_are_bounded_thinned_and_keep_their_own_values():
    r = Runner(TOY, ToyConfig(steps=300))
    r.run_to_end()
    most, _budget = checkpoint_limits()
    steps = [c.step for c in r.checkpoints]
    assert len(steps) <= most and steps[0] == 0 and steps[-1] == 300 and steps == sorted(steps)
    assert len(steps) >= most // 2  # thinned by halves of the older part, not emptied
    # each checkpoint shows the weight as it was at its step, not the live tensor's value now
    assert all(c.arrays["w"][0] == c.step for c in r.checkpoints)
    # one array repeated by every snapshot is copied once, not once per snapshot
    assert len({id(c.arrays["same"]) for c in r.checkpoints}) == 1


def test_the_memory_budget_thins_big_checkpoints():
    snaps = [Snapshot(i, {}, {"a": np.zeros(1000)}) for i in range(20)]  # 8 kB each
    kept = _thinned(snaps, 50, 8000 * 5)
    assert 2 <= len(kept) <= 5 and kept[0].step == 0 and kept[-1].step == 19
    assert len(_thinned(snaps[:3], 50, 1)) == 2  # over the budget with one: the first and the latest


def test_at_step_rewinds_latest_and_sets_the_cursor():
    r = Runner(TOY, ToyConfig(steps=40))
    r.run_to_end()
    view = r.at_step(17)
    assert view.latest.step == 17 and view.cursor == 17 and view.latest.arrays["w"][0] == 17
    assert r.latest.step == 40 and r.cursor is None  # the run itself is untouched
    assert view.history == r.history  # curves stay whole (with a cursor)
    assert r.at_step(None).latest.step == 40 and r.at_step(999).cursor is None


def test_a_copy_keeps_the_checkpoints_up_to_its_step():
    r = Runner(TOY, ToyConfig(steps=40))
    r.run_to_end(until=lambda s: s.step >= 20)
    copy = Runner.copy_of(r)
    assert [c.step for c in copy.checkpoints] == [c.step for c in r.checkpoints if c.step <= copy.latest.step]


def test_the_cursor_goes_on_step_axes_only_and_never_changes_the_shared_figure():
    fig = metric_curves([{"step": i, "loss": 1 / (i + 1), "test_acc": i / 10} for i in range(10)],
                        [("loss", ["loss"]), ("accuracy", ["test_acc"])])
    marked = with_cursor(fig, 4)
    assert [(s.xref, s.yref, s.x0) for s in marked.layout.shapes] == [("x", "y domain", 4), ("x2", "y2 domain", 4)]
    assert not fig.layout.shapes  # another session may be drawing the same figure
    heat = metric_curves([{"epoch": 1, "loss": 1.0}], [("loss", ["loss"])], x="epoch")
    heat.update_xaxes(title_text="x1")
    assert with_cursor(heat, 4) is heat and with_cursor(fig, None) is fig


def test_cnn_page_rewinds_every_figure_and_makes_the_replay_files():
    from conftest import open_page, wait_for

    at = open_page("pages/10_cnn.py", query={"preset": "modern", "epochs": "2"})
    at.button(key="cnn.play").click().run()
    runner = wait_for(at, "cnn", lambda r: r.status == "done" or len(r.checkpoints) >= 6)
    assert not at.exception, [e.message for e in at.exception]
    steps = [c.step for c in runner.checkpoints]
    timeline = at.select_slider(key="cnn.rewind")
    assert timeline.value == steps[-1]  # a pause starts at the latest step
    early = steps[2]
    timeline.set_value(early).run()
    assert not at.exception, [e.message for e in at.exception]
    assert any(f"rewound to step {early} of {steps[-1]}" in c.value for c in at.caption), [c.value for c in at.caption]
    metrics = {m.label: m.value for m in at.metric}
    row = next(h for h in runner.history if h["step"] == early)
    assert metrics["test accuracy"] == f"{row['test_acc']:.1%}", metrics  # the metric row shows that step
    at.button(key="cnn.make_replay").click().run()
    assert not at.exception, [e.message for e in at.exception]
    made = at.session_state["cnn._replay"]
    html, gif = made[1], made[2]
    assert html.count("<script") >= 1 and 'src="http' not in html and gif[:6] == b"GIF89a"
    at.button(key="cnn.play").click().run()  # Resume: the timeline goes away and the run goes on from the end
    assert "cnn.rewind" not in at.session_state


def test_a_shared_view_is_built_once_by_one_session_while_the_others_draw_the_last_one():
    """Twenty sessions redrawing one training run at the same moment: one builds the new snapshot's figure, the
    others draw the previous one meanwhile; the figure is themed before anyone sees it and serialized once."""
    import threading

    from dlviz.runner import PAUSED, RUNNING
    from dlviz.ui.live import shared_view
    from dlviz.ui.show import _themed_json

    r = Runner(TOY, ToyConfig(steps=40))
    r.run_to_end(until=lambda s: s.step >= 10)
    r.status = RUNNING  # as a training run looks to the pages (the worker is not needed here)
    builds, gate = [], threading.Event()

    def build():
        builds.append(threading.get_ident())
        gate.wait(5)  # slow enough that every other session arrives while it builds
        return metric_curves([{"step": i, "loss": 1 / (i + 1)} for i in range(r.snapshots_seen)], [("loss", ["loss"])])

    gate.set()
    old = shared_view(r, "curves", build)  # the last snapshot's figure
    gate.clear()
    r.snapshots_seen += 1  # a new snapshot
    got = [None] * 20

    def redraw(i):
        got[i] = shared_view(r, "curves", build)

    threads = [threading.Thread(target=redraw, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join(0.05)
    gate.set()
    for t in threads:
        t.join(5)
    assert len(builds) == 2  # the old one, then one build for 20 sessions
    new = shared_view(r, "curves", build)
    assert new is not old and all(g in (old, new) for g in got) and got.count(new) >= 1
    assert new.layout.meta["dlviz_theme"]  # themed before it was shared
    assert _themed_json(new, False) is _themed_json(new, False)  # one JSON for every session
    r.status = PAUSED  # a paused run draws exactly the step shown: it waits for no one and gets the new one
    assert shared_view(r, "curves", build) is not new and len(builds) == 3
