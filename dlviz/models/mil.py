"""Multiple-instance learning: one instance encoder, a permutation-invariant pooling, one bag classifier.

Poolings (Ilse, Tomczak & Welling 2018, "Attention-based deep multiple instance learning"), over the valid
instances h_1..h_n (n, D) of a bag:

- mean:      z = (1/n) sum_k h_k
- max:       z_d = max_k h_kd (per feature)
- attention: z = sum_k a_k h_k,  a_k = softmax_k(w^T tanh(V h_k))
- gated:     z = sum_k a_k h_k,  a_k = softmax_k(w^T (tanh(V h_k) * sigmoid(U h_k)))

Bags come padded to a common length with a mask (B, L); padding never changes a bag's output.
"""

from __future__ import annotations

import torch
import torch.nn as nn

POOLINGS = ("mean", "max", "attention", "gated")


class InstanceEncoder(nn.Module):
    """Small conv net: (N, 1, S, S) -> (N, dim). Two conv(3x3) + ReLU + 2x2 max-pool blocks, then a linear layer."""

    def __init__(self, size: int = 8, width: int = 16, dim: int = 64):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(2 * width * (size // 4) ** 2, dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class MeanPool(nn.Module):
    """z = mean of the valid h_k; the relevance of each instance is 1/n."""

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = mask.to(h.dtype)
        n = m.sum(1, keepdim=True).clamp(min=1)
        return (h * m[..., None]).sum(1) / n, m / n


class MaxPool(nn.Module):
    """z_d = max over the valid h_kd; an instance's relevance is the share of the D features it supplies (a tie,
    e.g. a feature that ReLU zeroes everywhere, is split among the tied instances, so the share does not depend on
    the order)."""

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hm = h.masked_fill(~mask[..., None], float("-inf"))
        z = hm.amax(1)  # (B, D)
        hit = ((hm == z[:, None, :]) & mask[..., None]).to(h.dtype)  # (B, L, D)
        share = (hit / hit.sum(1, keepdim=True).clamp(min=1)).sum(-1) / h.shape[-1]
        return z, share


class AttentionPool(nn.Module):
    """z = sum_k a_k h_k with a = softmax over the valid instances of w^T tanh(V h_k) (gated: times sigmoid(U h_k))."""

    def __init__(self, dim: int, attn_dim: int = 32, gated: bool = False):
        super().__init__()
        self.V = nn.Linear(dim, attn_dim)
        self.U = nn.Linear(dim, attn_dim) if gated else None
        self.w = nn.Linear(attn_dim, 1)

    def scores(self, h: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, L) unnormalized attention scores."""
        t = torch.tanh(self.V(h))
        if self.U is not None:
            t = t * torch.sigmoid(self.U(h))
        return self.w(t).squeeze(-1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = torch.softmax(self.scores(h).masked_fill(~mask, float("-inf")), dim=1)
        return (a[..., None] * h).sum(1), a


def make_pool(name: str, dim: int, attn_dim: int = 32) -> nn.Module:
    if name == "mean":
        return MeanPool()
    if name == "max":
        return MaxPool()
    if name in ("attention", "gated"):
        return AttentionPool(dim, attn_dim, gated=name == "gated")
    raise ValueError(f"unknown pooling {name!r}; choose {', '.join(POOLINGS)}")


class MILNet(nn.Module):
    """Instance encoder -> pooling -> linear bag classifier (one logit).

    forward(x (B, L, 1, S, S), mask (B, L) bool) -> (logits (B,), relevance (B, L)): relevance is the attention
    weight a_k (attention, gated), the share of max-pooled features (max), or 1/n (mean); 0 on padding.
    """

    def __init__(self, pooling: str = "attention", size: int = 8, width: int = 16, dim: int = 64, attn_dim: int = 32):
        super().__init__()
        self.pooling = pooling
        self.encoder = InstanceEncoder(size, width, dim)
        self.pool = make_pool(pooling, dim, attn_dim)
        self.classifier = nn.Linear(dim, 1)

    def embed(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, L, 1, S, S) -> (B, L, D); only valid instances go through the encoder (padding rows are 0)."""
        flat = self.encoder(x[mask])
        h = flat.new_zeros(*mask.shape, flat.shape[-1])
        h[mask] = flat
        return h

    def pool_logits(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedded bags h (B, L, D) with mask (B, L) -> (logits (B,), relevance (B, L)): pooling + classifier."""
        z, rel = self.pool(h, mask)
        return self.classifier(z).squeeze(-1), rel

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pool_logits(self.embed(x, mask), mask)


def shuffle_bags(x: torch.Tensor, mask: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each bag's valid instances in a random order (padding stays at the end): (x', mask, perm (B, L))."""
    b, length = mask.shape
    keys = torch.rand(b, length, generator=gen).to(mask.device).masked_fill(~mask, 2.0)
    perm = keys.argsort(1)
    return x[torch.arange(b, device=mask.device)[:, None], perm], mask, perm


@torch.no_grad()
def permutation_gap(model: MILNet, x: torch.Tensor, mask: torch.Tensor, gen: torch.Generator) -> float:
    """max over bags of |f(bag) - f(shuffled bag)| (logits): 0 up to rounding for a permutation-invariant model."""
    was = model.training
    model.eval()
    a, _ = model(x, mask)
    xs, ms, _ = shuffle_bags(x, mask, gen)
    b, _ = model(xs, ms)
    model.train(was)
    return float((a - b).abs().max())


__all__ = ["POOLINGS", "InstanceEncoder", "MeanPool", "MaxPool", "AttentionPool", "MILNet", "make_pool",
           "shuffle_bags", "permutation_gap"]
