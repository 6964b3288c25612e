"""The real app in headless Chromium: pages open cold with no exception, the CNN trains live, links reproduce.

A cold link (a fresh session opening a page's address) goes through app.py to the page: the suite opens four
pages that way (the CNN, the loss surfaces, DINO and CLIP: the first, the heaviest renders); every page is also
opened in Chromium by tests/test_browser_i18n.py (by the sidebar, in Chinese) and with AppTest by the fuzz test.
With DLVIZ_SHOTS=1 every page opens cold and a full-page screenshot of each lands in tests/screenshots/.
These tests fail, never skip, when Chromium is missing.
"""

from __future__ import annotations

import re
import time
import os
from pathlib import Path

import pytest

from dlviz.browser import FRESH, full_screenshot, open_settled, serve_app
from dlviz.ui.topics import discover

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).parent / "screenshots"
TOPICS = discover()
SHOTS_ON = bool(os.environ.get("DLVIZ_SHOTS"))
COLD = [t for t in TOPICS if SHOTS_ON or t.slug in ("cnn", "loss_surfaces", "dino", "clip")]


@pytest.fixture(scope="module")
def app_url():
    with serve_app(timeout=120) as url:
        yield url


_open = open_settled


def _exceptions(page) -> list[str]:
    return page.locator('[data-testid="stException"]').all_text_contents()


@pytest.mark.parametrize("topic", COLD, ids=[t.slug for t in COLD])
def test_pages_open_cold_without_exception(page, app_url, topic):
    page.set_viewport_size({"width": 1400, "height": 1000})
    _open(page, f"{app_url}/{topic.slug}")
    assert page.get_by_text("Lecture mode").count() == 1, "the sidebar of app.py must be there on a cold link"
    assert page.locator("h1").first.text_content().strip()
    assert _exceptions(page) == []
    assert page.get_by_text("WebGL is not supported").count() == 0
    if SHOTS_ON:
        SHOTS.mkdir(exist_ok=True)
        full_screenshot(page, str(SHOTS / f"{topic.slug}.png"))


def test_home_lists_every_topic(page, app_url):
    _open(page, app_url)
    for t in TOPICS:
        assert page.locator('[data-testid="stMain"]').get_by_text(t.title).count() >= 1
    assert _exceptions(page) == []
    if SHOTS_ON:
        SHOTS.mkdir(exist_ok=True)
        full_screenshot(page, str(SHOTS / "home.png"))


def _step(page) -> int:
    text = page.locator(FRESH).get_by_text(re.compile(r"step \d+ ·")).first.text_content()
    return int(re.search(r"step (\d+)", text).group(1))


def test_cnn_trains_live_by_keyboard_then_rewinds_and_exports(page, app_url):
    """Space starts and pauses; the chart changes while training; paused, the timeline rewinds the page to an
    earlier step; the export popover makes the offline HTML replay and the GIF."""
    page.set_viewport_size({"width": 1400, "height": 1000})
    _open(page, f"{app_url}/cnn?preset=modern&epochs=60&seed=0")  # long enough to pause
    chart = page.locator(FRESH).locator(".js-plotly-plot").first
    before = chart.inner_html()
    page.locator("h1").first.click()  # focus on the page, not in a text box
    page.keyboard.press("Space")
    steps, deadline = [], time.monotonic() + 45  # a busy machine redraws less often (the caption says so)
    while (len(steps) < 12 or len(set(steps)) < 4) and time.monotonic() < deadline:
        page.wait_for_timeout(700)
        steps.append(_step(page))
    assert steps[-1] > steps[0] and steps[-1] > 0, steps  # training advances while we watch
    assert len(set(steps)) >= 4, f"the page should refresh repeatedly while training: {steps}"
    assert chart.inner_html() != before
    page.keyboard.press("Space")
    status = page.locator(FRESH).get_by_text(re.compile(r"paused · step")).first
    status.wait_for(timeout=30_000)  # a busy server redraws less often (the caption says so)
    paused = _step(page)
    page.wait_for_timeout(1500)
    assert _step(page) == paused, "a paused run must not advance"
    # Rewind: the timeline's thumb, moved by the keyboard to earlier checkpoints.
    # Once in CI (1 of about 30 full runs, not reproduced here in 11 tries under load) no rewind followed the
    # presses within 60 s; a lecturer presses again, and so does the test, then says what the page showed.
    thumb = page.get_by_role("slider", name="Rewind")
    rewound = page.get_by_text(re.compile(r"rewound to step \d+ of \d+")).first
    for attempt in range(3):
        thumb.focus()
        for _ in range(5):
            thumb.press("ArrowLeft")
        try:
            rewound.wait_for(timeout=30_000)  # a busy machine reruns slowly
            break
        except Exception:
            if attempt == 2:
                raise AssertionError(f"no rewind after three tries: slider {thumb.get_attribute('aria-valuetext')!r}"
                                     f", status {page.locator(FRESH).get_by_text(re.compile('step')).all_text_contents()}")
    at = int(re.search(r"rewound to step (\d+)", rewound.text_content()).group(1))
    assert 0 <= at < paused
    assert _step(page) == paused, "rewinding shows an earlier step; the run itself stays where it was"
    # Export: the replay files, made on request.
    page.locator('[data-testid="stPopover"] button').first.click()
    page.get_by_role("button", name="Make the replay (HTML and GIF)").click()
    with page.expect_download(timeout=90_000) as dl:
        page.get_by_role("button", name="Replay (HTML, offline)").click()
    html = Path(dl.value.path()).read_text(encoding="utf-8")
    assert "Plotly.newPlot" in html or "Plotly.react" in html or "plotly" in html.lower()
    assert 'src="http' not in html and "<iframe" not in html  # offline: nothing fetched from the network
    files = {}
    for name in ("Animation (GIF)", "Metrics history (CSV)", "Config and link (JSON)"):
        with page.expect_download(timeout=60_000) as dl:
            page.get_by_role("button", name=name).click()
        files[name] = Path(dl.value.path()).read_bytes()
    assert files["Animation (GIF)"][:6] == b"GIF89a"
    csv_rows = files["Metrics history (CSV)"].decode().splitlines()
    assert csv_rows[0].startswith("step,") and len(csv_rows) > 3
    assert b'"seed": 0' in files["Config and link (JSON)"] and b"preset=modern" in files["Config and link (JSON)"]
    assert _exceptions(page) == []


def test_lr_too_high_shows_message_not_traceback(page, app_url):
    _open(page, f"{app_url}/cnn?preset=lr-too-high")
    page.locator(FRESH).get_by_role("button", name="▶ Start").click()
    alert = page.locator('[data-testid="stAlert"]').filter(has_text="too high")
    alert.first.wait_for(timeout=60_000)
    assert _exceptions(page) == []


def test_link_restores_settings_and_seed(page, app_url):
    from playwright.sync_api import expect

    _open(page, f"{app_url}/cnn?preset=modern&activation=sigmoid&seed=7")
    # Polled: once in a full CI run (1 of 5) the box still read 0 when first looked at, right after the redirect.
    expect(page.get_by_role("spinbutton", name="Seed")).to_have_value("7", timeout=30_000)
    # The link's activation differs from the preset, and the page says so; the URL keeps it.
    assert page.get_by_text("Modified from the preset").count() == 1
    assert "activation=sigmoid" in page.url
