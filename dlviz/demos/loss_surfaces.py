"""Loss surfaces: critical points and saddle escape on analytic surfaces, and the landscape of a real network.

Two demos: ``critical-points`` (gradient descent a hair off a saddle, and a step along its negative-curvature
eigenvector) and ``landscape`` (a small network trains live; slices, PCA path and Hessian are computed on request).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..analysis import landscape as ls
from ..analysis.critical_points import find_critical_points, value_and_grad
from ..analysis.formula import FormulaError, parse_formula
from ..analysis.hessian import hessian_extreme_eigs
from ..analysis.surfaces import SURFACES, Surface
from ..config import param
from ..i18n import N_, Msg
from ..device import run_generator, seeded
from ..models.lenet import LeNet
from ..models.mlp import MLP
from .base import Claim, Demo, DivergedError, Pacer, Preset, Snapshot, check_finite

DESCENT_LRS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)


# == critical points and saddle escape ====================================================================
@dataclass(frozen=True)
class CPConfig:
    surface: str = param("lee", "the surface; 'custom' uses the formula", choices=(*SURFACES, "custom"))
    formula: str = param("x^4 - 2x^2 + y^2", "your own f(x, y) (used when surface = custom): + - * / ^, numbers, "
                         "x, y, sin cos tan exp log tanh sqrt abs", label="custom formula f(x, y)")
    saddle: int = param(0, "which saddle (in the list of critical points) gradient descent visits", lo=0, hi=9,
                        label="saddle #")
    lr: float = param(0.05, "gradient descent step size", choices=DESCENT_LRS, label="learning rate")
    hair: float = param(1e-6, "offset of the start along the negative-curvature eigenvector: smaller = longer plateau",
                        choices=(1e-10, 1e-8, 1e-6, 1e-4, 1e-2), label="hair off the saddle")
    escape: float = param(0.2, "length of the escape step along the negative-curvature eigenvector",
                          choices=(0.02, 0.05, 0.1, 0.2, 0.5), label="escape step")
    steps: int = param(400, "gradient descent steps", lo=10, hi=3000)
    every: int = param(4, "descent steps per snapshot", lo=1, hi=50, label="steps per snapshot")
    seed: int = param(0, "unused by the analytic surfaces (kept for the shared link)", lo=0, hi=2**31 - 1,
                      widget=False)


CP_PRESETS = {
    "lee": Preset("Saddle of a two-layer linear net: (1 - w1 w2)^2", CPConfig(),
                  "The loss sits at 1 for a long plateau (gradient norm near zero), then drops; the escape step "
                  "along the negative eigenvector drops at once.",
                  Claim("descent stays within 0.1 of the saddle (loss ≈ 1) for 80-130 steps and reaches loss 0 only "
                        "after step 120; the escape step gets there within 40 steps",
                        lambda s: 80 <= s["plateau_steps"] <= 130 and s["steps_to_final"] > 120
                        and s["escape_steps_to_final"] <= 40 and s["final_loss"] < 1e-3,
                        ("plateau_steps", "steps_to_final", "escape_steps_to_final"))),
    "himmelblau": Preset("Himmelblau: four minima, four saddles, one maximum", CPConfig(surface="himmelblau", lr=0.01,
                                                                                      escape=0.5, steps=300),
                         "Each saddle sits between two minima; which one descent reaches depends on the side.",
                         Claim("the finder shows 4 minima, 4 saddles and 1 maximum; descent from beside the saddle "
                               "and the escape step both end in a minimum (loss < 1e-6)",
                               lambda s: s["kinds"] == {"minimum": 4, "saddle": 4, "maximum": 1}
                               and s["final_loss"] < 1e-6 and s["escape_final_loss"] < 1e-6,
                               ("kinds", "final_loss", "escape_final_loss"))),
    "six-hump-camel": Preset("Six-hump camel: 15 critical points", CPConfig(surface="six-hump-camel", lr=0.02),
                             "Six minima, two maxima and seven saddles in one small view.",
                             Claim("the finder shows 6 minima, 2 maxima and 7 saddles; descent from beside the saddle "
                                   "stops in a local minimum (gradient norm < 1e-6) above the global one (-1.03)",
                                   lambda s: s["kinds"] == {"minimum": 6, "maximum": 2, "saddle": 7}
                                   and s["final_grad_norm"] < 1e-6 and s["final_loss"] > -1.0,
                                   ("kinds", "final_loss", "final_grad_norm"))),
    "tiny-hair": Preset("A smaller hair: a longer plateau", CPConfig(hair=1e-10),
                        "The plateau lengthens by log(1e4)/log(1 + lr |lambda_min|) steps over the default.",
                        Claim("descent stays within 0.1 of the saddle for 170-230 steps: about log(10⁴)/log(1.1) ≈ 97 "
                              "more than the default hair's 80-130",
                              lambda s: 170 <= s["plateau_steps"] <= 230 and s["final_loss"] < 1e-3,
                              ("plateau_steps", "steps_to_final"))),
}


def surface_for(config: CPConfig) -> Surface:
    """The config's surface; raises FormulaError for a bad custom formula."""
    if config.surface == "custom":
        return parse_formula(config.formula)
    return SURFACES[config.surface]


@lru_cache(maxsize=64)
def _critical_points_cached(slug: str, formula: str):
    s = parse_formula(formula) if slug == "custom" else SURFACES[slug]
    return tuple(find_critical_points(s))


def critical_points_for(config: CPConfig):
    """Critical points of the config's surface (cached by surface and formula; they are pure functions)."""
    return list(_critical_points_cached(config.surface, config.formula if config.surface == "custom" else ""))


def run_critical_points(config: CPConfig, device: torch.device) -> Iterator[Snapshot]:
    """Gradient descent from near a saddle ("hair") and from one escape step along its negative eigenvector.

    Arrays: ``critical`` (list of CLI dicts), ``pivot`` (2,), ``path`` (t, 2), ``escape_path`` (t, 2) or absent.
    Any failure on a custom formula (overflow, a value autograd cannot differentiate) ends the run with a
    :class:`DivergedError` naming the formula.
    """
    if config.surface != "custom":
        yield from _run_critical_points(config, device)
        return
    try:
        yield from _run_critical_points(config, device)
    except DivergedError:
        raise
    except Exception as exc:
        raise DivergedError(Msg(N_("Gradient descent on f(x, y) = {formula} failed ({error}). Change the formula "
                                   "and press Reset."), formula=config.formula.strip(),
                                error=f"{type(exc).__name__}: {str(exc)[:120]}")) from None


def _run_critical_points(config: CPConfig, device: torch.device) -> Iterator[Snapshot]:
    try:
        surface = surface_for(config)
    except FormulaError as exc:
        raise DivergedError(Msg(N_("The formula cannot be used: {reason} (position {position}). Fix it in the "
                                   "controls."), reason=exc.reason, position=exc.position + 1)) from None
    points = critical_points_for(config)
    saddles = [p for p in points if p.kind == "saddle"] or [p for p in points if p.kind == "degenerate"]
    xmin, xmax, ymin, ymax = surface.bounds
    span = max(xmax - xmin, ymax - ymin)
    starts: dict[str, np.ndarray] = {}
    if saddles:
        piv = saddles[min(config.saddle, len(saddles) - 1)]
        c = np.array([piv.x, piv.y])
        v_neg, v_pos = np.array(piv.eigenvectors[0]), np.array(piv.eigenvectors[1])
        # Arrive along the positive-curvature direction (visible), a hair off along the negative one.
        starts["path"] = c + 0.1 * span * v_pos + config.hair * v_neg
        starts["escape_path"] = c + config.escape * v_neg
    else:
        piv = None
        c = np.array(surface.start or ((xmin + xmax) / 2 + 0.3 * (xmax - xmin), (ymin + ymax) / 2))
        starts["path"] = c
    # Cap the step at 1 / (largest curvature among the critical points) so descent is stable on every surface
    # (Rosenbrock's minimum has curvature ~1000); the lr actually used is reported.
    curv = max((abs(e) for p in points for e in p.eigenvalues), default=0.0)
    lr = min(config.lr, 1.0 / curv) if curv > 0 else config.lr
    pts = {k: v.astype(np.float64) for k, v in starts.items()}
    paths: dict[str, list[np.ndarray]] = {k: [] for k in pts}  # the points whose metrics were reported
    critical = [p.as_dict() for p in points]
    hint = Msg(N_("Gradient descent diverged: lower the learning rate (now {lr}) and press Reset."), lr=f"{lr:g}")
    if config.surface == "custom":
        hint = Msg(N_("f(x, y) = {formula} is undefined or overflows there, or descent diverged: change the formula "
                      "or lower the learning rate (now {lr}), and press Reset."), formula=config.formula.strip(),
                   lr=f"{lr:g}")

    def metrics_and_step(step: int) -> dict[str, float]:
        m: dict[str, float] = {}
        for k, p in pts.items():
            f, g = value_and_grad(surface, p[:1], p[1:])
            prefix = "" if k == "path" else "escape_"
            m[f"{prefix}loss"] = check_finite(f[0], step, "loss", hint)
            m[f"{prefix}grad_norm"] = float(np.linalg.norm(g[0]))
            if k == "path":
                m["distance_to_saddle"] = float(np.linalg.norm(p - c)) if piv is not None else float("nan")
            paths[k].append(p.copy())
            # A path that leaves the view by a whole view width (x^2 - y^2 is unbounded below) stops there.
            if xmin - span <= p[0] <= xmax + span and ymin - span <= p[1] <= ymax + span:
                pts[k] = p - lr * g[0]
        m["lr_used"] = lr
        return m

    def snap(step: int, m: dict) -> Snapshot:
        return Snapshot(step, m, {"critical": critical, "pivot": c, "surface": config.surface,
                                  "eigenvectors": piv.eigenvectors if piv else None,
                                  "eigenvalues": piv.eigenvalues if piv else (),
                                  **{k: np.array(v) for k, v in paths.items()}})

    yield snap(0, metrics_and_step(0))
    for step in range(1, config.steps + 1):
        m = metrics_and_step(step)
        if step % config.every == 0 or step == config.steps:
            yield snap(step, m)


def _summarize_cp(snap: Snapshot, runner) -> dict:
    hist = runner.history
    plateau = sum(1 for r in hist if r.get("grad_norm", 1.0) < 1e-3)
    kinds: dict[str, int] = {}
    for p in snap.arrays["critical"]:
        kinds[p["kind"]] = kinds.get(p["kind"], 0) + 1
    near = [r["step"] for r in hist if r.get("distance_to_saddle", math.inf) < 0.1]

    def steps_to_final(key: str) -> int | None:  # first snapshot within 0.01 of the run's final loss
        if key not in snap.metrics:
            return None
        return next((int(r["step"]) for r in hist if abs(r[key] - snap.metrics[key]) < 0.01), None)

    return {"critical_points": snap.arrays["critical"], "surface": snap.arrays["surface"], "kinds": kinds,
            "final_loss": snap.metrics["loss"], "escape_final_loss": snap.metrics.get("escape_loss"),
            "final_grad_norm": snap.metrics["grad_norm"], "lr_used": snap.metrics["lr_used"],
            # steps descent spent within 0.1 of the saddle (first to last snapshot there): the plateau
            "plateau_steps": int(near[-1] - near[0]) if near else 0,
            "steps_to_final": steps_to_final("loss"), "escape_steps_to_final": steps_to_final("escape_loss"),
            "snapshots_on_plateau": plateau, "steps": snap.step}


def _bench_critical_points(device: torch.device) -> dict:
    t = time.perf_counter()
    n = {s: len(find_critical_points(SURFACES[s])) for s in SURFACES}
    return {"critical_points_all_surfaces_seconds": round(time.perf_counter() - t, 3), "counts": n}


# == the landscape of a real network ======================================================================
OPTIMIZERS = {
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr),
    "momentum": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
}
MODELS = ("lenet", "mlp", "mlp-2d")
LANDSCAPE_EXAMPLES = 1024  # training examples the landscape and the Hessian are computed on


@dataclass(frozen=True)
class LSConfig:
    model: str = param("lenet", "LeNet or an MLP (64-32-32-10) on 8x8 digits, or a tiny MLP (2-16-16-2) on moons",
                       choices=MODELS)
    batchnorm: bool = param(False, "BatchNorm after each hidden layer of the MLPs (the landscape uses eval mode)")
    optimizer: str = param("sgd", "sgd, heavy-ball momentum (0.9) or Adam", choices=tuple(OPTIMIZERS))
    lr: float = param(0.3, "learning rate", choices=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0),
                      label="learning rate")
    batch_size: int = param(32, "examples per step (small batches end in wider basins)",
                            choices=(8, 16, 32, 64, 128, 256, 512, 1024), label="batch size")
    steps: int = param(600, "optimizer steps", lo=10, hi=5000)
    every: int = param(10, "optimizer steps per snapshot", lo=1, hi=200, label="steps per snapshot")
    grid: int = param(41, "points per side of the 2-D slice", lo=5, hi=81, label="slice resolution")
    extent: float = param(1.0, "the slice spans [-extent, extent] along each filter-normalized direction",
                          choices=(0.25, 0.5, 1.0, 2.0), label="slice extent")
    seed: int = param(0, "seed for initialization, data order and directions", lo=0, hi=2**31 - 1, widget=False)



def _monotone_line_claim(figures: tuple[str, ...]) -> Claim:
    """LeNet's and the MLP's shared claim: they learn, and the straight line from init to the end descends."""
    return Claim("after 600 steps test accuracy >= 93% and the training loss along the line from init to the "
                 "trained weights never rises (largest rise between neighbouring points < 0.01)",
                 lambda s: s["test_acc"] >= 0.93 and s["line_max_rise"] < 0.01, figures)


LS_PRESETS = {
    "lenet-sgd": Preset("LeNet on digits, SGD", LSConfig(),
                        "About 95% test accuracy after 400 steps (on an occasional seed SGD stays stuck at chance: "
                        "Reset with another seed); then compute the slices: the 1-D line from init to the trained "
                        "weights falls without bumps.",
                        _monotone_line_claim(("test_acc", "line_max_rise", "line_init_loss", "line_end_loss"))),
    "mlp-digits": Preset("MLP on digits", LSConfig(model="mlp"),
                         "No convolutions, about 96% test accuracy: a bowl much like LeNet's at the same extent "
                         "(25-35% of the slice within 0.5 of the trained loss; LeNet's: about 26%).",
                         _monotone_line_claim(("test_acc", "line_max_rise", "slice_basin_share", "lambda_max"))),
    "mlp-batchnorm": Preset("MLP with BatchNorm", LSConfig(model="mlp", batchnorm=True),
                            "Slices use the running statistics (eval mode); BatchNorm's scale and shift stay fixed.",
                            Claim("the slice's center is the trained model's eval-mode loss (equal to 1e-4: running "
                                  "statistics) and test accuracy >= 88%",
                                  lambda s: abs(s["center_loss"] - s["model_loss"]) < 1e-4 and s["test_acc"] >= 0.88,
                                  ("center_loss", "model_loss", "test_acc"))),
    "moons": Preset("Tiny MLP on two moons", LSConfig(model="mlp-2d", lr=0.3, steps=1500, every=25),
                    "A few hundred weights: the whole run is a second; the slice is visibly non-convex.",
                    Claim("the slice is non-convex: at least 10% of its second differences are clearly negative "
                          "(LeNet's and the digit MLP's: 0-2%), and test accuracy >= 90%",
                          lambda s: s["slice_concave_share"] >= 0.1 and s["test_acc"] >= 0.9,
                          ("slice_concave_share", "test_acc"))),
    "large-batch": Preset("Large batch (1024)", LSConfig(batch_size=1024),
                          "Same steps and learning rate: compare the top Hessian eigenvalue with the small batch.",
                          Claim("a sharper minimum than with batch 32: after 600 steps the top Hessian eigenvalue "
                                "λ_max > 2 (the lenet-sgd preset, batch 32: about 1.3) and test accuracy >= 93%",
                                lambda s: s["lambda_max"] > 2 and s["test_acc"] >= 0.93,
                                ("lambda_max", "slice_basin_share", "test_acc"))),
}


@dataclass(frozen=True)
class LandscapeData:
    """Tensors on the CPU: training set, the landscape subset (first 1024 training examples) and the test set."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    in_shape: tuple[int, ...]
    n_classes: int

    @property
    def x_land(self) -> torch.Tensor:
        return self.x_train[:LANDSCAPE_EXAMPLES]

    @property
    def y_land(self) -> torch.Tensor:
        return self.y_train[:LANDSCAPE_EXAMPLES]


@lru_cache(maxsize=4)
def landscape_data(model: str) -> LandscapeData:
    """Digits (8x8) for LeNet and the MLP; 1,500 noisy two-moons points (fixed seed) for the 2-D MLP."""
    if model == "mlp-2d":
        from sklearn.datasets import make_moons

        X, y = make_moons(1500, noise=0.2, random_state=0)
        X = torch.tensor((X - X.mean(0)) / X.std(0), dtype=torch.float32)
        y = torch.tensor(y, dtype=torch.int64)
        return LandscapeData(X[:1200], y[:1200], X[1200:], y[1200:], (2,), 2)
    from ..data.digits import load_digits_split

    d = load_digits_split(8)
    return LandscapeData(d.x_train, d.y_train, d.x_test, d.y_test, (1, 8, 8), 10)


def build_model(config: LSConfig) -> torch.nn.Module:
    if config.model == "lenet":
        return LeNet(8, "relu", "max")
    if config.model == "mlp":
        return MLP(64, (32, 32), 10, "relu", config.batchnorm)
    return MLP(2, (16, 16), 2, "tanh", config.batchnorm)


def _evaluate(model, x, y) -> tuple[float, float]:
    was = model.training
    model.eval()
    with torch.no_grad():
        logits = model(x)
        out = float(F.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())
    model.train(was)
    return out


def run_landscape(config: LSConfig, device: torch.device) -> Iterator[Snapshot]:
    """Train the model; a snapshot every ``every`` steps.

    Arrays: ``init`` and ``params`` (flat (D,) CPU vectors: weights at step 0 and now), ``path`` (tuple of flat
    vectors, one per snapshot so far; shared, not copied), ``buffers`` (BatchNorm running statistics, CPU).
    """
    data = landscape_data(config.model)
    gen = run_generator(config.seed)
    with seeded(config.seed):
        model = build_model(config).to(device)
    xtr, ytr = data.x_train.to(device), data.y_train.to(device)
    xte, yte = data.x_test.to(device), data.y_test.to(device)
    xl, yl = data.x_land.to(device), data.y_land.to(device)
    opt = OPTIMIZERS[config.optimizer](model.parameters(), config.lr)
    init = ls.flatten(ls.params_of(model)).cpu()
    path: list[np.ndarray] = []

    def snapshot(step: int, train_loss: float | None) -> Snapshot:
        flat = ls.flatten(ls.params_of(model)).cpu()
        path.append(flat.numpy())
        land_loss, land_acc = _evaluate(model, xl, yl)
        test_loss, test_acc = _evaluate(model, xte, yte)
        return Snapshot(step, {"train_loss": land_loss if train_loss is None else train_loss,
                               "landscape_loss": land_loss, "train_acc": land_acc, "test_loss": test_loss,
                               "test_acc": test_acc, "distance_from_init": float((flat - init).norm())},
                        {"init": init, "params": flat, "path": tuple(path),
                         "buffers": {k: v.detach().cpu().clone() for k, v in model.named_buffers()}})

    yield snapshot(0, None)
    # Pause/Reset within a fraction of a second: 200 steps per snapshot at batch 1024 take seconds.
    pacer = Pacer()

    def train_step(idx: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    n, step, running = len(ytr), 0, []
    order = torch.randperm(n, generator=gen).to(device)
    pos = 0
    while step < config.steps:
        if pos + config.batch_size > n:
            order, pos = torch.randperm(n, generator=gen).to(device), 0
        idx = order[pos:pos + config.batch_size]
        pos += config.batch_size
        running.append((yield from pacer.call(step + 1, train_step, idx)))
        step += 1
        if step % config.every == 0 or step == config.steps:
            train_loss = check_finite(torch.stack(running).mean(), step, "training loss",
                                      Msg(N_("The learning rate {lr} is too high for {optimizer}: lower it and press "
                                             "Reset."), lr=f"{config.lr:g}", optimizer=config.optimizer))
            if train_loss > 50:
                raise DivergedError(Msg(N_("The training loss exploded to {loss} at step {step}: lower the learning "
                                           "rate (now {lr}) and press Reset."), loss=f"{train_loss:.3g}", step=step,
                                        lr=f"{config.lr:g}"))
            running = []
            yield (yield from pacer.call(step, snapshot, step, train_loss))
            pacer.reset()


def model_at(config: LSConfig, snap: Snapshot, device: torch.device | str = "cpu"):
    """(model, params dict at the snapshot, init params dict), on ``device``; the model carries the snapshot's
    BatchNorm statistics. The model object is fresh: nothing shared with the live run is touched."""
    with seeded(0):  # its parameters are replaced by the snapshot's
        model = build_model(config).to(device)
    for k, v in snap.arrays["buffers"].items():
        model.get_buffer(k).copy_(v)
    like = {k: v.detach().to(device) for k, v in model.named_parameters()}
    params = ls.unflatten(snap.arrays["params"].to(device), like)
    init = ls.unflatten(snap.arrays["init"].to(device), like)
    return model, params, init


def slice_2d(config: LSConfig, snap: Snapshot, device: torch.device | str = "cpu", seed_offset: int = 0,
             n: int | None = None, test: bool = True) -> dict:
    """Train and test loss on a filter-normalized random plane through the snapshot's weights.

    Returns ``coords`` (n,), ``train`` and ``test`` (n, n; None unless ``test``), ``center_loss``, ``model_loss``
    and ``grid_seconds`` (the train grid).
    """
    data = landscape_data(config.model)
    model, params, _ = model_at(config, snap, device)
    n = n or config.grid
    coords = np.linspace(-config.extent, config.extent, n)
    d1, d2 = ls.filter_normalized_directions(params, config.seed + seed_offset)
    xl, yl = data.x_land.to(device), data.y_land.to(device)
    t = time.perf_counter()
    train = ls.loss_grid(model, params, d1, d2, coords, coords, xl, yl)
    grid_seconds = time.perf_counter() - t
    test_grid = (ls.loss_grid(model, params, d1, d2, coords, coords, data.x_test.to(device), data.y_test.to(device))
                 if test else None)
    mid = n // 2
    return {"coords": coords, "train": train, "test": test_grid, "grid_seconds": grid_seconds,
            "center_loss": float(train[mid, mid]) if n % 2 else float("nan"),
            "model_loss": ls.point_loss(model, params, xl, yl)}


def interpolation(config: LSConfig, snap: Snapshot, device: torch.device | str = "cpu", n: int = 61) -> dict:
    """Train/test loss along init -> trained and beyond: ``alphas`` (n,) from -0.5 to 1.5, ``train``, ``test``."""
    data = landscape_data(config.model)
    model, params, init = model_at(config, snap, device)
    alphas = np.linspace(-0.5, 1.5, n)
    return {"alphas": alphas,
            "train": ls.interpolate_1d(model, init, params, alphas, data.x_land.to(device), data.y_land.to(device)),
            "test": ls.interpolate_1d(model, init, params, alphas, data.x_test.to(device), data.y_test.to(device))}


def pca_path(config: LSConfig, snap: Snapshot, device: torch.device | str = "cpu", n: int = 31) -> dict:
    """The training path projected on its first two PCA directions, over the loss in that plane."""
    data = landscape_data(config.model)
    model, params, _ = model_at(config, snap, device)
    pca = ls.trajectory_pca(np.stack(snap.arrays["path"]))
    grid = ls.pca_plane_grid(model, params, pca, data.x_land.to(device), data.y_land.to(device), n=n)
    return {**grid, "coords": pca["coords"], "explained": pca["explained"]}


def curvature(config: LSConfig, snap: Snapshot, device: torch.device | str = "cpu", k: int = 20) -> dict:
    """Largest and smallest Hessian eigenvalues of the landscape loss at the snapshot (Lanczos, ``k`` steps)."""
    data = landscape_data(config.model)
    model, params, _ = model_at(config, snap, device)
    return hessian_extreme_eigs(model, data.x_land.to(device), data.y_land.to(device), k=k, seed=config.seed,
                                params=params)


MOMENTUM_BETA = 0.9  # of the "momentum" optimizer above


def stability_threshold(optimizer: str, lr: float) -> float | None:
    """The largest curvature λ for which the optimizer is stable on the quadratic λθ²/2: 2/η for gradient descent,
    (2 + 2β)/η for heavy-ball momentum (PyTorch's form); None for Adam, whose threshold depends on its
    preconditioner. Full-batch gradient descent drives λ_max up to about this value and hovers there (the edge
    of stability, Cohen et al. 2021), so near-full-batch sharpness says as much about η as about the basin."""
    if optimizer == "sgd":
        return 2.0 / lr
    if optimizer == "momentum":
        return (2.0 + 2.0 * MOMENTUM_BETA) / lr
    return None


THRESHOLD_LABELS = {"sgd": "2/η", "momentum": "(2 + 2β)/η"}


def curvature_note(lambda_max: float, lambda_min: float, rel: float = 1e-2) -> str:
    """What the Lanczos estimates say about the point, in one sentence that depends on the values.

    Lanczos' Ritz values lie inside the spectrum, so a clearly negative λ_min proves a direction of negative
    curvature, while a non-negative one only says that none was found in ``k`` steps."""
    scale = max(abs(lambda_max), 1e-12)
    if lambda_min < -rel * scale:
        return Msg(N_("λ_min < 0 ({share} of λ_max): a direction of negative curvature, so this point is a saddle "
                      "along it, not a minimum (Lanczos' estimates lie inside the spectrum: the true λ_min is at least "
                      "this negative)."), share=f"{abs(lambda_min) / scale:.1%}")
    if lambda_min <= rel * scale:
        return Msg(N_("λ_min ≈ 0 (|λ_min| ≤ {share} of λ_max): flat directions, no clear negative curvature; the "
                      "Lanczos estimate of λ_min can only be too high, so a slightly negative true value is not "
                      "excluded."), share=f"{rel:.0%}")
    return Msg(N_("λ_min > 0 in the Lanczos estimate: no negative curvature found, consistent with a local minimum "
                  "(the estimate can only be too high, so this is not a proof)."))


def sharpness_by_batch(config: LSConfig, device: torch.device | str = "cpu", small: int = 16, large: int = 1024,
                       max_seconds: float = 60.0) -> dict[int, dict]:
    """Train twins that differ only in batch size (same steps, lr, seed) and measure each one's curvature.

    Returns {batch_size: {"lambda_max", "lambda_min", "train_loss", "test_acc", "steps", "weight_norm",
    "threshold"}}: ``weight_norm`` = ‖θ‖ (raw λ_max is not invariant to rescaling the weights: Dinh et al. 2017),
    ``threshold`` = :func:`stability_threshold` of the optimizer and learning rate (None for Adam).
    """
    from ..runner import Runner

    out = {}
    for bs in (small, large):
        cfg = replace(config, batch_size=bs, every=max(config.steps // 4, 1))
        r = Runner(DEMOS[1], cfg, device)
        r.run_to_end(max_seconds=max_seconds)
        if r.status == "failed" or r.latest is None:
            raise DivergedError(r.message or Msg(N_("training failed")))
        eig = curvature(cfg, r.latest, device)
        out[bs] = {"lambda_max": eig["lambda_max"], "lambda_min": eig["lambda_min"],
                   "train_loss": r.latest.metrics["landscape_loss"], "test_acc": r.latest.metrics["test_acc"],
                   "steps": r.latest.step, "weight_norm": float(np.linalg.norm(r.latest.arrays["params"])),
                   "threshold": stability_threshold(cfg.optimizer, cfg.lr)}
    return out


def sharpness_caption(results: dict[str, dict]) -> str:
    """The page's text under the twins' bars ({label: a :func:`sharpness_by_batch` row}): what each twin reached,
    its weight norm and λ_max against the stability threshold, and why raw λ_max alone compares badly."""
    def limit(v: dict) -> str:
        return (Msg(N_(" = {share} of the stability limit"), share=f"{v['lambda_max'] / v['threshold']:.0%}")
                if v.get("threshold") else "")

    rows = {f"r{i}": Msg(N_("{name}: {steps} steps, train loss {loss}, test accuracy {acc}, ‖θ‖ = {norm}, "
                            "λ_max = {lambda_max}{limit}"), name=Msg(k), steps=v["steps"], loss=f"{v['train_loss']:.3f}",
                         acc=f"{v['test_acc']:.1%}", norm=f"{v['weight_norm']:.2f}",
                         lambda_max=f"{v['lambda_max']:.3g}", limit=limit(v))
            for i, (k, v) in enumerate(results.items())}
    joined = Msg("; ".join("{%s}" % k for k in rows), **rows)
    return Msg(N_("Twins trained with the same steps, learning rate and seed: {rows}. Read raw λ_max with care: "
                  "rescaling the weights (which ReLU layers allow without changing the function) changes it, so the "
                  "weight norms stand beside it (Dinh et al. 2017; Li et al. 2018, section 5); and the large batch is "
                  "close to full-batch gradient descent, whose λ_max rises to about 2/η and hovers there (the edge of "
                  "stability, Cohen et al. 2021), so its sharpness reflects the learning rate as much as the batch. "
                  "A lower train loss also lowers the cross-entropy's curvature."), rows=joined)


def _summarize_ls(snap: Snapshot, runner) -> dict:
    cfg, dev = runner.config, runner.device
    sl = slice_2d(cfg, snap, dev, test=False)
    eig = curvature(cfg, snap, dev)
    line = interpolation(cfg, snap, dev)
    inside = (line["alphas"] >= 0) & (line["alphas"] <= 1)  # init (0) -> trained (1)
    train = np.asarray(line["train"])[inside]
    grid = np.asarray(sl["train"], dtype=float)
    # Second differences along each axis of the 2-D slice: a convex slice has none below zero.
    d2 = np.concatenate([(grid[2:, 1:-1] - 2 * grid[1:-1, 1:-1] + grid[:-2, 1:-1]).ravel(),
                         (grid[1:-1, 2:] - 2 * grid[1:-1, 1:-1] + grid[1:-1, :-2]).ravel()])
    scale = max(float(np.ptp(grid)), 1e-12)
    return {**snap.metrics, "grid": cfg.grid, "grid_seconds": round(sl["grid_seconds"], 3),
            # the 1-D line init -> trained: its largest rise between neighbouring points (0: no bump at all)
            "line_init_loss": float(train[0]), "line_end_loss": float(train[-1]),
            "line_max_rise": float(max(np.diff(train).max(initial=0.0), 0.0)),
            # share of the slice's interior second differences that are clearly negative (concave): 0 if convex
            "slice_concave_share": float((d2 < -1e-3 * scale).mean()),
            # share of the slice within 0.5 of the trained model's loss: the width of the basin at this extent
            "slice_basin_share": float((grid <= grid[grid.shape[0] // 2, grid.shape[1] // 2] + 0.5).mean()),
            "center_loss": sl["center_loss"], "model_loss": sl["model_loss"],
            "lambda_max": eig["lambda_max"], "lambda_min": eig["lambda_min"],
            "hessian_seconds": round(eig["seconds"], 3), "steps": snap.step}


def _bench_slice(device: torch.device) -> dict:
    """41x41 slice of an 8x8 LeNet on 1,024 digits: point-by-point loop vs batched (best of 4 and 2 runs), and the
    top eigenvalue. ``batched_gflops`` counts the model's own forward FLOPs per point (what the loop executes); the
    batched method does about two thirds of them (conv2 as a dense matrix skips its zero padding, conv1 is a
    combination of three precomputed maps), so its share of the matmul peak can pass what the kernels achieve."""
    data = landscape_data("lenet")
    with seeded(0):
        model = LeNet(8, "relu", "max").to(device)
    params = ls.params_of(model)
    d1, d2 = ls.filter_normalized_directions(params, 0)
    x, y = data.x_land.to(device), data.y_land.to(device)
    coords = np.linspace(-1, 1, 41)
    sync = (lambda: torch.cuda.synchronize()) if torch.device(device).type == "cuda" else (lambda: None)
    ls.loss_grid(model, params, d1, d2, coords[:3], coords[:3], x, y)  # warm-up
    times = {}
    # Best of several runs, alternating the methods: a shared 2-core machine's timings drift by up to 2x.
    for _ in range(2):
        for method, repeats in (("batched", 2), ("loop", 1)):
            for _ in range(repeats):
                sync()
                t = time.perf_counter()
                Z = ls.loss_grid(model, params, d1, d2, coords, coords, x, y, method=method)
                sync()
                times[method] = min(times.get(method, math.inf), time.perf_counter() - t)
    flops = ls.forward_flops(model, x) * 41 * 41
    peak = ls.matmul_peak_gflops(device=device)
    achieved = flops / times["batched"] / 1e9
    t = time.perf_counter()
    top = hessian_extreme_eigs(model, x, y, k=20)
    return {"loop_seconds": round(times["loop"], 3), "batched_seconds": round(times["batched"], 3),
            "speedup": round(times["loop"] / times["batched"], 2), "batched_gflops": round(achieved, 1),
            "matmul_peak_gflops": round(peak, 1), "share_of_peak": round(achieved / peak, 3),
            "center_loss": float(Z[20, 20]), "hessian_lanczos20_seconds": round(time.perf_counter() - t, 3),
            "lambda_max": round(top["lambda_max"], 4)}


DEMOS = [
    Demo(name="critical-points", title="Critical points and saddle escape",
         summary="Find and classify every critical point of a surface; watch descent stall at a saddle and escape.",
         config_cls=CPConfig, presets=CP_PRESETS, run=run_critical_points, summarize=_summarize_cp,
         benchmarks={"critical points": _bench_critical_points}),
    Demo(name="landscape", title="Loss landscape of a real network",
         summary="Train a small net, then slice its loss: 1-D interpolation, filter-normalized 2-D slices, PCA path, "
                 "Hessian eigenvalues.",
         config_cls=LSConfig, presets=LS_PRESETS, run=run_landscape, summarize=_summarize_ls,
         benchmarks={"landscape slice 41x41": _bench_slice}),
]
