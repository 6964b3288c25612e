"""One server, several sessions (AppTest instances in one process): isolated settings, shared identical runs."""

from __future__ import annotations

import pytest
from conftest import open_page, wait_for

CNN = "pages/10_cnn.py"
LINK = {"preset": "modern", "epochs": "60"}


def _runner(at):
    return at.session_state["cnn._runner"]


@pytest.mark.xfail(strict=False, reason="#17: a replayed copy of a shared CNN run sometimes differs from it at the "
                   "same step (0.761 vs 0.747 test accuracy, 2 of ~10 full runs); cause open")
def test_identical_starts_share_one_run_and_pause_gives_a_copy():
    a, b = open_page(CNN, query=LINK), open_page(CNN, query=LINK)
    a.button(key="cnn.play").click().run()
    wait_for(a, "cnn", lambda r: r.latest.step > 0, pause=False)
    b.button(key="cnn.play").click().run()
    shared = _runner(a)
    assert _runner(b) is shared and shared.status == "running"  # trained once, watched twice
    a.run()
    assert any("2 sessions watch this run" in c.value for c in a.caption), [c.value for c in a.caption]
    b.button(key="cnn.pause").click().run()  # b leaves: a copy at b's step, paused; a's run goes on
    mine = _runner(b)
    assert mine is not shared and mine.status == "paused" and shared.status == "running"
    assert mine.history == [h for h in shared.history if h["step"] <= mine.latest.step]
    b.button(key="cnn.step").click().run()  # the copy replays to its step, then steps once
    mine = wait_for(b, "cnn", lambda r: r.status == "paused" and not r.replaying, pause=False)
    assert mine.status == "paused" and mine.history[-1]["step"] > mine.history[-2]["step"]
    at_step = mine.latest.step
    row = next(h for h in shared.history if h["step"] == at_step)  # the same numbers as the shared run
    diff = [(h["step"], h["test_acc"], m["test_acc"]) for h in shared.history for m in mine.history
            if h["step"] == m["step"] and h["test_acc"] != m["test_acc"]]
    assert row["test_acc"] == mine.history[-1]["test_acc"], (at_step, diff, mine.history[-3:], shared.history[-3:])
    assert not a.exception and not b.exception


def test_one_sessions_settings_never_reach_another():
    a, b = open_page(), open_page()  # the home page draws the sidebar in AppTest
    a.toggle(key="dlviz.lecture").set_value(True).run()
    a.number_input(key="dlviz.seed").set_value(7).run()
    b.run()
    assert b.number_input(key="dlviz.seed").value == 0 and not b.toggle(key="dlviz.lecture").value
    assert not any(w.label in ("CPU threads", "Data folder") for w in (*a.number_input, *a.text_input))  # server settings
    assert any("training on this server" in c.value for c in a.sidebar.caption)


def _q(at, name: str):
    value = at.query_params.get(name)
    return value[0] if isinstance(value, list) else value


def test_the_link_keeps_lecture_mode_and_what_the_page_shows():
    """A refresh with the link restores lecture mode, the loss-surface part and the feature method."""
    home = open_page(query={"lecture": "1"})  # the app's sidebar (AppTest runs a switched page without it)
    assert home.toggle(key="dlviz.lecture").value is True and _q(home, "lecture") == "1"
    home.toggle(key="dlviz.lecture").set_value(False).run()
    assert "lecture" not in home.query_params
    at = open_page("pages/20_loss_surfaces.py", query={"section": "landscape"})
    assert at.session_state["surf.section"] == "Landscape of a real network"
    assert _q(at, "section") == "landscape"
    assert "preset" in at.query_params  # the landscape's config form wrote its settings beside it
    at = open_page("pages/90_features.py", query={"method": "t-SNE"})
    assert at.session_state["features.method"] == "t-SNE" and _q(at, "method") == "t-SNE"
    assert not at.exception


def test_view_choices_are_in_the_link_and_a_bad_link_value_is_ignored():
    at = open_page("pages/10_cnn.py", query={"proj": "t-SNE", "digit": "7"})
    assert at.session_state["cnn.proj"] == "t-SNE" and at.session_state["cnn.digit"] == 7
    at.slider(key="cnn.digit").set_value(12).run()
    assert _q(at, "digit") == "12" and _q(at, "proj") == "t-SNE" and "preset" in at.query_params
    bad = open_page("pages/10_cnn.py", query={"proj": "<b>x</b>", "digit": "99999"})
    assert bad.session_state["cnn.proj"] == "PCA" and bad.session_state["cnn.digit"] == 0 and not bad.exception
    assert not [w.value for w in (*at.warning, *bad.warning) if "Session State" in w.value]
