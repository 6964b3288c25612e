"""What a lecturer does at awkward moments, in real Chromium: none of it shows a traceback or kills a run.

1. a custom formula that is linear or constant in a variable (``x^2``: no y), from a link and typed;
2. Step pressed again and again while a slice is training, then Pause and Reset in the middle of slices;
3. controls changed during a run (SSL "compare with", CNN input size): the figures keep drawing the run;
4. the live feed (dlviz.ui.feed): the main chart is drawn by the browser from the run's feed while it trains,
   and Pause, Step and Reset leave it drawn, at the step the page shows.
"""

from __future__ import annotations

import re
import time
from urllib.parse import urlparse

import pytest

from dlviz.browser import FRESH, open_settled, serve_app, wait_idle

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app_url():
    # As the app runs by default: runs train in worker processes (dlviz.procs); the tests run the rest in process.
    # The live feed draws the running charts from the first session watching (the server's default: from six).
    with serve_app(env={"DLVIZ_TRAIN_PROCESS": "1", "DLVIZ_FEED_WATCHERS": "1"}, timeout=120) as url:
        yield url


def _open(page, url: str) -> None:
    page.set_viewport_size({"width": 1400, "height": 1000})
    open_settled(page, url)


def _problems(page) -> list[str]:
    """Exceptions, and failure messages of the runner."""
    out = page.locator('[data-testid="stException"]').all_text_contents()
    out += [t for t in page.locator('[data-testid="stAlert"]').all_text_contents()
            if "stopped with an error" in t or "Traceback" in t]
    return out


def _step(page) -> int:
    text = page.locator(FRESH).get_by_text(re.compile(r"step \d+ ·")).first.text_content()
    return int(re.search(r"step (\d+)", text).group(1))


def _wait_step_above(page, step: int, timeout_s: float = 20) -> int:
    """Poll the status line until the run is past ``step`` (a busy machine may take a few refreshes)."""
    deadline = time.perf_counter() + timeout_s
    while True:
        now = _step(page)
        if now > step or time.perf_counter() > deadline:
            return now
        page.wait_for_timeout(300)


def _button(page, name: str):
    return page.locator(FRESH).get_by_role("button", name=name).first


def test_custom_formula_without_y_from_a_link_and_typed(page, app_url):
    _open(page, f"{app_url}/loss_surfaces?surface=custom&formula=x%5E2")
    assert _problems(page) == []
    page.locator(FRESH).locator(".js-plotly-plot").first.wait_for(timeout=30_000)  # the surface is drawn
    for formula in ("x+y", "5", "sin(x)"):
        box = page.locator('[data-testid="stMain"] [data-testid="stTextInput"] input').first
        box.fill(formula)
        box.press("Enter")
        page.wait_for_timeout(1500)
        wait_idle(page)
        assert _problems(page) == [], formula


def test_step_pause_reset_in_the_middle_of_slices(page, app_url):
    _open(page, f"{app_url}/cnn?preset=modern&epochs=60&seed=0")
    _button(page, "▶ Start").click()
    page.wait_for_timeout(1500)
    for _ in range(6):  # Step lands while a slice trains (fast reruns start a second script thread)
        _button(page, "⏭ Step").click()
        page.wait_for_timeout(150)
    page.wait_for_timeout(1500)
    assert _problems(page) == []
    stepped = _step(page)
    assert stepped > 0
    _button(page, "▶ Resume").click()
    assert _wait_step_above(page, stepped) > stepped, "the run must go on after the Steps"
    _button(page, "⏸ Pause").click()
    page.wait_for_timeout(200)
    _button(page, "▶ Resume").click()
    page.wait_for_timeout(300)
    _button(page, "↺ Reset").click()
    page.wait_for_timeout(2000)
    wait_idle(page)
    assert _problems(page) == []
    assert _step(page) == 0, "Reset goes back to the untrained state"


CHART = """() => { const d = document.querySelector('.dlviz-live-chart');
  return d ? [d.parentElement.dataset.step || '', d.querySelectorAll('.main-svg').length] : null; }"""


def _chart(page, wait: bool = True) -> tuple[int, bool]:
    """(the step the feed chart shows, whether it is drawn); ``wait``: until it is mounted and drawn."""
    if wait:
        page.wait_for_function(f"() => {{ const c = ({CHART})(); return c && c[1] > 0; }}", timeout=20_000)  # mounted
    got = page.evaluate(CHART)
    assert got is not None, "the CNN page's curves are the live feed's chart"
    return int(got[0] or 0), got[1] > 0


def test_the_live_chart_follows_the_run_from_its_feed_and_stays_drawn_through_pause_step_reset(page, app_url):
    _open(page, f"{app_url}/cnn?preset=modern&epochs=60&seed=0")
    requests = []
    page.on("request", lambda r: requests.append(r.url) if "/dlviz/feed/" in r.url else None)
    assert _chart(page) == (0, True)  # the untrained state, drawn before Start
    _button(page, "▶ Start").click()
    seen, deadline = set(), time.perf_counter() + 20
    while len(seen) < 4 and time.perf_counter() < deadline:
        step, drawn = _chart(page, wait=False)
        assert drawn, "the chart is never empty while it trains"
        seen.add(step)
        page.wait_for_timeout(150)
    assert len(seen) >= 4 and requests, f"the chart must follow the run from its feed: {sorted(seen)}"
    _button(page, "⏸ Pause").click()
    page.wait_for_timeout(1500)
    wait_idle(page)
    paused = _step(page)
    assert _chart(page) == (paused, True), "paused, the chart shows the step of the status line"
    polls = len(requests)
    page.wait_for_timeout(1000)
    assert len(requests) <= polls + 1, "a paused chart stops polling"
    _button(page, "⏭ Step").click()
    assert _wait_step_above(page, paused) > paused
    wait_idle(page)
    page.wait_for_timeout(500)
    assert _chart(page) == (_step(page), True)
    _button(page, "↺ Reset").click()
    page.wait_for_timeout(1500)
    wait_idle(page)
    assert _chart(page) == (0, True) and _problems(page) == []


def test_controls_changed_mid_run_keep_drawing_the_run(page, app_url):
    _open(page, f"{app_url}/ssl?preset=simsiam&steps=2000&seed=0")
    _button(page, "▶ Start").click()
    page.wait_for_timeout(2500)
    page.locator(FRESH).get_by_text("compare with").first.wait_for()
    select = page.locator('[data-testid="stSelectbox"]').filter(has_text="compare with").first
    option = page.get_by_role("option").filter(has_text=re.compile("stop")).first
    for _ in range(5):  # a refresh of the page can close the open list: open it again
        select.click()
        try:
            option.click(timeout=5_000)
            break
        except Exception:
            page.keyboard.press("Escape")
    page.wait_for_timeout(3000)
    assert _problems(page) == []
    assert page.get_by_text("Controls changed during this run").count() >= 1
    before = _step(page)
    assert _wait_step_above(page, before) > before, "the run keeps training after the controls changed"

    _open(page, f"{app_url}/cnn?preset=modern&epochs=60&seed=0")
    _button(page, "▶ Start").click()
    page.wait_for_timeout(1500)
    slider = page.locator('[data-testid="stSlider"]').filter(has_text="input size").first
    slider.get_by_role("slider").focus()
    page.keyboard.press("ArrowLeft")  # 28 -> 16 while training
    page.wait_for_timeout(3000)
    assert _problems(page) == []
    _button(page, "⏸ Pause").click()
    page.wait_for_timeout(1000)
    page.keyboard.press("ArrowLeft")  # and again while paused
    page.wait_for_timeout(2500)
    assert _problems(page) == []


def test_sessions_started_together_all_train_and_identical_runs_are_shared(browser, app_url):
    """Three sessions opened and started together (two on one CNN link, a GAN): each trains, none shows an
    exception (with five it was "SystemError: AST constructor recursion depth mismatch" in one of them), and the
    two identical CNN runs are one run on the server, watched twice."""
    links = [f"{app_url}/cnn?preset=modern&epochs=60&seed=0"] * 2 + [f"{app_url}/gan"]
    contexts = [browser.new_context(viewport={"width": 1280, "height": 900}) for _ in links]
    pages = [c.new_page() for c in contexts]
    try:
        for p, link in zip(pages, links):  # all load at once
            p.set_default_timeout(120_000)
            p.goto(link, wait_until="commit")
        for p in pages:
            p.get_by_text("Lecture mode").wait_for()
            _button(p, "▶ Start").wait_for()
            wait_idle(p)
        for p in pages:
            _button(p, "▶ Start").click()
        for i, p in enumerate(pages):
            assert _problems(p) == [], (links[i], _problems(p))
            try:
                p.locator(FRESH).get_by_text(re.compile(r"step [1-9]\d* ·")).first.wait_for(timeout=60_000)
            except Exception:
                captions = p.locator('[data-testid="stCaptionContainer"]').all_text_contents()
                raise AssertionError(f"{links[i]} did not train: {captions}") from None
        for p in pages[:2]:
            p.locator(FRESH).get_by_text(re.compile(r"shared: 2 sessions watch this run")).first.wait_for(
                timeout=20_000)
    finally:
        for c in contexts:
            c.close()


def test_pause_and_reset_stop_the_heaviest_rnn_at_once(page, app_url):
    """Item 4: lag 200, hidden 128, batch 256, 500 steps per snapshot (about a minute a snapshot on 2 cores):
    Pause and Reset act within a second; before heartbeats they waited for the snapshot."""
    _open(page, f"{app_url}/rnn?preset=adding-l50&lag=200&hidden=128&batch_size=256&eval_every=500&seed=0")
    _button(page, "▶ Start").click()
    page.wait_for_timeout(3000)
    t0 = time.perf_counter()
    _button(page, "⏸ Pause").click()
    page.locator(FRESH).get_by_text(re.compile(r"^paused · step")).first.wait_for(timeout=10_000)
    assert time.perf_counter() - t0 < 5, "Pause must not wait for the 500-step snapshot"
    _button(page, "▶ Resume").click()
    page.wait_for_timeout(1500)
    t0 = time.perf_counter()
    _button(page, "↺ Reset").click()
    page.locator(FRESH).get_by_text(re.compile(r"^ready · step 0")).first.wait_for(timeout=20_000)
    assert time.perf_counter() - t0 < 15 and _problems(page) == []


def test_link_values_are_shown_as_text_never_as_markdown(page, app_url):
    """Item 6: a link's rejected value is echoed escaped: no image is fetched, no link is made."""
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    _open(page, f"{app_url}/cnn?lr=%21%5B%5D%28http%3A%2F%2Fexample.invalid%2Fp.png%29"
                f"&epochs=%5Bx%5D%28http%3A%2F%2Fexample.invalid%2F%29")
    warning = page.locator('[data-testid="stAlert"]').filter(has_text="Ignored a setting from the link")
    warning.first.wait_for()
    assert "example.invalid" in warning.first.text_content()  # shown as text
    assert page.locator('[data-testid="stMain"] img[src*="example.invalid"]').count() == 0
    assert page.locator('[data-testid="stMain"] a[href*="example.invalid"]').count() == 0
    assert not [u for u in requests if urlparse(u).hostname == "example.invalid"]
    assert _problems(page) == []
