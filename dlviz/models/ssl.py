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
