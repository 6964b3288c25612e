"""Generated 2-D (and 1-D) distributions for GANs, and the noise a generator reads.

Every distribution is sampled on the fly (a GAN's data distribution is a density, not a fixed set), with an
explicit ``torch.Generator`` so a seed reproduces the run. Mixtures of Gaussians also carry their modes, so
mode coverage can be measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

# The d2l "GAN from scratch" example: standard normal points mapped by x A + b.
D2L_A = ((1.0, 2.0), (-0.1, 0.5))
D2L_B = (1.0, 2.0)
RING_RADIUS, RING_STD = 2.0, 0.05
GRID_SPACING, GRID_STD = 2.0, 0.05


@dataclass(frozen=True)
class Toy2D:
    """A 2-D distribution: ``sample(n, gen) -> (n, 2)`` float tensor on the CPU.

    ``bounds`` = (xmin, xmax, ymin, ymax) frames the figures and the density grid; ``modes`` (K, 2) and
    ``mode_std`` describe a Gaussian mixture (None for the others).
    """

    name: str
    title: str
    sample: Callable[[int, torch.Generator], torch.Tensor]
    bounds: tuple[float, float, float, float]
    modes: np.ndarray | None = None
    mode_std: float | None = None


def _mixture(centers: np.ndarray, std: float) -> Callable[[int, torch.Generator], torch.Tensor]:
    c = torch.tensor(centers, dtype=torch.float32)

    def sample(n: int, gen: torch.Generator) -> torch.Tensor:
        idx = torch.randint(len(c), (n,), generator=gen)
        return c[idx] + std * torch.randn(n, 2, generator=gen)

    return sample


def ring_modes(k: int = 8, radius: float = RING_RADIUS) -> np.ndarray:
    """(k, 2) centers equally spaced on a circle."""
    a = 2 * np.pi * np.arange(k) / k
    return np.stack([radius * np.cos(a), radius * np.sin(a)], 1)


def grid_modes(n: int = 5, spacing: float = GRID_SPACING) -> np.ndarray:
    """(n*n, 2) centers of an n x n grid centered at the origin."""
    v = (np.arange(n) - (n - 1) / 2) * spacing
    xx, yy = np.meshgrid(v, v)
    return np.stack([xx.ravel(), yy.ravel()], 1)


def _moons(n: int, gen: torch.Generator) -> torch.Tensor:
    t = math.pi * torch.rand(n, generator=gen)
    lower = torch.rand(n, generator=gen) < 0.5
    x = torch.where(lower, 1 - torch.cos(t), torch.cos(t))
    y = torch.where(lower, 0.5 - torch.sin(t), torch.sin(t))
    pts = torch.stack([x - 0.5, y - 0.25], 1) * 1.6
    return pts + 0.05 * torch.randn(n, 2, generator=gen)


def _spiral(n: int, gen: torch.Generator) -> torch.Tensor:
    # sqrt makes the density along the arm roughly uniform per unit length
    theta = 3 * math.pi * torch.sqrt(0.04 + 0.96 * torch.rand(n, generator=gen))
    r = theta / (3 * math.pi) * 2.5
    pts = torch.stack([r * torch.cos(theta), r * torch.sin(theta)], 1)
    return pts + 0.05 * torch.randn(n, 2, generator=gen)


def _affine(n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(n, 2, generator=gen) @ torch.tensor(D2L_A) + torch.tensor(D2L_B)


TOY2D = {
    "ring": Toy2D("ring", "ring of 8 Gaussians", _mixture(ring_modes(), RING_STD), (-3.0, 3.0, -3.0, 3.0),
                  ring_modes(), RING_STD),
    "grid": Toy2D("grid", "5x5 grid of Gaussians", _mixture(grid_modes(), GRID_STD), (-5.5, 5.5, -5.5, 5.5),
                  grid_modes(), GRID_STD),
    "moons": Toy2D("moons", "two moons", _moons, (-2.8, 2.8, -2.3, 2.3)),
    "spiral": Toy2D("spiral", "spiral", _spiral, (-3.0, 3.0, -3.0, 3.0)),
    "affine": Toy2D("affine", "d2l: Gaussian mapped by x A + b", _affine, (-3.0, 5.0, -6.0, 10.0)),
}


def get_toy2d(name: str) -> Toy2D:
    if name not in TOY2D:
        raise ValueError(f"unknown 2-D dataset {name!r}; choose one of {', '.join(TOY2D)}")
    return TOY2D[name]


NOISE_KINDS = ("gaussian", "uniform")


def sample_noise(n: int, dim: int, kind: str, gen: torch.Generator | None = None) -> torch.Tensor:
    """(n, dim) generator input: standard normal, or uniform on [-1, 1]."""
    if kind == "gaussian":
        return torch.randn(n, dim, generator=gen)
    if kind == "uniform":
        return 2 * torch.rand(n, dim, generator=gen) - 1
    raise ValueError(f"unknown noise {kind!r}; choose one of {', '.join(NOISE_KINDS)}")


def noise_grid_lines(dim: int, kind: str, lines: int = 11, points: int = 40) -> np.ndarray:
    """Polylines of a grid in noise space, (M, dim) with NaN rows between lines (to be mapped by G).

    1-D noise: one line of ``points * lines`` points. 2-D: ``lines`` horizontal and ``lines`` vertical lines.
    Gaussian noise is covered on [-2.5, 2.5] (99% of the mass), uniform on [-1, 1].
    """
    lim = 2.5 if kind == "gaussian" else 1.0
    if dim == 1:
        return np.linspace(-lim, lim, points * lines, dtype=np.float32)[:, None]
    ticks, t = np.linspace(-lim, lim, lines), np.linspace(-lim, lim, points)
    rows = []
    for v in ticks:
        for line in (np.stack([t, np.full_like(t, v)], 1), np.stack([np.full_like(t, v), t], 1)):
            rows += [line, np.full((1, 2), np.nan)]
    return np.concatenate(rows[:-1]).astype(np.float32)
