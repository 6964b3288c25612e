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


# Counts, inside the page, every distinct "step N ·" the live caption shows, with the time it first appeared.
# (Polling the caption from Playwright every 50 ms loaded the page's main thread and read about 35% low.)
_STEP_WATCH = """() => {
  window.__dlvizSteps = new Map();
  window.__dlvizChart = new Map();  // the live feed's chart (dlviz.ui.feed): the step it has drawn
  const seen = () => {
    const m = (document.querySelector('[data-testid="stMain"]') || document.body).textContent.match(/step (\\d+) ·/);
    if (m && !window.__dlvizSteps.has(m[1])) window.__dlvizSteps.set(m[1], performance.now());
    const c = document.querySelector('.dlviz-live-chart');
    const drawn = c && c.parentElement.dataset.step;
    if (drawn && !window.__dlvizChart.has(drawn)) window.__dlvizChart.set(drawn, performance.now());
  };
  new MutationObserver(seen).observe(document.body, {subtree: true, childList: true, characterData: true,
                                                     attributes: true, attributeFilter: ["data-step"]});
  seen();
}"""


def _bench_browser_refresh(device: torch.device) -> dict:
    """In headless Chromium: seconds from pressing Start to the first chart update, and refreshes per second
    of the live area while the CNN trains: distinct step captions per second, and distinct steps drawn by the
    live feed's chart (``chart_*``), counted in the page during the 7 s after Start, leaving out the first
    second after the first update."""
    from playwright.sync_api import sync_playwright

    from .browser import CHROMIUM_ARGS, FRESH, chromium_path, serve_app, wait_idle

    with serve_app() as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(90_000)
        page.goto(f"{url}/cnn?preset=modern&epochs=60")
        page.wait_for_timeout(1500)
        wait_idle(page)
        page.evaluate(_STEP_WATCH)
        clicked = page.evaluate("() => performance.now()")
        page.locator(FRESH).get_by_role("button", name="▶ Start").click()
        page.wait_for_timeout(7000)
        times = sorted(t for k, t in page.evaluate("() => [...window.__dlvizSteps.entries()]") if k != "0")
        chart = sorted(t for k, t in page.evaluate("() => [...window.__dlvizChart.entries()]") if k != "0")
        browser.close()
    if not times:
        return {"error": "the step caption never moved"}
    out = {"first_update_seconds": round((times[0] - clicked) / 1000, 2), "refreshes_per_second": _steady(times)}
    if chart:  # drawn by the browser from the live feed
        out.update(chart_first_update_seconds=round((chart[0] - clicked) / 1000, 2),
                   chart_refreshes_per_second=_steady(chart))
    return out


def _steady(times: list[float]) -> float:
    """Events per second after the first second (the steady rate), from performance.now() times in ms."""
    window = [t for t in times if t >= times[0] + 1000]
    return round((len(window) - 1) / max((window[-1] - window[0]) / 1000, 1e-9), 1) if len(window) > 1 else 0.0


def _bench_first_render(device: torch.device) -> dict:
    from .ui.render_bench import first_render_seconds  # AppTest needs streamlit: it lives in dlviz.ui

    return first_render_seconds()


def _bench_classroom(device: torch.device) -> dict:
    """A class on one server: N light websocket clients (no browser) open the CNN page and press Start, either
    all the same link (one shared run) or each its own seed (N runs); refreshes per second of the live area,
    first update, steps, exceptions and server memory per N. N from $DLVIZ_BENCH_CLIENTS (default 1,5,10,20,40).
    See dlviz.ui.loadtest. Trains on the server's own device choice, not ``device``."""
    from .ui.loadtest import classroom

    return {"scenarios": classroom()}


def _bench_reproducible_under_load(device: torch.device) -> dict:
    """A CNN and a DINO run trained by the server's scheduler beside 10 other runs (other demos and seeds) reach
    exactly the final metrics of the same config run alone by the CLI (``python -m dlviz run``, a separate
    process). As in the app, the runs train in a worker process (dlviz.procs). Timing figures are left out of the
    comparison."""
    import subprocess
    import sys

    from .demos import get_demo
    from . import procs
    from .runner import DONE, Runner
    from .scheduler import Scheduler

    checked = {"cnn": ("modern", {"epochs": "2"}), "dino": (None, {"steps": "60"})}
    others = [("gan", {}), ("rnn", {}), ("ssl", {}), ("transformer", {}), ("landscape", {}), ("gan-1d", {}),
              ("cnn", {"seed": "5"}), ("optimizers-network", {}), ("critical-points", {}), ("gan-digits", {})]
    sched = Scheduler(workers=1)
    from .config import with_overrides

    def start(name, preset, overrides):
        demo = get_demo(name)
        config = with_overrides(demo.preset_config(preset) if preset else demo.default_config(), overrides)
        r = Runner(demo, config, device)
        r.play()
        sched.start(r)
        return r

    was = procs.enabled()
    procs.use_processes(True)
    try:
        crowd = [start(n, None, o) for n, o in others]
        watched = {n: start(n, p, o) for n, (p, o) in checked.items()}
        remote = {}
        deadline = time.monotonic() + 900
        while len(remote) < len(watched) and time.monotonic() < deadline:
            remote.update({n: isinstance(r._gen, procs.RemoteGen) for n, r in watched.items() if r._gen is not None
                           or r.status == DONE})
            time.sleep(0.01)
        while any(r.status != DONE for r in watched.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        sched.cancel_all()
    finally:
        procs.use_processes(was)
    out: dict = {"other_runs": len(crowd), "in_worker_processes": all(remote.values()) and len(remote) == 2}
    timing = ("second", "steps_per", "_ms")
    for name, (preset, overrides) in checked.items():
        cmd = [sys.executable, "-m", "dlviz", "run", name, "--json"] + (["--preset", preset] if preset else [])
        for k, v in overrides.items():
            cmd += ["--set", f"{k}={v}"]
        lone = json.loads(subprocess.run(cmd, capture_output=True, text=True, timeout=900).stdout.splitlines()[-1])
        mine = watched[name].summary()
        keys = [k for k, v in mine.items() if isinstance(v, float) and not any(t in k for t in timing)]
        diffs = [k for k in keys if lone.get(k) != mine[k]]
        out[f"{name}_metrics_compared"] = len(keys)
        out[f"{name}_identical"] = not diffs and mine.get("steps") == lone.get("steps")
        if diffs:
            out[f"{name}_differs"] = {k: (mine[k], lone.get(k)) for k in diffs[:5]}
    return out


CORE_BENCHMARKS = {"t-SNE": _bench_tsne, "first render": _bench_first_render,
                   "browser refresh": _bench_browser_refresh, "classroom": _bench_classroom,
                   "classroom reproducibility": _bench_reproducible_under_load}


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
