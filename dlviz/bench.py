"""``python -m dlviz bench``: measured speed on this machine, for every demo that registers a benchmark.

Prints one line per figure (seconds, rates, ratios) and a final JSON object. Targets live here, not in tests.
"""

from __future__ import annotations

import json
import platform
import time

import numpy as np
import torch


def _bench_tsne(device: torch.device) -> dict:
    """t-SNE of 360 84-d features (the CNN page's test set), scikit-learn Barnes-Hut, median of 3."""
    from .analysis.embedding import pca, tsne
    from .data.digits import load_digits_split
    from .demos import get_demo
    from .runner import Runner

    r = Runner(get_demo("cnn"), get_demo("cnn").default_config(), "cpu")
    r.run_to_end(max_seconds=5)
    feats = r.latest.arrays["features"]
    times = []
    for seed in range(3):
        t = time.perf_counter()
        tsne(feats, seed=seed)
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    pca(load_digits_split(8).x_train.flatten(1).numpy())
    return {"tsne_360_seconds": round(float(np.median(times)), 3),
            "pca_1437_seconds": round(time.perf_counter() - t, 4)}


def _bench_browser_refresh(device: torch.device) -> dict:
    """In headless Chromium: seconds from pressing Start to the first chart update, and refreshes per second
    of the live area while the CNN trains (distinct step captions seen per second, sampled every 50 ms)."""
    import re

    from playwright.sync_api import sync_playwright

    from .browser import CHROMIUM_ARGS, FRESH, chromium_path, serve_app, wait_idle

    with serve_app() as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(90_000)
        page.goto(f"{url}/cnn?preset=modern&epochs=60")
        page.wait_for_timeout(1500)
        wait_idle(page)
        caption = page.locator(FRESH).get_by_text(re.compile(r"step \d+ ·")).first

        def step() -> int:
            try:
                return int(re.search(r"step (\d+)", caption.text_content(timeout=2000)).group(1))
            except Exception:  # mid-redraw
                return -1

        t0 = time.perf_counter()
        page.locator(FRESH).get_by_role("button", name="▶ Start").click()
        while step() <= 0 and time.perf_counter() - t0 < 30:
            page.wait_for_timeout(20)
        first_update = time.perf_counter() - t0
        seen, t1 = {step()}, time.perf_counter()
        while time.perf_counter() - t1 < 5:
            page.wait_for_timeout(50)
            seen.add(step())
        rate = (len(seen - {-1}) - 1) / (time.perf_counter() - t1)
        browser.close()
    return {"first_update_seconds": round(first_update, 2), "refreshes_per_second": round(rate, 1)}


def _bench_first_render(device: torch.device) -> dict:
    from .ui.render_bench import first_render_seconds  # AppTest needs streamlit: it lives in dlviz.ui

    return first_render_seconds()


CORE_BENCHMARKS = {"t-SNE": _bench_tsne, "first render": _bench_first_render,
                   "browser refresh": _bench_browser_refresh}


def run_benchmarks(device_name: str | None = None, only: str | None = None) -> int:
    from .demos import all_demos
    from .device import describe_device, pick_device

    device = pick_device(device_name)
    print(f"# dlviz bench on {platform.node()} · {describe_device(device)} · torch {torch.__version__}")
    entries = dict(CORE_BENCHMARKS)
    for demo in all_demos().values():
        entries.update(demo.benchmarks)
    results: dict = {"device": describe_device(device)}
    for name, fn in entries.items():
        if only and only.lower() not in name.lower():
            continue
        t = time.perf_counter()
        try:
            figures = fn(device)
        except Exception as exc:  # one broken benchmark must not hide the others
            figures = {"error": f"{type(exc).__name__}: {exc}"}
        figures["bench_wall_seconds"] = round(time.perf_counter() - t, 2)
        print(f"{name:28s} " + "  ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
        results[name] = figures
    print(json.dumps(results))
    return 0
