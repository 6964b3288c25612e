"""Optimizer trajectories: PyTorch's own optimizers racing on a 2-D surface, the condition-number picture of
gradient descent and momentum on a quadratic, and mini-batch SGD paths of a linear regression.

Every step is taken by a ``torch.optim`` class on a 2-element parameter, so a trajectory is what a student's
training loop would do; ``tests/test_optimizers.py`` checks each against its textbook recurrence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import torch

from .schedules import make_scheduler

Fn2 = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimizer as the page shows it: label, textbook update rule and how torch builds it."""

    label: str
    rule: str  # LaTeX of the update, in the d2l notation (g_t is the gradient at step t)
    hyper: tuple[str, ...]  # hyperparameters besides lr that ``make`` reads
    make: Callable[..., torch.optim.Optimizer]  # (params, lr, **hyper) -> optimizer


OPTIMIZERS: dict[str, OptimizerSpec] = {
    "sgd": OptimizerSpec("SGD", r"x_t = x_{t-1} - \eta\, g_t", (),
                         lambda p, lr, **h: torch.optim.SGD(p, lr=lr)),
    "momentum": OptimizerSpec(
        "Momentum", r"v_t = \beta v_{t-1} + g_t,\quad x_t = x_{t-1} - \eta\, v_t", ("beta",),
        lambda p, lr, beta=0.5, **h: torch.optim.SGD(p, lr=lr, momentum=beta)),
    "nesterov": OptimizerSpec(
        "Nesterov", r"v_t = \beta v_{t-1} + g_t,\quad x_t = x_{t-1} - \eta\,(g_t + \beta v_t)", ("beta",),
        # With beta = 0 the rule is plain SGD, and torch refuses nesterov=True without momentum (slider at 0).
        lambda p, lr, beta=0.5, **h: torch.optim.SGD(p, lr=lr, momentum=beta, nesterov=beta > 0)),
    "adagrad": OptimizerSpec(
        "AdaGrad", r"s_t = s_{t-1} + g_t^2,\quad x_t = x_{t-1} - \frac{\eta}{\sqrt{s_t} + \epsilon}\, g_t", (),
        lambda p, lr, **h: torch.optim.Adagrad(p, lr=lr)),
    "rmsprop": OptimizerSpec(
        "RMSProp", r"s_t = \gamma s_{t-1} + (1-\gamma) g_t^2,\quad x_t = x_{t-1} - \frac{\eta}{\sqrt{s_t} + \epsilon}\, g_t",
        ("gamma",), lambda p, lr, gamma=0.9, **h: torch.optim.RMSprop(p, lr=lr, alpha=gamma)),
    "adam": OptimizerSpec(
        "Adam", r"v_t = \beta_1 v_{t-1} + (1-\beta_1) g_t,\ s_t = \beta_2 s_{t-1} + (1-\beta_2) g_t^2,\ "
                r"x_t = x_{t-1} - \eta\,\frac{v_t/(1-\beta_1^t)}{\sqrt{s_t/(1-\beta_2^t)} + \epsilon}",
        ("beta1",), lambda p, lr, beta1=0.9, **h: torch.optim.Adam(p, lr=lr, betas=(beta1, 0.999))),
    "adamw": OptimizerSpec(
        "AdamW", r"x_t = (1 - \eta\lambda)\,x_{t-1} - \eta\,\frac{\hat v_t}{\sqrt{\hat s_t} + \epsilon}"
                 r"\quad\text{(Adam with decoupled weight decay } \lambda)",
        ("weight_decay",), lambda p, lr, weight_decay=0.1, **h: torch.optim.AdamW(p, lr=lr, weight_decay=weight_decay)),
}


def make_optimizer(name: str, params, lr: float, **hyper) -> torch.optim.Optimizer:
    """``OPTIMIZERS[name]`` built over ``params`` (extra hyperparameters it does not use are ignored)."""
    if name not in OPTIMIZERS:
        raise KeyError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name].make(list(params), lr, **hyper)


# -- the race on a 2-D surface -------------------------------------------------------------------------------
RUNNING, DIVERGED, ESCAPED = "running", "diverged", "escaped"


@dataclass
class Racer:
    """One optimizer's run: its parameter, optimizer, scheduler, noise generator and the path so far."""

    name: str
    lr: float
    param: torch.Tensor  # (2,) the point
    opt: torch.optim.Optimizer
    sched: object | None
    gen: torch.Generator  # gradient noise; every racer gets the same stream (common random numbers)
    path: list[tuple[float, float]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)  # lr used at each step
    status: str = RUNNING
    stopped_at: int | None = None  # step at which it left the region / diverged


class Race:
    """Several optimizers descending ``fn`` from the same start, one step at a time.

    A racer stops (and keeps its path) when its loss becomes non-finite or its point leaves ``box``
    (xmin, xmax, ymin, ymax): ``diverged`` if its loss rose, ``escaped`` if it fell (a surface unbounded below).
    Runs in float64 on the CPU: two parameters are latency-bound (a GPU would only add launch and copy time),
    and float64 keeps the textbook-recurrence checks meaningful.
    """

    def __init__(self, fn: Fn2, start: tuple[float, float], entries: Mapping[str, dict], steps: int,
                 schedule: str = "constant", noise: float = 0.0, seed: int = 0,
                 box: tuple[float, float, float, float] | None = None):
        if not entries:
            raise ValueError("Pick at least one optimizer for the race.")
        self.fn, self.noise, self.box, self.t = fn, float(noise), box, 0
        self.racers: dict[str, Racer] = {}
        for name, hp in entries.items():
            hp = dict(hp)
            lr = float(hp.pop("lr"))
            p = torch.tensor([float(start[0]), float(start[1])], dtype=torch.float64, requires_grad=True)
            opt = make_optimizer(hp.pop("optimizer", name), [p], lr, **hp)
            gen = torch.Generator().manual_seed(int(seed))
            r = Racer(name, lr, p, opt, make_scheduler(opt, schedule, steps), gen)
            r.path.append((float(start[0]), float(start[1])))
            r.losses.append(self._value(p))
            self.racers[name] = r

    def _value(self, p: torch.Tensor) -> float:
        with torch.no_grad():
            return float(self.fn(p[0], p[1]))

    def step(self) -> None:
        """One optimizer step for every racer still running (noise: N(0, noise^2) added to each gradient)."""
        self.t += 1
        for r in self.racers.values():
            if r.status != RUNNING:
                continue
            r.opt.zero_grad(set_to_none=True)
            self.fn(r.param[0], r.param[1]).backward()
            if self.noise > 0:
                r.param.grad.add_(torch.randn(2, generator=r.gen, dtype=torch.float64), alpha=self.noise)
            r.lrs.append(r.opt.param_groups[0]["lr"])
            r.opt.step()
            if r.sched is not None:
                r.sched.step()
            x, y = (float(v) for v in r.param.detach())
            loss = self._value(r.param)
            finite = math.isfinite(x) and math.isfinite(y) and math.isfinite(loss)
            if finite:
                r.path.append((x, y))
                r.losses.append(loss)
            outside = self.box is not None and not (self.box[0] <= x <= self.box[1] and self.box[2] <= y <= self.box[3])
            if not finite or outside or abs(loss) > 1e12:
                r.status = DIVERGED if not finite or loss > r.losses[0] else ESCAPED
                r.stopped_at = self.t

    def paths(self) -> dict[str, np.ndarray]:
        """name -> (n_points, 2) positions from the start (a stopped racer's path ends where it stopped)."""
        return {n: np.asarray(r.path) for n, r in self.racers.items()}

    def losses(self) -> dict[str, np.ndarray]:
        return {n: np.asarray(r.losses) for n, r in self.racers.items()}


def trajectory(fn: Fn2, start: tuple[float, float], optimizer: str, steps: int, lr: float, **hyper) -> np.ndarray:
    """(steps+1, 2) path of one optimizer with a constant rate and no noise (the textbook picture)."""
    race = Race(fn, start, {optimizer: {"lr": lr, **hyper}}, steps)
    for _ in range(steps):
        race.step()
    return race.paths()[optimizer]


def distance_to_minima(path: np.ndarray, minima) -> np.ndarray:
    """(n,) Euclidean distance from each point of ``path`` (n, 2) to the nearest of ``minima`` (m, 2)."""
    m = np.asarray(minima, dtype=float).reshape(-1, 2)
    return np.sqrt(((np.asarray(path)[:, None, :] - m[None]) ** 2).sum(-1)).min(1)


def steps_to_converge(path: np.ndarray, minima, tol: float = 1e-3) -> int | None:
    """First step whose point lies within ``tol`` of a minimum, or None (also when no minima are known)."""
    if len(minima) == 0:
        return None
    hit = np.flatnonzero(distance_to_minima(path, minima) < tol)
    return int(hit[0]) if hit.size else None


# -- condition number: gradient descent and momentum on a quadratic ------------------------------------------
def quadratic_rate(lr: np.ndarray, beta: np.ndarray, eigenvalues) -> np.ndarray:
    """Worst-case linear convergence rate of heavy-ball momentum on a quadratic (beta = 0: gradient descent).

    Along an eigenvector with curvature lam the error (x_t, x_{t-1}) evolves by [[1 + beta - lr*lam, -beta],
    [1, 0]]; the rate is the largest spectral radius over the eigenvalues (Goh, "Why Momentum Really Works").
    ``lr`` and ``beta`` broadcast; returns their broadcast shape.
    """
    lr, beta = np.broadcast_arrays(np.asarray(lr, float), np.asarray(beta, float))
    rate = np.zeros(lr.shape)
    for lam in eigenvalues:
        a = 1 + beta - lr * lam  # characteristic polynomial z^2 - a z + beta
        disc = a * a - 4 * beta
        root = np.sqrt(np.abs(disc))
        radius = np.where(disc >= 0, (np.abs(a) + root) / 2, np.sqrt(np.maximum(beta, 0)))
        rate = np.maximum(rate, radius)
    return rate


def optimal_settings(kappa: float, lam_min: float = 1.0) -> dict[str, float]:
    """Best fixed lr for gradient descent and best (lr, beta) for momentum on curvatures lam_min .. kappa*lam_min."""
    lam_max = kappa * lam_min
    sk = math.sqrt(kappa)
    return {"gd_lr": 2 / (lam_min + lam_max), "gd_rate": (kappa - 1) / (kappa + 1),
            "momentum_lr": (2 / (math.sqrt(lam_min) + math.sqrt(lam_max))) ** 2,
            "momentum_beta": ((sk - 1) / (sk + 1)) ** 2, "momentum_rate": (sk - 1) / (sk + 1)}


def condition_quadratic(kappa: float) -> Fn2:
    """f(x, y) = (x^2 + kappa*y^2) / 2: curvatures 1 and kappa."""
    return lambda x, y: 0.5 * (x**2 + kappa * y**2)


# -- mini-batch noise on a real regression -------------------------------------------------------------------
TRUE_W, TRUE_B = (2.0, -3.4), 4.2


def regression_data(n: int = 1000, noise: float = 0.01, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """d2l's synthetic data: y = 2*x1 - 3.4*x2 + 4.2 + N(0, noise^2), x ~ N(0, I); shapes (n, 2), (n,)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    y = x @ torch.tensor(TRUE_W) + TRUE_B + noise * torch.randn(n, generator=g)
    return x, y


def batch_size_paths(batch_sizes=(1, 32, 1000), steps: int = 200, lr: float = 0.03, seed: int = 0,
                     device: torch.device | str = "cpu") -> dict[int, dict[str, np.ndarray]]:
    """Mini-batch SGD on the squared loss of a linear regression, from w = 0, one run per batch size.

    Returns batch size -> {"w": (steps+1, 2) path of (w1, w2), "loss": (steps+1,) full-data loss}. Every run
    takes the same number of steps with the same lr (torch.optim.SGD); only the gradient noise differs.
    """
    x, y = (t.to(device) for t in regression_data(seed=seed))
    out = {}
    for bs in batch_sizes:
        g = torch.Generator().manual_seed(seed + 1)
        w = torch.zeros(2, device=device, requires_grad=True)
        b = torch.zeros((), device=device, requires_grad=True)
        opt = torch.optim.SGD([w, b], lr=lr)
        ws, losses = [], []
        for t in range(steps + 1):
            with torch.no_grad():
                ws.append(w.detach().clone())
                losses.append(0.5 * ((x @ w + b - y) ** 2).mean())
            if t == steps:
                break
            idx = torch.randint(0, len(y), (min(bs, len(y)),), generator=g).to(device) if bs < len(y) else slice(None)
            loss = 0.5 * ((x[idx] @ w + b - y[idx]) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        out[bs] = {"w": torch.stack(ws).cpu().numpy(), "loss": torch.stack(losses).cpu().numpy()}
    return out


def max_curvature(fn: Fn2, point: tuple[float, float]) -> float:
    """Largest eigenvalue of the 2x2 Hessian of ``fn`` at ``point`` (torch.autograd.functional.hessian)."""
    h = torch.autograd.functional.hessian(lambda p: fn(p[0], p[1]), torch.tensor(point, dtype=torch.float64))
    return float(torch.linalg.eigvalsh(h).max())


# -- trajectories of a real network, projected into one shared plane ----------------------------------------
def pca_plane(trajectories: Mapping[str, np.ndarray], origin: np.ndarray) -> tuple[np.ndarray, dict, np.ndarray]:
    """The plane through ``origin`` (P,) spanned by the top two principal directions of every trajectory's
    displacement from it (all runs stacked, so they share one plane; uncentered, so the origin maps to (0, 0)).

    ``trajectories``: name -> (k, P) flattened parameters. Returns (basis (2, P) orthonormal, name -> (k, 2)
    coordinates, explained (2,) fraction of the displacements' squared norm that each direction captures).
    """
    deltas = {n: np.asarray(t, dtype=np.float64) - origin for n, t in trajectories.items()}
    stacked = np.concatenate(list(deltas.values()))
    _, s, vt = np.linalg.svd(stacked, full_matrices=False)
    basis = vt[:2]
    if basis.shape[0] < 2:  # a single point: pad with any orthogonal direction
        basis = np.vstack([basis, np.roll(basis[0], 1)])[:2]
    total = float((s**2).sum()) or 1.0
    return basis, {n: d @ basis.T for n, d in deltas.items()}, (s[:2] ** 2) / total


def plane_loss(model: torch.nn.Module, origin: np.ndarray, basis: np.ndarray, x: torch.Tensor, loss_fn: Callable,
               extent: tuple[float, float, float, float], n: int = 25) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loss at origin + a*basis[0] + b*basis[1] on an (n, n) grid over extent (amin, amax, bmin, bmax).

    Parameters go through ``torch.func.functional_call``: the model's own weights are never touched.
    ``loss_fn(model(x)) -> scalar``. Returns A, B, L of shape (n, n) (rows follow b).
    """
    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    dev = next(model.parameters()).device
    o, d = torch.as_tensor(origin, dtype=torch.float32, device=dev), torch.as_tensor(basis, dtype=torch.float32, device=dev)
    a_axis, b_axis = np.linspace(extent[0], extent[1], n), np.linspace(extent[2], extent[3], n)
    out = np.empty((n, n))
    with torch.no_grad():
        for i, b in enumerate(b_axis):
            for j, a in enumerate(a_axis):
                flat = o + float(a) * d[0] + float(b) * d[1]
                params = {k: v.view(s) for k, v, s in zip(names, torch.split(flat, sizes), shapes)}
                out[i, j] = float(loss_fn(torch.func.functional_call(model, params, (x,))))
    A, B = np.meshgrid(a_axis, b_axis)
    return A, B, out


def condition_study(kappa: float, steps: int):
    """The condition-number part of the optimizer page: the optimal settings, the rate map over (lr, beta), and
    the torch.optim paths of the best gradient descent and the best momentum on the κ-conditioned quadratic."""
    best = optimal_settings(kappa)
    lr_axis = np.linspace(0, 2.2 * max(best["gd_lr"], best["momentum_lr"]), 161)[1:]
    beta_axis = np.linspace(0, 0.99, 100)
    rate = quadratic_rate(lr_axis[None, :], beta_axis[:, None], (1.0, float(kappa)))
    fq, start = condition_quadratic(float(kappa)), (1.0, 1.0 / np.sqrt(kappa))  # both directions: same loss
    gd = trajectory(fq, start, "sgd", steps, best["gd_lr"])
    mom = trajectory(fq, start, "momentum", steps, best["momentum_lr"], beta=best["momentum_beta"])
    return best, lr_axis, beta_axis, rate, gd, mom


def measured_rate(errors: np.ndarray, steps: int) -> float:
    """The error's shrink factor per step over the last half of the run; 0 when it reached the minimum exactly
    (κ = 1: the best gradient step lands on it at once, and 0/0 would print nan)."""
    start, end = errors[steps // 2], max(errors[-1], 1e-300)
    return float((end / start) ** (1 / (steps - steps // 2))) if start > 0 else 0.0
