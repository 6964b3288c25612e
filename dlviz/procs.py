"""Training in worker processes: the app process only draws.

Python runs one thread at a time (the GIL). In one process, forty sessions redrawing a shared run and the thread
training it took turns for it: every torch call of a training step lets go of the interpreter and must take it
back, and a class's redraws made each take wait. A run's generator (``demo.run(config, device)``) therefore lives
in a worker process; the app's runner pulls its snapshots through a pipe (:class:`RemoteGen` is a generator to
the runner: ``next`` and ``close``). Snapshots are plain data (metrics, numpy arrays, CPU tensors), the demo
contract (``dlviz.demos.base``); the worker builds the demo from its registry name.

- **Read-ahead of one.** After handing over a snapshot, the worker computes the next one while the app records
  and draws: a pause (or Step) stops at the snapshot it reached; the one read ahead is kept for Resume, so the
  run is the same, step for step, as one driven in process (the heartbeats keep each item short).
- **Same numbers.** A worker uses the server's torch thread count (``dlviz.device.server_threads``), so a run
  trained there matches the same config run from the CLI, metric for metric.
- **Drawing first.** Workers run at a lower priority (``WORKER_NICE``): on a busy machine the app's redraws get
  the cores first and training takes the rest.
- **Failures are the run's, not the app's.** An exception in the demo comes back as the same exception (with
  where it was raised); a worker that dies fails its runs with a message, and the next run starts a new worker.

``DLVIZ_TRAIN_PROCESS=0`` trains in process (the CLI, the tests and the benchmark do unless they ask); the app
turns workers on at start-up (``app.py``). ``DLVIZ_PROCESSES`` sets how many (default: the scheduler's training
slices, ``dlviz.scheduler.default_workers``).
"""

from __future__ import annotations

import atexit
import collections
import itertools
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback
import weakref
from multiprocessing.connection import Connection
from typing import Any

import torch

from .i18n import N_, Msg

WORKER_NICE = 10  # training yields the cores to the app's drawing (40 clients on one run, 2 cores: p10 refresh
# rate 1.1-1.2/s with workers at the app's priority, 1.4-1.6 at nice 10; the run's steps unchanged)
_ENABLED: bool | None = None  # None: from $DLVIZ_TRAIN_PROCESS (off unless "1")


def use_processes(on: bool = True) -> None:
    """Train runs in worker processes from now on (``app.py``), unless ``$DLVIZ_TRAIN_PROCESS`` is ``0``."""
    global _ENABLED
    _ENABLED = on and os.environ.get("DLVIZ_TRAIN_PROCESS", "") != "0"


def enabled() -> bool:
    if _ENABLED is None:
        return os.environ.get("DLVIZ_TRAIN_PROCESS", "") == "1"
    return _ENABLED


class WorkerDied(RuntimeError):
    """The worker process training this run ended (killed, out of memory). Its one message is the page's: the
    end is seen either by the reader (EOF) or by a send (a broken pipe), whichever comes first."""

    def __init__(self) -> None:
        super().__init__(Msg(N_("The training process stopped (out of memory, or killed). Press Reset to start "
                                "this run again.")))


# -- the worker process --------------------------------------------------------------------------------------
def _where(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    return f"{tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else "?"


def _reply(conn: Connection, kind: str, rid: int, payload: Any) -> None:
    try:
        data = pickle.dumps((kind, rid, payload), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001  (a snapshot or an exception that cannot cross: say which)
        err = RuntimeError(f"cannot send {kind} from the worker: {type(exc).__name__}: {exc}")
        data = pickle.dumps(("error", rid, (err, "procs.py", 0.0)), protocol=pickle.HIGHEST_PROTOCOL)
    conn.send_bytes(data)


def serve(conn: Connection) -> None:
    """The worker's loop: ``open`` a run (demo name, config, device), ``next`` its item, ``close`` it; it ends
    when the app process closes the pipe."""
    gens: dict[int, Any] = {}
    try:
        _serve(conn, gens)
    except (EOFError, OSError):
        pass
    for gen in gens.values():  # the models' threads end before the interpreter does
        try:
            gen.close()
        except Exception:  # noqa: BLE001, S110
            pass


def _serve(conn: Connection, gens: dict[int, Any]) -> None:
    from .demos import get_demo
    from .demos.base import GradMode
    from .device import server_threads

    torch.set_num_threads(server_threads())
    modes: dict[int, GradMode] = {}  # each run's own autograd mode (one thread resumes them all)
    while True:
        op, rid, payload = pickle.loads(conn.recv_bytes())
        if op == "open":
            name, config, device = payload
            try:
                gens[rid], modes[rid] = get_demo(name).run(config, torch.device(device)), GradMode()
            except Exception as exc:  # noqa: BLE001
                _reply(conn, "error", rid, (exc, _where(exc), 0.0))
        elif op == "next":
            gen = gens.get(rid)
            if gen is None:
                continue  # closed meanwhile (or failed to open: already answered)
            t0 = time.perf_counter()
            try:
                snap = modes[rid].next(gen)
            except StopIteration:
                gens.pop(rid, None), modes.pop(rid, None)
                _reply(conn, "end", rid, time.perf_counter() - t0)
            except BaseException as exc:  # noqa: BLE001  (the run's failure: the runner turns it into a message)
                gens.pop(rid, None), modes.pop(rid, None)
                _reply(conn, "error", rid, (exc, _where(exc), time.perf_counter() - t0))
            else:
                _reply(conn, "snap", rid, (snap, time.perf_counter() - t0))
        elif op == "held":  # how many runs this worker holds (tests, diagnostics)
            _reply(conn, "held", rid, len(gens))
        elif op == "close":
            modes.pop(rid, None)
            gen = gens.pop(rid, None)
            if gen is not None:
                try:
                    gen.close()
                except Exception:  # noqa: BLE001, S110  (a generator's cleanup must not stop the worker)
                    pass


def _main() -> None:  # python -m dlviz.procs FD_IN FD_OUT
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C stops the app; the worker ends when its pipe closes
    try:
        os.nice(WORKER_NICE)
    except OSError:
        pass
    conn_in, conn_out = Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False)

    class _Duplex:
        recv_bytes, send_bytes = conn_in.recv_bytes, conn_out.send_bytes

    serve(_Duplex())  # type: ignore[arg-type]
    from .demos.base import wait_for_background_calls

    wait_for_background_calls(5.0)
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(0)  # not the interpreter's teardown: a pacer's idle daemon thread inside torch aborted it


# -- the app side ------------------------------------------------------------------------------------------
class _Worker:
    """One worker process, its pipes and the thread that hands its replies to the runs waiting for them."""

    def __init__(self):
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env = dict(os.environ)
        env["DLVIZ_TRAIN_PROCESS"] = "0"
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.proc = subprocess.Popen([sys.executable, "-m", "dlviz.procs", str(to_child_r), str(from_child_w)],
                                     pass_fds=(to_child_r, from_child_w), env=env, cwd=root,
                                     stdin=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        self._out = Connection(to_child_w, readable=False)
        self._in = Connection(from_child_r, writable=False)
        self._send_lock = threading.Lock()
        self._dropped: collections.deque = collections.deque()  # runs garbage-collected unclosed: closed at the
        # next send (a finalizer must not take the send lock: it may run inside a send)
        self._boxes: dict[int, queue.SimpleQueue] = {}
        self._boxes_lock = threading.Lock()
        self.dead = False
        threading.Thread(target=self._read, name="dlviz-worker-reader", daemon=True).start()

    def runs(self) -> int:
        with self._boxes_lock:
            return len(self._boxes)

    def send(self, op: str, rid: int, payload: Any = None) -> None:
        data = pickle.dumps((op, rid, payload), protocol=pickle.HIGHEST_PROTOCOL)
        with self._send_lock:
            if self.dead:
                raise WorkerDied()
            try:
                while self._dropped:
                    gone = self._dropped.popleft()
                    self.drop(gone)
                    self._out.send_bytes(pickle.dumps(("close", gone, None), protocol=pickle.HIGHEST_PROTOCOL))
                self._out.send_bytes(data)
            except OSError as exc:
                self._died()
                raise WorkerDied() from exc

    def box(self, rid: int) -> queue.SimpleQueue:
        q: queue.SimpleQueue = queue.SimpleQueue()
        with self._boxes_lock:
            self._boxes[rid] = q
        return q

    def drop(self, rid: int) -> None:
        with self._boxes_lock:
            self._boxes.pop(rid, None)

    def held(self, timeout: float = 30.0) -> int:
        """How many runs the worker process holds now (runs dropped unclosed are closed first)."""
        rid = next(_IDS)
        box = self.box(rid)
        try:
            self.send("held", rid)
            kind, payload = box.get(timeout=timeout)
            return payload
        finally:
            self.drop(rid)

    def _read(self) -> None:
        while True:
            try:
                data = self._in.recv_bytes()
            except Exception:  # noqa: BLE001  (EOF: the worker ended; or stop() closed the pipe under us)
                self._died()
                return
            try:
                kind, rid, payload = pickle.loads(data)
            except Exception:  # noqa: BLE001, S112  (cannot happen with one code version on both sides)
                continue
            with self._boxes_lock:
                q = self._boxes.get(rid)
            if q is not None:  # else: a run closed since it asked (its read-ahead arrives and is dropped)
                q.put((kind, payload))

    def _died(self) -> None:
        self.dead = True
        with self._boxes_lock:
            boxes = list(self._boxes.values())
        for q in boxes:
            q.put(("died", None))

    def stop(self) -> None:
        self.dead = True
        for c in (self._out, self._in):
            try:
                c.close()
            except OSError:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


_WORKERS: list[_Worker] = []
_LOCK = threading.Lock()
_IDS = itertools.count(1)


def processes() -> int:
    env = os.environ.get("DLVIZ_PROCESSES", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    from .scheduler import default_workers

    return default_workers("cuda" if torch.cuda.is_available() else "cpu")


def _worker() -> _Worker:
    """The live worker with the fewest open runs (a dead one is replaced; at most ``processes()``)."""
    with _LOCK:
        _WORKERS[:] = [w for w in _WORKERS if not w.dead]
        if len(_WORKERS) < processes():
            _WORKERS.append(_Worker())
        return min(_WORKERS, key=lambda w: w.runs())


_WARMING = threading.Event()


def warm_up() -> None:
    """Start the workers now (once, in the background), so that the first Start does not wait for torch to
    import in a new process."""
    if enabled() and not _WARMING.is_set():
        _WARMING.set()
        threading.Thread(target=lambda: [_worker() for _ in range(processes())], name="dlviz-warm-up",
                         daemon=True).start()


def _stop_all() -> None:
    with _LOCK:
        for w in _WORKERS:
            w.stop()
        _WORKERS.clear()


atexit.register(_stop_all)


class RemoteGen:
    """``demo.run(config, device)`` running in a worker process, as the runner's generator: ``next`` returns the
    next snapshot (or raises what the demo raised, or StopIteration), ``close`` ends it. ``last_s``: seconds
    the worker spent computing the item just returned."""

    def __init__(self, demo_name: str, config: Any, device: torch.device):
        self._worker, self._rid = _worker(), next(_IDS)
        self._box = self._worker.box(self._rid)
        # A run dropped without close (a session that ended) frees its model in the worker too.
        self._closed = [False]
        weakref.finalize(self, _dropped, self._worker, self._rid, self._closed)
        self._asked = False
        self.last_s = 0.0
        try:
            self._worker.send("open", self._rid, (demo_name, config, str(device)))
        except BaseException:
            self._finish()
            raise

    def __iter__(self):
        return self

    def __next__(self):
        if self._box is None:
            raise StopIteration
        if not self._asked:
            self._worker.send("next", self._rid)
            self._asked = True
        kind, payload = self._box.get()
        self._asked = False
        if kind == "snap":
            snap, self.last_s = payload
            try:
                self._worker.send("next", self._rid)  # read ahead: the worker computes on while we draw
                self._asked = True
            except WorkerDied:
                pass  # the next call reports it
            return snap
        self._finish()
        if kind == "end":
            self.last_s = payload
            raise StopIteration
        if kind == "died":
            raise WorkerDied()
        exc, where, self.last_s = payload
        exc.dlviz_where = where  # the runner's message says where the demo raised it
        raise exc

    def _finish(self) -> None:
        self._closed[0] = True  # ended (or closed): nothing left for the finalizer to do
        if self._box is not None:
            self._worker.drop(self._rid)
            self._box = None

    def close(self) -> None:
        if self._box is None:
            return
        self._closed[0] = True
        self._finish()
        try:
            self._worker.send("close", self._rid)
        except WorkerDied:
            pass


def _dropped(worker: _Worker, rid: int, closed: list) -> None:
    if not closed[0]:
        worker._dropped.append(rid)


def open_run(demo, config, device: torch.device):
    """The runner's generator for ``demo``: in a worker process when enabled and the demo is registered under its
    name, else ``demo.run`` here."""
    if enabled():
        from .demos import all_demos

        if all_demos().get(demo.name) is demo:
            try:
                return RemoteGen(demo.name, config, device)
            except (OSError, pickle.PicklingError, TypeError, AttributeError, WorkerDied) as exc:
                # no worker could start, or this config cannot cross a pipe: train here (slower on a busy server,
                # the same numbers)
                print(f"dlviz: training {demo.name} in the app process: {type(exc).__name__}: {exc}", file=sys.stderr)
    return demo.run(config, device)


if __name__ == "__main__":
    _main()
