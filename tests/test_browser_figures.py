"""Figures as a projector shows them, in real Chromium.

1. Themed figures drawn by plotly.js (the copy the plotly package ships; no app server) at the widths a chart gets at
   1280x720: no legend on an axis title, tick labels, a subplot title, the plot or a colour bar; no title on tick
   labels; tick labels of 14 px or more.
2. The GAN page while it trains: its first chart shows a drawn plot in every sample (it was empty in 6 of 150 samples
   taken every 50 ms: each redraw mounted a new chart, empty until plotly drew it; dlviz.ui.show stacks them).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import plotly
import pytest

from dlviz.browser import live_button, open_settled, serve_app
from dlviz.figures import attention, common, features, gan, optimizers, surfaces
from dlviz.figures.common import apply_theme

pytestmark = pytest.mark.browser
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
WIDTHS = (420, 540, 1072)  # a 2:3 column, half the main area, all of it (1280x720, lecture mode)

_DRAW = """async ([spec, width]) => {
  const div = document.createElement('div'); document.body.innerHTML = ''; document.body.appendChild(div);
  await Plotly.newPlot(div, spec.data, Object.assign({}, spec.layout, {width: width}), {staticPlot: true});
  const box = (e) => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const all = (sel) => [...div.querySelectorAll(sel)].filter(e => e.getBoundingClientRect().width > 0).map(box);
  const legend = div.querySelector('.legend .bg');
  return {legend: legend ? box(legend) : null, axisTitles: all('.g-xtitle text, .g-ytitle text, [class^="g-x"][class$="title"] text, [class^="g-y"][class$="title"] text'),
          title: all('.g-gtitle text'), notes: all('.annotation-text-g'), ticks: all('.xtick text, .ytick text'),
          plots: all('.bglayer .bg'), colorbars: all('.colorbar'),
          tickSizes: [...div.querySelectorAll('.xtick text, .ytick text, .colorbar .cbaxis text')].map(
              t => parseFloat(getComputedStyle(t).fontSize))};
}"""


def _history(keys, n=30):
    return [{"step": 10 * i, **{k: float(np.exp(-i / 10) + 0.1 * j) for j, k in enumerate(keys)}} for i in range(n)]


def _figures() -> dict:
    rng = np.random.default_rng(0)
    g = np.linspace(-3, 3, 40)
    X, Y = np.meshgrid(g, g)
    plane = {"bounds": (-3, 3, -3, 3), "grid_x": g, "grid_y": g, "d_grid": 1 / (1 + np.exp(-X)), "mode_std": 0.05,
             "modes": [(2 * np.cos(t), 2 * np.sin(t)) for t in np.linspace(0, 2 * np.pi, 9)[:-1]],
             "manifold": rng.normal(size=(60, 2)), "real": rng.normal(size=(100, 2)), "fake": rng.normal(size=(100, 2)),
             "arrow_vec": rng.normal(size=(30, 2)), "arrow_from": rng.normal(size=(30, 2))}
    racers = {n: np.cumsum(rng.normal(size=(20, 2)) * 0.3, 0) - [5, 2] for n in optimizers.OPTIMIZERS}
    losses = {n: np.exp(-np.arange(20) / 5) for n in racers}
    crit = [{"x": 0.0, "y": 0.0, "kind": "saddle", "f": 1.0, "eigenvalues": (-2.0, 2.0)},
            {"x": 1.0, "y": 1.0, "kind": "minimum", "f": 0.0, "eigenvalues": (1.0, 2.0)}]
    labels = [f"{i}·{i}" for i in range(8)]
    weights = rng.uniform(size=(8, 8))
    emb = rng.normal(size=(200, 2))
    return {
        "metric_curves": common.metric_curves(_history(["train_loss", "test_loss", "train_acc", "test_acc"]),
                                              [("loss (cross-entropy)", ["train_loss", "test_loss"]),
                                               ("accuracy", ["train_acc", "test_acc"])]),
        "metric_curves_3": common.metric_curves(_history(["train_loss", "token_acc", "seq_acc", "diag_mass"]),
                                                [("training loss (cross-entropy)", ["train_loss"]),
                                                 ("held-out accuracy and alignment", ["token_acc", "seq_acc", "diag_mass"])]),
        "gan_plane": gan.gan_plane_figure(plane, True, title="Step 500"),
        "race": optimizers.race_figure(X, Y, 0.1 * X**2 + 2 * Y**2, racers, 19, [(0.0, 0.0)], None,
                                       "Ill-conditioned quadratic 0.1x² + 2y²: step 20, start (-5, -2)"),
        "optimizer_curves": optimizers.curves_figure(losses, losses, 19, 0.0),
        "rate_map": optimizers.rate_map_figure(np.linspace(0.01, 1, 20), np.linspace(0, 0.99, 20),
                                               rng.uniform(size=(20, 20)),
                                               {"gd_lr": 0.2, "gd_rate": 0.9, "momentum_lr": 0.5,
                                                "momentum_beta": 0.6, "momentum_rate": 0.5}),
        "contour_paths": surfaces.contour_paths_figure(X, Y, (1 - X * Y) ** 2, crit,
                                                       {"a hair off the saddle": rng.normal(size=(30, 2)),
                                                        "escape step along the negative eigenvector": rng.normal(size=(30, 2))},
                                                       np.zeros(2), [(0.7, 0.7), (0.7, -0.7)], [-2.0, 2.0]),
        "attention_map": attention.attention_map(weights / weights.sum(1, keepdims=True), ["BOS"] + labels[1:], labels,
                                                 "cross-attention (decoder → encoder), layer 1, head 1 (token·position)",
                                                 np.arange(8)[::-1]),
        "embedding": features.mark_selection(common.embedding_scatter(emb, rng.integers(0, 10, 200), "t-SNE",
                                                                      class_names=[str(i) for i in range(10)]),
                                             emb, 0, [1, 2, 3]),
        "explained_variance": features.explained_variance_figure(np.linspace(0.3, 0.01, 10)),
    }


def _overlap(a, b, tol=1.0) -> bool:
    return min(a[2], b[2]) - max(a[0], b[0]) > tol and min(a[3], b[3]) - max(a[1], b[1]) > tol


def test_themed_figures_keep_legends_and_titles_clear_of_everything_else(page):
    page.set_content("<html><body style='margin:0'></body></html>")
    page.add_script_tag(path=str(PLOTLY_JS))
    problems = []
    for name, fig in _figures().items():
        spec = json.loads(apply_theme(fig, lecture=True).to_json())
        for width in WIDTHS:
            m = page.evaluate(_DRAW, [spec, width])
            if m["legend"]:
                for kind in ("axisTitles", "title", "notes", "ticks", "plots", "colorbars"):
                    problems += [(name, width, "legend on", kind) for b in m[kind] if _overlap(m["legend"], b)]
            for t in m["title"]:
                problems += [(name, width, "title on", kind) for kind in ("notes", "ticks") for b in m[kind]
                             if _overlap(t, b)]
            problems += [(name, width, "tick label", size) for size in m["tickSizes"] if size < 14]
    assert problems == []


GAN_PROBE = """() => {
  // A chart element, or the live feed's chart component (dlviz.ui.feed), whichever comes first on the page.
  const first = document.querySelector(
    '[data-testid="stMain"] [data-testid="stPlotlyChart"], [data-testid="stMain"] .dlviz-live-chart');
  if (!first) return 'no chart';
  const stack = first.closest('[class*="st-key-dlviz_buf_"]');
  const charts = stack ? [...stack.querySelectorAll('[data-testid="stPlotlyChart"]')] : [first];
  const z = (c) => parseInt(getComputedStyle(c.closest('[data-testid="stElementContainer"]') || c).zIndex) || 0;
  // Topmost first; a slot that paints nothing (empty, hidden, no size) lets the one below show.
  for (const c of charts.map((c, i) => [c, z(c), i]).sort((a, b) => (b[1] - a[1]) || (b[2] - a[2])).map(x => x[0])) {
    const plot = c.querySelector('.js-plotly-plot') || c;
    let hidden = false, opacity = 1;
    for (let e = plot; e; e = e.parentElement) {
      const cs = getComputedStyle(e);
      hidden = hidden || cs.visibility === 'hidden' || cs.display === 'none';
      opacity *= parseFloat(cs.opacity);
    }
    const r = plot.getBoundingClientRect();
    if (!plot.querySelector('.main-svg') || hidden || r.width < 10 || r.height < 10) continue;
    if (!plot.querySelectorAll('.trace, .heatmaplayer image, .hm').length) return 'no traces';
    return opacity < 0.9 ? 'faded' : '';
  }
  return 'nothing drawn';
}"""


FITS = """() => {
  const charts = Array.from(document.querySelectorAll('.dlviz-live-chart'));
  return charts.length > 0 && charts.every((d) => {
    const svg = d.querySelector('.main-svg');
    return svg && svg.getBoundingClientRect().width <= d.clientWidth + 1;
  });
}"""


@pytest.mark.parametrize("watchers", ["6", "1"], ids=["reruns carry the figure", "drawn from the feed"])
def test_the_gan_page_s_first_chart_is_never_empty_while_training(page, watchers):
    with serve_app(env={"DLVIZ_FEED_WATCHERS": watchers}, timeout=120) as url:
        page.set_viewport_size({"width": 1280, "height": 720})
        open_settled(page, f"{url}/gan?lecture=1&steps=3000")
        live_button(page, "play").click()
        page.wait_for_timeout(1500)  # the first redraws of the run
        samples, deadline = [], time.monotonic() + 12  # 60 samples in about 5 s on an idle machine
        while len(samples) < 60 and time.monotonic() < deadline:
            samples.append(page.evaluate(GAN_PROBE))
            page.wait_for_timeout(50)
        assert len(samples) >= 20
        assert [s for s in samples if s] == [], f"{len([s for s in samples if s])} of {len(samples)} samples"
        assert page.locator('[data-testid="stException"]').count() == 0
        # The sidebar opened mid-run (to switch the language, say): the live charts follow their narrower column
        # (plotly's own "responsive" follows the window only: the 2-D chart's colour bar covered the metrics).
        page.locator('[data-testid="stExpandSidebarButton"]').first.click()
        page.wait_for_function(FITS, timeout=10_000)
