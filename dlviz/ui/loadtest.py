"""A classroom in one process: N light clients speak Streamlit's own websocket protocol to one app server.

``python -m dlviz bench --only classroom`` serves a fresh app per scenario and number of clients, opens the CNN
page in every client, presses Start in each within about a second, then counts the live area's refreshes for a
while. No browser: each client is an asyncio task that does what Streamlit's frontend does on the wire
(checked against streamlit 1.67's ``app_session.py``, ``fragment.py``, ``script_requests.py`` and its bundled
frontend, ``static/js/index.*.js``):

* connect to ``ws://HOST/_stcore/stream`` with the subprotocol ``streamlit`` (the frontend's second and third
  entries, an XSRF token and a session id to resume, are optional); permessage-deflate as a browser offers it;
* first run of a link: ``BackMsg.rerun_script`` with the link's ``query_string`` and ``page_name`` = the URL path
  ("cnn"), ``page_script_hash`` empty (the frontend knows no pages yet); every later rerun sends the current page's
  hash (``new_session.page_script_hash`` / ``navigation.page_script_hash``) and the query string the server last
  set (``page_info_changed``), with ``page_name`` empty;
* a button click: a rerun whose ``widget_states`` holds ``WidgetState(id, trigger_value=True)``; other widgets are
  not resent (the server keeps a widget's last value when a rerun does not mention it; the frontend resends all);
* fragment timers: ``auto_rerun`` (interval, fragment_id) starts a ``setInterval`` that sends a rerun with that
  ``fragment_id`` and ``is_auto_rerun=True``; an ``auto_rerun`` for a fragment that already has a timer of the same
  interval keeps that timer; ``stop_auto_rerun`` clears the listed ones; a ``new_session`` of a full run (its
  ``metadata.run.fragment_ids`` empty) clears them all. The server coalesces queued fragment reruns;
* the message cache: ``new_element`` deltas of 10 kB or more are marked ``metadata.cacheable``; the client keeps
  them and lists their hashes in ``cached_message_hashes``; the server then sends ``ref_hash`` stubs, resolved
  from the cache. Entries expire as in the frontend (``maxCachedMessageAge`` finished runs; a fragment run ages
  only its own fragment's entries).

Per client: seconds from the Start click to the first live caption with ``step N`` > 0, refreshes of the live
area per second (distinct ``step N`` captions, like the Chromium benchmark; completed runs of the live fragment
are reported beside them), the last step seen, exceptions (``delta.new_element.exception``, error alerts, script
compile errors, a dropped connection, a timeout). Per server: RSS from ``/proc/<pid>/status``, the tracebacks in
its log, and "N runs training on this server" from the sidebar.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import random
import re
import resource
import statistics
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

CLIENTS = (1, 5, 10, 20, 40)
SCENARIOS = {"same preset": "same", "different runs": "different"}
STEP_RE = re.compile(r"step (\d+) ·")
SHARED_RE = re.compile(r"shared: (\d+) sessions")
RUNS_RE = re.compile(r"(\d+) runs? training on this server")
START_LABEL = "▶ Start"
ALERT_ERROR = 1  # streamlit.proto.Alert_pb2.Alert.Format.ERROR
LIVE_MARK = " of compute on "  # only the live area's status caption has this
FEED_COMPONENT = "dlviz_live_chart"  # dlviz.ui.feed's chart: polls its feed while the run trains
DEFAULT_MAX_AGE = 2  # global.maxCachedMessageAge until new_session.config says otherwise


def _proto():
    import streamlit  # noqa: F401  (streamlit.proto.* imports streamlit first, or it fails on a circular import)
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    return BackMsg, ForwardMsg, WidgetState


@dataclass
class ClientStats:
    index: int
    link: str
    loaded_s: float | None = None  # connect to a settled page with its Start button
    clicked_at: float | None = None
    first_update_s: float | None = None
    step_times: list = field(default_factory=list)  # (monotonic time, step) of each new "step N" caption
    feed_times: list = field(default_factory=list)  # (monotonic time, step) of each new chart from the live feed
    feed_requests: int = 0
    feed_at: float | None = None  # monotonic time the chart's feed first arrived after Start
    live_runs: list = field(default_factory=list)  # monotonic times of completed runs of the live fragment
    steps: int = 0
    shared_max: int = 0
    runs_training: int | None = None  # from the sidebar caption, latest full run
    finished_seen: bool = False  # the caption read "finished": the run ended inside the window
    finished_at: float | None = None  # when the run was first seen stopped (refreshes are counted until then)
    exceptions: list = field(default_factory=list)
    messages: int = 0
    bytes_in: int = 0
    feed_bytes: int = 0  # of bytes_in: the chart feeds' bodies, as sent (gzipped)
    ref_hits: int = 0
    ref_misses: int = 0
    reruns_sent: int = 0
    auto_reruns_sent: int = 0
    full_runs: int = 0
    early_for_rerun: int = 0  # runs the server cut short for a queued rerun (FINISHED_EARLY_FOR_RERUN)


class LightClient:
    """One browser tab, on the wire only."""

    def __init__(self, ws_url: str, link: str, index: int):
        self.BackMsg, self.ForwardMsg, self.WidgetState = _proto()
        parts = urllib.parse.urlsplit(link)
        self.ws_url, self.page_name, self.query = ws_url, parts.path.strip("/"), parts.query
        self.stats = ClientStats(index, link)
        self.ws = None
        self.page_hash = ""  # the frontend's currentPageScriptHash
        self.page_hashes: dict[str, str] = {}  # url_pathname -> page_script_hash, from navigation
        self.max_age = DEFAULT_MAX_AGE
        self.cache: dict[str, list] = {}  # hash -> [ForwardMsg, run count when last used, fragment_id]
        self.run_count = 0
        self.timers: dict[str, tuple[float, asyncio.Task]] = {}  # fragment_id -> (interval, task)
        self.live_fragment: str | None = None
        self.start_id: str | None = None
        self.run_fragments: tuple = ()  # fragment ids of the run in progress (empty: a full run)
        self.run_start_id: str | None = None
        self.settled = asyncio.Event()  # a full run finished successfully with the Start button on the page
        self.closed = asyncio.Event()
        self.last_full_finish = 0.0
        self.running = False
        self.base_url = ws_url.replace("ws://", "http://").rsplit("/_stcore/", 1)[0]
        self.cookie = ""  # the Cookie header line a browser would send with its feed requests
        self.feeds: dict[str, tuple[str, asyncio.Task]] = {}  # chart element id -> (its feed, the task polling it)

    # -- sending -----------------------------------------------------------------------------------------
    async def _rerun(self, *, trigger: str | None = None, fragment_id: str | None = None, auto: bool = False,
                     first: bool = False) -> None:
        msg = self.BackMsg()
        cs = msg.rerun_script
        cs.query_string = self.query
        if first or not self.page_hash:
            cs.page_name, cs.page_script_hash = self.page_name, ""
        else:
            cs.page_script_hash = self.page_hash
        cs.widget_states.SetInParent()
        if trigger:
            cs.widget_states.widgets.append(self.WidgetState(id=trigger, trigger_value=True))
        if fragment_id:
            cs.fragment_id = fragment_id
        cs.is_auto_rerun = auto
        cs.cached_message_hashes.extend(self.cache.keys())
        cs.context_info.timezone = "UTC"
        cs.context_info.timezone_offset = 0
        cs.context_info.locale = "en-US"
        cs.context_info.url = f"http://browser/{self.page_name}"
        cs.context_info.is_embedded = False
        cs.context_info.color_scheme = "light"
        self.stats.reruns_sent += 1
        self.stats.auto_reruns_sent += auto
        await self.ws.send(msg.SerializeToString())

    async def _timer(self, fragment_id: str, interval: float) -> None:
        """setInterval: a rerun of the fragment every ``interval`` s, whatever the server is doing."""
        nxt = time.monotonic() + interval
        with contextlib.suppress(Exception):
            while not self.closed.is_set():
                await asyncio.sleep(max(0.0, nxt - time.monotonic()))
                nxt = max(nxt + interval, time.monotonic())  # a late timer fires once, then keeps its period
                await self._rerun(fragment_id=fragment_id, auto=True)

    def _clear_timers(self, ids=None) -> None:
        for fid in list(self.timers) if ids is None else list(ids):
            entry = self.timers.pop(fid, None)
            if entry:
                entry[1].cancel()

    # -- receiving ---------------------------------------------------------------------------------------
    def _resolve(self, msg):
        """The frontend's ForwardMsgCache: keep cacheable messages, replace ref_hash stubs by their message."""
        if msg.WhichOneof("type") == "ref_hash":
            entry = self.cache.get(msg.ref_hash)
            if entry is None:  # the frontend would fetch it over HTTP; nothing here asks for it
                self.stats.ref_misses += 1
                return None
            self.stats.ref_hits += 1
            entry[1] = self.run_count
            full = self.ForwardMsg()
            full.CopyFrom(entry[0])
            full.metadata.CopyFrom(msg.metadata)
            return full
        if msg.metadata.cacheable and msg.hash:
            if msg.hash in self.cache:
                self.cache[msg.hash][1] = self.run_count
            else:
                fid = msg.delta.fragment_id if msg.WhichOneof("type") == "delta" else ""
                self.cache[msg.hash] = [msg, self.run_count, fid]
        return msg

    def _age_cache(self, fragment_ids) -> None:
        self.run_count += 1
        for h, (_, used, fid) in list(self.cache.items()):
            if fragment_ids and (not fid or fid not in fragment_ids):
                continue
            if self.run_count - used > self.max_age:
                del self.cache[h]

    def _on_delta(self, msg, now: float) -> None:
        delta = msg.delta
        if delta.WhichOneof("type") != "new_element":
            return
        el = delta.new_element
        kind = el.WhichOneof("type")
        if kind == "button":
            if el.button.label == START_LABEL:
                self.run_start_id = el.button.id
        elif kind == "markdown":
            body = el.markdown.body
            if LIVE_MARK in body:
                m = STEP_RE.search(body)
                if m:
                    if delta.fragment_id:
                        self.live_fragment = delta.fragment_id
                    step = int(m.group(1))
                    if step != self.stats.steps or not self.stats.step_times:
                        self.stats.step_times.append((now, step))
                    self.stats.steps = step
                    self._first_update(now, step)
                if body.startswith("**finished**"):
                    self.stats.finished_seen = True
                    self.stats.finished_at = self.stats.finished_at or now
                s = SHARED_RE.search(body)
                if s:
                    self.stats.shared_max = max(self.stats.shared_max, int(s.group(1)))
            r = RUNS_RE.search(body)
            if r:
                self.stats.runs_training = int(r.group(1))
        elif kind == "bidi_component" and el.bidi_component.component_name == FEED_COMPONENT:
            self._on_chart(el.bidi_component.id, el.bidi_component.json)
        elif kind == "exception":
            e = el.exception
            self.stats.exceptions.append(f"{e.type}: {e.message}"[:300])
        elif kind == "alert" and el.alert.format == ALERT_ERROR:
            self.stats.exceptions.append(f"error alert: {el.alert.body}"[:300])

    # -- the live feed (dlviz.ui.feed): what the chart component does in a browser -----------------------------
    def _on_chart(self, element_id: str, raw_json: str) -> None:
        """A chart element arrived: it polls its feed (each chart of a page its own, as in the browser), or, drawn
        from a figure (paused, finished), stops polling."""
        data = json.loads(raw_json or "{}")
        url = data.get("feed")
        if url == self.feeds.get(element_id, (None,))[0]:
            return  # the same feed: the component goes on polling undisturbed
        self._stop_feed(element_id)
        if url:
            if self.stats.feed_at is None and self.stats.clicked_at is not None:
                self.stats.feed_at = time.monotonic()
            task = asyncio.get_running_loop().create_task(self._poll(element_id, url, data.get("every", 200) / 1000))
            self.feeds[element_id] = (url, task)

    def _first_update(self, now: float, step: int) -> None:
        """The page showed ``step`` (caption or chart): the first step past 0 after Start is the first update."""
        if step > 0 and self.stats.first_update_s is None and self.stats.clicked_at is not None:
            self.stats.first_update_s = now - self.stats.clicked_at

    def _stop_feed(self, element_id: str | None = None) -> None:
        for eid in list(self.feeds) if element_id is None else [element_id]:
            entry = self.feeds.pop(eid, None)
            if entry is not None:
                entry[1].cancel()

    async def _poll(self, element_id: str, url: str, every_s: float) -> None:
        """GET the feed, wait ``every_s`` after each answer, until it says the run stopped or is gone: one
        keep-alive connection, gzip accepted, as Chromium asks."""
        parts = urllib.parse.urlsplit(self.base_url)
        reader = writer = None
        have = ""
        try:
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            while self.feeds.get(element_id, (None,))[0] == url and not self.closed.is_set():
                writer.write((f"GET {url}?v={urllib.parse.quote(have)} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                              f"Accept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n{self.cookie}\r\n"
                              ).encode())
                await writer.drain()
                self.stats.feed_requests += 1
                status = int((await reader.readline()).split()[1])
                headers = {}
                while True:
                    line = (await reader.readline()).decode("latin-1").strip()
                    if not line:
                        break
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.stats.bytes_in += len(body)
                self.stats.feed_bytes += len(body)
                if status == 200:
                    if headers.get("content-encoding") == "gzip":
                        body = gzip.decompress(body)
                    head = json.loads(body)["head"]
                    now = time.monotonic()
                    have, step = head["v"], int(head["step"])
                    if not self.stats.feed_times or step > self.stats.feed_times[-1][1]:
                        self.stats.feed_times.append((now, step))  # a new step on the page (any of its charts)
                    self.stats.steps = max(self.stats.steps, step)
                    self._first_update(now, step)
                    every_s = head.get("every", every_s * 1000) / 1000
                    if not head.get("running"):
                        self.stats.finished_at = self.stats.finished_at or now
                        break
                elif status == 404:
                    break
                elif status != 204:
                    every_s = 1.0
                await asyncio.sleep(every_s)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # noqa: BLE001
            if not self.closed.is_set():
                self.stats.exceptions.append(f"feed: {type(exc).__name__}: {exc}"[:300])
        finally:
            if writer is not None:
                writer.close()

    def _handle(self, raw: bytes) -> None:
        now = time.monotonic()
        msg = self.ForwardMsg()
        msg.ParseFromString(raw)
        self.stats.messages += 1
        self.stats.bytes_in += len(raw)
        msg = self._resolve(msg)
        if msg is None:
            return
        kind = msg.WhichOneof("type")
        if kind == "delta":
            self._on_delta(msg, now)
        elif kind == "new_session":
            ns = msg.new_session
            self.run_fragments = tuple(msg.metadata.run.fragment_ids)
            if ns.config.max_cached_message_age:
                self.max_age = ns.config.max_cached_message_age
            if not self.run_fragments:  # a full run: the frontend clears every fragment timer
                self._clear_timers()
                self.run_start_id = None
                self.stats.full_runs += 1
            if ns.page_script_hash:
                self.page_hash = ns.page_script_hash
            for p in ns.app_pages:
                self.page_hashes[p.url_pathname] = p.page_script_hash
            self.running = True
        elif kind == "navigation":
            nav = msg.navigation
            for p in nav.app_pages:
                self.page_hashes[p.url_pathname] = p.page_script_hash
            if nav.page_script_hash:
                self.page_hash = nav.page_script_hash
        elif kind == "page_info_changed":
            self.query = msg.page_info_changed.query_string
        elif kind == "auto_rerun":
            ar = msg.auto_rerun
            if ar.fragment_id:
                old = self.timers.get(ar.fragment_id)
                if old is None or old[0] != ar.interval:
                    self._clear_timers([ar.fragment_id])
                    task = asyncio.get_running_loop().create_task(self._timer(ar.fragment_id, ar.interval))
                    self.timers[ar.fragment_id] = (ar.interval, task)
        elif kind == "stop_auto_rerun":
            self._clear_timers(msg.stop_auto_rerun.fragment_ids)
        elif kind == "script_finished":
            status = msg.script_finished
            fids = tuple(msg.metadata.run.fragment_ids)
            if status != self.ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                self._age_cache(fids)
            else:
                self.stats.early_for_rerun += 1
            if status == self.ForwardMsg.FINISHED_SUCCESSFULLY and not fids:
                self.start_id = self.run_start_id
                self.last_full_finish = now
                if self.start_id and self.page_hash and self.page_hash == self.page_hashes.get(self.page_name):
                    self.settled.set()
            elif status == self.ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY:
                if self.live_fragment and self.live_fragment in fids:
                    self.stats.live_runs.append(now)
            elif status == self.ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
                self.stats.exceptions.append("script compile error")
        elif kind == "session_status_changed":
            self.running = msg.session_status_changed.script_is_running
            if self.running:
                self.settled.clear()
        elif kind == "session_event" and msg.session_event.WhichOneof("type") == "script_compilation_exception":
            e = msg.session_event.script_compilation_exception
            self.stats.exceptions.append(f"compile: {e.type}: {e.message}"[:300])

    async def _reader(self) -> None:
        try:
            async for raw in self.ws:
                if isinstance(raw, bytes):
                    self._handle(raw)
        except Exception as exc:  # noqa: BLE001  (a dropped connection counts; the run goes on for the others)
            if not self.closed.is_set():
                self.stats.exceptions.append(f"connection: {type(exc).__name__}: {exc}"[:300])
        finally:
            if not self.closed.is_set():
                self.stats.exceptions.append("connection closed by the server")
            self.closed.set()
            self._clear_timers()

    # -- the session -------------------------------------------------------------------------------------
    async def open(self, timeout: float) -> None:
        """Connect, run the link, wait until the page settled (a cold link runs page -> app.py -> page)."""
        from websockets.asyncio.client import connect

        t0 = time.monotonic()
        self.ws = await asyncio.wait_for(
            connect(self.ws_url, subprotocols=["streamlit"], max_size=None, open_timeout=timeout,
                    ping_interval=None, close_timeout=2), timeout)
        with contextlib.suppress(Exception):  # a sticky proxy's cookie (tools/classroom.py): sent with every request
            cookies = [c.split(";", 1)[0].strip() for c in self.ws.response.headers.get_all("Set-Cookie")]
            self.cookie = f"Cookie: {'; '.join(cookies)}\r\n" if cookies else ""
        self._reader_task = asyncio.get_running_loop().create_task(self._reader())
        await self._rerun(first=True)
        deadline = t0 + timeout
        while True:
            while not self.settled.is_set():
                if self.closed.is_set():
                    raise ConnectionError("the connection closed before the page settled")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"page did not settle in {timeout:.0f} s")
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.4)  # a second rerun may follow the first (a cold link): wait for quiet
            if self.settled.is_set() and not self.running:
                break
        self.stats.loaded_s = time.monotonic() - t0

    async def click_start(self) -> None:
        if not self.start_id:
            raise RuntimeError("no ▶ Start button on the page")
        self.stats.clicked_at = time.monotonic()
        await self._rerun(trigger=self.start_id)

    async def full_rerun(self, timeout: float) -> None:
        """The main menu's Rerun: a full run with no widget change (reads the sidebar's run count)."""
        done = self.last_full_finish
        await self._rerun()
        end = time.monotonic() + timeout
        while self.last_full_finish == done and time.monotonic() < end and not self.closed.is_set():
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        self.closed.set()
        self._clear_timers()
        self._stop_feed()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 3)
        task = getattr(self, "_reader_task", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


# -- the server process --------------------------------------------------------------------------------
def run_async(coro):
    """``asyncio.run(coro)`` on a thread of its own: the caller's thread may already run an event loop (pytest's
    Playwright plugin leaves one in the main thread), where asyncio.run refuses to start."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def server_pid(port: int) -> int | None:
    """The ``streamlit run`` process serving ``port`` (found in /proc: no psutil needed)."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            args = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"streamlit" in b" ".join(args) and str(port).encode() in args and b"--server.port" in args:
            return int(d.name)
    return None


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the app's training workers, dlviz.procs), from /proc."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss_mb(pid: int | None) -> float | None:
    """Resident memory of the server: the app process and its worker processes."""
    if pid is None:
        return None
    total = None
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total = (total or 0) + int(line.split()[1]) / 1024
        except OSError:
            continue
    return round(total, 1) if total is not None else None


def cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of the server: the app process and its worker processes (threads included)."""
    if pid is None:
        return None
    total = None
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total = (total or 0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue
    return total


def loopback_bytes() -> int | None:
    """Bytes sent over this machine's loopback so far (/proc/net/dev): what the server sends its local clients,
    websocket and feed together, as they travel (compressed or not), with the clients' requests."""
    try:
        for line in Path("/proc/net/dev").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name.strip() == "lo":
                return int(rest.split()[8])
    except (OSError, IndexError, ValueError):
        pass
    return None


def _log_tracebacks(port: int) -> list[str]:
    """The last lines of each traceback in the server's log (serve_app writes it beside app.py)."""
    from ..browser import ROOT

    try:
        text = (ROOT / f".streamlit-{port}.log").read_text(errors="replace")
    except OSError:
        return []
    out = []
    for block in text.split("Traceback (most recent call last):")[1:]:
        lines = [ln for ln in block.splitlines() if ln.strip()]
        tail = next((ln for ln in lines if not ln.startswith((" ", "\t")) and ":" in ln), lines[-1] if lines else "")
        out.append(tail.strip()[:300])
    return out


# -- one scenario ---------------------------------------------------------------------------------------
def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def _rate(times: list[float], since: float | None, until: float) -> float | None:
    """Events per second in (since, until]."""
    if since is None or until - since <= 0.5:
        return None
    return sum(1 for t in times if since < t <= until) / (until - since)


def links(kind: str, n: int, epochs: int = 60) -> list[str]:
    """``same``: every client opens one link; ``different``: client i uses seed i (a run of its own)."""
    return [f"/cnn?preset=modern&epochs={epochs}&seed={0 if kind == 'same' else i}" for i in range(n)]


async def _drive(base_url: str, pid: int | None, kind: str, n: int, measure_s: float, spread_s: float,
                 load_timeout: float, epochs: int, clients_out: list, marks: dict) -> None:
    ws_url = base_url.replace("http://", "ws://") + "/_stcore/stream"
    clients = [LightClient(ws_url, link, i) for i, link in enumerate(links(kind, n, epochs))]
    clients_out.extend(clients)

    async def load(c: LightClient) -> None:
        await asyncio.sleep(random.uniform(0, spread_s))  # students open the link within about a second
        try:
            await c.open(load_timeout)
        except Exception as exc:  # noqa: BLE001
            c.stats.exceptions.append(f"load: {type(exc).__name__}: {exc}"[:300])

    await asyncio.gather(*(load(c) for c in clients))
    marks["rss_loaded_mb"] = rss_mb(pid)
    ready = [c for c in clients if c.stats.loaded_s is not None and not c.closed.is_set()]
    marks["cpu_start"], marks["t_start"], marks["lo_start"] = cpu_s(pid), time.monotonic(), loopback_bytes()

    async def start(c: LightClient) -> None:
        await asyncio.sleep(random.uniform(0, spread_s))  # and press Start within about a second
        try:
            await c.click_start()
        except Exception as exc:  # noqa: BLE001
            c.stats.exceptions.append(f"start: {type(exc).__name__}: {exc}"[:300])

    await asyncio.gather(*(start(c) for c in ready))
    await asyncio.sleep(measure_s)
    marks["t_end"], marks["cpu_end"], marks["lo_end"] = time.monotonic(), cpu_s(pid), loopback_bytes()
    marks["rss_end_mb"] = rss_mb(pid)
    probe = next((c for c in ready if not c.closed.is_set()), None)
    if probe is not None:  # the sidebar's count, now (it is drawn in full runs only)
        probe.stats.runs_training = None
        with contextlib.suppress(Exception):
            await probe.full_rerun(20)
        marks["runs_training"] = probe.stats.runs_training


async def _scenario(base_url: str, pid: int | None, kind: str, n: int, measure_s: float, spread_s: float,
                    load_timeout: float, epochs: int, cap_s: float) -> tuple[list, dict]:
    clients: list[LightClient] = []
    marks: dict = {}
    try:
        await asyncio.wait_for(_drive(base_url, pid, kind, n, measure_s, spread_s, load_timeout, epochs, clients,
                                      marks), cap_s)
    except asyncio.TimeoutError:
        marks["timed_out"] = True
        for c in clients:
            c.stats.exceptions.append(f"scenario cap of {cap_s:.0f} s reached")
    finally:
        marks.setdefault("t_end", time.monotonic())
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    return clients, marks


def _warm_up(base_url: str, load_timeout: float) -> float | None:
    """One client opens the page and leaves, so the idle baseline has torch, the data and the page code loaded."""
    async def go():
        c = LightClient(base_url.replace("http://", "ws://") + "/_stcore/stream", links("same", 1)[0], -1)
        try:
            await c.open(load_timeout)
        finally:
            await c.close()
        return c.stats.loaded_s

    try:
        return run_async(go())
    except Exception:  # noqa: BLE001  (the scenario reports what fails)
        return None


def run_scenario(kind: str, n: int, measure_s: float = 15.0, spread_s: float = 1.0, load_timeout: float = 90.0,
                 epochs: int = 60, cap_s: float = 240.0, warm_up: bool = True, env: dict | None = None) -> dict:
    """A fresh app, ``n`` clients of scenario ``kind`` ("same" or "different"): the figures, one dict."""
    from ..browser import serve_app

    client_cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    out: dict = {}
    with serve_app(env=env, timeout=120) as url:
        port = int(url.rsplit(":", 1)[1])
        pid = server_pid(port)
        out["rss_fresh_mb"] = rss_mb(pid)
        if warm_up:
            out["warm_up_load_s"] = _warm_up(url, load_timeout)
            time.sleep(1.0)
        out["rss_idle_mb"] = rss_mb(pid)
        clients, marks = run_async(_scenario(url, pid, kind, n, measure_s, spread_s, load_timeout, epochs,
                                               cap_s))
        tracebacks = _log_tracebacks(port)
    client_cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    t_end = marks["t_end"]
    stats = [c.stats for c in clients]
    firsts = [s.first_update_s for s in stats if s.first_update_s is not None]
    # refreshes: new "step N" captions per second, counted from one second after the client's first update
    rates, run_rates = [], []
    for s in stats:
        since = s.clicked_at + s.first_update_s + 1.0 if s.first_update_s is not None else None
        shown = s.feed_times or s.step_times  # the chart drawn from the feed, else the live area's captions
        until = min(t_end, s.finished_at) if s.finished_at else t_end  # while the run trains
        r = _rate([t for t, step in shown if step > 0], since, until)
        rates.append(r if r is not None else 0.0)
        rr = _rate(s.live_runs, since, t_end)
        run_rates.append(rr if rr is not None else 0.0)
    steps = [s.steps for s in stats]
    exceptions = [f"client {s.index}: {e}" for s in stats for e in s.exceptions]
    rss_end, rss_idle = marks.get("rss_end_mb"), out.get("rss_idle_mb")
    window = (marks["t_end"] - marks["t_start"]) if "t_start" in marks else None
    server_cpu = (marks["cpu_end"] - marks["cpu_start"]) if marks.get("cpu_end") is not None and \
        marks.get("cpu_start") is not None else None
    runs_seen = [s.runs_training for s in stats if s.runs_training is not None]
    out.update({
        "clients": n,
        "loaded": sum(s.loaded_s is not None for s in stats),
        "load_s_max": round(max((s.loaded_s for s in stats if s.loaded_s is not None), default=0), 2),
        "refreshes_per_s_median": round(statistics.median(rates), 2) if rates else None,
        "refreshes_per_s_p10": round(_pct(rates, 0.1), 2) if rates else None,
        "refreshes_per_s_min": round(min(rates), 2) if rates else None,
        "fragment_runs_per_s_median": round(statistics.median(run_rates), 2) if run_rates else None,
        "feed_clients": sum(bool(s.feed_times) for s in stats),
        "feed_requests_per_s": round(sum(s.feed_requests for s in stats) / window, 1) if window else None,
        "first_update_s_median": round(statistics.median(firsts), 2) if firsts else None,
        "first_update_s_max": round(max(firsts), 2) if firsts else None,
        "feed_arrived_s_max": round(max((s.feed_at - s.clicked_at for s in stats if s.feed_at and s.clicked_at),
                                        default=0), 2),
        "no_update": sum(s.first_update_s is None for s in stats),
        "exceptions": len(exceptions),
        "exception_samples": exceptions[:5],
        "server_tracebacks": len(tracebacks),
        "server_traceback_samples": sorted(set(tracebacks))[:5],
        "server_rss_mb": rss_end,
        "rss_loaded_mb": marks.get("rss_loaded_mb"),
        "rss_per_session_mb": round((rss_end - rss_idle) / n, 1) if rss_end is not None and rss_idle is not None
        else None,
        "runs_training": marks.get("runs_training", max(runs_seen) if runs_seen else None),
        "shared_max": max((s.shared_max for s in stats), default=0),
        "steps_min": min(steps) if steps else None,
        "steps_median": statistics.median(steps) if steps else None,
        "finished_in_window": sum(s.finished_seen for s in stats),
        "server_cpu_share": round(server_cpu / window, 2) if server_cpu is not None and window else None,
        "client_cpu_s": round(client_cpu1.ru_utime + client_cpu1.ru_stime - client_cpu0.ru_utime
                              - client_cpu0.ru_stime, 1),
        "mb_in_per_client_s": round(statistics.median(s.bytes_in for s in stats) / 1e6 / window, 2)
        if stats and window else None,
        "feed_kb_per_client_s": round(statistics.median(s.feed_bytes for s in stats) / 1e3 / window, 1)
        if stats and window else None,
        "wire_kb_per_client_s": round((marks["lo_end"] - marks["lo_start"]) / 1e3 / window / n, 1)
        if marks.get("lo_end") is not None and marks.get("lo_start") is not None and window else None,
        "ref_hash_hits": sum(s.ref_hits for s in stats),
        "ref_hash_misses": sum(s.ref_misses for s in stats),
        "auto_reruns_sent": sum(s.auto_reruns_sent for s in stats),
        "runs_cut_short": sum(s.early_for_rerun for s in stats),
        "timed_out": bool(marks.get("timed_out")),
    })
    return out


def client_counts(default=CLIENTS) -> tuple[int, ...]:
    raw = os.environ.get("DLVIZ_BENCH_CLIENTS", "").strip()
    if not raw:
        return tuple(default)
    return tuple(int(x) for x in raw.replace(" ", "").split(",") if x)


COLUMNS = [("clients", "N"), ("refreshes_per_s_median", "refr/s med"), ("refreshes_per_s_p10", "p10"),
           ("fragment_runs_per_s_median", "frag runs/s"), ("first_update_s_median", "1st upd med"),
           ("first_update_s_max", "max"), ("steps_min", "steps min"), ("steps_median", "med"),
           ("exceptions", "exc"), ("server_tracebacks", "tb"), ("runs_training", "runs"), ("shared_max", "shared"),
           ("server_rss_mb", "RSS MB"), ("rss_per_session_mb", "MB/sess"), ("server_cpu_share", "srv cpu"),
           ("client_cpu_s", "cli cpu s")]


def table(results: dict) -> str:
    lines = []
    for scen, rows in results.items():
        lines.append(f"## {scen}")
        lines.append("  ".join(f"{h:>11s}" for _, h in COLUMNS))
        for row in rows.values():
            lines.append("  ".join(f"{str(row.get(k, '')):>11s}" for k, _ in COLUMNS))
            for e in row.get("exception_samples", [])[:3] + row.get("server_traceback_samples", [])[:3]:
                lines.append(f"      ! {e}")
    return "\n".join(lines)


def classroom(clients=None, scenarios=None, measure_s: float = 15.0, echo: bool = True, **kw) -> dict:
    """Every scenario for every number of clients, each on a fresh server; prints a table as it goes."""
    counts = tuple(clients) if clients is not None else client_counts()
    scenarios = scenarios or list(SCENARIOS)
    results: dict = {}
    for scen in scenarios:
        rows = results.setdefault(scen, {})
        for n in counts:
            try:
                rows[str(n)] = run_scenario(SCENARIOS[scen], n, measure_s=measure_s, **kw)
            except Exception as exc:  # noqa: BLE001  (one failed size must not hide the others)
                rows[str(n)] = {"clients": n, "error": f"{type(exc).__name__}: {exc}"[:300]}
            if echo:
                print(table({scen: {str(n): rows[str(n)]}}), flush=True)
    if echo:
        print(table(results), flush=True)
    return results


def main() -> int:  # python -m dlviz.ui.loadtest [N,N,...]: the table only
    import sys

    classroom(clients=client_counts() if len(sys.argv) < 2 else [int(x) for x in sys.argv[1].split(",")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
