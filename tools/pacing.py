"""How soon Pause and Reset take effect: the gap between two yields of every demo generator at its heaviest settings.

    python tools/pacing.py [--only rnn dino ...] [--seconds 4] [--presets] [--threads 1]
    python tools/pacing.py --only rnn ssl --variant /eval --evals 2      # through two periodic evaluations

The live runner stops only at a yield (a snapshot or a heartbeat), so the longest gap between two consecutive yields
after the first (setup) snapshot is how long Pause or Reset can wait. For every registered demo this builds
"heavy" configs from the default (and, with ``--presets``, from every preset): every size-like field (see
``HEAVY``) is pushed to the end of its range or choices that makes a snapshot's work largest; learning rates,
temperatures and the like keep their values. Each heavy config runs twice: with the longest snapshot interval
(training only, heartbeats needed) and with the shortest (an evaluation after every step or two: the periodic
evaluation's own gap). The string choice fields listed in ``SWEEP`` are swept one at a time. The table lists the
largest and the median gap, the setup time and the longest single ``Pacer.call`` in CPU seconds of its thread
(about its time on an idle core: calls over ~0.3 s are the ones only the pacer's worker thread keeps pausable);
rows with a gap over ``--limit`` are marked. Each variant runs in
a child process (one torch thread by default, as in the app on 2 cores), ended after ``--cap`` seconds without
a yield. Gaps include whatever else the machine is doing: run it on a quiet machine for figures to compare.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from dlviz.config import spec_of  # noqa: E402
from dlviz.demos import all_demos, base  # noqa: E402

# Fields whose largest value (top of the range, largest choice) makes the work per snapshot largest.
HEAVY = {
    "lag", "hidden", "batch_size", "steps", "length", "vocab", "d_model", "heads", "layers", "n_train", "embed_dim",
    "depth", "num_heads", "out_dim", "local_crops", "iterations", "n_points", "perplexity", "g_depth", "g_width",
    "d_depth", "d_width", "d_steps", "width", "input_size", "noise_dim", "n_components", "d_warmup", "epochs", "grid",
}
# Snapshot-interval fields: the "train" variant takes their top, the "eval" variant their bottom.
INTERVAL = {"eval_every", "every"}
# Booleans that add work when on (the racers of the optimizer demos, BatchNorm layers, a second run).
HEAVY_TRUE = {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "batchnorm"}
# String choice fields swept one value at a time from the heavy base (other string fields keep their value).
SWEEP = {
    "transformer": {"task": None, "architecture": None},
    "cnn": {"activation": None, "pool": None, "optimizer": None},
    "dino": {},
    "tsne": {"engine": None, "source": None, "init": None},
    "gan": {"loss": None, "dataset": ["ring", "spiral"]},
    "gan-1d": {"loss": None},
    "gan-digits": {"loss": None},
    "critical-points": {"surface": None},
    "landscape": {"model": None, "optimizer": None},
    "optimizers": {"surface": None},
    "rnn": {"task": None, "optimizer": None},
    "ssl": {"method": None, "compare": ["none", "stop_grad"], "dataset": ["digits", "digits-clutter"]},
}
# Fields forced in every heavy config (a second model beside the first is more work than one).
FORCE = {"ssl": {"compare": "stop_grad"}, "rnn": {"cells": "rnn+gru+lstm"}}


def _top(f: dataclasses.Field, lowest: bool = False):
    s = spec_of(f)
    if s.choices is not None and not isinstance(f.default, str):
        return min(s.choices) if lowest else max(s.choices)
    if s.lo is not None and s.hi is not None:
        v = s.lo if lowest else s.hi
        return type(f.default)(v)
    return f.default


def heavy(config, demo_name: str, interval: str = "train"):
    """``config`` with every HEAVY field at its top, the snapshot interval at its top ("train") or bottom ("eval")."""
    changes = {}
    for f in dataclasses.fields(config):
        if f.name in HEAVY:
            changes[f.name] = _top(f)
        elif f.name in INTERVAL:
            changes[f.name] = _top(f, lowest=interval == "eval")
        elif f.name in HEAVY_TRUE and isinstance(f.default, bool):
            changes[f.name] = True
    changes.update(FORCE.get(demo_name, {}))
    out = dataclasses.replace(config, **changes)
    return _fix(out, demo_name)


def _fix(config, demo_name: str):
    """Keep combinations the model accepts (d_model divisible by heads, ...)."""
    if demo_name == "transformer" and config.d_model % config.heads:
        config = dataclasses.replace(config, heads=1)
    if demo_name == "dino" and config.embed_dim % config.num_heads:
        config = dataclasses.replace(config, num_heads=3)
    return config


def variants(demo, presets: bool = False) -> list[tuple[str, object]]:
    """(label, config) pairs: the heavy default (and presets), train and eval interval, swept string fields."""
    bases = [("default", demo.default_config())]
    if presets:
        bases += [(slug, p.config) for slug, p in demo.presets.items() if p.config != demo.default_config()]
    fields = {f.name: f for f in dataclasses.fields(demo.config_cls)}
    out, seen = [], set()
    for label, base in bases:
        for interval in ("train", "eval"):
            if not any(n in fields for n in INTERVAL) and interval == "eval":
                continue
            h = heavy(base, demo.name, interval)
            cands = [(f"{label}/{interval}", h)]
            for name, values in SWEEP.get(demo.name, {}).items():
                if name not in fields:
                    continue
                for v in values or spec_of(fields[name]).choices:
                    if v != getattr(h, name):
                        cfg = _fix(dataclasses.replace(h, **{name: v}), demo.name)
                        cands.append((f"{label}/{interval} {name}={v}", cfg))
            for lab, cfg in cands:
                key = repr(cfg)
                if key not in seen:
                    seen.add(key)
                    out.append((lab, cfg))
    return out


def _timed_calls(costs: dict[str, float]) -> None:
    """Record the CPU seconds of every ``Pacer.call`` (the calling thread's: with one torch thread, about what the
    call takes on an idle core, however busy the machine): the largest per function name in ``costs``."""
    original = base.Pacer.call

    def call(self, step, fn, *args):
        key = getattr(fn, "__qualname__", None) or repr(fn)

        def timed(*a):
            t = time.thread_time()
            try:
                return fn(*a)
            finally:
                costs[key] = max(costs.get(key, 0.0), time.thread_time() - t)

        timed.__qualname__ = key
        return (yield from original(self, step, timed, *args))

    base.Pacer.call = call


def _child(conn, demo_name: str, config, seconds: float, threads: int, device: str, evals: int = 0,
           max_seconds: float = 120.0) -> None:
    """Runs in a child process: sends ("setup", s), then ("gap", s, heartbeat, step) per yield, then ("costs",
    {function: CPU s}) and ("end", why)."""
    torch.set_num_threads(threads)
    costs: dict[str, float] = {}
    _timed_calls(costs)
    gen = all_demos()[demo_name].run(config, torch.device(device))
    why = ""
    try:
        t0 = time.perf_counter()
        next(gen)
        conn.send(("setup", time.perf_counter() - t0))
        start = last = time.perf_counter()
        seen = 0
        while time.perf_counter() - start < seconds or (seen < evals and time.perf_counter() - start < max_seconds):
            snap = next(gen)
            now = time.perf_counter()
            conn.send(("gap", now - last, snap.heartbeat, snap.step))
            last = now
            seen += not snap.heartbeat
        why = "" if seen >= evals else f"only {seen} snapshots in {max_seconds:.0f} s"
    except StopIteration:
        why = "ended"
    except Exception as exc:  # a diverging preset ends its run with an error: report it, keep going
        why = f"{type(exc).__name__}: {str(exc)[:60]}"
    finally:
        gen.close()
        conn.send(("costs", dict(costs)))
        conn.send(("end", why))
        conn.close()


def measure(demo, config, seconds: float = 4.0, device: str = "cpu", threads: int = 1, cap: float = 20.0,
            max_setup: float = 180.0, evals: int = 0, max_seconds: float = 120.0) -> dict:
    """Run ``demo.run(config)`` in a child process for ``seconds`` after its first snapshot (and on until
    ``evals`` more real snapshots arrived, at most ``max_seconds``); the gaps between consecutive yields. A gap
    longer than ``cap`` seconds ends the child: the gap is reported as ``>= cap``."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, demo.name, config, seconds, threads, device, evals, max_seconds),
                       daemon=True)
    proc.start()
    child.close()
    out = {"setup": None, "gaps": [], "snapshots": 0, "heartbeats": 0, "note": "", "worst_at": None, "cut": False,
           "costs": {}}
    wait = max_setup
    last = time.perf_counter()
    try:
        while True:
            if not parent.poll(wait):
                out["gaps"].append(time.perf_counter() - last)
                out["cut"], out["note"] = True, f"cut after {wait:.0f} s without a yield"
                if out["setup"] is None:
                    out["gaps"] = []
                break
            msg = parent.recv()
            last = time.perf_counter()
            if msg[0] == "setup":
                out["setup"], wait = msg[1], cap
            elif msg[0] == "costs":
                out["costs"] = msg[1]
            elif msg[0] == "gap":
                gap, beat, step = msg[1:]
                if not out["gaps"] or gap > max(out["gaps"]):
                    out["worst_at"] = ("heartbeat" if beat else "snapshot", step)
                out["gaps"].append(gap)
                out["heartbeats" if beat else "snapshots"] += 1
            else:
                out["note"] = msg[1]
                break
    except EOFError:
        out["note"] = "child died"
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
    g = out["gaps"]
    out["max_gap"] = max(g) if g else float("nan")
    out["median_gap"] = statistics.median(g) if g else float("nan")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", default=None, help="demo slugs (default: all)")
    ap.add_argument("--seconds", type=float, default=4.0, help="running time per variant after its setup")
    ap.add_argument("--presets", action="store_true", help="also every preset, not only the default")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the app uses 1 on 2 cores)")
    ap.add_argument("--limit", type=float, default=0.3, help="mark gaps above this many seconds")
    ap.add_argument("--cap", type=float, default=20.0,
                    help="give up on a variant after this many seconds without a yield")
    ap.add_argument("--evals", type=int, default=0, help="run on until this many snapshots after the first (through "
                    "periodic evaluations), at most --max-seconds")
    ap.add_argument("--max-seconds", type=float, default=120.0)
    ap.add_argument("--costs", action="store_true", help="print every Pacer.call's largest CPU seconds")
    ap.add_argument("--exact", action="store_true", help="--variant is a whole label (default/eval), not a part")
    ap.add_argument("--variant", default=None, help="only variants whose label contains this text (e.g. /eval)")
    ap.add_argument("--list", action="store_true", help="print the variants and their configs, run nothing")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    demos = all_demos()
    names = a.only or list(demos)
    print(f"{'demo':<19} {'variant':<44} {'max gap':>8} {'median':>8} {'setup':>7} {'snaps':>6} {'beats':>6} "
          f"{'call cpu':>8} {'(longest Pacer.call)':<24} worst at")
    for name in names:
        demo = demos[name]
        for label, cfg in variants(demo, a.presets):
            if a.variant and (a.variant != label if a.exact else a.variant not in label):
                continue
            if a.list:
                print(name, label, cfg)
                continue
            m = measure(demo, cfg, a.seconds, threads=a.threads, cap=a.cap, evals=a.evals, max_seconds=a.max_seconds)
            flag = " <-- over" if m["max_gap"] > a.limit else ""
            note = m["note"]
            worst = f"{m['worst_at'][0]} step {m['worst_at'][1]}" if m["worst_at"] else ""
            setup = f"{m['setup']:.2f}" if m["setup"] is not None else "-"
            gap = f"{'>=' if m['cut'] else ''}{m['max_gap']:.3f}"
            key, cpu = max(m["costs"].items(), key=lambda kv: kv[1], default=("", float("nan")))
            key = key.replace("<locals>.", "").split(".")[-1]
            print(f"{name:<19} {label[:44]:<44} {gap:>8} {m['median_gap']:8.3f} {setup:>7} "
                  f"{m['snapshots']:6d} {m['heartbeats']:6d} {cpu:8.2f} {key[:24]:<24} {worst}{flag} {note}",
                  flush=True)
            if a.costs:
                print("    calls (CPU s):", ", ".join(f"{k.split('.')[-1]} {v:.2f}" for k, v in sorted(
                    m["costs"].items(), key=lambda kv: -kv[1])), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
