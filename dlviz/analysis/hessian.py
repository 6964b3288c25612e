"""Curvature of a network's loss: Hessian-vector products by double backpropagation, and the extreme Hessian
eigenvalues by Lanczos (with full reorthogonalization) or power iteration.

The model is evaluated with ``torch.func.functional_call`` on detached copies of its parameters, in evaluation
mode (BatchNorm uses its running statistics), and left exactly as it was found.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


class HessianOperator:
    """v -> H v for the mean cross-entropy of ``model`` on (x, y) at ``params`` (default: the model's own).

    The gradient graph is built once (``create_graph=True``) and reused, so each product costs about one
    double-backward pass. Vectors are flat (n,) tensors in the order of ``self.names``.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 params: dict[str, torch.Tensor] | None = None,
                 loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy):
        src = params if params is not None else dict(model.named_parameters())
        self.names = list(src)
        self.params = {k: v.detach().clone().requires_grad_(True) for k, v in src.items()}
        buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
        was_training = model.training
        model.eval()
        try:
            self.loss = loss_fn(functional_call(model, {**self.params, **buffers}, (x,)), y)
        finally:
            model.train(was_training)
        grads = torch.autograd.grad(self.loss, list(self.params.values()), create_graph=True)
        self.flat_grad = torch.cat([g.reshape(-1) for g in grads])
        self.n = self.flat_grad.numel()
        self.device, self.dtype = self.flat_grad.device, self.flat_grad.dtype
        self.products = 0

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        self.products += 1
        hv = torch.autograd.grad(self.flat_grad, list(self.params.values()), grad_outputs=v, retain_graph=True)
        return torch.cat([h.reshape(-1) for h in hv]).detach()

    def unflatten(self, v: torch.Tensor) -> dict[str, torch.Tensor]:
        out, i = {}, 0
        for k in self.names:
            p = self.params[k]
            out[k] = v[i:i + p.numel()].view_as(p)
            i += p.numel()
        return out


def lanczos(matvec: Callable[[torch.Tensor], torch.Tensor], n: int, k: int = 30, seed: int = 0,
            device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> np.ndarray:
    """Ritz values (ascending, k of them) of a symmetric operator after ``k`` Lanczos steps.

    The extreme Ritz values converge first, so ~30 steps give the largest and smallest eigenvalues of a
    network Hessian well. Full reorthogonalization (k <= a few hundred) keeps ghost copies away.
    """
    k = min(k, n)
    g = torch.Generator(device="cpu").manual_seed(seed)
    q = torch.randn(n, generator=g, dtype=torch.float64).to(device=device)
    q = q / q.norm()
    Q = torch.zeros(k, n, dtype=torch.float64, device=device)
    alpha, beta = [], []
    for j in range(k):
        Q[j] = q
        w = matvec(q.to(dtype)).to(torch.float64)
        a = torch.dot(w, q)
        w = w - a * q - (beta[-1] * Q[j - 1] if j > 0 else 0)
        w = w - Q[:j + 1].T @ (Q[:j + 1] @ w)  # full reorthogonalization
        alpha.append(float(a))
        b = float(w.norm())
        if j == k - 1 or b < 1e-10:
            break
        beta.append(b)
        q = w / b
    m = len(alpha)
    T = np.diag(alpha) + np.diag(beta[:m - 1], 1) + np.diag(beta[:m - 1], -1)
    return np.linalg.eigvalsh(T)


def power_iteration(matvec: Callable[[torch.Tensor], torch.Tensor], n: int, iters: int = 50, tol: float = 1e-4,
                    seed: int = 0, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                    shift: float = 0.0) -> tuple[float, torch.Tensor]:
    """The eigenvalue of largest magnitude of (H - shift I) plus ``shift``, and its unit eigenvector."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(n, generator=g, dtype=dtype).to(device)
    v = v / v.norm()
    lam = 0.0
    for _ in range(iters):
        w = matvec(v) - shift * v
        new = float(torch.dot(w, v))
        v = w / w.norm().clamp_min(1e-30)
        if abs(new - lam) <= tol * max(1.0, abs(new)):
            lam = new
            break
        lam = new
    return lam + shift, v


def hessian_extreme_eigs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int = 30, seed: int = 0,
                         params: dict[str, torch.Tensor] | None = None) -> dict:
    """Largest and smallest Hessian eigenvalues of the mean cross-entropy on (x, y), by ``k`` Lanczos steps.

    Returns ``lambda_max``, ``lambda_min``, ``ritz`` (all Ritz values), ``loss``, ``products`` (Hessian-vector
    products used), ``n_params`` and ``seconds``.
    """
    t = time.perf_counter()
    op = HessianOperator(model, x, y, params)
    ritz = lanczos(op, op.n, k=k, seed=seed, device=op.device, dtype=op.dtype)
    return {"lambda_max": float(ritz[-1]), "lambda_min": float(ritz[0]), "ritz": ritz, "loss": float(op.loss.detach()),
            "products": op.products, "n_params": op.n, "seconds": time.perf_counter() - t}


def hessian_top_eig(model: nn.Module, x: torch.Tensor, y: torch.Tensor, iters: int = 50, seed: int = 0,
                    params: dict[str, torch.Tensor] | None = None) -> dict:
    """The largest-magnitude Hessian eigenvalue by power iteration: ``lambda``, ``products``, ``seconds``."""
    t = time.perf_counter()
    op = HessianOperator(model, x, y, params)
    lam, _ = power_iteration(op, op.n, iters=iters, seed=seed, device=op.device, dtype=op.dtype)
    return {"lambda": lam, "products": op.products, "seconds": time.perf_counter() - t}
