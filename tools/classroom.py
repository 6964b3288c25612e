"""Serve a class from several app processes behind one address, with sticky sessions.

    python tools/classroom.py --apps 3 --port 8501            # 3 streamlit processes, one proxy on :8501

Streamlit keeps each session's state in the process that serves its websocket, so every request of a browser
must reach the same process: the proxy gives each new browser a cookie naming its process (round-robin), and
routes every later request, the websocket included, by that cookie. The processes run with the classroom profile
(``DLVIZ_PROFILE=classroom``) and one training worker each unless the environment says otherwise.

Standard library only. For a production front end, nginx with ``hash $cookie_dlviz_app`` (or ``ip_hash``) and
the websocket upgrade headers does the same (see the README).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COOKIE = "dlviz_app"


def start_apps(n: int, first_port: int) -> list[tuple[subprocess.Popen, int]]:
    env = {"DLVIZ_PROFILE": "classroom", **os.environ}
    apps = []
    for i in range(n):
        port = first_port + i
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        apps.append((proc, port))
    deadline = time.time() + 90
    for proc, port in apps:
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"app process on port {port} did not start")
            time.sleep(0.3)
    return apps


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _cookie(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"cookie":
            for part in value.decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                if k == COOKIE and v.isdigit():
                    return int(v)
    return None


def make_proxy(ports: list[int]):
    """An asyncio TCP proxy that reads only the first request head of each connection: the cookie picks the app
    process (a new browser gets the next one, and the cookie with the first response); the rest of the connection,
    a websocket included, is piped as bytes."""
    turn = itertools.cycle(range(len(ports)))

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            head = await client_r.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            client_w.close()
            return
        chosen = _cookie(head)
        fresh = chosen is None or chosen >= len(ports)
        if fresh:
            chosen = next(turn)
        try:
            app_r, app_w = await asyncio.open_connection("127.0.0.1", ports[chosen])
        except OSError:
            client_w.close()
            return
        app_w.write(head)
        await app_w.drain()
        upstream = asyncio.ensure_future(_pipe(client_r, app_w))
        if fresh:  # the first response carries the cookie that pins this browser to its process
            try:
                reply = await app_r.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                client_w.close()
                upstream.cancel()
                return
            cookie = f"Set-Cookie: {COOKIE}={chosen}; Path=/; HttpOnly; SameSite=Lax\r\n".encode()
            client_w.write(reply[:-2] + cookie + b"\r\n")
        await _pipe(app_r, client_w)
        upstream.cancel()

    return handle


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--apps", type=int, default=max(1, (os.cpu_count() or 2) // 2), help="app processes")
    p.add_argument("--port", type=int, default=8501, help="the address the class opens")
    p.add_argument("--address", default="0.0.0.0", help="0.0.0.0: the whole network; 127.0.0.1: this machine")
    p.add_argument("--first-app-port", type=int, default=8601)
    args = p.parse_args(argv)
    apps = start_apps(args.apps, args.first_app_port)

    async def serve():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        server = await asyncio.start_server(make_proxy([port for _, port in apps]), args.address, args.port)
        print(f"classroom: {args.apps} app processes behind http://{args.address}:{args.port}", flush=True)
        async with server:
            await stop.wait()

    try:
        asyncio.run(serve())
    finally:
        for proc, _ in apps:
            proc.terminate()
        for proc, _ in apps:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
