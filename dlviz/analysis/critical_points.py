"""Critical points of 2-D surfaces: gradients and Hessians by autograd, Newton from a grid of starts,
classification by Hessian eigenvalues, and gradient descent near a saddle (the plateau and the escape).

All math is float64 on the CPU: the surfaces are cheap and the classification needs the precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..i18n import N_, _
from .surfaces import Curve, Surface, two_logit_surfaces

KINDS = (N_("minimum"), N_("maximum"), N_("saddle"), N_("degenerate"))  # shown with _()


def _t(v) -> torch.Tensor:
    return torch.as_tensor(np.asarray(v, dtype=np.float64))


def _grads(out: torch.Tensor, inputs: tuple[torch.Tensor, ...], create_graph: bool = False,
           retain_graph: bool | None = None) -> tuple[torch.Tensor, ...]:
    """Gradients of ``out.sum()`` with respect to ``inputs``, zeros where ``out`` does not depend on an input.

    A formula constant in a variable (``5``, ``x^2`` has no y) or linear in it (``x + y``: the gradient is a
    constant) has a zero derivative there, not an error: autograd reports those as unused inputs or as an output
    that does not require grad, and both become zeros here.
    """
    if not (isinstance(out, torch.Tensor) and out.requires_grad):
        return tuple(torch.zeros_like(i) for i in inputs)
    grads = torch.autograd.grad(out.sum(), inputs, create_graph=create_graph, retain_graph=retain_graph,
                                allow_unused=True)
    return tuple(torch.zeros_like(i) if g is None else torch.broadcast_to(g, i.shape) for g, i in zip(grads, inputs))


def _surface_at(surface: Surface, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    return torch.broadcast_to(torch.as_tensor(surface(X, Y), dtype=torch.float64), X.shape)


def derivatives(surface: Surface, x, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """f, gradient and Hessian at many points at once.

    ``x``, ``y``: arrays of the same shape S. Returns f (S), grad (S + (2,)), hessian (S + (2, 2)). The surface
    is elementwise, so the gradient of ``f.sum()`` is the pointwise gradient (one backward for all points).
    Derivatives of a surface constant or linear in a variable are zeros.
    """
    X = _t(x).clone().requires_grad_(True)
    Y = _t(y).clone().requires_grad_(True)
    f = _surface_at(surface, X, Y)
    gx, gy = _grads(f, (X, Y), create_graph=True)
    hxx, hxy = _grads(gx, (X, Y), retain_graph=True)
    hyx, hyy = _grads(gy, (X, Y))
    grad = torch.stack([gx, gy], -1)
    hess = torch.stack([torch.stack([hxx, hxy], -1), torch.stack([hyx, hyy], -1)], -2)
    return f.detach().numpy(), grad.detach().numpy(), hess.detach().numpy()


def value_and_grad(surface: Surface, x, y) -> tuple[np.ndarray, np.ndarray]:
    """f (S) and gradient (S + (2,)) at many points (one backward pass; cheaper than :func:`derivatives`)."""
    X = _t(x).clone().requires_grad_(True)
    Y = _t(y).clone().requires_grad_(True)
    f = _surface_at(surface, X, Y)
    gx, gy = _grads(f, (X, Y))
    return f.detach().numpy(), torch.stack([gx, gy], -1).detach().numpy()


def classify(eigenvalues: np.ndarray, tol: float = 1e-6) -> str:
    """minimum (all > 0), maximum (all < 0), saddle (mixed signs) or degenerate (a zero eigenvalue, no mix).

    ``tol`` is relative to the largest |eigenvalue| (and absolute below 1).
    """
    ev = np.asarray(eigenvalues, dtype=np.float64)
    thr = tol * max(1.0, float(np.abs(ev).max()))
    pos, neg = bool((ev > thr).any()), bool((ev < -thr).any())
    if pos and neg:
        return "saddle"
    if (np.abs(ev) <= thr).any():
        return "degenerate"
    return "minimum" if pos else "maximum"


@dataclass(frozen=True)
class CriticalPoint:
    x: float
    y: float
    kind: str  # one of KINDS
    eigenvalues: tuple[float, float]  # ascending
    eigenvectors: tuple[tuple[float, float], tuple[float, float]]  # unit vectors, matching eigenvalues
    value: float  # f at the point

    def as_dict(self) -> dict:
        """The CLI form: x, y, kind, eigenvalues (and f)."""
        r = lambda v: round(v, 6) + 0.0  # noqa: E731  (+0.0 turns -0.0 into 0.0)
        return {"x": r(self.x), "y": r(self.y), "kind": self.kind, "eigenvalues": [r(e) for e in self.eigenvalues],
                "f": r(self.value)}


def find_critical_points(surface: Surface, bounds: tuple[float, float, float, float] | None = None,
                         n_starts: int = 21, iters: int = 100, grad_tol: float = 1e-7) -> list[CriticalPoint]:
    """Every critical point in the view: damped Newton from an ``n_starts`` x ``n_starts`` grid, deduplicated.

    Newton steps use the pseudo-inverse of the Hessian, so singular Hessians (a monkey saddle, a valley of
    minima) still converge (linearly). A start counts when its gradient is below ``grad_tol`` (relative to the
    surface's scale) inside the view. Degenerate points along a curve of critical points are thinned to about
    one per 5% of the view. Sorted by kind, then x, then y.
    """
    xmin, xmax, ymin, ymax = bounds or surface.bounds
    span = max(xmax - xmin, ymax - ymin)
    # Offset the grid slightly so starts do not sit exactly on symmetric critical points' basins' borders.
    xs = np.linspace(xmin, xmax, n_starts) + 1e-3 * (xmax - xmin) / n_starts
    ys = np.linspace(ymin, ymax, n_starts) + 2e-3 * (ymax - ymin) / n_starts
    P = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    _, _, Z = surface.grid(41, (xmin, xmax, ymin, ymax))
    finite = Z[np.isfinite(Z)]
    scale = max(1.0, float(np.abs(finite).max()) / span) if finite.size else 1.0
    max_step = 0.25 * span
    for _ in range(iters):
        with np.errstate(all="ignore"):
            _, g, H = derivatives(surface, P[:, 0], P[:, 1])
        ok = np.isfinite(g).all(1) & np.isfinite(H).all((1, 2))
        step = np.zeros_like(P)
        if ok.any():
            step[ok] = np.einsum("nij,nj->ni", np.linalg.pinv(H[ok], rcond=1e-10), g[ok])
        norm = np.linalg.norm(step, axis=1, keepdims=True)
        step = np.where(norm > max_step, step * max_step / np.maximum(norm, 1e-300), step)
        P = np.where(ok[:, None], P - step, P)
    with np.errstate(all="ignore"):
        f, g, H = derivatives(surface, P[:, 0], P[:, 1])
    margin = 1e-6 * span
    inside = ((P[:, 0] >= xmin - margin) & (P[:, 0] <= xmax + margin) & (P[:, 1] >= ymin - margin)
              & (P[:, 1] <= ymax + margin))
    good = (inside & np.isfinite(g).all(1) & np.isfinite(H).all((1, 2))
            & (np.linalg.norm(g, axis=1) < grad_tol * scale) & np.isfinite(f))
    points: list[CriticalPoint] = []
    for i in np.flatnonzero(good):
        evals, evecs = np.linalg.eigh(H[i])
        kind = classify(evals)
        near = [math.hypot(q.x - P[i, 0], q.y - P[i, 1]) / span for q in points]
        if any(d < 1e-4 or (kind == q.kind == "degenerate" and d < 0.05) for d, q in zip(near, points)):
            continue
        points.append(CriticalPoint(float(P[i, 0]), float(P[i, 1]), kind, (float(evals[0]), float(evals[1])),
                                    (tuple(map(float, evecs[:, 0])), tuple(map(float, evecs[:, 1]))), float(f[i])))
    order = {k: i for i, k in enumerate(KINDS)}
    return sorted(points, key=lambda p: (order[p.kind], round(p.x, 6), round(p.y, 6)))


def curve_critical_points(curve: Curve, n_starts: int = 41, iters: int = 100) -> list[tuple[float, str, float]]:
    """(x, kind, f'') of each critical point of a 1-D curve in its view (Newton from a grid, deduplicated)."""
    x = torch.linspace(*curve.bounds, n_starts, dtype=torch.float64) + 1e-4
    for _ in range(iters):
        X = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(curve(X).sum(), X, create_graph=True)
        (h,) = torch.autograd.grad(g.sum(), X)
        g = g.detach()
        x = torch.where(h.abs() > 1e-12, X.detach() - g / h, X.detach())
    X = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(curve(X).sum(), X, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), X)
    out: list[tuple[float, str, float]] = []
    lo, hi = curve.bounds
    for xi, gi, hi_ in zip(x.tolist(), g.detach().tolist(), h.tolist()):
        if not (lo <= xi <= hi) or abs(gi) > 1e-8 or any(abs(xi - o[0]) < 1e-4 * (hi - lo) for o in out):
            continue
        kind = "minimum" if hi_ > 1e-6 else "maximum" if hi_ < -1e-6 else "degenerate"
        out.append((xi, kind, hi_))
    return sorted(out)


def gradient_descent(surface: Surface, start: tuple[float, float], lr: float, steps: int,
                     max_value: float = 1e12) -> dict[str, np.ndarray]:
    """Plain gradient descent on the surface: ``path`` (T+1, 2), ``loss`` (T+1,), ``grad_norm`` (T+1,).

    Stops early (shorter arrays) when the point leaves ``max_value`` (diverging).
    """
    p = np.array(start, dtype=np.float64)
    path, loss, gnorm = [], [], []
    for _ in range(steps + 1):
        f, g = value_and_grad(surface, p[:1], p[1:])
        path.append(p.copy()), loss.append(float(f[0])), gnorm.append(float(np.linalg.norm(g[0])))
        if not (np.isfinite(f[0]) and abs(f[0]) < max_value and np.isfinite(g).all()):
            break
        p = p - lr * g[0]
    return {"path": np.array(path), "loss": np.array(loss), "grad_norm": np.array(gnorm)}


def saddle_starts(point: CriticalPoint, hair: float = 1e-4, escape: float = 0.05) -> dict[str, tuple[float, float]]:
    """Start points near a saddle: ``hair`` a tiny offset (mostly along the positive-curvature eigenvector, a
    sliver along the negative one), and ``escape`` a step of length ``escape`` along the negative-eigenvalue
    eigenvector, where the loss drops by about |lambda_min| escape^2 / 2."""
    v_neg, v_pos = np.array(point.eigenvectors[0]), np.array(point.eigenvectors[1])
    c = np.array([point.x, point.y])
    hair_start = c + hair * v_pos + 1e-3 * hair * v_neg
    return {"hair": tuple(map(float, hair_start)), "escape": tuple(map(float, c + escape * v_neg))}


def mse_vs_cross_entropy(corner: float, lr: float, steps: int) -> tuple[dict, dict, dict, dict]:
    """The loss-surface page's MSE-vs-cross-entropy part: both losses of the one-weight-per-layer net, each as a
    45x45 grid and a gradient-descent run from (corner, -corner). Returns (surfaces, paths, losses, gradient norms),
    each keyed by the surface's (translated) title: grids (X, Y, Z), paths (steps, 3) with the loss, per-step arrays."""
    surfaces, paths, losses, grads = {}, {}, {}, {}
    for s in two_logit_surfaces().values():
        r = gradient_descent(s, (corner, -corner), lr, steps)
        title = _(s.title)
        surfaces[title], losses[title], grads[title] = s.grid(45), r["loss"], r["grad_norm"]
        paths[title] = np.column_stack([r["path"], r["loss"]])
    return surfaces, paths, losses, grads


@dataclass
class Probe:
    """The surface at one point: value, gradient, the Hessian's eigenvalues; and, on request, the field of unit
    arrows of -grad f on a coarse grid (direction only), as (X, Y, U, V)."""

    f: float
    grad: np.ndarray
    eigenvalues: np.ndarray
    field: tuple | None = None


def probe(surface: Surface, x: float, y: float, field_n: int = 0) -> Probe:
    """What the critical-points page reads out at the probe (x, y), with the gradient field on a field_n^2 grid."""
    with np.errstate(all="ignore"):
        f, g, H = derivatives(surface, np.array([x]), np.array([y]))
        ev = np.linalg.eigvalsh(H[0]) if np.isfinite(H).all() else np.array([np.nan, np.nan])
        field = None
        if field_n:
            xmin, xmax, ymin, ymax = surface.bounds
            Xs, Ys, _unused = surface.grid(field_n)
            G = derivatives(surface, Xs, Ys)[1]
            scale = 0.05 * max(xmax - xmin, ymax - ymin) / np.maximum(np.linalg.norm(G, axis=-1), 1e-12)
            field = (Xs, Ys, -G[..., 0] * scale, -G[..., 1] * scale)
    return Probe(float(f[0]), g[0], ev, field)
