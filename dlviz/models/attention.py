"""Attention, from kernel regression to multi-head attention: every function returns its weights.

Shapes follow d2l: queries (B, Q, d_q), keys (B, K, d_k), values (B, K, d_v); weights (B, Q, K), each row a
probability distribution over the keys. Multi-head weights are (B, heads, Q, K).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..device import seeded

MASKED = -1e6  # a finite "minus infinity": a fully masked row still gives a (uniform) distribution, not NaN


def masked_softmax(scores: torch.Tensor, valid_lens: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax over the last axis of (B, Q, K) scores, keeping only the first ``valid_lens`` keys.

    ``valid_lens`` is (B,) (one length per example) or (B, Q) (one per query); masked keys get weight 0.
    """
    if valid_lens is None:
        return torch.softmax(scores, dim=-1)
    b, q, k = scores.shape
    lens = valid_lens.to(scores.device)
    lens = lens[:, None].expand(b, q) if lens.dim() == 1 else lens
    keep = torch.arange(k, device=scores.device)[None, None, :] < lens[:, :, None]
    return torch.softmax(scores.masked_fill(~keep, MASKED), dim=-1)


class AdditiveAttention(nn.Module):
    """Bahdanau scoring: a(q, k) = w_v^T tanh(W_q q + W_k k); queries and keys may differ in size."""

    def __init__(self, query_size: int, key_size: int, num_hiddens: int):
        super().__init__()
        self.W_q = nn.Linear(query_size, num_hiddens, bias=False)
        self.W_k = nn.Linear(key_size, num_hiddens, bias=False)
        self.w_v = nn.Linear(num_hiddens, 1, bias=False)

    def forward(self, queries, keys, values, valid_lens=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, Q, d_q), (B, K, d_k), (B, K, d_v) -> output (B, Q, d_v), weights (B, Q, K)."""
        features = torch.tanh(self.W_q(queries)[:, :, None, :] + self.W_k(keys)[:, None, :, :])  # (B, Q, K, h)
        weights = masked_softmax(self.w_v(features).squeeze(-1), valid_lens)
        return weights @ values, weights


def scaled_dot_product(queries, keys, values, valid_lens=None, scale: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(Q K^T / sqrt(d)) V with masking over valid lengths: (B, Q, d), (B, K, d), (B, K, d_v)."""
    scores = queries @ keys.transpose(-2, -1)
    if scale:
        scores = scores / math.sqrt(queries.shape[-1])
    weights = masked_softmax(scores, valid_lens)
    return weights @ values, weights


def softmax_sharpness(dims, n_keys: int = 10, n_queries: int = 2000, seed: int = 0) -> dict[str, np.ndarray]:
    """What 1/sqrt(d) does: for q, k ~ N(0, I_d), the spread of q.k and the softmax over ``n_keys`` keys.

    Returns per d: ``score_std`` (std of q.k, grows like sqrt(d)) and, with and without scaling, the mean entropy
    of the weights (nats; uniform = ln n_keys) and the mean largest weight.
    """
    g = torch.Generator().manual_seed(seed)
    out = {k: [] for k in ("score_std", "entropy_scaled", "entropy_unscaled", "max_scaled", "max_unscaled")}
    for d in dims:
        q = torch.randn(n_queries, 1, d, generator=g)
        k = torch.randn(n_queries, n_keys, d, generator=g)
        scores = (q @ k.transpose(1, 2)).squeeze(1)  # (n, K)
        out["score_std"].append(scores.std().item())
        for name, s in (("scaled", scores / math.sqrt(d)), ("unscaled", scores)):
            p = torch.softmax(s, dim=-1)
            out[f"entropy_{name}"].append(-(p * torch.log(p.clamp_min(1e-30))).sum(-1).mean().item())
            out[f"max_{name}"].append(p.max(-1).values.mean().item())
    return {k: np.array(v) for k, v in out.items()}


def positional_encoding(max_len: int, d: int) -> torch.Tensor:
    """Sinusoidal encoding (max_len, d): P[i, 2j] = sin(i / 10000^(2j/d)), P[i, 2j+1] = cos(same)."""
    pos = torch.arange(max_len, dtype=torch.float32)[:, None]
    freq = torch.pow(10000.0, -torch.arange(0, d, 2, dtype=torch.float32) / d)
    P = torch.zeros(max_len, d)
    P[:, 0::2] = torch.sin(pos * freq)
    P[:, 1::2] = torch.cos(pos * freq)[:, : d // 2]
    return P


class MultiHeadAttention(nn.Module):
    """Multi-head attention that returns its weights per head (PyTorch's averages them by default).

    Same parameters and result as ``nn.MultiheadAttention(d_model, num_heads, batch_first=True)``.
    """

    def __init__(self, d_model: int, num_heads: int, bias: bool = True):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
        self.h, self.dk = num_heads, d_model // num_heads
        self.W_q, self.W_k, self.W_v, self.W_o = (nn.Linear(d_model, d_model, bias=bias) for _ in range(4))

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, h, T, dk)
        b, t, _ = x.shape
        return x.view(b, t, self.h, self.dk).transpose(1, 2)

    def forward(self, queries, keys, values, attn_mask: torch.Tensor | None = None,
                key_padding_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, Q, d), (B, K, d), (B, K, d) -> output (B, Q, d), weights (B, h, Q, K).

        ``attn_mask`` (Q, K) bool, True = may not attend (PyTorch's convention); ``key_padding_mask`` (B, K) bool,
        True = padding.
        """
        q, k, v = self._split(self.W_q(queries)), self._split(self.W_k(keys)), self._split(self.W_v(values))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.dk)  # (B, h, Q, K)
        if attn_mask is not None:
            scores = scores.masked_fill(attn_mask, float("-inf"))
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(queries.shape[0], queries.shape[1], -1)
        return self.W_o(out), weights

    def load_from_torch(self, ref: nn.MultiheadAttention) -> "MultiHeadAttention":
        """Copy the weights of a ``nn.MultiheadAttention`` (to check this module against it)."""
        d = self.h * self.dk
        with torch.no_grad():
            for i, lin in enumerate((self.W_q, self.W_k, self.W_v)):
                lin.weight.copy_(ref.in_proj_weight[i * d:(i + 1) * d])
                if lin.bias is not None:
                    lin.bias.copy_(ref.in_proj_bias[i * d:(i + 1) * d])
            self.W_o.weight.copy_(ref.out_proj.weight)
            if self.W_o.bias is not None:
                self.W_o.bias.copy_(ref.out_proj.bias)
        return self


# -- Nadaraya-Watson kernel regression: attention with one scalar parameter -----------------------------------
def nadaraya_watson(x_query: torch.Tensor, x_keys: torch.Tensor, y_values: torch.Tensor,
                    w: torch.Tensor | float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """f(x) = sum_i softmax_i(-((x - x_i) w)^2 / 2) y_i for (Q,) queries and (Q, K) or (K,) keys/values.

    Returns predictions (Q,) and attention weights (Q, K). w = 1 is the fixed Gaussian kernel.
    """
    if x_keys.dim() == 1:
        x_keys, y_values = x_keys.expand(len(x_query), -1), y_values.expand(len(x_query), -1)
    weights = torch.softmax(-(((x_query[:, None] - x_keys) * w) ** 2) / 2, dim=1)
    return (weights * y_values).sum(1), weights


class NWKernelRegression(nn.Module):
    """Nadaraya-Watson regression with a learned kernel width: the weights sharpen as w grows."""

    def __init__(self, init_w: float = 1.0):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(float(init_w)))

    def forward(self, x_query, x_keys, y_values) -> tuple[torch.Tensor, torch.Tensor]:
        return nadaraya_watson(x_query, x_keys, y_values, self.w)


def leave_one_out(x: torch.Tensor) -> torch.Tensor:
    """(N,) -> (N, N-1): row i holds every entry but x[i] (the keys that training point i may attend to)."""
    n = len(x)
    keep = ~torch.eye(n, dtype=torch.bool, device=x.device)
    return x.expand(n, n)[keep].view(n, n - 1)


def compare_scoring(d: int, n_keys: int, valid_lens: tuple[int, ...], n_queries: int = 2,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """Weights (B, Q, K) of additive (freshly initialized, 8 hidden units) and scaled dot-product scoring.

    Random queries and keys ~ N(0, I_d), one example per entry of ``valid_lens`` (keys past it are masked).
    """
    g = torch.Generator().manual_seed(seed)
    b = len(valid_lens)
    q, k = torch.randn(b, n_queries, d, generator=g), torch.randn(b, n_keys, d, generator=g)
    v, lens = torch.zeros(b, n_keys, 1), torch.tensor(valid_lens)
    with torch.no_grad():
        with seeded(seed):
            scorer = AdditiveAttention(d, d, 8)
        additive = scorer(q, k, v, lens)[1]
        dot = scaled_dot_product(q, k, v, lens)[1]
        unscaled = scaled_dot_product(q, k, v, lens, scale=False)[1]
    return {"additive": additive.numpy(), "scaled dot product": dot.numpy(),
            "dot product without 1/√d": unscaled.numpy()}
