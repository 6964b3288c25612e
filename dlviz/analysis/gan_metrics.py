"""How well a generator matches its data: mode coverage, sample quality, divergences on a grid, class diversity."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

MIN_MODE_FRACTION = 0.01  # a mode counts as covered when at least 1% of the samples land near it
N_STD = 3.0  # "near" = within 3 standard deviations of the mode's center


@dataclass(frozen=True)
class ModeCoverage:
    covered: int  # modes holding at least MIN_MODE_FRACTION of the samples
    total: int
    high_quality: float  # fraction of samples within N_STD standard deviations of some mode
    counts: np.ndarray  # (K,) samples near each mode


def mode_coverage(samples: np.ndarray, modes: np.ndarray, std: float, n_std: float = N_STD,
                  min_fraction: float = MIN_MODE_FRACTION) -> ModeCoverage:
    """Mode coverage and high-quality fraction of (N, 2) ``samples`` against a mixture with (K, 2) centers.

    A sample is high quality when its distance to the nearest center is below ``n_std * std``; a mode is
    covered when at least ``min_fraction`` of all samples are high quality and nearest to it.
    """
    samples, modes = np.asarray(samples, dtype=np.float64), np.asarray(modes, dtype=np.float64)
    d = np.linalg.norm(samples[:, None, :] - modes[None, :, :], axis=2)  # (N, K)
    nearest, dist = d.argmin(1), d.min(1)
    good = dist < n_std * std
    counts = np.bincount(nearest[good], minlength=len(modes))
    covered = int((counts >= min_fraction * len(samples)).sum())
    return ModeCoverage(covered, len(modes), float(good.mean()) if len(samples) else 0.0, counts)


def histogram_density(samples: np.ndarray, bounds: tuple[float, ...], bins: int = 40,
                      smoothing: float = 0.5) -> np.ndarray:
    """Probabilities of ``bins`` cells per axis (sum 1) from samples, with ``smoothing`` pseudo-counts per cell.

    ``samples`` (N,) or (N, 1) uses ``bounds`` = (lo, hi); (N, 2) uses (xmin, xmax, ymin, ymax). Samples
    outside the bounds are clipped into the border cells, so mass that leaves the frame still counts.
    """
    s = np.asarray(samples, dtype=np.float64)
    s = s.reshape(len(s), -1)
    lo, hi = np.asarray(bounds[0::2]), np.asarray(bounds[1::2])
    idx = np.clip(((s - lo) / (hi - lo) * bins).astype(int), 0, bins - 1)
    flat = np.ravel_multi_index(tuple(idx.T), (bins,) * s.shape[1])
    counts = np.bincount(flat, minlength=bins ** s.shape[1]).astype(np.float64) + smoothing
    return (counts / counts.sum()).reshape((bins,) * s.shape[1])


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) in nats for probability arrays of the same shape (q > 0 wherever p > 0)."""
    p, q = np.ravel(p), np.ravel(q)
    m = p > 0
    return float(np.sum(p[m] * np.log(p[m] / q[m])))


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in nats: between 0 (equal) and ln 2 (disjoint).

    Finite without any smoothing: the mixture m = (p + q) / 2 is >= p / 2 wherever p > 0, so each term
    p log(p / m) <= p ln 2; empty cells contribute 0 (0 log 0 = 0).
    """
    m = 0.5 * (np.ravel(p) + np.ravel(q))
    return 0.5 * kl_divergence(p, m) + 0.5 * kl_divergence(q, m)


def grid_divergences(real: np.ndarray, fake: np.ndarray, bounds: tuple[float, ...], bins: int = 40
                     ) -> dict[str, float]:
    """KL(real || fake) and JS between histogram densities of two sample sets on the same grid.

    JS uses the raw histograms (no pseudo-counts): disjoint samples give ln 2, the same samples give 0, and two
    finite samples of one distribution give a small positive bias (about 0.01 for 2,000 samples of the ring on
    40 x 40 cells). Pseudo-counts would cap it far below ln 2 (0.48 for 2,000 samples in one cell). KL(real ||
    fake) is infinite wherever the fakes leave a cell empty, so it keeps 0.5 pseudo-counts per cell.
    """
    p, q = histogram_density(real, bounds, bins, 0.0), histogram_density(fake, bounds, bins, 0.0)
    ps, qs = histogram_density(real, bounds, bins), histogram_density(fake, bounds, bins)
    return {"kl": kl_divergence(ps, qs), "js": js_divergence(p, q)}


def spread_ratio(samples: np.ndarray, reference: np.ndarray) -> float:
    """sqrt(total variance of ``samples`` / total variance of ``reference``), both (N, d): 1 when the generator
    spreads like the data, near 0 for a collapsed clump wherever it sits."""
    s, r = np.asarray(samples, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    return float(np.sqrt(s.var(0).sum() / max(r.var(0).sum(), 1e-12)))


def modes_hit(samples: np.ndarray, modes: np.ndarray, min_share: float | None = None) -> np.ndarray:
    """(K,) bool: modes that are the nearest mode of at least ``min_share`` of the samples (default half a fair
    share, 1 / (2K)). No distance limit: a clump sitting between modes still names the modes it is closest to."""
    samples, modes = np.asarray(samples, dtype=np.float64), np.asarray(modes, dtype=np.float64)
    share = min_share if min_share is not None else 0.5 / len(modes)
    nearest = np.linalg.norm(samples[:, None, :] - modes[None, :, :], axis=2).argmin(1)
    return np.bincount(nearest, minlength=len(modes)) >= share * max(len(samples), 1)


class ModeVisits:
    """Modes visited over a sliding window of steps: the union of :func:`modes_hit` over the snapshots of the
    last ``window`` steps. Against the modes hit at once it tells a hopping clump (few at once, many visited)
    from a generator stuck on few modes (few and few) and from one that covers them (many and many)."""

    def __init__(self, window: int):
        self.window = window
        self._seen: deque[tuple[int, np.ndarray]] = deque()

    def update(self, step: int, hit: np.ndarray) -> int:
        """Record the modes hit at ``step``; return how many modes were hit in (step - window, step]."""
        self._seen.append((step, np.asarray(hit, dtype=bool)))
        while self._seen[0][0] <= step - self.window:
            self._seen.popleft()
        return int(np.logical_or.reduce([h for _, h in self._seen]).sum())


def class_diversity(probs: np.ndarray) -> dict[str, float]:
    """Diversity of generated images from a classifier's (N, C) class probabilities.

    ``class_entropy``: entropy of the mean prediction (ln C when every class is equally common, 0 when one
    class takes all); ``inception_score``: exp(E_x KL(p(y|x) || p(y))), between 1 and C; ``confidence``:
    mean top probability (how recognizable single samples are).
    """
    probs = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)
    marginal = probs.mean(0)
    entropy = float(-(marginal * np.log(marginal)).sum())
    kl = (probs * (np.log(probs) - np.log(marginal))).sum(1)
    return {"class_entropy": entropy, "inception_score": float(np.exp(kl.mean())),
            "confidence": float(probs.max(1).mean())}
