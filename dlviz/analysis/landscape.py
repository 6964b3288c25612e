"""Loss landscapes of a real network: 1-D interpolation, 2-D slices along filter-normalized random directions
(Li et al., 2018) and the plane of a training path's first two PCA directions.

Parameters are dicts ``name -> tensor``; a point of a slice is ``center + a * d1 + b * d2``. Every evaluation
goes through copies (``torch.func.functional_call`` or the batched evaluators below), never by editing the
model's weights, and runs in evaluation mode: BatchNorm uses its running statistics, and the directions are zero
on 1-D parameters (biases, BatchNorm scales and shifts), as with the ``biasbn`` option of Li et al.'s code
(``--xignore biasbn``, used in their examples; without it, their code sets those directions equal to the
parameters themselves).

Speed: the reference code evaluates one grid point per forward pass. Here many grid points go through one
forward: the first layer is linear in its weights, so its output at every grid point is a combination of three
outputs computed once; later layers use batched matrix products over stacked per-point weights (LeNet's second
convolution as im2col + ``bmm``). Models other than :class:`LeNet` and :class:`MLP` fall back to the loop.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..models.lenet import LeNet
from ..models.mlp import MLP

Params = dict[str, torch.Tensor]


# -- parameter dicts --------------------------------------------------------------------------------------
def params_of(model: nn.Module) -> Params:
    """Detached copies of the model's parameters (name -> tensor)."""
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def flatten(params: Params) -> torch.Tensor:
    return torch.cat([v.reshape(-1) for v in params.values()])


def unflatten(vec: torch.Tensor, like: Params) -> Params:
    out, i = {}, 0
    for k, v in like.items():
        out[k] = vec[i:i + v.numel()].view_as(v).to(v.dtype)
        i += v.numel()
    return out


def combine(center: Params, dirs: list[Params], coeffs: list[float]) -> Params:
    """center + sum_j coeffs[j] * dirs[j] (new tensors)."""
    out = {}
    for k, c in center.items():
        v = c.clone()
        for d, a in zip(dirs, coeffs):
            v = v + a * d[k]
        out[k] = v
    return out


def filter_normalize(direction: Params, params: Params, ignore_1d: bool = True) -> Params:
    """Li et al.'s filter normalization: each filter (slice along dim 0) of the direction gets the norm of the
    matching filter of ``params``; 1-D parameters (biases, BatchNorm) get a zero direction when ``ignore_1d``
    (Li et al.'s ``biasbn`` option), else the random direction rescaled to the parameter's norm (their code without
    ``biasbn`` copies the parameter itself instead)."""
    out = {}
    for k, d in direction.items():
        p = params[k]
        if d.dim() <= 1:
            out[k] = torch.zeros_like(d) if ignore_1d else d * (p.norm() / d.norm().clamp_min(1e-10))
            continue
        dn = d.reshape(d.shape[0], -1).norm(dim=1).clamp_min(1e-10)
        pn = p.reshape(p.shape[0], -1).norm(dim=1)
        out[k] = d * (pn / dn).view(-1, *([1] * (d.dim() - 1)))
    return out


def filter_normalized_directions(params: Params, seed: int, n: int = 2) -> list[Params]:
    """``n`` Gaussian directions (seeded, drawn on the CPU for reproducibility), filter-normalized to ``params``."""
    g = torch.Generator().manual_seed(seed)
    dirs = []
    for _ in range(n):
        d = {k: torch.randn(v.shape, generator=g, dtype=torch.float32).to(v.device, v.dtype) for k, v in params.items()}
        dirs.append(filter_normalize(d, params))
    return dirs


# -- evaluating many points -------------------------------------------------------------------------------
def point_loss(model: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean cross-entropy of ``model`` with ``params`` (functional_call, eval mode; the model is untouched)."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            buffers = dict(model.named_buffers())
            return float(F.cross_entropy(functional_call(model, {**params, **buffers}, (x,)), y))
    finally:
        model.train(was)


def _per_point_ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(P, B, C) logits, (B,) labels -> (P,) mean cross-entropy per point."""
    logp = logits.log_softmax(-1)
    return -logp.gather(-1, y.view(1, -1, 1).expand(logits.shape[0], -1, 1)).squeeze(-1).mean(1)


class _PointWeights:
    """Parameters at many points ``center + coeffs @ dirs``: each parameter of the center and the directions is
    stacked once, so a chunk of points costs one small matrix product per parameter."""

    def __init__(self, center: Params, dirs: list[Params], names):
        self.shapes = {n: center[n].shape for n in names}
        self.flat = {n: torch.stack([p[n].reshape(-1) for p in (center, *dirs)]) for n in names}  # (1 + k, numel)

    @staticmethod
    def mix(coeffs: torch.Tensor) -> torch.Tensor:
        """(P, k) coefficients -> (P, 1 + k), with the center's weight 1 in front."""
        return torch.cat([torch.ones(coeffs.shape[0], 1, dtype=coeffs.dtype, device=coeffs.device), coeffs], 1)

    def at(self, cw: torch.Tensor, name: str) -> torch.Tensor:
        """(P, *shape) values of parameter ``name`` at the points with mixing weights ``cw`` (P, 1 + k)."""
        return (cw @ self.flat[name]).view(cw.shape[0], *self.shapes[name])


def conv_as_matrix(weight: torch.Tensor, in_shape: tuple[int, int, int], padding) -> torch.Tensor:
    """The dense (C*H*W, C'*H'*W') matrix M with ``conv2d(x, weight).flatten(1) == x.flatten(1) @ M``.

    Linear in ``weight``. For LeNet's second convolution on 8x8 digits (6x4x4 -> 16x4x4) it has 24,576 entries,
    fewer multiply-adds than the convolution itself (the zero padding is skipped).
    """
    n = in_shape[0] * in_shape[1] * in_shape[2]
    eye = torch.eye(n, dtype=weight.dtype, device=weight.device).view(n, *in_shape)
    return F.conv2d(eye, weight, padding=padding).reshape(n, -1)


def _window_major(t: torch.Tensor) -> torch.Tensor:
    """(..., C, H, W) -> (4, ..., C, H/2, W/2): the four elements of every 2x2 pooling window in four blocks,
    so pooling becomes an elementwise max / mean of contiguous blocks."""
    *lead, c, h, w = t.shape
    t = t[..., :h - h % 2, :w - w % 2].reshape(*lead, c, h // 2, 2, w // 2, 2)
    nd = t.dim()
    perm = [nd - 3, nd - 1] + list(range(nd - 5)) + [nd - 5, nd - 4, nd - 2]
    return t.permute(*perm).reshape(4, *lead, c, h // 2, w // 2)


def _lenet_evaluator(model: LeNet, center: Params, dirs: list[Params], x: torch.Tensor):
    """A function ``coeffs (P, k) -> logits (P, B, 10)`` for LeNet at the points ``center + coeffs @ dirs``.

    Everything that does not depend on the point is computed once here: the first convolution's outputs for the
    center and each direction (the layer is linear in its weights, so a point's output is their combination) and,
    for small maps, the second convolution as dense matrices (also linear in the weights). Per chunk of points
    only combinations, pooling maxima and batched matrix products remain; pooling runs as an in-place running
    maximum over the four positions of each 2x2 window, so no pre-pooling tensor is ever materialized.
    """
    k, B = len(dirs), x.shape[0]
    act, pool = model.act, model.pool
    is_max = isinstance(pool, nn.MaxPool2d)
    relu = isinstance(act, nn.ReLU)
    everyone = [center, *dirs]

    def pool_and_act(block, bias: torch.Tensor | None = None) -> torch.Tensor:
        """2x2 pooling, then the activation (for max pooling; before it for average pooling, as LeNet does).

        ``block(i, out)`` is the layer's output at window position i (0-3), written into ``out`` when one is
        given, else a new tensor. Max pooling keeps a running maximum in place, so only two blocks ever exist;
        a per-channel ``bias`` is added after the max, with which it commutes.
        """
        acc = block(0, None)
        if not is_max:
            acc = act(acc)
        buf = torch.empty_like(acc)
        for i in range(1, 4):
            b = block(i, buf)
            if is_max:
                torch.maximum(acc, b, out=acc)
            else:
                acc.add_(act(b))
        if is_max:
            if bias is not None:
                acc.add_(bias)
            return acc.relu_() if relu else act(acc)
        return acc.mul_(0.25)

    names = ["conv2.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]
    conv1 = torch.stack([F.conv2d(x, p["conv1.weight"], p["conv1.bias"], padding=model.conv1.padding)
                         for p in everyone])  # (1 + k, B, 6, S, S)
    win1 = _window_major(conv1)  # (4, 1 + k, B, 6, s, s): window position first
    in_shape = tuple(win1.shape[3:])
    win1 = win1.reshape(4, 1 + k, -1).contiguous()
    c2 = model.conv2.out_channels
    small = win1.shape[-1] // B <= 512
    if small:
        # conv2 as a dense (6*s*s, 16*o*o) matrix per point, columns window-major for the second pooling.
        mats = torch.stack([conv_as_matrix(p["conv2.weight"], in_shape, model.conv2.padding) for p in everyone])
        n_in = mats.shape[1]
        o = int(round((mats.shape[2] / c2) ** 0.5))
        mats = _window_major(mats.view(1 + k, n_in, c2, o, o))  # (4, 1 + k, n_in, c2, o/2, o/2)
        mats = mats.reshape(4, 1 + k, -1).contiguous()
    else:
        names.append("conv2.weight")
    weights = _PointWeights(center, dirs, names)
    at = weights.at

    def logits(coeffs: torch.Tensor) -> torch.Tensor:
        P = coeffs.shape[0]
        cw = _PointWeights.mix(coeffs)  # (P, 1 + k)
        h = pool_and_act(lambda i, out: torch.mm(cw, win1[i], out=out)).view(P, B, -1)  # (P, B, 6*s*s)
        b2 = at(cw, "conv2.bias")  # (P, 16)
        if small:
            M = [(cw @ mats[i]).view(P, n_in, -1) for i in range(4)]  # 4 x (P, n_in, 16*(o/2)^2)
            bias = b2.repeat_interleave((o // 2) ** 2, dim=1).view(P, 1, -1)
            if is_max:
                h = pool_and_act(lambda i, out: torch.bmm(h, M[i], out=out), bias)
            else:  # the activation comes before the average: the bias goes in first
                h = pool_and_act(lambda i, out: torch.baddbmm(bias, h, M[i]))
        else:  # larger inputs: a grouped convolution over the stacked per-point weights
            w2 = at(cw, "conv2.weight")
            hin = h.view(P, B, *in_shape).transpose(0, 1).reshape(B, P * in_shape[0], *in_shape[1:])
            out = F.conv2d(hin, w2.reshape(-1, *w2.shape[2:]), b2.reshape(-1), padding=model.conv2.padding,
                           groups=P)
            out = out.view(B, P, c2, *out.shape[2:]).transpose(0, 1)  # (P, B, c2, o, o)
            blocks = _window_major(out)  # the conv2d output already holds the bias
            h = pool_and_act(lambda i, _out: blocks[i].clone() if i == 0 else blocks[i])
        h = h.reshape(P, B, -1)  # (P, B, 16*o'*o'), in (C, H, W) order like LeNet's flatten
        for name in ("fc1", "fc2", "fc3"):
            h = torch.baddbmm(at(cw, f"{name}.bias").unsqueeze(1), h, at(cw, f"{name}.weight").transpose(1, 2))
            if name != "fc3":
                h = h.relu_() if relu else act(h)
        return h

    return logits


def _mlp_evaluator(model: MLP, center: Params, dirs: list[Params], x: torch.Tensor):
    """A function ``coeffs (P, k) -> logits (P, B, C)`` for the MLP. The first layer is linear in its weights:
    its outputs for the center and each direction are computed once and combined per point."""
    layers = list(enumerate(model.layers))
    first = next(i for i, layer in layers if isinstance(layer, nn.Linear))
    bases = torch.stack([F.linear(x.flatten(1), p[f"layers.{first}.weight"], p[f"layers.{first}.bias"])
                         for p in (center, *dirs)])  # (1 + k, B, H)
    B, H = bases.shape[1:]
    bases = bases.reshape(bases.shape[0], -1)
    rest = layers[first + 1:]
    with_params = [i for i, layer in rest if isinstance(layer, (nn.Linear, nn.BatchNorm1d))]
    weights = _PointWeights(center, dirs, [f"layers.{i}.{w}" for i in with_params for w in ("weight", "bias")])

    def logits(coeffs: torch.Tensor) -> torch.Tensor:
        P = coeffs.shape[0]
        cw = _PointWeights.mix(coeffs)
        h = (cw @ bases).view(P, B, H)
        for i, layer in rest:
            name = f"layers.{i}"
            if isinstance(layer, nn.Linear):
                w, b = weights.at(cw, f"{name}.weight"), weights.at(cw, f"{name}.bias")
                h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            elif isinstance(layer, nn.BatchNorm1d):  # evaluation mode: running statistics
                g, b = weights.at(cw, f"{name}.weight"), weights.at(cw, f"{name}.bias")
                inv = (layer.running_var + layer.eps).rsqrt()
                h = (h - layer.running_mean) * inv * g.unsqueeze(1) + b.unsqueeze(1)
            else:
                h = layer(h)
        return h

    return logits


def supports_batched(model: nn.Module) -> bool:
    return type(model) in (LeNet, MLP)


def _chunk_size(model: nn.Module, x: torch.Tensor) -> int:
    """Grid points per batched forward. The widest per-point activation (LeNet's pooled first convolution, an MLP's
    widest layer) times the points should fit a budget: about 1.6M floats on a CPU, where chunks that stay in
    cache measured fastest (16 points of 1,024 digits: 1.7 s for a 41x41 slice vs 2.6 s at 32 and 3.3 s at 64),
    and 64M floats on a GPU, where fewer, larger launches win."""
    if isinstance(model, LeNet):
        width = model.conv1.out_channels * (x.shape[-1] // 2) ** 2
    else:
        width = max((m.out_features for m in model.modules() if isinstance(m, nn.Linear)), default=64)
    budget = 64_000_000 if x.device.type == "cuda" else 1_600_000
    return int(max(1, min(1024, budget // max(x.shape[0] * width, 1))))


def losses_at(model: nn.Module, center: Params, dirs: list[Params], coeffs: np.ndarray | torch.Tensor,
              x: torch.Tensor, y: torch.Tensor, method: str = "auto", chunk: int | None = None) -> np.ndarray:
    """Mean cross-entropy at the points ``center + sum_j coeffs[p, j] * dirs[j]``; coeffs (P, k) -> (P,) losses.

    ``method``: "batched" (many points per forward; LeNet and MLP), "loop" (one functional_call per point, the
    reference method) or "auto" (batched when supported).
    """
    coeffs = torch.as_tensor(np.asarray(coeffs, dtype=np.float32)).to(x.device)
    if method == "auto":
        method = "batched" if supports_batched(model) else "loop"
    out = torch.empty(coeffs.shape[0], dtype=torch.float32)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            if method == "loop":
                for p in range(coeffs.shape[0]):
                    out[p] = point_loss(model, combine(center, dirs, coeffs[p].tolist()), x, y)
            else:
                make = _lenet_evaluator if isinstance(model, LeNet) else _mlp_evaluator
                logits = make(model, center, dirs, x)
                step = chunk or _chunk_size(model, x)
                for i in range(0, coeffs.shape[0], step):
                    out[i:i + step] = _per_point_ce(logits(coeffs[i:i + step]), y).float().cpu()
    finally:
        model.train(was)
    return out.numpy()


def loss_grid(model: nn.Module, center: Params, d1: Params, d2: Params, alphas, betas, x: torch.Tensor,
              y: torch.Tensor, method: str = "auto") -> np.ndarray:
    """Losses on the plane ``center + a d1 + b d2``: array (len(betas), len(alphas)), rows follow b."""
    A, Bm = np.meshgrid(np.asarray(alphas, dtype=np.float32), np.asarray(betas, dtype=np.float32))
    coeffs = np.stack([A.ravel(), Bm.ravel()], 1)
    return losses_at(model, center, [d1, d2], coeffs, x, y, method).reshape(A.shape)


def interpolate_1d(model: nn.Module, start: Params, end: Params, alphas, x: torch.Tensor,
                   y: torch.Tensor) -> np.ndarray:
    """Loss along ``(1 - a) start + a end`` for each a in ``alphas`` (a = 0 start, 1 end, > 1 beyond)."""
    d = {k: end[k] - start[k] for k in start}
    coeffs = np.asarray(alphas, dtype=np.float32).reshape(-1, 1)
    return losses_at(model, start, [d], coeffs, x, y)


def random_slices(model: nn.Module, center: Params, seeds, x: torch.Tensor, y: torch.Tensor,
                  extent: float = 1.0, n: int = 21) -> dict:
    """One 2-D slice per direction seed: ``coords`` (n,), ``losses`` (len(seeds), n, n), ``seconds``."""
    coords = np.linspace(-extent, extent, n)
    t = time.perf_counter()
    losses = []
    for s in seeds:
        d1, d2 = filter_normalized_directions(center, s)
        losses.append(loss_grid(model, center, d1, d2, coords, coords, x, y))
    return {"coords": coords, "losses": np.stack(losses), "seconds": time.perf_counter() - t}


# -- the PCA plane of a training path ---------------------------------------------------------------------
def _top_singular(M: np.ndarray, k: int, exact_below: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` singular values and right singular vectors of ``M`` (T, D). A path of a few hundred points
    gets an exact thin SVD; a long one (5,000 x 21,386: a full SVD takes minutes) a randomized range finder
    with oversampling and power iterations (Halko et al. 2011), accurate to rounding for the top directions."""
    if min(M.shape) <= exact_below:
        _, S, Vt = np.linalg.svd(M, full_matrices=False)
        return S[:k], Vt[:k]
    rng = np.random.default_rng(0)
    Q = np.linalg.qr(M @ rng.standard_normal((M.shape[1], k + 10)))[0]
    for _ in range(4):  # power iterations sharpen the gap to the rest of the spectrum
        Q = np.linalg.qr(M.T @ Q)[0]
        Q = np.linalg.qr(M @ Q)[0]
    _, S, Vt = np.linalg.svd(Q.T @ M, full_matrices=False)
    return S[:k], Vt[:k]


def trajectory_pca(path: np.ndarray) -> dict:
    """PCA of a training path (T, D) of flat parameter vectors, relative to its last point (Li et al. §7).

    Returns ``directions`` (2, D) unit vectors, ``coords`` (T, 2) of the path in that plane (the final point at
    the origin) and ``explained`` (2,) the share of the path's variance each direction explains.
    """
    path = np.asarray(path, dtype=np.float64)
    M = path[:-1] - path[-1]
    if M.shape[0] < 2 or not np.isfinite(M).all() or np.abs(M).max() == 0:
        raise ValueError("the training path needs at least three distinct points: train a little longer")
    Mc = M - M.mean(0)
    S, Vt = _top_singular(Mc, 2)
    explained = S**2 / max(float(np.sum(Mc * Mc)), 1e-300)  # the total variance is the squared Frobenius norm
    dirs = Vt
    coords = (path - path[-1]) @ dirs.T
    return {"directions": dirs, "coords": coords, "explained": explained}


def pca_plane_grid(model: nn.Module, final: Params, pca: dict, x: torch.Tensor, y: torch.Tensor,
                   n: int = 31, pad: float = 0.25) -> dict:
    """Losses on the PCA plane around the final weights, covering the projected path with ``pad`` margin:
    ``alphas`` (n,), ``betas`` (n,), ``losses`` (n, n)."""
    c = pca["coords"]
    lo, hi = c.min(0), c.max(0)
    margin = pad * np.maximum(hi - lo, 1e-3)
    alphas = np.linspace(lo[0] - margin[0], hi[0] + margin[0], n)
    betas = np.linspace(lo[1] - margin[1], hi[1] + margin[1], n)
    dev, dt = next(iter(final.values())).device, next(iter(final.values())).dtype
    d1, d2 = (unflatten(torch.as_tensor(v, dtype=dt, device=dev), final) for v in pca["directions"])
    return {"alphas": alphas, "betas": betas, "losses": loss_grid(model, final, d1, d2, alphas, betas, x, y)}


def matmul_peak_gflops(n: int = 1024, repeats: int = 20, device: torch.device | str = "cpu") -> float:
    """Measured float32 matmul throughput (GFLOP/s) of an n x n product on ``device``: best of ``repeats``."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    best = math.inf
    for _ in range(repeats + 1):
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def forward_flops(model: nn.Module, x: torch.Tensor) -> float:
    """Multiply-add FLOPs (2 per MAC) of one forward pass on ``x``, counted from conv and linear layers."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            k = mod.weight[0].numel()
            total += 2 * out.numel() * k
        elif isinstance(mod, nn.Linear):
            total += 2 * out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was = model.training
    try:
        with torch.no_grad():
            model.eval()
            model(x)
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    return float(total)
