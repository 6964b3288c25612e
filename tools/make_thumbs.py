"""Make the home-page thumbnails (assets/thumbs/<page>.png) and the README screenshot from the running app.

    python tools/make_thumbs.py [--wait 6]

Each page is opened, started when it has a ▶ Start button, and after ``--wait`` seconds of training its
first chart (or the chart given by a ``thumb: N`` line in the page docstring) is captured and scaled down.
"""

import argparse
import ast
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image  # noqa: E402  (installed with streamlit)

from dlviz.browser import CHROMIUM_ARGS, FRESH, chromium_path, serve_app, wait_idle  # noqa: E402
from dlviz.ui.topics import ROOT, discover  # noqa: E402

THUMB_W = 480


def chart_index(path: Path) -> int:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return next((int(ln.split(":", 1)[1]) for ln in doc.splitlines() if ln.strip().startswith("thumb:")), 0)


def main() -> int:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser()
    ap.add_argument("--wait", type=float, default=6.0)
    ap.add_argument("--only", default=None)
    a = ap.parse_args()
    out_dir = ROOT / "assets" / "thumbs"
    out_dir.mkdir(parents=True, exist_ok=True)
    with serve_app() as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        for t in discover():
            if a.only and a.only != t.slug:
                continue
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(90_000)
            page.goto(f"{url}/{t.slug}")
            page.wait_for_timeout(1500)
            wait_idle(page)
            start = page.locator(FRESH).get_by_role("button", name="▶ Start")
            if start.count():
                start.first.click()
                page.wait_for_timeout(int(a.wait * 1000))
                pause = page.locator(FRESH).get_by_role("button", name="⏸ Pause")
                if pause.count() and pause.first.is_enabled():
                    pause.first.click()
                page.wait_for_timeout(1500)
                wait_idle(page)
            charts = page.locator(FRESH).locator(".js-plotly-plot")
            try:  # heavy pages draw their charts a moment after the script finishes
                charts.first.wait_for(timeout=60_000)
                page.wait_for_timeout(1500)
            except Exception:
                pass
            # The chosen chart, else the first visible one (charts in collapsed sections cannot be captured).
            order = [chart_index(t.path)] + list(range(charts.count()))
            visible = [i for i in order if i < charts.count() and charts.nth(i).is_visible()]
            png = charts.nth(visible[0]).screenshot(timeout=30_000) if visible else page.screenshot()
            img = Image.open(io.BytesIO(png)).convert("RGB")
            img = img.resize((THUMB_W, int(img.height * THUMB_W / img.width)), Image.LANCZOS)
            img.save(out_dir / f"{t.path.stem}.png", optimize=True)
            print("thumb", t.path.stem, img.size)
            if t.slug == "cnn":  # the README screenshot: the CNN page mid-lesson
                page.set_viewport_size({"width": 1400, "height": 1500})
                page.wait_for_timeout(800)
                page.screenshot(path=str(ROOT / "assets" / "screenshot.png"))
            page.close()
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
