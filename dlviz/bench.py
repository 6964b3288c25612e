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


def _bench_first_render(device: torch.device) -> dict:
    """Seconds for each page's first render (AppTest, server side), median of 3 runs after a warm-up."""
    from streamlit.testing.v1 import AppTest

    from .ui.topics import ROOT, discover

    out = {}
    for topic in discover():
        times = []
        for i in range(4):
            at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
            at.run()
            at.switch_page(str(topic.path))
            t = time.perf_counter()
            at.run()
            if i:  # the first run imports modules and loads data
                times.append(time.perf_counter() - t)
        out[f"first_render_{topic.slug}_seconds"] = round(float(np.median(times)), 3)
    return out


CORE_BENCHMARKS = {"t-SNE": _bench_tsne, "first render": _bench_first_render}


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
