"""Self-supervised learning heads on a small CNN: SimSiam, BYOL and SimCLR (InfoNCE) on one model class.

Shapes: images (B, 1, S, S) -> encoder features h (B, width*4) -> projector output z (B, d) -> predictor p (B, d).
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F


def _norm(bn: bool, c: int, conv: bool = False) -> nn.Module:
    if not bn:
        return nn.Identity()
    return nn.BatchNorm2d(c) if conv else nn.BatchNorm1d(c)


class Encoder(nn.Module):
    """Three 3x3 conv blocks (the last two with stride 2), average pooling to 2x2: (B,1,S,S) -> (B, 16w).

    Pooling to 2x2 rather than 1x1 keeps a coarse layout, which small digits need.
    """

    def __init__(self, width: int = 32, bn: bool = True):
        super().__init__()
        c1, c2, c3 = width, 2 * width, 4 * width
        self.net = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), _norm(bn, c1, True), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), _norm(bn, c2, True), nn.ReLU(),
            nn.Conv2d(c2, c3, 3, stride=2, padding=1), _norm(bn, c3, True), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.dim = 4 * c3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def mlp(d_in: int, d_hidden: int, d_out: int, bn: bool, out_bn: bool = False) -> nn.Sequential:
    """Linear -> [BN] -> ReLU -> Linear [-> BN without affine, as at the output of SimSiam's projector]."""
    layers = [nn.Linear(d_in, d_hidden), _norm(bn, d_hidden), nn.ReLU(), nn.Linear(d_hidden, d_out)]
    if out_bn:
        layers.append(nn.BatchNorm1d(d_out, affine=False))
    return nn.Sequential(*layers)


class SSLNet(nn.Module):
    """Encoder + projector (+ predictor). ``head_bn`` puts BatchNorm in the hidden layers of both heads."""

    def __init__(self, width: int = 32, out_dim: int = 64, predictor: bool = True, head_bn: bool = True,
                 out_bn: bool = False, encoder_bn: bool = True):
        super().__init__()
        self.encoder = Encoder(width, encoder_bn)
        self.projector = mlp(self.encoder.dim, self.encoder.dim, out_dim, head_bn, out_bn)
        # SimSiam's predictor is a bottleneck: hidden width d/4.
        self.predictor = mlp(out_dim, max(8, out_dim // 4), out_dim, head_bn) if predictor else None
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(h, z, p): encoder features, projector output, predictor output (p = z without a predictor)."""
        h = self.encoder(x)
        z = self.projector(h)
        p = self.predictor(z) if self.predictor is not None else z
        return h, z, p


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """SimSiam's D(p, z) = -<p/||p||, z/||z||>, averaged over the batch; in [-1, 1], -1 when aligned."""
    return -(F.normalize(p, dim=1) * F.normalize(z, dim=1)).sum(1).mean()


def simsiam_loss(p1, p2, z1, z2, stop_grad: bool = True) -> torch.Tensor:
    """L = D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2; without ``stop_grad`` the gradient also flows through z."""
    if stop_grad:
        z1, z2 = z1.detach(), z2.detach()
    return 0.5 * negative_cosine(p1, z2) + 0.5 * negative_cosine(p2, z1)


def info_nce_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent: each of the 2N views must pick its partner among the 2N-1 others (2(N-1) negatives).

    logits_ij = cos(z_i, z_j) / temperature (the temperature divides the logits); self-pairs are excluded.
    """
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, targets)


class EMATarget(nn.Module):
    """BYOL's target network: an exponential moving average of the online encoder + projector (no gradients)."""

    def __init__(self, online: SSLNet):
        super().__init__()
        self.encoder = copy.deepcopy(online.encoder)
        self.projector = copy.deepcopy(online.projector)
        for q in self.parameters():
            q.requires_grad_(False)

    @torch.no_grad()
    def update(self, online: SSLNet, momentum: float) -> None:
        """target <- momentum * target + (1 - momentum) * online (BN running stats are copied the same way)."""
        for mod_t, mod_o in ((self.encoder, online.encoder), (self.projector, online.projector)):
            for t, o in zip(mod_t.parameters(), mod_o.parameters()):
                t.lerp_(o, 1.0 - momentum)
            for t, o in zip(mod_t.buffers(), mod_o.buffers()):
                if t.dtype.is_floating_point:
                    t.lerp_(o, 1.0 - momentum)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder(x))


def info_nce_queue(q: torch.Tensor, k: torch.Tensor, negatives: torch.Tensor, temperature: float,
                   negative_mask: torch.Tensor | None = None) -> torch.Tensor:
    """MoCo's / InstDisc's InfoNCE: each query q_i picks its key k_i among 1 + K candidates.

    ``q``, ``k`` (N, d) and ``negatives`` (K, d) are L2-normalized; logits (N, 1+K) = [q_i.k_i, q_i.n_1 .. q_i.n_K]
    / temperature, label 0 (the positive is column 0). ``negative_mask`` (N, K) True drops that negative (InstDisc:
    a sampled "negative" that is the query's own image).
    """
    pos = (q * k).sum(1, keepdim=True)  # (N, 1)
    neg = q @ negatives.T  # (N, K)
    if negative_mask is not None:
        neg = neg.masked_fill(negative_mask, float("-inf"))
    logits = torch.cat([pos, neg], 1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


class KeyQueue:
    """MoCo's dictionary: a FIFO ring buffer of the K most recent keys (K, d), with the step each was made at and
    the index of its training image (for the age and consistency views).

    ``enqueue`` writes a batch over the oldest entries (the pointer wraps around), so the queue always holds the
    last K keys; before K keys have arrived the unfilled slots are not returned by ``keys``.
    """

    def __init__(self, size: int, dim: int, device: torch.device | str = "cpu"):
        self.size = size
        self.buf = torch.zeros(size, dim, device=device)
        self.step = torch.full((size,), -1, dtype=torch.long, device=device)  # -1: empty slot
        self.index = torch.full((size,), -1, dtype=torch.long, device=device)
        self.ptr = 0
        self.count = 0  # keys ever enqueued

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, step: int, index: torch.Tensor | None = None) -> torch.Tensor:
        """Append (B, d) keys made at ``step``, overwriting the oldest; B may exceed K (then the last K stay).
        Returns the slots written (for buffers kept beside the queue)."""
        keys = keys[-self.size:]
        idx = None if index is None else index[-self.size:]
        b = len(keys)
        slots = (self.ptr + torch.arange(b, device=self.buf.device)) % self.size
        self.buf[slots] = keys.to(self.buf.dtype)
        self.step[slots] = step
        if idx is not None:
            self.index[slots] = idx.to(self.index.device)
        self.ptr = (self.ptr + b) % self.size
        self.count += b
        return slots

    @property
    def filled(self) -> int:
        return min(self.count, self.size)

    def keys(self) -> torch.Tensor:
        """The stored keys, oldest first: (min(count, K), d)."""
        if self.count < self.size:
            return self.buf[:self.count]
        return torch.cat([self.buf[self.ptr:], self.buf[:self.ptr]])

    def ages(self, now: int) -> torch.Tensor:
        """Steps since each stored key was made (oldest first)."""
        st = self.step[:self.count] if self.count < self.size else torch.cat([self.step[self.ptr:], self.step[:self.ptr]])
        return now - st


class MemoryBank:
    """InstDisc's memory bank: one L2-normalized feature per training image (N, d), and the step of its last
    update. Entries start as random unit vectors (as in the paper); ``update`` sets
    v_i <- normalize(m v_i + (1 - m) f_i) for the batch's images."""

    def __init__(self, n: int, dim: int, gen: torch.Generator | None = None, device: torch.device | str = "cpu"):
        self.bank = F.normalize(torch.randn(n, dim, generator=gen), dim=1).to(device)
        self.step = torch.zeros(n, dtype=torch.long, device=device)

    @torch.no_grad()
    def update(self, index: torch.Tensor, f: torch.Tensor, momentum: float, step: int) -> None:
        v = momentum * self.bank[index] + (1.0 - momentum) * F.normalize(f.detach(), dim=1)
        self.bank[index] = F.normalize(v, dim=1)
        self.step[index] = step

    def sample(self, k: int, gen: torch.Generator | None = None) -> torch.Tensor:
        """(k,) indices drawn uniformly with replacement: negatives shared by the whole batch (one (N, K) product
        instead of the paper's K draws per query, which would gather an (N, K, d) tensor)."""
        return torch.randint(0, len(self.bank), (k,), generator=gen).to(self.bank.device)


def key_drift(query: nn.Module, key: nn.Module) -> float:
    """Relative distance of the key encoder's weights from the query encoder's: ||θ_k - θ_q|| / ||θ_q||."""
    num = sum(float((a.detach() - b.detach()).pow(2).sum()) for a, b in zip(key.parameters(), query.parameters()))
    den = sum(float(b.detach().pow(2).sum()) for b in query.parameters())
    return (num / max(den, 1e-12)) ** 0.5
