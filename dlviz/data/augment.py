"""Two augmented views per image: the "positives" of self-supervised learning.

Two implementations of the same recipe (random resized crop + shift, small rotation, intensity jitter, Gaussian
noise, cutout) on (B, 1, H, W) tensors in [0, 1]:

- :func:`two_views` draws fresh parameters for every image of a batch in one batched affine-grid pass
  (about 1 ms per 256 images). This is what training uses.
- :func:`torchvision_pipeline` is the same recipe as ``torchvision.transforms.v2`` transforms, applied one image
  at a time by :func:`views_torchvision` (a v2 transform called on a batch tensor draws ONE set of random
  parameters for the whole batch, so a per-image loop is needed; it is about 50x slower). Use it as a reference.

Also :func:`digits_in_clutter`: digits pasted at random places on a cluttered canvas, a harder set on which raw
pixels fail and the crop/shift augmentations must teach position invariance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augment:
    """Strengths of the augmentations (0 turns one off)."""

    crop_min: float = 0.6  # smallest crop area, as a fraction of the image (random resized crop)
    shift: float = 0.1  # extra random shift, as a fraction of the image side
    rotation: float = 10.0  # largest rotation, degrees
    jitter: float = 0.2  # intensity jitter: contrast in [1-j, 1+j], brightness in [-j/2, j/2]
    noise: float = 0.05  # standard deviation of added Gaussian noise
    cutout: float = 0.25  # side of the zeroed square, as a fraction of the image side (applied to half the images)


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator | None, device) -> torch.Tensor:
    return (torch.rand(n, generator=gen) * (hi - lo) + lo).to(device)


def random_view(x: torch.Tensor, aug: Augment, gen: torch.Generator | None = None) -> torch.Tensor:
    """One augmented view of every image in ``x`` (B, 1, H, W), each with its own random parameters."""
    b, _, h, w = x.shape
    dev = x.device
    # Random resized crop: a crop of side sqrt(area) resized to the full image is an affine zoom by sqrt(area),
    # centered anywhere the crop fits; then a shift and a rotation. theta maps output to input coordinates.
    side = _uniform(b, aug.crop_min, 1.0, gen, dev).sqrt()
    room = 1.0 - side
    tx = _uniform(b, -1, 1, gen, dev) * room + _uniform(b, -2 * aug.shift, 2 * aug.shift, gen, dev)
    ty = _uniform(b, -1, 1, gen, dev) * room + _uniform(b, -2 * aug.shift, 2 * aug.shift, gen, dev)
    ang = _uniform(b, -aug.rotation, aug.rotation, gen, dev) * (math.pi / 180)
    cos, sin = torch.cos(ang) * side, torch.sin(ang) * side
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if aug.jitter > 0:
        contrast = _uniform(b, 1 - aug.jitter, 1 + aug.jitter, gen, dev).view(b, 1, 1, 1)
        bright = _uniform(b, -aug.jitter / 2, aug.jitter / 2, gen, dev).view(b, 1, 1, 1)
        out = out * contrast + bright
    if aug.noise > 0:
        out = out + aug.noise * torch.randn(out.shape, generator=gen).to(dev)
    if aug.cutout > 0:
        size = max(1, round(aug.cutout * h))
        cy = (torch.rand(b, generator=gen) * (h - size + 1)).floor().to(dev).view(b, 1, 1)
        cx = (torch.rand(b, generator=gen) * (w - size + 1)).floor().to(dev).view(b, 1, 1)
        on = (torch.rand(b, generator=gen) < 0.5).to(dev).view(b, 1, 1)
        rows = torch.arange(h, device=dev).view(1, h, 1)
        cols = torch.arange(w, device=dev).view(1, 1, w)
        hole = on & (rows >= cy) & (rows < cy + size) & (cols >= cx) & (cols < cx + size)
        out = out.masked_fill(hole.unsqueeze(1), 0.0)
    return out.clamp(0, 1)


def two_views(x: torch.Tensor, aug: Augment, gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independently augmented views (B, 1, H, W) of the same images: a positive pair per image."""
    return random_view(x, aug, gen), random_view(x, aug, gen)


def torchvision_pipeline(size: int, aug: Augment):
    """The same recipe as ``torchvision.transforms.v2`` (for one (1, H, W) image tensor at a time)."""
    from torchvision.transforms import v2

    steps = [v2.RandomResizedCrop(size, scale=(aug.crop_min, 1.0), ratio=(0.9, 1.1), antialias=True)]
    if aug.shift > 0 or aug.rotation > 0:
        steps.append(v2.RandomAffine(degrees=aug.rotation, translate=(aug.shift, aug.shift)))
    if aug.jitter > 0:
        steps.append(v2.ColorJitter(brightness=aug.jitter, contrast=aug.jitter))
    if aug.noise > 0:
        steps.append(v2.GaussianNoise(sigma=aug.noise, clip=True))
    if aug.cutout > 0:
        area = aug.cutout**2
        steps.append(v2.RandomErasing(p=0.5, scale=(area * 0.8, area * 1.2), ratio=(0.9, 1.1), value=0.0))
    return v2.Compose(steps)


def views_torchvision(x: torch.Tensor, aug: Augment) -> tuple[torch.Tensor, torch.Tensor]:
    """Two views of each image of (B, 1, H, W) with torchvision v2, one image at a time (own random draws)."""
    t = torchvision_pipeline(x.shape[-1], aug)
    one = torch.stack([t(img) for img in x]).clamp(0, 1)
    two = torch.stack([t(img) for img in x]).clamp(0, 1)
    return one, two


def digits_in_clutter(x: torch.Tensor, canvas: int, gen: torch.Generator, clutter: int = 6) -> torch.Tensor:
    """Paste each digit (B, 1, s, s) at a random place on a (canvas x canvas) background of clutter.

    The clutter is ``clutter`` short random strokes (fragments of other digits' pixels would leak class
    information, so strokes are random lines). Returns (B, 1, canvas, canvas) in [0, 1].
    """
    b, _, s, _ = x.shape
    out = torch.zeros(b, 1, canvas, canvas)
    yy, xx = torch.meshgrid(torch.arange(canvas).float(), torch.arange(canvas).float(), indexing="ij")
    for _ in range(clutter):  # anti-aliased line segments of random position, angle and length
        p0 = torch.rand(b, 2, generator=gen) * canvas
        ang = torch.rand(b, generator=gen) * math.pi
        length = 2 + torch.rand(b, generator=gen) * canvas / 4
        d = torch.stack([torch.cos(ang), torch.sin(ang)], 1)
        rel_x, rel_y = xx.view(1, canvas, canvas) - p0[:, 0, None, None], yy.view(1, canvas, canvas) - p0[:, 1, None, None]
        along = (rel_x * d[:, 0, None, None] + rel_y * d[:, 1, None, None]).clamp(min=0)
        along = torch.minimum(along, length.view(b, 1, 1))
        dist = ((rel_x - along * d[:, 0, None, None]) ** 2 + (rel_y - along * d[:, 1, None, None]) ** 2).sqrt()
        out[:, 0] = torch.maximum(out[:, 0], (1.2 - dist).clamp(0, 1) * 0.6)
    oy = torch.randint(0, canvas - s + 1, (b,), generator=gen)
    ox = torch.randint(0, canvas - s + 1, (b,), generator=gen)
    for i in range(b):
        patch = out[i, 0, oy[i]:oy[i] + s, ox[i]:ox[i] + s]
        out[i, 0, oy[i]:oy[i] + s, ox[i]:ox[i] + s] = torch.maximum(patch, x[i, 0])
    return out
