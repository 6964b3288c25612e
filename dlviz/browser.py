"""Drive the app in headless Chromium: serve it on a free port, open pages, press Start, take screenshots.

Used by the browser tests, the benchmark (refresh rate), the thumbnails, and by hand through
``tools/screenshot.py``. Needs playwright and a Chromium (Debian's ``chromium``; $CHROMIUM_PATH overrides).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository: app.py lives here
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FRESH = '[data-testid="stElementContainer"]:not([data-stale="true"])'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_app(port: int | None = None, env: dict | None = None, timeout: float = 60):
    """Run ``streamlit run app.py`` on a free localhost port; yield its base URL; fail with the log if it dies."""
    port = port or free_port()
    log = open(ROOT / f".streamlit-{port}.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log.read()}")
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise TimeoutError("streamlit did not answer /_stcore/health")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        log.close()
        (ROOT / f".streamlit-{port}.log").unlink(missing_ok=True)


def chromium_path() -> str | None:
    """$CHROMIUM_PATH, else Debian's chromium; None lets Playwright use its own download
    (``python -m playwright install chromium``). ``python tools/selftest.py`` finds or installs one."""
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


def wait_idle(page, timeout_ms: int = 60000) -> None:
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_ms)


# Language-independent landmarks: the sidebar's lecture-mode toggle (drawn by app.py: a cold link reruns page ->
# app.py -> page) and the live buttons, found by their widget key (streamlit gives each keyed element the class
# ``st-key-<key>``, every character but [a-zA-Z0-9_-] turned into "-": key "cnn.play" -> ``st-key-cnn-play``).
SIDEBAR_READY = '[data-testid="stSidebar"] .st-key-dlviz-lecture'


def key_class(key: str) -> str:
    """The CSS class streamlit gives the element of widget ``key``."""
    return "st-key-" + re.sub(r"[^a-zA-Z0-9_-]", "-", key.strip())


# Settled: the script is idle and the sidebar's lecture toggle is drawn by the latest run, with its label.
_SETTLED_JS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    const t = document.querySelector('[data-testid="stSidebar"] .st-key-dlviz-lecture');
    return !!app && app.dataset.testScriptState === 'notRunning' && !!t && t.dataset.stale !== 'true'
        && t.innerText.trim().length > 0;
}"""


def open_settled(page, url: str, settle_ms: int = 1000) -> None:
    """Open a URL and wait until the app has settled: a cold link reruns twice (page -> app.py -> page), and the
    app reads idle for a moment between those reruns, so wait for the sidebar of app.py (idle, drawn by the last
    run), a moment, then for that again. Works in every language (the lecture toggle is found by its key)."""
    page.set_default_timeout(90_000)
    page.goto(url)
    page.wait_for_selector('[data-testid="stMain"]')
    page.wait_for_selector(SIDEBAR_READY, state="attached", timeout=60_000)  # collapsed in lecture mode
    page.wait_for_function(_SETTLED_JS, timeout=60_000)
    page.wait_for_timeout(settle_ms)
    page.wait_for_function(_SETTLED_JS, timeout=60_000)
    wait_idle(page)


def live_button(page, action: str = "play", timeout_ms: int = 30_000):
    """The live runner's button ``action`` (play, pause, step, reset) of the page, in any language: the first
    fresh element whose key ends in ``.<action>`` (``live_run(KEY, ...)`` names them ``f"{KEY}.{action}"``)."""
    found = page.wait_for_function("""(suffix) => {
        for (const el of document.querySelectorAll('[data-testid="stElementContainer"]:not([data-stale="true"])'))
            for (const c of el.classList)
                if (c.startsWith('st-key-') && c.endsWith(suffix) && el.querySelector('button')) return c;
        return null;
    }""", arg="-" + action, timeout=timeout_ms)  # a rerun in flight shows the page's elements as stale: wait
    return page.locator(f"{FRESH}.{found.json_value()} button").first


def full_screenshot(page, out: str) -> None:
    """Grow the viewport to the main area's scroll height, then capture the whole page."""
    h = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]')?.scrollHeight || 1200")
    page.set_viewport_size({"width": page.viewport_size["width"], "height": min(int(h) + 50, 12000)})
    page.wait_for_timeout(600)
    page.screenshot(path=out, full_page=True)


def shoot(url: str, slug: str, out: str, start: bool = False, wait: float = 3.0, width: int = 1400,
          height: int = 1000, full: bool = True) -> list[str]:
    """Open ``slug`` (a page path, with a query: ``cnn?lang=zh&lecture=1``), press Start if asked (by the button's
    key: any language), wait, save a screenshot (the whole page, or the first ``width`` x ``height`` screen when not
    ``full``); return the text of any exception shown."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        open_settled(page, f"{url}/{slug}")
        if start:
            live_button(page, "play").click()
            page.wait_for_timeout(int(wait * 1000))
        else:
            page.wait_for_timeout(int(wait * 500))
        errors = page.locator('[data-testid="stException"]').all_text_contents()
        if full:
            full_screenshot(page, out)
        else:
            page.screenshot(path=out)
        browser.close()
    return errors
