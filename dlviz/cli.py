"""Command line: list the demos, run one to the end (same generator as the page), or run the benchmark.

    python -m dlviz list [--json]
    python -m dlviz run DEMO [--preset SLUG] [--set key=value ...] [--device cpu|cuda] [--max-seconds S] [--json]
    python -m dlviz verify [--demo D] [--preset P] [--seeds 100-104] [--json]
    python -m dlviz bench [--device D] [--only SUBSTRING]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from .config import ConfigError, describe, with_overrides


def _jsonable(obj):
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        np = None
    if np is not None and isinstance(obj, np.generic):
        return obj.item()
    if np is not None and isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, float) and obj != obj:
        return None
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def cmd_list(args) -> int:
    from .demos import all_demos

    demos = all_demos()
    if args.json:
        print(json.dumps({"demos": {name: {"title": d.title, "summary": d.summary,
                                           "presets": list(d.presets), "config": describe(d.config_cls)}
                                    for name, d in demos.items()}}, default=_jsonable))
        return 0
    for name, d in demos.items():
        print(f"{name:20s} {d.title}\n{'':20s} {d.summary}")
        for slug, p in d.presets.items():
            print(f"{'':22s}--preset {slug:18s} {p.title}")
        for field, info in describe(d.config_cls).items():
            rng = f" in {info['range']}" if "range" in info else f" one of {info['choices']}" if "choices" in info else ""
            print(f"{'':22s}--set {field}={info['default']!r:12}{rng}  {info['help']}")
    return 0


def cmd_run(args) -> int:
    from .demos import get_demo
    from .device import pick_device
    from .runner import Runner

    try:
        demo = get_demo(args.demo)
        config = demo.preset_config(args.preset) if args.preset else demo.default_config()
        overrides = dict(kv.split("=", 1) for kv in args.set) if args.set else {}
        config = with_overrides(config, overrides)
        device = pick_device(args.device)
    except (KeyError, ConfigError, ValueError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    runner = Runner(demo, config, device)
    runner.run_to_end(max_seconds=args.max_seconds)
    out = runner.summary()
    out["config"] = dataclasses.asdict(config)
    if args.preset:
        out["preset"] = args.preset
    if not args.json:
        for k, v in out.items():
            if k != "config":
                print(f"{k}: {v}")
    print(json.dumps(out, default=_jsonable))
    return 1 if runner.status == "failed" and not args.allow_fail else 0


def cmd_verify(args) -> int:
    from .device import pick_device
    from .verify import parse_seeds, select, table, verify

    try:
        seeds = parse_seeds(args.seeds)
        items = select(args.demo, args.preset)
        device = pick_device(args.device)
    except (KeyError, ValueError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2

    def progress(outcome, seed):
        if not args.json:
            print(f"  {outcome.demo}/{outcome.preset} seed {seed}: "
                  f"{'pass' if outcome.passed[-1] else 'FAIL'} ({outcome.seconds[-1]:.1f} s)", file=sys.stderr,
                  flush=True)

    results = verify(items, seeds, device, progress)
    if args.json:
        print(json.dumps({"seeds": seeds, "results": [r.as_dict() for r in results]}, default=_jsonable))
    else:
        print(table(results))
    return 0 if all(r.holds for r in results) else 1


def cmd_bench(args) -> int:
    from .bench import run_benchmarks

    return run_benchmarks(args.device, args.only)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dlviz", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pl = sub.add_parser("list", help="every demo with its presets and config fields")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(fn=cmd_list)
    pr = sub.add_parser("run", help="run one demo to the end and print its final metrics")
    pr.add_argument("demo")
    pr.add_argument("--preset")
    pr.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (repeatable)")
    pr.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    pr.add_argument("--max-seconds", type=float, default=None, help="stop after this much wall time")
    pr.add_argument("--json", action="store_true", help="print only the final JSON object")
    pr.add_argument("--allow-fail", action="store_true", help="exit 0 even when the run diverges")
    pr.set_defaults(fn=cmd_run)
    pv = sub.add_parser("verify", help="run presets on seeds and check each preset's claim")
    pv.add_argument("--demo", default=None, help="only this demo (e.g. dino)")
    pv.add_argument("--preset", default=None, help="only this preset")
    pv.add_argument("--seeds", default="100-104", help="seeds to check on, e.g. 100-104 or 3,7,9 (default 100-104)")
    pv.add_argument("--device", default=None)
    pv.add_argument("--json", action="store_true", help="print one JSON object")
    pv.set_defaults(fn=cmd_verify)
    pb = sub.add_parser("bench", help="measure speed targets on this machine")
    pb.add_argument("--device", default=None)
    pb.add_argument("--only", default=None, help="run only benchmarks whose name contains this")
    pb.set_defaults(fn=cmd_bench)
    args = p.parse_args(argv)
    if getattr(args, "set", None):
        bad = [kv for kv in args.set if "=" not in kv]
        if bad:
            p.error(f"--set expects key=value, got {bad[0]!r}")
    if args.cmd in ("run", "verify"):
        import torch

        from .device import server_threads

        torch.set_num_threads(server_threads())  # the app's count: the same config gives the same numbers
    return args.fn(args)
