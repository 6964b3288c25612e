"""The live feed (dlviz.ui.feed): a running run's main chart, served as JSON to the browsers that poll it.

A toy demo (a random walk from the run's own generator) trains synchronously here; the feed's answers are checked
directly (``answer``) and through its HTTP routes (a Starlette app with ``routes()``, as ``st.App`` mounts them).
"""

from __future__ import annotations

import gc
import gzip
import json
import time
from dataclasses import dataclass

import pytest
import torch

from dlviz.config import param
from dlviz.demos.base import Demo, Snapshot
from dlviz.device import run_generator
from dlviz.figures.common import metric_curves
from dlviz.i18n import _
from dlviz.runner import RUNNING, Runner
from dlviz.ui import feed
from dlviz.ui.settings import lecture_mode


@dataclass(frozen=True)
class WalkConfig:
    steps: int = param(10_000, "steps", lo=1, hi=100_000)
    seed: int = param(0, "seed", lo=0, hi=2**31 - 1, widget=False)


def walk(config: WalkConfig, device):
    g, x = run_generator(config.seed), 0.0
    yield Snapshot(0, {"x": x})
    for step in range(1, config.steps + 1):
        x += float(torch.randn(1, generator=g))
        yield Snapshot(step, {"x": x})


WALK = Demo(name="walk", title="Random walk", summary="", config_cls=WalkConfig, presets={}, run=walk)
BUILDS: list = []


def build(r: Runner):
    """The chart of the run ``r`` shows, titled in the current language, sized by the current lecture mode."""
    BUILDS.append((r.latest.step, lecture_mode()))
    fig = metric_curves(r.history, [(_("loss"), ["x"])])
    fig.update_layout(meta={"step": r.latest.step, "lecture": lecture_mode()})
    return fig


def running_walk(snapshots: int = 3) -> Runner:
    runner = Runner(WALK, WalkConfig(), torch.device("cpu"))
    runner.prime()
    runner.play()
    more(runner, snapshots)
    return runner


def more(runner: Runner, n: int) -> None:
    seen = runner.snapshots_seen
    while runner.snapshots_seen < seen + n:
        runner.advance(0.0)


def body(data: bytes) -> dict:
    return json.loads(data)


@pytest.fixture(autouse=True)
def _rebuild_at_once(monkeypatch):
    monkeypatch.setattr(feed, "MIN_BUILD_S", 0.0)  # every new snapshot is a new chart (the default waits 0.18 s)
    monkeypatch.setattr(feed, "BUILD_SHARE", 1e9)  # however long the builds take
    BUILDS.clear()


def test_a_feed_answers_the_runs_chart_then_204_until_the_run_moves_on():
    runner = running_walk()
    token = feed.register(("s1", "walk.curves"), runner, "curves", build, (), "en", False)
    status, data = feed.answer(token, None)
    assert status == 200
    first = body(data)
    assert first["head"]["running"] is True and first["head"]["step"] == runner.latest.step
    assert first["fig"]["layout"]["meta"]["step"] == runner.latest.step  # the figure of the latest snapshot
    assert feed.answer(token, first["head"]["v"]) == (204, None)  # nothing new: no body
    more(runner, 2)
    status, data = feed.answer(token, first["head"]["v"])
    assert status == 200 and body(data)["head"]["step"] == runner.latest.step > first["head"]["step"]
    assert body(data)["head"]["v"] != first["head"]["v"]


def test_sessions_watching_one_run_share_one_build_per_snapshot_and_the_answer_is_gzipped_once():
    runner = running_walk()
    tokens = [feed.register((f"s{i}", "walk.curves"), runner, "curves", build, (), "en", False) for i in range(5)]
    answers = [feed.answer(t, None, gzipped=True) for t in tokens]
    assert len(set(tokens)) == 5 and len(BUILDS) == 1
    assert all(a[1] is answers[0][1] for a in answers)  # the same bytes for everyone
    assert body(gzip.decompress(answers[0][1])) == body(feed.answer(tokens[0], None)[1])


def test_a_feed_draws_in_its_sessions_language_and_lecture_mode():
    runner = running_walk()
    en = feed.register(("s1", "c"), runner, "curves", build, (), "en", False)
    zh = feed.register(("s2", "c"), runner, "curves", build, (), "zh", True)
    fig_en, fig_zh = (body(feed.answer(t, None)[1])["fig"] for t in (en, zh))
    assert fig_en["layout"]["meta"]["lecture"] is False and fig_zh["layout"]["meta"]["lecture"] is True
    texts = json.dumps(fig_en["layout"], ensure_ascii=False), json.dumps(fig_zh["layout"], ensure_ascii=False)
    assert "loss" in texts[0] and "损失" in texts[1]
    assert fig_zh["layout"]["font"]["size"] > fig_en["layout"]["font"]["size"]  # lecture mode: larger text


def test_a_session_keeps_its_token_until_its_run_or_language_changes():
    runner = running_walk()
    token = feed.register(("s1", "c"), runner, "curves", build, (), "en", False)
    assert feed.register(("s1", "c"), runner, "curves", build, (), "en", False) == token  # the browser polls on
    other = feed.register(("s1", "c"), runner, "curves", build, (), "zh", False)
    assert other != token and feed.answer(token, None)[0] == 404  # the old feed is gone
    reset = running_walk()
    assert feed.register(("s1", "c"), reset, "curves", build, (), "zh", False) not in (token, other)


def test_a_paused_run_says_so_and_a_dropped_run_is_gone():
    runner = running_walk()
    token = feed.register(("s1", "c"), runner, "curves", build, (), "en", False)
    runner.pause()
    head = body(feed.answer(token, None)[1])["head"]
    assert head["running"] is False  # the browser stops polling; the page draws the paused step itself
    del runner
    gc.collect()
    assert feed.answer(token, None) == (404, None)
    assert feed.answer("no-such-token", None) == (404, None)


def _get(path: str, query: str = "", gzip_ok: bool = False):
    """The response of the feed's route for GET ``path`` (as Starlette routes it: no HTTP client needed)."""
    from starlette.requests import Request

    route = next(r for r in feed._routes() if r.matches({"type": "http", "path": path, "method": "GET"})[0].name
                 == "FULL")
    params = route.matches({"type": "http", "path": path, "method": "GET"})[1].get("path_params", {})
    scope = {"type": "http", "method": "GET", "path": path, "query_string": query.encode(), "path_params": params,
             "headers": [(b"accept-encoding", b"gzip, deflate")] if gzip_ok else []}
    return route.endpoint(Request(scope))


def test_the_routes_answer_and_a_failing_chart_is_a_503_not_a_traceback():
    runner = running_walk()
    token = feed.register(("s1", "c"), runner, "curves", build, (), "en", False)
    r = _get(feed.FEED_ROUTE + token, gzip_ok=True)
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    head = body(gzip.decompress(r.body))["head"]
    assert head["step"] == runner.latest.step and r.headers["cache-control"] == "no-store"
    assert _get(feed.FEED_ROUTE + token, f"v={head['v']}").status_code == 204
    assert _get(feed.FEED_ROUTE + "nope").status_code == 404

    def broken(r):
        raise ValueError("cannot draw this")

    bad = feed.register(("s2", "c"), runner, "broken", broken, (), "en", False)
    r = _get(feed.FEED_ROUTE + bad)
    assert r.status_code == 503 and r.body == b""
    js = _get(feed.PLOTLY_ROUTE, gzip_ok=True)
    assert js.status_code == 200 and "immutable" in js.headers["cache-control"]
    assert b"Plotly" in gzip.decompress(js.body)[:20000]


def test_the_feed_rebuilds_a_running_chart_at_most_every_min_build_s(monkeypatch):
    monkeypatch.setattr(feed, "MIN_BUILD_S", 60.0)
    runner = running_walk()
    token = feed.register(("s1", "c"), runner, "curves", build, (), "en", False)
    first = body(feed.answer(token, None)[1])
    more(runner, 3)
    again = feed.answer(token, first["head"]["v"])
    assert again == (204, None) and len(BUILDS) == 1  # newer snapshots wait for the next build
    runner.pause()  # a paused run is drawn at its step at once
    assert body(feed.answer(token, first["head"]["v"])[1])["fig"]["layout"]["meta"]["step"] == runner.latest.step


def test_forgotten_feeds_are_pruned(monkeypatch):
    runner = running_walk()
    token = feed.register(("old", "c"), runner, "curves", build, (), "en", False)
    feed._FEEDS[token].used = time.monotonic() - feed.IDLE_FORGET_S - 1
    feed._prune(time.monotonic())
    assert token not in feed._FEEDS and ("old", "c") not in feed._OWNERS
    assert runner.status == RUNNING  # forgetting a feed never touches its run


def test_pages_use_the_feed_only_where_its_routes_are_served_and_not_switched_off(monkeypatch):
    monkeypatch.setattr(feed, "_installed", False)
    assert not feed.enabled()  # AppTest, an older Streamlit: charts go through st.plotly_chart
    monkeypatch.setattr(feed, "_installed", True)
    assert feed.enabled() is (feed._component() is not None)
    monkeypatch.setenv("DLVIZ_FEED", "0")
    assert not feed.enabled()


def test_many_charts_built_at_once_are_rebuilt_less_often_within_their_share(monkeypatch):
    monkeypatch.setattr(feed, "MIN_BUILD_S", 0.18)
    monkeypatch.setattr(feed, "BUILD_SHARE", 0.3)
    feed._COSTS.clear()
    assert feed.rebuild_s() == 0.18 and feed.poll_ms() == feed.POLL_MS
    now = time.monotonic()
    for i in range(10):  # ten different runs whose charts take 40 ms each
        feed._COSTS[(i, "curves", (), "en", False)] = (now, 0.04)
    assert feed.rebuild_s() == pytest.approx(10 * 0.04 / feed.BUILD_SHARE)
    assert feed.poll_ms() == int(feed.rebuild_s() * 500)
    feed._COSTS[(0, "curves", (), "en", False)] = (now - 6, 0.04)  # not built for 5 s: no longer counted
    assert feed.rebuild_s() == pytest.approx(9 * 0.04 / feed.BUILD_SHARE)
    feed._COSTS.clear()


def test_the_feed_records_what_its_builds_cost():
    feed._COSTS.clear()
    runner = running_walk()
    token = feed.register(("s1", "c"), runner, "curves", build, (), "en", False)
    feed.answer(token, None)
    (when, cost), = feed._COSTS.values()
    assert 0 < cost < 5 and time.monotonic() - when < 5
    feed._COSTS.clear()


def test_a_new_runs_first_trained_chart_is_not_held_back_by_a_busy_server(monkeypatch):
    monkeypatch.setattr(feed, "BUILD_SHARE", 1e-6)  # a busy server: running charts wait long to be rebuilt
    runner = Runner(WALK, WalkConfig(), torch.device("cpu"))
    runner.prime()
    runner.play()
    token = feed.register(("s1", "c"), runner, "curves", build, (), "en", False)
    first = body(feed.answer(token, None)[1])["head"]
    assert first["step"] == 0
    more(runner, 1)
    status, data = feed.answer(token, first["v"])
    assert status == 200 and body(data)["head"]["step"] == 1  # the first step shows at once
    more(runner, 1)
    assert feed.answer(token, body(data)["head"]["v"]) == (204, None)  # then the busy server's pace
    feed._COSTS.clear()
