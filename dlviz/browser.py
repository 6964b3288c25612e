"""Drive the app in headless Chromium: serve it on a free port, open pages, press Start, take screenshots.

Used by the browser tests, the benchmark (refresh rate), the thumbnails, and by hand through
``tools/screenshot.py``. Needs playwright and a Chromium (Debian's ``chromium``; $CHROMIUM_PATH overrides).
"""

from __future__ import annotations

import contextlib
import os
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


def open_settled(page, url: str) -> None:
    """Open a URL and wait until the app has settled: a cold link reruns twice (page -> app.py -> page), and the
    app reads idle for a moment between those reruns, so wait for the sidebar of app.py, then for idle."""
    page.set_default_timeout(90_000)
    page.goto(url)
    page.wait_for_selector('[data-testid="stMain"]')
    page.get_by_text("Lecture mode").wait_for(timeout=60_000)
    page.wait_for_timeout(1000)
    wait_idle(page)


def full_screenshot(page, out: str) -> None:
    """Grow the viewport to the main area's scroll height, then capture the whole page."""
    h = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]')?.scrollHeight || 1200")
    page.set_viewport_size({"width": page.viewport_size["width"], "height": min(int(h) + 50, 12000)})
    page.wait_for_timeout(600)
    page.screenshot(path=out, full_page=True)


def shoot(url: str, slug: str, out: str, start: bool = False, wait: float = 3.0, width: int = 1400) -> list[str]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": 1000})
        page.goto(f"{url}/{slug}")
        page.wait_for_selector('[data-testid="stMain"]', timeout=60000)
        page.wait_for_timeout(1500)
        wait_idle(page)
        if start:
            page.locator(FRESH).get_by_role("button", name="▶ Start").first.click()
            page.wait_for_timeout(int(wait * 1000))
        else:
            page.wait_for_timeout(int(wait * 500))
        errors = page.locator('[data-testid="stException"]').all_text_contents()
        full_screenshot(page, out)
        browser.close()
    return errors
