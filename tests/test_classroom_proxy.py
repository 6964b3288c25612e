"""tools/classroom.py's proxy: a new browser is pinned to the next app process by a cookie; its later requests and
its websocket (bytes after the first head) reach that same process."""

from __future__ import annotations

import asyncio
import importlib.util

from dlviz.ui.loadtest import run_async
from pathlib import Path

SPEC = importlib.util.spec_from_file_location("classroom", Path(__file__).resolve().parents[1] / "tools" / "classroom.py")
classroom = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(classroom)


async def _backend(i: int):
    """An app process stand-in: answers a head with its number, then echoes bytes prefixed with it."""

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter):
        try:
            await r.readuntil(b"\r\n\r\n")
            w.write(f"HTTP/1.1 101 Switching Protocols\r\nX-App: {i}\r\n\r\n".encode())
            while data := await r.read(100):
                w.write(f"{i}:".encode() + data)
                await w.drain()
        except (asyncio.CancelledError, ConnectionError):  # the test's loop ends with connections open
            pass
        w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _request(port: int, cookie: str | None):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"GET /_stcore/stream HTTP/1.1\r\nHost: x\r\n" + (f"Cookie: a=b; dlviz_app={cookie}\r\n".encode()
                                                             if cookie is not None else b"") + b"\r\n")
    head = (await r.readuntil(b"\r\n\r\n")).decode()
    w.write(b"ping")
    echoed = await r.readexactly(6)
    w.close()
    return head, echoed.decode()


def test_sticky_cookie_and_websocket_bytes_reach_the_same_process():
    async def main():
        backends = [await _backend(i) for i in range(2)]
        proxy = await asyncio.start_server(classroom.make_proxy([p for _, p in backends]), "127.0.0.1", 0)
        port = proxy.sockets[0].getsockname()[1]
        first, second = await _request(port, None), await _request(port, None)
        again = await _request(port, "1")
        bogus = await _request(port, "7")  # not a process: treated as a new browser
        for s, _ in backends:
            s.close()
        proxy.close()
        return first, second, again, bogus

    first, second, again, bogus = run_async(main())  # a thread of its own: Playwright may hold this one's loop
    assert "X-App: 0" in first[0] and "dlviz_app=0" in first[0] and first[1] == "0:ping"
    assert "X-App: 1" in second[0] and "dlviz_app=1" in second[0] and second[1] == "1:ping"
    assert "X-App: 1" in again[0] and "Set-Cookie" not in again[0] and again[1] == "1:ping"
    assert "Set-Cookie: dlviz_app=" in bogus[0]
