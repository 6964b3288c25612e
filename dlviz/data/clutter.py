"""Object-in-clutter images with ground-truth masks (for attention and DINO), and sklearn's two sample photos.

Each image is ``size`` x ``size`` grayscale in [0, 1]: one large sklearn digit (the object) at full contrast,
pasted at a random place over a textured background (smooth noise, fine grain, and a few small, dimmer stroke
fragments as distractors). The object's pixel mask is returned with it, so a page can measure how well an
attention map finds the object. The statistics differ on purpose (a large, coherent, high-contrast shape versus
small scattered strokes and texture) so a small ViT can learn the difference in minutes on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

MASK_LEVEL = 0.3  # a pixel belongs to the object where the pasted digit is at least this bright (of its max)


@dataclass(frozen=True)
class ClutterData:
    """Tensors: images (N, 1, S, S) float in [0, 1]; masks (N, S, S) bool (object pixels); labels (N,) int64."""

    images: torch.Tensor
    masks: torch.Tensor
    labels: torch.Tensor

    @property
    def size(self) -> int:
        return int(self.images.shape[-1])


def _smooth_noise(rng: np.random.Generator, n: int, size: int, cells: int) -> torch.Tensor:
    """(n, 1, size, size) smooth noise in [0, 1]: a cells x cells random grid upsampled bicubically."""
    g = torch.tensor(rng.random((n, 1, cells, cells)), dtype=torch.float32)
    x = F.interpolate(g, size=(size, size), mode="bicubic", align_corners=False)
    lo, hi = x.amin((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)
    return (x - lo) / (hi - lo + 1e-6)


@lru_cache(maxsize=8)
def make_clutter(n: int = 2048, size: int = 32, seed: int = 0, obj_min: int = 14, obj_max: int = 20,
                 distractors: int = 6) -> ClutterData:
    """``n`` object-in-clutter images (cached, read-only), reproducible from ``seed``.

    The object is an sklearn digit upscaled to ``obj_min``..``obj_max`` pixels, at brightness 0.85-1; the
    background is smooth noise (0-0.35) plus grain plus ``distractors`` short strokes of brightness 0.3-0.55
    and length 3-6 pixels.
    """
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    d = load_digits()
    digits = torch.tensor(d.images / 16.0, dtype=torch.float32)
    pick = rng.integers(0, len(digits), n)
    bg = 0.35 * _smooth_noise(rng, n, size, 5)[:, 0] + 0.05 * torch.tensor(rng.standard_normal((n, size, size)),
                                                                               dtype=torch.float32)
    images = bg.numpy().copy()
    masks = np.zeros((n, size, size), dtype=bool)
    glyphs = {}
    for i in range(n):
        s = int(rng.integers(obj_min, obj_max + 1))
        y0, x0 = (int(v) for v in rng.integers(0, size - s + 1, 2))
        # Distractors: short straight strokes, drawn before the object so the object stays on top.
        for _ in range(distractors):
            length = int(rng.integers(3, 7))
            cy, cx = rng.uniform(0, size, 2)
            ang = rng.uniform(0, np.pi)
            t = np.linspace(-length / 2, length / 2, 2 * length)
            py, px = (cy + t * np.sin(ang)).astype(int), (cx + t * np.cos(ang)).astype(int)
            ok = (py >= 0) & (py < size) & (px >= 0) & (px < size)
            py, px = py[ok], px[ok]
            images[i, py, px] = np.maximum(images[i, py, px], rng.uniform(0.3, 0.55))
        key = (int(pick[i]), s)
        if key not in glyphs:
            glyphs[key] = F.interpolate(digits[pick[i]][None, None], size=(s, s), mode="bilinear",
                                        align_corners=False)[0, 0].clamp(0, 1).numpy()
        glyph = glyphs[key] * rng.uniform(0.85, 1.0)
        m = glyph >= MASK_LEVEL * glyph.max()
        patch = images[i, y0:y0 + s, x0:x0 + s]
        images[i, y0:y0 + s, x0:x0 + s] = np.where(m, glyph, np.maximum(patch, glyph))
        masks[i, y0:y0 + s, x0:x0 + s] = m
    images = torch.tensor(images, dtype=torch.float32).clamp(0, 1).unsqueeze(1).contiguous()
    masks = torch.tensor(masks)
    return ClutterData(images, masks, torch.tensor(d.target[pick], dtype=torch.int64))


@lru_cache(maxsize=2)
def sample_photos() -> tuple[tuple[str, np.ndarray], ...]:
    """sklearn's two sample photos as (name, (H, W, 3) uint8) pairs: 'china' and 'flower'."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    names = [f.rsplit("/", 1)[-1].split(".")[0] for f in photos.filenames]
    return tuple((name, np.asarray(img)) for name, img in zip(names, photos.images))
