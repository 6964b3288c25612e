"""The live feed: a training run's main chart drawn by the browser itself, from one JSON feed per run.

Redrawn through Streamlit, every refresh of every student costs the server a script rerun (8-10 ms of its one
interpreter at 40 students on a 2-core machine: it topped out near 75 refreshes a second in all, under 2 each).
Here the browser asks for the chart: a small component (``chart``) polls ``/dlviz/feed/<token>`` and redraws
with plotly.js in place (``Plotly.react``: no empty frame, no remount), while the Streamlit area around it (the
status line, the metrics, the heavier views) reruns less often. A feed answers from the figure the run's viewers
share (``dlviz.ui.live.shared_view``: built once per snapshot for every session in one language and lecture
mode), already serialized and gzipped once, or with 204 when the browser has it already. The feed is used once
``dlviz.ui.live.FEED_WATCHERS`` sessions watch runs; fewer, the reruns carry the figure to the same component.

The routes exist when the server was started by ``streamlit run app.py`` (app.py defines an ``st.App``, which
``streamlit run`` discovers in the script); elsewhere (AppTest, a Streamlit without ``st.App``, ``DLVIZ_FEED=0``)
pages draw their charts through ``st.plotly_chart`` as before. plotly.js is the page's own when Streamlit has
loaded it (``window.Plotly``), else ``/dlviz/plotly.min.js`` from the plotly package: offline either way.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import Callable

FEED_ROUTE = "/dlviz/feed/"
PLOTLY_ROUTE = "/dlviz/plotly.min.js"
POLL_MS = 200  # the browser asks at most this often while the run trains (a new figure at most every MIN_BUILD_S)
MIN_BUILD_S = 0.18  # a running run's chart is rebuilt at most this often, whatever the number of viewers
BUILD_SHARE = 0.3  # of one core: what building the charts of every feed polled now may take together; with many
# different runs each is rebuilt less often (the interval grows), rather than starving the pages and the event loop
IDLE_FORGET_S = 120.0  # a feed nobody asked for in this long is forgotten (the page registers it again)
MAX_FEEDS = 5000

_installed = False
_FEEDS: dict[str, "_Feed"] = {}
_OWNERS: dict[tuple, str] = {}  # (session, chart key) -> token
_LOCK = threading.Lock()


@dataclasses.dataclass
class _Feed:
    owner: tuple
    runner: weakref.ref
    name: str
    build: Callable
    parts: tuple
    lang: str
    lecture: bool
    used: float


def routes() -> list:
    """The feed's routes for ``st.App(..., routes=routes())``; from then on pages draw their live charts with it."""
    global _installed
    _installed = True
    return _routes()


def _routes() -> list:
    from starlette.routing import Route

    return [Route(FEED_ROUTE + "{token}", _feed_endpoint, methods=["GET"]),
            Route(PLOTLY_ROUTE, _plotly_endpoint, methods=["GET"])]


def enabled() -> bool:
    """Whether pages draw their live charts from the feed: the routes are served and the component can mount."""
    return _installed and os.environ.get("DLVIZ_FEED", "1") != "0" and _component() is not None


# -- the registry ----------------------------------------------------------------------------------------------
def register(owner: tuple, runner, name: str, build: Callable, parts: tuple, lang: str, lecture: bool) -> str:
    """The token of the feed of ``runner``'s chart ``name`` for ``owner`` (session, chart key): the same token
    while nothing changes, so the page sends the browser the same data and its polling goes on undisturbed."""
    now = time.monotonic()
    with _LOCK:
        token = _OWNERS.get(owner)
        feed = _FEEDS.get(token) if token else None
        if feed is not None and feed.runner() is runner and (feed.name, feed.parts, feed.lang, feed.lecture) == (
                name, parts, lang, lecture):
            feed.build, feed.used = build, now
            return token
        if feed is not None:
            _FEEDS.pop(token, None)
        token = uuid.uuid4().hex
        _FEEDS[token] = _Feed(owner, weakref.ref(runner), name, build, parts, lang, lecture, now)
        _OWNERS[owner] = token
        if len(_FEEDS) > MAX_FEEDS or len(_FEEDS) % 64 == 0:
            _prune(now)
        return token


def _prune(now: float) -> None:
    for token, feed in list(_FEEDS.items()):
        if now - feed.used > IDLE_FORGET_S or feed.runner() is None:
            _FEEDS.pop(token, None)
            if _OWNERS.get(feed.owner) == token:
                _OWNERS.pop(feed.owner, None)
    while len(_FEEDS) > MAX_FEEDS:
        token = min(_FEEDS, key=lambda t: _FEEDS[t].used)
        _OWNERS.pop(_FEEDS.pop(token).owner, None)


# -- answering -------------------------------------------------------------------------------------------------
_BODIES: dict = {}  # (version, chart, language, lecture) -> (JSON, gzipped JSON): made once for every viewer
_BODIES_LOCK = threading.Lock()
_MAX_BODIES = 256


def answer(token: str, have: str | None, gzipped: bool = False) -> tuple[int, bytes | None]:
    """(HTTP status, body) for a browser that has the chart's version ``have``: 404 for a feed that is gone (the
    page's next rerun gives a new one), 204 when nothing changed, else 200 and ``{"head": {v, step, running,
    every}, "fig": figure}``, gzipped if asked; a body is made once per version for every viewer."""
    from ..i18n import language
    from ..runner import RUNNING
    from .live import stamped_view, view_key
    from .settings import lecture_as
    from .show import _themed_json

    feed = _FEEDS.get(token)
    runner = feed.runner() if feed is not None else None
    if runner is None:
        return 404, None
    feed.used = time.monotonic()
    shown = runner.frozen()
    chart = (id(runner._views), feed.name, feed.parts, feed.lang, feed.lecture)

    def build():
        t0 = time.perf_counter()
        try:
            return feed.build(shown)
        finally:
            _COSTS[chart] = (time.monotonic(), time.perf_counter() - t0)

    with language(feed.lang), lecture_as(feed.lecture):
        hit = runner._views.get(view_key(feed.name, feed.parts))
        untrained = hit is None or hit[0][0] <= 1  # still the step-0 chart: the first trained one goes out at once
        stamp, fig = stamped_view(shown, feed.name, build, feed.parts,
                                  rebuild_s=MIN_BUILD_S if untrained else rebuild_s())
    version = f"{id(runner._views):x}.{stamp[0]}.{stamp[1]}"
    if have == version:
        return 204, None
    cache_key = (version, feed.name, feed.parts, feed.lang, feed.lecture)
    with _BODIES_LOCK:
        bodies = _BODIES.get(cache_key)
    if bodies is None:
        head = {"v": version, "step": int(shown.latest.step) if shown.latest is not None else 0,
                "running": shown.status == RUNNING, "every": POLL_MS if stamp[0] <= 1 else poll_ms()}  # step 0:
        # the first trained chart is wanted at once
        plain = b'{"head":' + json.dumps(head).encode() + b',"fig":' + _themed_json(fig, feed.lecture).encode() + b"}"
        bodies = (plain, gzip.compress(plain, compresslevel=1))  # level 1: about 5x smaller, once per version
        with _BODIES_LOCK:
            _BODIES[cache_key] = bodies
            while len(_BODIES) > _MAX_BODIES:
                _BODIES.pop(next(iter(_BODIES)))
    return 200, bodies[1] if gzipped else bodies[0]


_COSTS: dict = {}  # chart (views, name, parts, language, lecture) -> (when last built, seconds it took)


def rebuild_s() -> float:
    """The least age of a running run's chart before the feed rebuilds it: MIN_BUILD_S, or longer when the
    charts built in the last 5 s would together take more than BUILD_SHARE of a core at that pace (ten
    different runs watched: each is rebuilt every ten times their cost over the share)."""
    now, total = time.monotonic(), 0.0
    for chart, (when, cost) in list(_COSTS.items()):
        if now - when > 5.0:
            _COSTS.pop(chart, None)
        else:
            total += cost
    return max(MIN_BUILD_S, total / BUILD_SHARE)


def poll_ms() -> int:
    """How often a browser asks: every POLL_MS, or half the rebuild interval when charts are rebuilt less often."""
    return max(POLL_MS, int(rebuild_s() * 500))


def _response(status: int, body: bytes | None, gzipped: bool):
    from starlette.responses import Response

    headers = {"Cache-Control": "no-store", "Vary": "Accept-Encoding"}
    if status != 200:
        return Response(status_code=status, headers=headers)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type="application/json", headers=headers)


def _feed_endpoint(request):
    """GET /dlviz/feed/<token>?v=<version the browser has>; never an exception to the browser."""
    gzipped = "gzip" in request.headers.get("accept-encoding", "")
    try:
        status, body = answer(request.path_params["token"], request.query_params.get("v"), gzipped)
    except Exception:  # noqa: BLE001  (a chart that cannot be drawn now: the browser keeps its drawing, retries)
        import logging

        logging.getLogger("dlviz.feed").exception("feed %s", request.path_params.get("token"))
        status, body = 503, None
    return _response(status, body, gzipped)


_PLOTLY: list = []  # (gzipped bytes, plain bytes), read once


def _plotly_endpoint(request):
    from starlette.responses import Response

    if not _PLOTLY:
        import plotly

        plain = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()
        _PLOTLY.append((gzip.compress(plain, compresslevel=6), plain))
    zipped, plain = _PLOTLY[0]
    headers = {"Cache-Control": "public, max-age=31536000, immutable", "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(zipped, media_type="text/javascript", headers=headers)
    return Response(plain, media_type="text/javascript", headers=headers)


# -- the component ---------------------------------------------------------------------------------------------
# The browser side. State lives on the component's element, so a rerun that sends the same data changes nothing
# and one with a new feed (Reset, a language) restarts the polling; a hidden tab asks once a second.
_JS = r"""
export default function (component) {
  const { data, parentElement: root } = component;
  let s = root.__dlviz;
  if (!s) {
    s = root.__dlviz = { div: document.createElement("div"), v: "", url: null, gen: 0 };
    s.div.className = "dlviz-live-chart";
    root.appendChild(s.div);
  }
  if (data.h) s.div.style.minHeight = data.h + "px";
  if (!s.ro && window.ResizeObserver) {  // the sidebar opened or closed: plotly's "responsive" follows the window only
    s.w = 0;
    s.ro = new ResizeObserver((seen) => {
      const w = Math.round(seen[0].contentRect.width);
      if (w && w !== s.w) {
        const first = !s.w; s.w = w;
        if (!first && s.div.data && window.__dlvizPlotly) window.__dlvizPlotly.then((P) => P.Plots.resize(s.div));
      }
    });
    s.ro.observe(s.div);
  }
  if (!window.__dlvizPlotly) {
    window.__dlvizPlotly = new Promise((ok, fail) => {
      if (window.Plotly) return ok(window.Plotly);
      const el = document.createElement("script");
      el.src = data.js; el.onload = () => ok(window.Plotly); el.onerror = fail;
      document.head.appendChild(el);
    });
  }
  const draw = (fig) => window.__dlvizPlotly.then((P) =>
    P.react(s.div, fig.data || [], fig.layout || {}, data.config || {}));
  const stop = () => { s.gen += 1; s.url = null; if (s.timer) clearTimeout(s.timer); s.timer = null; };
  if (data.fig) {
    stop();
    s.v = "";
    if (data.fig !== s.fig) {  // a rerun that resends the figure on screen changes nothing
      s.fig = data.fig;
      draw(JSON.parse(data.fig)).then(() => { root.dataset.step = data.step; });
    }
  } else if (data.feed && data.feed !== s.url) {
    stop();
    s.fig = null;
    s.url = data.feed;
    const gen = s.gen;
    const poll = async () => {
      if (gen !== s.gen) return;
      let wait = 200;
      try {
        const r = await fetch(s.url + "?v=" + encodeURIComponent(s.v), { cache: "no-store" });
        if (gen !== s.gen) return;
        if (r.status === 200) {
          const j = await r.json();
          if (gen !== s.gen) return;
          await draw(j.fig);
          s.v = j.head.v;
          root.dataset.step = j.head.step;
          wait = j.head.every || wait;
          if (!j.head.running) { s.url = null; return; }
        } else if (r.status === 404) { s.url = null; return; }
        else if (r.status !== 204) { wait = 1000; }
      } catch (e) { wait = 1000; }
      if (gen === s.gen) s.timer = setTimeout(poll, document.hidden ? Math.max(wait, 1000) : wait);
    };
    poll();
  }
}
"""
_CSS = ".dlviz-live-chart { width: 100%; }"
_made: list = []


def _component():
    """The chart component's mounting command, or None where this Streamlit has no ``st.components.v2``."""
    if not _made:
        try:
            import streamlit as st

            _made.append(st.components.v2.component("dlviz_live_chart", js=_JS, css=_CSS, isolate_styles=False))
        except Exception:  # noqa: BLE001  (an older Streamlit: charts go through st.plotly_chart)
            _made.append(None)
    return _made[0]


def plotly_url() -> str:
    import plotly

    return f"{_base()}{PLOTLY_ROUTE}?v={plotly.__version__}"


def feed_url(token: str) -> str:
    return f"{_base()}{FEED_ROUTE}{token}"


def _base() -> str:
    try:
        from streamlit import config

        base = (config.get_option("server.baseUrlPath") or "").strip("/")
    except Exception:  # noqa: BLE001
        base = ""
    return f"/{base}" if base else ""


def chart(key: str, *, feed: str | None = None, spec: str | None = None, height=None, step: int = 0) -> None:
    """The chart element of ``key``: drawn from the feed ``feed`` (a token) while the run trains, else from the
    figure's JSON ``spec``. One element either way, so starting or pausing never remounts it."""
    data = {"js": plotly_url(), "h": int(height or 0), "config": {"displaylogo": False, "responsive": True}}
    if feed is not None:  # the same data at every rerun while the feed lasts: the browser's polling goes on
        data["feed"] = feed_url(feed)
    else:
        data.update(fig=spec, step=step)
    _component()(key=key, data=data, height="content")
