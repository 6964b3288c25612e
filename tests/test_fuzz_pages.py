"""A randomized widget fuzz over every page (issue 15: a lecturer can never cause a traceback).

Per case (a fixed seed per page and case number): open the page, sometimes through a link with random and
garbage query parameters from the page's Config fields; set random widgets (extremes included: the ends of
sliders, every option of a select); press Start, refresh, change random widgets while the run trains, Step,
Pause, Reset. After every action no exception element may be on the page, and no run may have stopped with a
demo error. A failure names the case seed and the actions so far, so the case can be replayed:
``DLVIZ_FUZZ_CASES=N`` runs N cases per page (default 1: extreme values on every other page; with more,
cases whose number is a multiple of 3 use extreme values throughout, the others prefer small, quick settings), ``DLVIZ_FUZZ_SEED`` shifts every seed, and the
message says how to replay the case.

Widgets are enumerated generically from the AppTest tree. On-demand computations are not pressed in CI: measured
on 2 busy cores, t-SNE of the CNN / SSL features takes 3-5 s, the optimizers' loss plane 18 s, the perplexity grid
9 s, the landscape slices 60 s and the batch-size twins over 120 s; they have tests of their own. Cheap buttons
("New random views") are pressed; a longer local run (``DLVIZ_FUZZ_CASES`` set) also presses the t-SNE buttons
and adds random actions at the end of every case. Besides the random cases, a deterministic test per live part
changes every control at once while the run trains: the figures must keep drawing the run, not the widgets.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.proto.WidgetStates_pb2 import WidgetState

from conftest import ROOT, open_page

from dlviz.config import spec_of
from dlviz.demos import get_demo

PAGES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "pages").glob("*.py"))
CASES = int(os.environ.get("DLVIZ_FUZZ_CASES", "1"))  # 1 per page in CI (extreme or small by page, see
# test_fuzz_page), to keep the whole suite near 9 minutes on 2 cores; set it higher for a longer local run
# A local run for more cases: more actions and the t-SNE buttons too (DLVIZ_FUZZ_LONG=0 replays a CI case).
LONG = os.environ.get("DLVIZ_FUZZ_LONG", "1" if "DLVIZ_FUZZ_CASES" in os.environ else "0") == "1"
BASE_SEED = int(os.environ.get("DLVIZ_FUZZ_SEED", "0"))
# Pages whose biggest settings take seconds per refresh on 2 busy cores get fewer cases in CI.
CASE_CAP = {} if LONG else {"pages/80_dino.py": 2}

CONTROL = (".play", ".step", ".pause", ".reset")
# On-demand computations that take seconds to minutes (or the internet): never pressed by the fuzz, except the
# t-SNE of a run's features (3-5 s) in a long run.
EXPENSIVE = re.compile(r"Compute|Train the labelled|download", re.IGNORECASE)
MODERATE = re.compile(r"Compute t-SNE at this step")
# Query parameters the pages read besides their Config fields.
PAGE_QUERY = {"pages/50_attention.py": {"part": ["kernel", "scoring", "position", "transformer", "nope"]},
              "pages/60_gan.py": {"view": ["2d", "1d", "digits", "3d"]},
              "pages/85_teachers.py": {"part": ["distill", "ema", "nope"]}}
FORMULAS = ["x^2 + 3*y^2", "sin(x) * cos(y)", "x^4 - 2x^2 + y^2", "x*y", "exp(x) + y^2", "", "(", "x +* y",
            "1/0", "log(x) + y", "sqrt(-1) * x", "x^999", "abs(x) + abs(y)", "tanh(x*y)", "2", "z + 1"]
GARBAGE = ["", "abc", "nan", "inf", "-inf", "1e999", "-1", "0", "99999999999", "3.5", "true", "None", "[1]", "%00"]

KINDS = ("slider", "select_slider", "selectbox", "radio", "segmented_control", "multiselect", "toggle", "checkbox",
         "number_input", "text_input")


# -- fake optional datasets: mnist / fashion-mnist switch like the real ones, quickly ----------------------------
def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory) -> Path:
    """MNIST and Fashion-MNIST in torchvision's layout: 300 train and 100 test images of noise (not 1,000)."""
    root = tmp_path_factory.mktemp("fuzzdata")
    rng = np.random.default_rng(0)
    for folder in ("MNIST", "FashionMNIST"):
        for prefix, n in (("train", 300), ("t10k", 100)):
            _write_idx(root / folder / "raw" / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
            _write_idx(root / folder / "raw" / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    return root


@pytest.fixture
def app_env(fake_data, monkeypatch):
    """The data folder points at the fake sets; process-wide settings a page may change are put back."""
    monkeypatch.setenv("DLVIZ_DATA", str(fake_data))
    threads = torch.get_num_threads()
    yield fake_data
    torch.set_num_threads(threads)


# -- driving widgets -----------------------------------------------------------------------------------------
def _force(w, fill) -> None:
    """Make ``w`` report the widget state ``fill`` writes: what the browser would send for that choice.

    AppTest's own setters need the option's Python value (and apply the format function to it); the proto only
    has the displayed strings, which is what the front end sends back, so options are chosen by index here.
    """
    ws = WidgetState()
    ws.id = w.id
    fill(ws)
    w.__class__ = type(f"Forced{type(w).__name__}", (type(w),), {"_widget_state": property(lambda self: ws)})


def _name(w) -> str:
    return w.key or f"{w.type}:{getattr(w, 'label', '?')}"


def _number(rng: random.Random, lo, hi, step, integer: bool, mode: str):
    """An end of the range, or a value inside it (in ``small`` mode mostly from the lower half)."""
    r = rng.random()
    if mode == "extreme" and r < 0.6:
        v = lo if r < 0.3 else hi
    elif r < 0.15:
        v = lo
    elif r < 0.25:
        v = hi
    else:
        top = hi if mode == "extreme" or rng.random() < 0.3 else lo + (hi - lo) / 2
        v = rng.uniform(lo, top)
    if step:
        v = lo + round((v - lo) / step) * step
        v = min(max(v, lo), hi)
    return int(round(v)) if integer else float(v)


def _text_value(rng: random.Random, w, data_dir: Path) -> str:
    key = w.key or ""
    if key.endswith("formula"):
        return rng.choice(FORMULAS)
    if key == "dlviz.data_dir":
        return rng.choice([str(data_dir)] * 3 + ["/nonexistent/dlviz-data", ""])
    if key.endswith("ckpt"):
        return rng.choice(["", "/nonexistent/dino.pth", str(ROOT / "README.md"), str(ROOT)])
    return rng.choice(GARBAGE)


def set_random(rng: random.Random, w, mode: str, data_dir: Path) -> str:
    """Give widget ``w`` a random value; return a description for the replay log."""
    kind = w.type
    if kind in ("selectbox", "radio"):
        opt = rng.choice(w.options)
        _force(w, lambda ws: setattr(ws, "string_value", opt))
        return f"{_name(w)}={opt!r}"
    if kind == "select_slider":
        opts = w.options
        i = rng.choice([0, len(opts) - 1]) if mode == "extreme" and rng.random() < 0.6 else rng.randrange(len(opts))
        if isinstance(w.value, (list, tuple)):
            j = rng.randrange(i, len(opts))
            _force(w, lambda ws: ws.string_array_value.data.extend([opts[i], opts[j]]))
            return f"{_name(w)}=({opts[i]!r}, {opts[j]!r})"
        _force(w, lambda ws: ws.string_array_value.data.append(opts[i]))
        return f"{_name(w)}={opts[i]!r}"
    if kind == "button_group":  # segmented control / pills
        opt = rng.choice(w.options)
        _force(w, lambda ws: ws.string_array_value.data.append(opt))
        return f"{_name(w)}={opt!r}"
    if kind == "multiselect":
        picked = [o for o in w.options if rng.random() < 0.5]
        _force(w, lambda ws: ws.string_array_value.data.extend(picked))
        return f"{_name(w)}={picked!r}"
    if kind in ("toggle", "checkbox"):
        v = not w.value if rng.random() < 0.7 else bool(w.value)
        w.set_value(v)
        return f"{_name(w)}={v}"
    if kind == "slider":
        integer = isinstance(w.value, int) or (isinstance(w.value, (list, tuple)) and isinstance(w.value[0], int))
        lo, hi, step = w.min, w.max, w.step
        if isinstance(w.value, (list, tuple)):
            a, b = sorted(_number(rng, lo, hi, step, integer, mode) for _ in range(2))
            w.set_value([a, b])
            return f"{_name(w)}=({a}, {b})"
        v = _number(rng, lo, hi, step, integer, mode)
        w.set_value(v)
        return f"{_name(w)}={v}"
    if kind == "number_input":
        integer = isinstance(w.value, int)
        lo = w.min if w.min is not None else (w.value or 0) - 100
        hi = w.max if w.max is not None else (w.value or 0) + 100
        v = _number(rng, lo, hi, None, integer, mode)
        w.set_value(v)
        return f"{_name(w)}={v}"
    if kind == "text_input":
        v = _text_value(rng, w, data_dir)
        w.set_value(v)
        return f"{_name(w)}={v!r}"
    raise AssertionError(kind)


def live_widgets(at) -> list:
    """Every enabled input widget on the page (sidebar included)."""
    out = []
    for kind in KINDS:
        for w in getattr(at, kind):
            if getattr(w.proto, "disabled", False) or w.key == "dlviz.force_cpu":
                continue
            if w.type == "selectbox" and not w.options:
                continue
            out.append(w)
    return out


def buttons(at, suffix: str | None = None) -> list:
    """Enabled buttons: the run controls ending in ``suffix``, or (``None``) the cheap on-demand ones."""
    found = []
    for b in at.button:
        if b.proto.disabled or not b.key:
            continue
        if suffix is not None and b.key.endswith(suffix):
            found.append(b)
        elif suffix is None and not b.key.endswith(CONTROL) and (
                not EXPENSIVE.search(b.label or "") or (LONG and MODERATE.search(b.label or ""))):
            found.append(b)
    return found


def run_failures(at) -> list[str]:
    """Exceptions on the page, and runs that stopped because the demo itself raised (not the user's settings)."""
    out = [f"{e.message}\n" + "\n".join(e.stack_trace[-6:]) for e in at.exception]
    out += [e.value for e in at.error if "The run stopped with an error" in e.value and "DatasetMissing" not in e.value]
    return out


# -- links --------------------------------------------------------------------------------------------------
def random_query(rng: random.Random, page: str) -> dict[str, str]:
    """Query parameters of a shared link: valid, out of range and garbage values of the page's Config fields."""
    names = re.findall(r'get_demo\("([\w-]+)"\)', (ROOT / page).read_text(encoding="utf-8"))
    query: dict[str, str] = {}
    for name in names:
        demo = get_demo(name)
        fields = dataclasses.fields(demo.config_cls)
        for f in rng.sample(fields, min(len(fields), rng.randint(0, 4))):
            spec, default = spec_of(f), f.default
            if rng.random() < 0.35:
                query[f.name] = rng.choice(GARBAGE)
            elif spec.choices:
                query[f.name] = str(rng.choice(spec.choices))
            elif isinstance(default, bool):
                query[f.name] = rng.choice(["true", "false", "1", "off"])
            elif isinstance(default, (int, float)) and spec.lo is not None and spec.hi is not None:
                v = rng.choice([spec.lo, spec.hi, spec.lo - 1, spec.hi + 1, rng.uniform(spec.lo, spec.hi)])
                query[f.name] = str(int(v)) if isinstance(default, int) else repr(float(v))
            elif isinstance(default, str):
                query[f.name] = rng.choice(FORMULAS)
        if demo.presets and rng.random() < 0.5:
            query["preset"] = rng.choice([*demo.presets, "no-such-preset"])
    if rng.random() < 0.3:
        query["seed"] = rng.choice(["3", "-1", "abc", "99999999999", "2147483647"])
    for k, values in PAGE_QUERY.get(page, {}).items():
        if rng.random() < 0.6:
            query[k] = rng.choice(values)
    return query


# -- the random cases ---------------------------------------------------------------------------------------
def _case_seed(page: str, case: int) -> int:
    return zlib.crc32(f"{page}:{case + BASE_SEED}".encode())


CASE_LIST = [(page, case) for page in PAGES for case in range(min(CASES, CASE_CAP.get(page, CASES)))]


@pytest.mark.parametrize("page, case", CASE_LIST, ids=[f"{Path(p).stem}-{c}" for p, c in CASE_LIST])
def test_fuzz_page(page, case, app_env):
    seed = _case_seed(page, case)
    rng = random.Random(seed)
    # Extreme values on every third case; with one case per page (CI), every other page is extreme instead.
    mode = "extreme" if (case % 3 == 0 if CASES > 1 else PAGES.index(page) % 2 == 0) else "small"
    log: list[str] = []
    t0 = time.perf_counter()

    def check(what: str) -> None:
        log.append(f"{what} [{time.perf_counter() - t0:.1f}s]")
        bad = run_failures(at)
        assert not bad, (f"page {page}, case {case} (seed {seed}, {mode}); replay: DLVIZ_FUZZ_SEED={BASE_SEED} "
                         f"DLVIZ_FUZZ_CASES={case + 1} DLVIZ_FUZZ_LONG={int(LONG)} python -m pytest "
                         f"tests/test_fuzz_pages.py -k 'test_fuzz_page and {Path(page).stem}-{case}]'"
                         "\nactions:\n  " + "\n  ".join(log)
                         + "\nproblems:\n" + "\n---\n".join(bad))

    def act(what: str, fn) -> None:
        fn()
        at.run()
        check(what)

    def set_some(n: int) -> None:
        for _ in range(n):
            ws = live_widgets(at)
            if not ws:
                return
            w = rng.choice(ws)
            desc = set_random(rng, w, mode, app_env)
            act(f"set {desc}", lambda: None)

    def shake() -> None:  # every widget at once: combinations of extremes (Nesterov on with beta 0, ...)
        descs = [set_random(rng, w, mode, app_env) for w in live_widgets(at)]
        act("set all: " + ", ".join(descs), lambda: None)

    def press(suffix: str | None) -> None:
        bs = buttons(at, suffix)
        if bs:
            b = rng.choice(bs)
            act(f"click {b.key}", b.click)

    query = random_query(rng, page) if rng.random() < 0.5 else {}
    log.append(f"open {page} query={query}")
    at = open_page(page, query=query)
    check("opened")
    set_some(rng.randint(1, 3))
    press(".play")
    act("refresh", lambda: None)
    set_some(rng.randint(1, 3))  # while the run trains
    if mode == "extreme" or rng.random() < 0.25:
        shake()
    act("refresh", lambda: None)
    press(".step")
    act("refresh", lambda: None)
    if rng.random() < 0.3:
        press(None)  # a cheap on-demand button
    press(".pause")
    set_some(1)
    press(rng.choice([".play", ".step", ".reset"]))
    act("refresh", lambda: None)
    press(".reset")
    if rng.random() < 0.5:
        press(".play")
        act("refresh", lambda: None)
    for _ in range(8 if LONG else 0):  # a longer run: random actions in any order
        r = rng.random()
        if r < 0.35:
            set_some(1)
        elif r < 0.4:
            shake()
        elif r < 0.75:
            press(rng.choice(CONTROL))
        elif r < 0.85:
            press(None)
        else:
            act("refresh", lambda: None)
    if os.environ.get("DLVIZ_FUZZ_LOG"):  # the action list with timings, to see what is slow
        print(f"\n{page} case {case} (seed {seed}, {mode}):\n  " + "\n  ".join(log))


# -- every control changed at once, mid-run ----------------------------------------------------------------
LIVE_PARTS = [  # (page, {part widget: the option's label}, test id)
    ("pages/10_cnn.py", {}, "cnn"),
    ("pages/20_loss_surfaces.py", {}, "critical-points"),
    ("pages/20_loss_surfaces.py", {"surf.section": "Landscape of a real network"}, "landscape"),
    ("pages/30_optimizers.py", {}, "optimizers"),
    ("pages/30_optimizers.py", {"optimizers.part": "🧠 Real network"}, "optimizer-network"),
    ("pages/40_rnn.py", {}, "rnn"),
    ("pages/50_attention.py", {}, "kernel-regression"),
    ("pages/50_attention.py", {"attn.part": "4 · Transformer heads"}, "transformer"),
    ("pages/60_gan.py", {}, "gan-2d"),
    ("pages/60_gan.py", {"gan.view": "1-D: the original paper's picture"}, "gan-1d"),
    ("pages/60_gan.py", {"gan.view": "Digits GAN"}, "gan-digits"),
    ("pages/70_ssl.py", {}, "ssl"),
    ("pages/75_clip.py", {}, "clip"),
    ("pages/80_dino.py", {}, "dino"),
    ("pages/85_teachers.py", {}, "distill"),
    ("pages/85_teachers.py", {"teach.part": "2 · EMA teacher"}, "ema"),
    ("pages/87_mil.py", {}, "mil"),
    ("pages/90_features.py", {"features.method": "t-SNE"}, "tsne"),
]


def _choose(w, end: int) -> str:
    """Set ``w`` to a value different from its current one: the last option / maximum (``end`` 1) or first / min."""
    if w.type in ("selectbox", "radio", "select_slider", "button_group"):
        current = [o for o in w.options if o != _shown(w)]
        opt = current[-1 if end else 0] if current else w.options[0]
        if w.type in ("selectbox", "radio"):
            _force(w, lambda ws: setattr(ws, "string_value", opt))
        else:
            _force(w, lambda ws: ws.string_array_value.data.append(opt))
        return opt
    if w.type == "multiselect":
        picked = list(w.options) if end else w.options[:1]
        _force(w, lambda ws: ws.string_array_value.data.extend(picked))
        return str(picked)
    if w.type in ("toggle", "checkbox"):
        v = not w.value
        w.set_value(v)
        return str(v)
    if w.type == "slider" and not isinstance(w.value, (list, tuple)):
        v = w.max if end else w.min
        if v == w.value:
            v = w.min if end else w.max
        w.set_value(v)
        return str(v)
    return "unchanged"


def _shown(w) -> str | None:
    try:
        return w.options[w.index] if w.type in ("selectbox", "radio") else str(w.value)
    except (ValueError, TypeError, KeyError, IndexError):
        return None


PART_KEYS = {"surf.section", "attn.part", "gan.view", "features.method", "features.source", "teach.part",
             "optimizers.part"}  # other parts
# CI: one direction per part (alternating, about 40 s); a long run: both.
MID_RUN = [(page, setup, end, f"{name}-{'max' if end else 'min'}") for i, (page, setup, name) in enumerate(LIVE_PARTS)
           for end in (1, 0) if LONG or end == i % 2]


@pytest.mark.parametrize("page, setup, end", [m[:3] for m in MID_RUN], ids=[m[3] for m in MID_RUN])
def test_every_control_changed_mid_run(page, setup, end, app_env):
    """Start, then change every widget of the part at once: the run keeps drawing itself, with the 'press
    Reset' notice (the reproduced bugs: SSL 'compare with', CNN input size and dataset changed mid-run)."""
    at = open_page(page)
    for key, label in setup.items():
        w = next(w for kind in ("radio", "segmented_control") for w in getattr(at, kind) if w.key == key)
        _force(w, lambda ws, label=label: (ws.string_array_value.data.append(label) if w.type == "button_group"
                                           else setattr(ws, "string_value", label)))
        at.run()
    assert not run_failures(at), run_failures(at)
    plays = buttons(at, ".play")
    assert plays, f"no Start button on {page} {setup}"
    for b in plays:
        b.click()
    at.run()
    at.run()
    assert not run_failures(at), run_failures(at)
    runners = {k: at.session_state[k] for k in (b.key[:-len(".play")] + "._runner" for b in plays)}
    changed = []
    for kind in ("slider", "select_slider", "selectbox", "toggle", "radio", "segmented_control", "multiselect"):
        for w in getattr(at.main, kind):  # the run's controls and the page's view widgets; not the sidebar
            if w.key and not w.proto.disabled and w.key not in PART_KEYS \
                    and w.key.split(".")[-1] not in ("preset", "formula"):
                changed.append(f"{w.key}={_choose(w, end)}")
    at.run()
    problems = run_failures(at)
    assert not problems, f"{page} {setup}: changed {changed}\n" + "\n---\n".join(problems)
    at.run()  # a second refresh of the live area
    problems = run_failures(at)
    assert not problems, f"{page} {setup}: changed {changed}\n" + "\n---\n".join(problems)
    for k, r in runners.items():
        if r.status in ("running", "paused"):  # the run goes on with its own settings
            assert at.session_state[k] is r, k
    # Then paused: the timeline rewinds the part to its first checkpoint, and the replay files are made.
    rewound = 0
    for k, r in runners.items():
        prefix = k[:-len("._runner")]
        if at.session_state[k].status == "idle":  # a change that starts over (the critical-point function)
            next(b for b in at.button if b.key == f"{prefix}.play").click().run()
        r = at.session_state[k]
        deadline = time.monotonic() + 60
        while len(r.checkpoints) < 2 and r.status == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        if r.status == "failed" or len(r.checkpoints) < 2:
            continue  # an extreme setting that stops with its message (checked above) has nothing to rewind
        r.pause()
        with r._lock:  # the slice in flight ends at its next yield
            pass
        at.run()
        timeline = next((w for w in at.select_slider if w.key == f"{prefix}.rewind"), None)
        now = at.session_state[k]
        assert timeline is not None, (prefix, now is r, now.status, len(now.checkpoints), now.replaying,
                                      [w.key for w in at.select_slider], changed)
        timeline.set_value(r.checkpoints[0].step).run()
        problems = run_failures(at)
        assert not problems, f"{page} {setup}: rewound\n" + "\n---\n".join(problems)
        assert any(f"rewound to step {r.checkpoints[0].step} of" in c.value for c in at.caption), \
            ([c.value for c in at.caption][:3], [c.step for c in r.checkpoints], timeline.value, r.status)
        next(b for b in at.button if b.key == f"{prefix}.make_replay").click().run()
        problems = run_failures(at)
        assert not problems, f"{page} {setup}: replay\n" + "\n---\n".join(problems)
        _stamp, html, gif = at.session_state[f"{prefix}._replay"]
        slider_steps = len(re.findall(r'"method":\s*"animate"', html)) - 2  # less Play and Pause
        assert gif[:6] == b"GIF89a" and slider_steps == len(r.checkpoints), (prefix, slider_steps)
        rewound += 1
    assert rewound or any(r.status == "failed" for r in runners.values()), "no run of this part could be rewound"
