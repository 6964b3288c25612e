"""Optimizer race: torch.optim optimizers from the same start on a 2-D surface, with schedules and gradient noise."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from ..analysis.formula import parse_formula
from ..analysis.surfaces import SURFACES, Surface
from ..analysis.schedules import SCHEDULES
from ..analysis.trajectories import OPTIMIZERS, Race, distance_to_minima, make_optimizer, steps_to_converge
from ..config import param
from .base import Claim, Demo, Pacer, Preset, Snapshot

LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0)
BETAS = (0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
CUSTOM = "custom"
BOX_SCALE = 10  # a racer stops once it is this many half-widths of the view away from the view's center


def _lr(default: float, name: str):
    return param(default, f"learning rate of {OPTIMIZERS[name].label}", choices=LEARNING_RATES,
                 label=f"{OPTIMIZERS[name].label} lr")


def _use(default: bool, name: str):
    return param(default, f"include {OPTIMIZERS[name].label} in the race", label=OPTIMIZERS[name].label)


@dataclass(frozen=True)
class Config:
    # Row 1 of the controls (they are drawn 7 to a row): the problem.
    surface: str = param("d2l-quadratic", "the function to minimize; custom uses the formula",
                         choices=tuple(SURFACES) + (CUSTOM,))
    formula: str = param("x^4 - 2x^2 + y^2 + 0.3x", "f(x, y) for surface = custom: + - * / ^, sin cos exp log "
                         "sqrt abs tanh, pi, e", label="formula (custom)")
    start_x: float = param(-5.0, "x coordinate of the common start", label="start x")
    start_y: float = param(-2.0, "y coordinate of the common start (1e-6 puts it just off a saddle's axis)",
                           label="start y")
    steps: int = param(20, "optimizer steps per racer", lo=5, hi=1000)
    schedule: str = param("constant", "learning-rate schedule applied to every racer", choices=SCHEDULES)
    noise: float = param(0.0, "std of Gaussian noise added to every gradient (mini-batch noise)", lo=0.0, hi=2.0,
                         step=0.01, label="gradient noise σ")
    # Rows 2-4: one column per optimizer (those with extra hyperparameters first, so the rows line up).
    momentum: bool = _use(True, "momentum")
    nesterov: bool = _use(False, "nesterov")
    rmsprop: bool = _use(True, "rmsprop")
    adam: bool = _use(True, "adam")
    adamw: bool = _use(False, "adamw")
    sgd: bool = _use(True, "sgd")
    adagrad: bool = _use(True, "adagrad")
    lr_momentum: float = _lr(0.6, "momentum")
    lr_nesterov: float = _lr(0.3, "nesterov")
    lr_rmsprop: float = _lr(0.4, "rmsprop")
    lr_adam: float = _lr(0.4, "adam")
    lr_adamw: float = _lr(0.4, "adamw")
    lr_sgd: float = _lr(0.4, "sgd")
    lr_adagrad: float = _lr(0.4, "adagrad")
    momentum_beta: float = param(0.5, "momentum coefficient β of heavy ball", choices=BETAS, label="Momentum β")
    nesterov_beta: float = param(0.5, "momentum coefficient β of Nesterov", choices=BETAS, label="Nesterov β")
    rmsprop_gamma: float = param(0.9, "decay γ of RMSProp's squared-gradient average (torch: alpha)",
                                 choices=(0.5, 0.75, 0.9, 0.95, 0.99, 0.999), label="RMSProp γ")
    adam_beta1: float = param(0.9, "Adam's first-moment decay β1 (β2 = 0.999)", choices=BETAS, label="Adam β1")
    adamw_decay: float = param(0.1, "AdamW's decoupled weight decay λ (pulls toward the origin)",
                               choices=(0.0, 0.01, 0.1, 0.3, 1.0), label="AdamW decay λ")
    seed: int = param(0, "seed of the gradient noise", lo=0, hi=2**31 - 1, widget=False)

    def entries(self) -> dict[str, dict]:
        """Racer name -> {"lr": ..., hyperparameters} for the optimizers switched on, in registry order."""
        hyper = {"momentum": {"beta": self.momentum_beta}, "nesterov": {"beta": self.nesterov_beta},
                 "rmsprop": {"gamma": self.rmsprop_gamma}, "adam": {"beta1": self.adam_beta1},
                 "adamw": {"weight_decay": self.adamw_decay}}
        return {n: {"lr": getattr(self, f"lr_{n}"), **hyper.get(n, {})} for n in OPTIMIZERS if getattr(self, n)}


def _d(s: dict, n: str) -> float:
    """Final distance of racer ``n`` to the nearest minimum (claims read the summary's ``dist``)."""
    return s["dist"][n]


def _xy(s: dict, n: str) -> list[float]:
    return s["runs"][n]["final"]


_NONE = dict(sgd=False, momentum=False, nesterov=False, adagrad=False, rmsprop=False, adam=False, adamw=False)
_SADDLE = dict(surface="saddle", start_x=1.0, start_y=1e-6, steps=50)

PRESETS = {
    "d2l-quadratic": Preset(
        "d2l race on 0.1x₁² + 2x₂² (SGD, momentum, AdaGrad, RMSProp, Adam)", Config(),
        "20 steps from (-5, -2), as in d2l chapter 12: SGD crawls along x₁; momentum and RMSProp reach the minimum.",
        Claim("after 20 steps momentum and RMSProp are within 0.05 of the minimum, SGD still over 0.5 away (along x₁) "
              "and AdaGrad over 2", lambda s: _d(s, "momentum") < 0.05 and _d(s, "rmsprop") < 0.05
              and _d(s, "sgd") > 0.5 and _d(s, "adagrad") > 2, ("dist",))),
    "gd-lr-0.4": Preset("Gradient descent, lr 0.4", Config(**{**_NONE, "sgd": True}),
                        "Stable along x₂ (lr·4 = 1.6 < 2) but slow along x₁, where the curvature is 20x smaller.",
                        Claim("after 20 steps |x₂| < 0.01 but x₁ is still below -0.5 (it started at -5)",
                              lambda s: abs(_xy(s, "sgd")[1]) < 0.01 and _xy(s, "sgd")[0] < -0.5, ("final",))),
    "gd-lr-0.6": Preset("Gradient descent, lr 0.6: diverges along x₂", Config(**{**_NONE, "sgd": True}, lr_sgd=0.6),
                        "lr·4 = 2.4 > 2: each step multiplies x₂ by 1 − 2.4 = −1.4, so it zig-zags outward.",
                        Claim("diverges: x₂ zig-zags out of the view within 20 steps and the run is marked diverged",
                              lambda s: s["runs"]["sgd"]["status"] == "diverged", ("status",))),
    "momentum-0.5": Preset(
        "Momentum lr 0.6, β 0.5 (vs GD with the same lr)", Config(**{**_NONE, "sgd": True, "momentum": True},
                                                                  lr_sgd=0.6),
        "The lr that makes gradient descent diverge converges with momentum: the velocity averages the zig-zag.",
        Claim("gradient descent (lr 0.6) diverges; momentum with the same lr ends within 0.01 of the minimum",
              lambda s: s["runs"]["sgd"]["status"] == "diverged" and _d(s, "momentum") < 0.01, ("status", "dist"))),
    "momentum-0.25": Preset(
        "Momentum lr 0.6, β 0.25", Config(**{**_NONE, "momentum": True}, momentum_beta=0.25),
        "Less momentum: it still converges, but x₂ oscillates more and x₁ moves more slowly than with β = 0.5.",
        Claim("still converging after 20 steps: 0.1-0.5 from the minimum (β = 0.5 gets within 0.01)",
              lambda s: 0.1 < _d(s, "momentum") < 0.5, ("dist",))),
    "adagrad-0.4": Preset("AdaGrad lr 0.4", Config(**{**_NONE, "adagrad": True}),
                          "Per-coordinate steps shrink as squared gradients accumulate: it slows down long before x₁ is done.",
                          Claim("after 20 steps x₁ is still below -2 (it started at -5)",
                                lambda s: _xy(s, "adagrad")[0] < -2, ("final",))),
    "adagrad-2": Preset("AdaGrad lr 2", Config(**{**_NONE, "adagrad": True}, lr_adagrad=2.0),
                        "A 5x larger rate compensates the shrinking steps: close to the minimum in 20 steps.",
                        Claim("within 0.01 of the minimum after 20 steps", lambda s: _d(s, "adagrad") < 0.01, ("dist",))),
    "rmsprop": Preset("RMSProp lr 0.4, γ 0.9", Config(**{**_NONE, "rmsprop": True}),
                      "A leaky average of squared gradients: steps stay about lr in size, so it reaches x₁ ≈ 0.",
                      Claim("within 0.05 of the minimum after 20 steps", lambda s: _d(s, "rmsprop") < 0.05, ("dist",))),
    "rotated-quadratic": Preset(
        "The same race on the quadratic rotated by 45° (diagonal preconditioners lose their edge)",
        Config(surface="rotated-quadratic", start_x=SURFACES["rotated-quadratic"].start[0],
               start_y=SURFACES["rotated-quadratic"].start[1]),
        "Same curvatures, same start relative to the valley. SGD and momentum do exactly what they did on the "
        "aligned quadratic (their losses match step for step); AdaGrad, RMSProp and Adam scale each coordinate, "
        "and no coordinate follows the diagonal valley now: RMSProp's lead is gone.",
        Claim("after 20 steps SGD is 0.94 from the minimum, as on the aligned quadratic, but RMSProp now ends "
              "farther than SGD (aligned: within 0.05), and Adam and AdaGrad over 2.5 away",
              lambda s: abs(_d(s, "sgd") - 0.94) < 0.01 and _d(s, "rmsprop") > _d(s, "sgd")
              and min(_d(s, "adam"), _d(s, "adagrad")) > 2.5, ("dist",))),
    "saddle": Preset(
        "Saddle x² − y²: gradient descent stalls, momentum and Adam escape",
        Config(**{**_NONE, "sgd": True, "momentum": True, "adam": True, **_SADDLE}, lr_sgd=0.1, lr_momentum=0.1,
               momentum_beta=0.9, lr_adam=0.1),
        "From (1, 10⁻⁶) the gradient along y is tiny: GD slides to the saddle and waits; momentum compounds the tiny "
        "push, Adam rescales it to full size.",
        Claim("after 50 steps gradient descent is still within 0.05 of the saddle; momentum and Adam are past |y| = 1",
              lambda s: max(map(abs, _xy(s, "sgd"))) < 0.05 and abs(_xy(s, "momentum")[1]) > 1
              and abs(_xy(s, "adam")[1]) > 1, ("final",))),
    "saddle-noise": Preset(
        "Saddle x² − y²: gradient noise escapes", Config(**{**_NONE, "sgd": True, **_SADDLE}, lr_sgd=0.1, noise=0.05),
        "The same gradient descent as in the saddle preset, plus mini-batch-sized noise: the noise pushes it off.",
        Claim("after 50 steps |y| > 0.5: off the saddle (without noise it stays at |y| < 0.05)",
              lambda s: abs(_xy(s, "sgd")[1]) > 0.5, ("final",))),
    "rosenbrock": Preset(
        "Rosenbrock's valley", Config(**{**_NONE, "sgd": True, "momentum": True, "adam": True, "rmsprop": True},
                                      surface="rosenbrock", start_x=-1.5, start_y=2.5, steps=600, lr_sgd=1e-3,
                                      lr_momentum=1e-3, momentum_beta=0.9, lr_adam=0.03, lr_rmsprop=3e-3),
        "All find the curved valley floor quickly; following it to (1, 1) is slow without momentum.",
        Claim("after 600 steps all four lie on the valley floor (|y - x²| < 0.05); only momentum is within 0.15 of (1, 1)",
              lambda s: all(abs(r["final"][1] - r["final"][0] ** 2) < 0.05 for r in s["runs"].values())
              and _d(s, "momentum") < 0.15 and min(_d(s, n) for n in ("sgd", "rmsprop", "adam")) > 0.5,
              ("final", "dist"))),
    "noise-cosine": Preset(
        "Gradient noise with a cosine schedule",
        Config(**{**_NONE, "sgd": True, "adam": True}, steps=200, noise=1.0, schedule="cosine", lr_sgd=0.3,
               lr_adam=0.3),
        "Noise keeps a constant-rate run bouncing around the minimum; as the cosine schedule shrinks the rate, the "
        "runs settle. Switch the schedule to constant and press Reset to compare.",
        Claim("as the rate anneals both settle: each moves less than 0.1 in all over the last 20 steps (at a constant "
              "rate SGD moves about 12, Adam about 1.2) and ends with loss < 0.1",
              lambda s: all(r["moved_last_tenth"] < 0.1 and r["loss"] < 0.1 for r in s["runs"].values()),
              ("moved", "dist"))),
}


def resolve_surface(config: Config) -> Surface:
    """The Surface of ``config``; for custom, parsed from its formula (raises FormulaError when it is bad)."""
    if config.surface != CUSTOM:
        return SURFACES[config.surface]
    half = max(2.0, abs(config.start_x) * 1.2, abs(config.start_y) * 1.2)
    return parse_formula(config.formula, bounds=(-half, half, -half, half))


def stop_box(surface: Surface, start: tuple[float, float]) -> tuple[float, float, float, float]:
    """The region a racer may roam before it counts as diverged/escaped: the view scaled BOX_SCALE-fold."""
    x0, x1, y0, y1 = surface.bounds
    cx, cy, hx, hy = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    hx, hy = max(hx * BOX_SCALE, abs(start[0] - cx) * 2), max(hy * BOX_SCALE, abs(start[1] - cy) * 2)
    return cx - hx, cx + hx, cy - hy, cy + hy


def run(config: Config, device: torch.device) -> Iterator[Snapshot]:
    """Race the chosen optimizers; a snapshot at step 0 and about every steps/60 steps.

    Metrics per racer n: ``loss_n`` (f at its point), ``dist_n`` (to the nearest known minimum), ``lr_n``.
    Arrays: ``paths`` {n: (k, 2)}, ``losses`` {n: (k,)}, ``lrs`` {n: (k-1,)}, ``status`` {n: running |
    diverged | escaped}, ``stopped_at`` {n: step or None}. The race itself runs on the CPU (see ``Race``);
    ``device`` is unused here because two parameters gain nothing from an accelerator.
    """
    surface = resolve_surface(config)
    start = (config.start_x, config.start_y)
    race = Race(surface.fn, start, config.entries(), config.steps, config.schedule, config.noise, config.seed,
                box=stop_box(surface, start))
    every = max(1, math.ceil(config.steps / 60))  # at most ~60 frames: an animation of a few seconds

    def snapshot() -> Snapshot:
        paths, losses = race.paths(), race.losses()
        metrics = {}
        for n, r in race.racers.items():
            metrics[f"loss_{n}"] = losses[n][-1]
            if surface.minima:
                metrics[f"dist_{n}"] = float(distance_to_minima(paths[n][-1:], surface.minima)[0])
            metrics[f"lr_{n}"] = r.opt.param_groups[0]["lr"]
        return Snapshot(race.t, metrics, {
            "paths": paths, "losses": losses, "lrs": {n: np.asarray(r.lrs) for n, r in race.racers.items()},
            "status": {n: r.status for n, r in race.racers.items()},
            "stopped_at": {n: r.stopped_at for n, r in race.racers.items()}})

    yield snapshot()
    for t in range(1, config.steps + 1):
        race.step()
        if t % every == 0 or t == config.steps:
            yield snapshot()


def _summarize(snap: Snapshot, runner) -> dict:
    surface = resolve_surface(runner.config)
    runs = {}
    for n, path in snap.arrays["paths"].items():
        runs[n] = {"final": [float(v) for v in path[-1]], "loss": float(snap.arrays["losses"][n][-1]),
                   "steps_to_converge": steps_to_converge(path, surface.minima),
                   "status": {"running": "finished"}.get(snap.arrays["status"][n], snap.arrays["status"][n])}
        if snap.arrays["stopped_at"][n] is not None:
            runs[n]["stopped_at"] = snap.arrays["stopped_at"][n]
        tail = np.asarray(path)[-(max(1, len(path) // 10) + 1):]  # path length over the last tenth of the steps
        runs[n]["moved_last_tenth"] = float(np.linalg.norm(np.diff(tail, axis=0), axis=1).sum())
    # Flat figures for claims and the verify table: distance to the nearest minimum, final point, status.
    dist = {n: round(snap.metrics[f"dist_{n}"], 4) for n in runs if f"dist_{n}" in snap.metrics}
    return {"runs": runs, "steps": snap.step, "surface": surface.slug, "dist": dist,
            "final": {n: [round(v, 3) for v in r["final"]] for n, r in runs.items()},
            "status": {n: r["status"] for n, r in runs.items()},
            "moved": {n: round(r["moved_last_tenth"], 4) for n, r in runs.items()}}


def _bench_race(device: torch.device) -> dict:
    """Race speed: optimizer steps per second over all racers (Rosenbrock preset, 4 racers x 600 steps),
    and the seconds to finish the d2l-quadratic preset (20 steps x 5 racers)."""
    from ..runner import Runner

    out = {}
    for slug in ("rosenbrock", "d2l-quadratic"):
        cfg = PRESETS[slug].config
        t0 = time.perf_counter()
        r = Runner(DEMOS[0], cfg, device)
        r.run_to_end()
        wall = time.perf_counter() - t0
        out[f"{slug}_seconds"] = round(wall, 4)
        out[f"{slug}_racer_steps_per_second"] = round(len(cfg.entries()) * cfg.steps / wall, 1)
    return out


# -- the same optimizers on a real network --------------------------------------------------------------------
NET_LR = {"sgd": 0.1, "momentum": 0.03, "nesterov": 0.03, "adagrad": 0.05, "rmsprop": 0.003, "adam": 0.01,
          "adamw": 0.01}  # per-optimizer default rates (momentum and Nesterov use beta 0.9)
NET_HYPER = {"momentum": {"beta": 0.9}, "nesterov": {"beta": 0.9}, "adamw": {"weight_decay": 0.01}}


@dataclass(frozen=True)
class NetConfig:
    sgd: bool = param(True, "train a copy with SGD (lr 0.1 x scale)", label="SGD")
    momentum: bool = param(True, "train a copy with momentum 0.9 (lr 0.03 x scale)", label="Momentum")
    nesterov: bool = param(False, "train a copy with Nesterov 0.9 (lr 0.03 x scale)", label="Nesterov")
    adagrad: bool = param(False, "train a copy with AdaGrad (lr 0.05 x scale)", label="AdaGrad")
    rmsprop: bool = param(True, "train a copy with RMSProp (lr 0.003 x scale)", label="RMSProp")
    adam: bool = param(True, "train a copy with Adam (lr 0.01 x scale)", label="Adam")
    adamw: bool = param(False, "train a copy with AdamW, weight decay 0.01 (lr 0.01 x scale)", label="AdamW")
    lr_scale: float = param(1.0, "multiplies every optimizer's default learning rate",
                            choices=(0.1, 0.3, 1.0, 3.0, 10.0, 30.0), label="lr scale")
    steps: int = param(400, "optimizer steps per copy", lo=20, hi=5000)
    batch_size: int = param(32, "points per mini-batch (the same batches for every copy)", choices=(8, 32, 128, 512),
                            label="batch size")
    hidden: int = param(16, "units in each of the two tanh hidden layers", choices=(8, 16, 32, 64))
    eval_every: int = param(10, "optimizer steps between snapshots", lo=1, hi=100, label="steps per snapshot")
    seed: int = param(0, "seed of the data, the shared initialization and the batch order", lo=0, hi=2**31 - 1,
                      widget=False)

    def names(self) -> list[str]:
        return [n for n in OPTIMIZERS if getattr(self, n)]


NET_PRESETS = {"moons": Preset("Two moons, four optimizers, one initialization", NetConfig(),
                               "Same network, same start, same mini-batches: only the optimizer differs.",
                               Claim("after 400 steps from one initialization on the same batches, Adam and momentum "
                                     "end with a lower loss than plain SGD, and every copy classifies >= 85% right",
                                     lambda s: max(s["runs"]["adam"]["loss"], s["runs"]["momentum"]["loss"])
                                     < s["runs"]["sgd"]["loss"] and min(r["acc"] for r in s["runs"].values()) >= 0.85,
                                     ("runs",)))}


def moons(seed: int, n: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's two moons (noise 0.2), standardized: x (n, 2) float32, y (n,) int64."""
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n, noise=0.2, random_state=seed)
    x = (x - x.mean(0)) / x.std(0)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


def make_net(hidden: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(2, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, hidden),
                               torch.nn.Tanh(), torch.nn.Linear(hidden, 2))


def flat_params(model: torch.nn.Module) -> np.ndarray:
    return torch.nn.utils.parameters_to_vector(model.parameters()).detach().cpu().numpy().astype(np.float64)


def run_network(config: NetConfig, device: torch.device) -> Iterator[Snapshot]:
    """Copies of one initialized MLP, one per optimizer, trained on the same mini-batches of two moons.

    Metrics: ``loss_n`` (full-data cross-entropy) and ``acc_n`` per optimizer n. Arrays: ``params`` {n: (k, P)}
    flattened parameters at every snapshot, ``init`` (P,), ``steps`` (k,).
    """
    import copy

    import torch.nn.functional as F

    from ..device import run_generator, seeded

    names = config.names()
    if not names:
        raise ValueError("Pick at least one optimizer.")
    gen = run_generator(config.seed)
    x, y = (t.to(device) for t in moons(config.seed))
    with seeded(config.seed):
        base = make_net(config.hidden).to(device)
    models = {n: copy.deepcopy(base) for n in names}
    opts = {n: make_optimizer(n, models[n].parameters(), NET_LR[n] * config.lr_scale, **NET_HYPER.get(n, {}))
            for n in names}
    # Parameters at every snapshot, one row each, in arrays allocated once (memory is committed as rows are
    # written): a snapshot hands out views of the rows so far (later snapshots write only later rows; treat them
    # as read-only), so it costs O(P), not a copy of the whole history (5,000 snapshots of 7 networks would
    # copy gigabytes each near the end of a run).
    rows = config.steps // config.eval_every + 2
    history = {n: np.empty((rows, flat_params(base).size)) for n in names}
    steps_seen = np.zeros(rows, dtype=np.int64)
    k = 0

    def snapshot(step: int) -> Snapshot:
        nonlocal k
        metrics = {}
        with torch.no_grad():
            for n, m in models.items():
                out = m(x)
                metrics[f"loss_{n}"] = float(F.cross_entropy(out, y))
                metrics[f"acc_{n}"] = float((out.argmax(1) == y).float().mean())
                history[n][k] = flat_params(m)
        steps_seen[k] = step
        k += 1
        return Snapshot(step, metrics, {"params": {n: h[:k] for n, h in history.items()},
                                        "init": history[names[0]][0], "steps": steps_seen[:k]})

    def train_step(idx: torch.Tensor) -> None:
        for n, m in models.items():
            loss = F.cross_entropy(m(x[idx]), y[idx])
            opts[n].zero_grad(set_to_none=True)
            loss.backward()
            opts[n].step()

    yield snapshot(0)
    pacer = Pacer()  # Pause/Reset within a fraction of a second: 100 steps of 7 networks at batch 512 take a second
    for step in range(1, config.steps + 1):
        idx = torch.randint(0, len(y), (config.batch_size,), generator=gen).to(device)
        yield from pacer.call(step, train_step, idx)  # a heartbeat after the step when one is due
        if step % config.eval_every == 0 or step == config.steps:
            yield snapshot(step)
            pacer.reset()


def network_plane(config: NetConfig, snap: Snapshot, n: int = 25, device: torch.device | str = "cpu") -> dict:
    """The trajectories of ``snap`` in their shared PCA plane and the full-data loss over that plane.

    Returns {"coords": {name: (k, 2)}, "explained": (2,), "A", "B", "L": (n, n) grids}.
    """
    import torch.nn.functional as F

    from ..analysis.trajectories import pca_plane, plane_loss

    x, y = (t.to(device) for t in moons(config.seed))
    origin = snap.arrays["init"]
    basis, coords, explained = pca_plane(snap.arrays["params"], origin)
    pts = np.concatenate(list(coords.values()))
    lo, hi = pts.min(0), pts.max(0)
    pad = 0.25 * np.maximum(hi - lo, 1e-3)
    extent = (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1])
    A, B, L = plane_loss(make_net(config.hidden).to(device), origin, basis, x, lambda out: F.cross_entropy(out, y),
                         extent, n)
    return {"coords": coords, "explained": explained, "A": A, "B": B, "L": L}


def _summarize_network(snap: Snapshot, runner) -> dict:
    names = [k[len("loss_"):] for k in snap.metrics if k.startswith("loss_")]
    return {"runs": {n: {"loss": snap.metrics[f"loss_{n}"], "acc": snap.metrics[f"acc_{n}"]} for n in names},
            "steps": snap.step}


DEMOS = [Demo(
    name="optimizers", title="Optimizer race on a 2-D surface",
    summary="SGD, momentum, Nesterov, AdaGrad, RMSProp, Adam and AdamW (torch.optim) race from one start point.",
    config_cls=Config, presets=PRESETS, run=run, summarize=_summarize,
    benchmarks={"optimizers race": _bench_race},
), Demo(
    name="optimizers-network", title="Optimizers on a real network",
    summary="One MLP, one initialization, the same mini-batches: loss curves per optimizer and their paths in a PCA plane.",
    config_cls=NetConfig, presets=NET_PRESETS, run=run_network, summarize=_summarize_network,
)]

