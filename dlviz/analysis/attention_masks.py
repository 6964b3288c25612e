"""CLS-to-patch attention maps, the mask that keeps a fraction of the attention mass, IoU with an object mask.

As in the DINO paper's visualization: for each head, take the CLS token's attention over the patches, sort it,
and keep the smallest set of patches that holds ``keep`` (60%) of the mass. IoU is measured on the patch grid:
a patch belongs to the object when at least ``PATCH_OBJECT_FRACTION`` of its pixels do.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PATCH_OBJECT_FRACTION = 0.25


def cls_attention(attn: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, heads, N, N) attention -> (B, heads, gh, gw) CLS-to-patch attention (rows sum to <= 1).

    The patches are the last gh * gw tokens (after the CLS token and any registers)."""
    B, H = attn.shape[:2]
    return attn[:, :, 0, attn.shape[-1] - grid[0] * grid[1]:].reshape(B, H, *grid)


def mass_mask(maps: torch.Tensor, keep: float = 0.6) -> torch.Tensor:
    """Boolean mask of the same shape as ``maps`` (..., gh, gw): the fewest cells holding ``keep`` of each map's mass."""
    shape = maps.shape
    flat = maps.reshape(-1, shape[-2] * shape[-1]).float()
    flat = flat / flat.sum(1, keepdim=True).clamp_min(1e-12)
    vals, idx = flat.sort(dim=1, descending=True)
    cum = vals.cumsum(1)
    # Keep a cell while the mass before it is below ``keep`` (so at least one cell is always kept).
    keep_sorted = (cum - vals) < keep
    out = torch.zeros_like(flat, dtype=torch.bool).scatter(1, idx, keep_sorted)
    return out.reshape(shape)


def patch_masks(masks: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, S, S) pixel masks -> (B, S/patch, S/patch) patch masks (a patch is object if >= 25% of its pixels are)."""
    frac = F.avg_pool2d(masks.float().unsqueeze(1), patch)[:, 0]
    return frac >= PATCH_OBJECT_FRACTION


def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU over the last two dims of boolean tensors (broadcasting); 0 when both are empty."""
    inter = (a & b).flatten(-2).sum(-1).float()
    union = (a | b).flatten(-2).sum(-1).float()
    return inter / union.clamp_min(1)


def head_ious(maps: torch.Tensor, obj: torch.Tensor, keep: float = 0.6) -> np.ndarray:
    """Mean IoU over images for each head: maps (B, heads, gh, gw), obj (B, gh, gw) bool -> (heads,)."""
    return iou(mass_mask(maps, keep), obj[:, None]).mean(0).cpu().numpy()


def head_object_mass(maps: torch.Tensor, obj: torch.Tensor) -> np.ndarray:
    """Share of each head's attention that lands on object patches, mean over images: (heads,).

    Unlike the IoU it does not penalize a head for attending to only part of the object: a head that puts all
    its attention on three of the object's eleven patches scores 1 here and about 0.3 in IoU. Uniform attention
    scores the object's share of the patches.
    """
    p = maps.float() / maps.float().sum((-2, -1), keepdim=True).clamp_min(1e-12)
    return (p * obj[:, None].float()).sum((-2, -1)).mean(0).cpu().numpy()


def map_iou(maps: torch.Tensor, obj: torch.Tensor, keep: float = 0.6) -> float:
    """Mean IoU over images for one map per image (e.g. a brightness baseline): maps (B, gh, gw)."""
    return float(iou(mass_mask(maps, keep), obj).mean())


def brightness_maps(images: torch.Tensor, patch: int) -> torch.Tensor:
    """The baseline that knows nothing but intensity: mean brightness per patch, (B, gh, gw)."""
    return F.avg_pool2d(images.mean(1, keepdim=True), patch)[:, 0]


def output_entropies(probs: torch.Tensor) -> tuple[float, float]:
    """(entropy of the batch-mean distribution, mean per-sample entropy) in nats, for (B, K) probabilities.

    Collapse signatures: one dimension dominating -> both near 0; uniform output -> both near log K.
    Healthy DINO: the mean is spread (high) while each sample is confident (low).
    """
    p = probs.float().clamp_min(1e-12)
    mean = p.mean(0)
    return float(-(mean * mean.log()).sum()), float(-(p * p.log()).sum(1).mean())
