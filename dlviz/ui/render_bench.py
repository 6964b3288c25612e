"""First-render time of every page, measured server side with streamlit's AppTest (used by the benchmark)."""

import time

import numpy as np


def first_render_seconds() -> dict:
    """Seconds for each page's first render (AppTest, server side), median of 3 runs after a warm-up."""
    from streamlit.testing.v1 import AppTest

    from .topics import ROOT, discover

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
