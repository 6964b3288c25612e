"""Collapse metrics of self-supervised embeddings: output std, weighted kNN, singular values, effective rank
(plain and collapse-aware).

All functions take (N, D) tensors (any device) and return floats or CPU numpy arrays.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def output_std(z: torch.Tensor) -> float:
    """SimSiam's collapse measure: the std over examples of each dimension of z/||z||, averaged over dims.

    If z is spread like an isotropic Gaussian the value is about 1/sqrt(d); a collapsed (constant) output gives 0.
    """
    zn = F.normalize(z.float(), dim=1)
    return float(zn.std(0).mean())


def output_std_ref(d: int) -> float:
    """The healthy reference 1/sqrt(d)."""
    return 1.0 / math.sqrt(d)


def knn_accuracy_cosine(train_f: torch.Tensor, train_y: torch.Tensor, test_f: torch.Tensor, test_y: torch.Tensor,
                        k: int = 20, temperature: float = 0.1, n_classes: int | None = None) -> float:
    """Weighted cosine kNN (Wu et al. 2018, used by SimSiam/DINO): the k most similar train features vote
    for their class with weight exp(cos / temperature). Returns test accuracy in [0, 1]."""
    n_classes = n_classes or int(train_y.max()) + 1
    a = F.normalize(train_f.float(), dim=1)
    b = F.normalize(test_f.float(), dim=1)
    sim = b @ a.T  # (N_test, N_train)
    k = min(k, a.shape[0])
    top, idx = sim.topk(k, dim=1)
    votes = torch.zeros(b.shape[0], n_classes, device=b.device)
    votes.scatter_add_(1, train_y.to(b.device)[idx], (top / temperature).exp())
    return float((votes.argmax(1) == test_y.to(b.device)).float().mean())


def singular_values(z: torch.Tensor) -> np.ndarray:
    """Singular values (descending) of the centered, L2-normalized embeddings (N, d), scaled by 1/sqrt(N)."""
    zn = F.normalize(z.float(), dim=1)
    zc = zn - zn.mean(0, keepdim=True)
    return (torch.linalg.svdvals(zc.cpu().double()) / math.sqrt(len(zc))).float().numpy()


def effective_rank(s: np.ndarray, eps: float = 1e-12) -> float:
    """Roy & Vetterli (2007): exp of the entropy of the normalized singular values; in [1, d] (0 if all zero)."""
    s = np.asarray(s, dtype=np.float64)
    total = s.sum()
    if total <= eps:
        return 0.0
    p = s / total
    p = p[p > eps]
    return float(np.exp(-(p * np.log(p)).sum()))


def spread_rank(s: np.ndarray) -> float:
    """Collapse-aware effective rank: :func:`effective_rank` times the total variance ``sum(s**2)`` of the
    normalized embeddings (``s`` from :func:`singular_values`). Unit vectors have total variance 1 - |mean|^2,
    at most 1, so the value lies in [0, d].

    The plain effective rank ignores scale: an output collapsed to one point plus a little isotropic noise has
    a nearly flat (high-rank) spectrum. Weighted by the variance it spans, that output scores near 0, while a
    healthy output (spread over the sphere, variance near 1) keeps its effective rank.
    """
    s = np.asarray(s, dtype=np.float64)
    return effective_rank(s) * float((s ** 2).sum())
