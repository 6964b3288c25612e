"""Plain RNN, GRU and LSTM with one set of weights and two forward passes: fast and gate-revealing.

The weights live in ``torch.nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` (PyTorch's names and gate order), so the fast pass
is PyTorch's own. The scans below re-implement the cells step by step in Python on the same weights and return
every gate at every step; tests check they agree with PyTorch to 1e-5. Gate conventions (PyTorch's):

    GRU   R_t = σ(X W_xr + H W_hr + b_r)   Z_t = σ(X W_xz + H W_hz + b_z)
          H̃_t = tanh(X W_xh + b_in + R_t ⊙ (H W_hh + b_hn))   H_t = Z_t ⊙ H_{t-1} + (1 - Z_t) ⊙ H̃_t
          (the reset gate acts after the product W_hh H; Cho et al. 2014 and d2l use tanh(X W_xh + (R_t ⊙ H) W_hh + b))
    LSTM  I_t, F_t, O_t = σ(...),  C̃_t = tanh(...),  C_t = F_t ⊙ C_{t-1} + I_t ⊙ C̃_t,  H_t = O_t ⊙ tanh(C_t)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..i18n import N_

CELLS = ("rnn", "gru", "lstm")
CELL_NAMES = {"rnn": N_("plain RNN"), "gru": N_("GRU"), "lstm": N_("LSTM")}  # shown with _() / Msg
GATES = {"rnn": (), "gru": ("reset", "update"), "lstm": ("input", "forget", "output")}
_CORES = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
_BLOCKS = {"rnn": 1, "gru": 3, "lstm": 4}  # stacked weight blocks: GRU (r, z, n), LSTM (i, f, g, o)


@dataclass
class Trace:
    """One scan over (B, T, D) inputs: hidden states (B, T, H), gates name -> (B, T, H), cell states (LSTM)."""

    hidden: torch.Tensor
    gates: dict[str, torch.Tensor]
    cell: torch.Tensor | None = None


def rnn_scan(x: torch.Tensor, w_ih, w_hh, b_ih, b_hh, h0: torch.Tensor | None = None) -> Trace:
    """H_t = tanh(X_t W_ih^T + b_ih + H_{t-1} W_hh^T + b_hh) for (B, T, D) inputs."""
    B, T, _ = x.shape
    h = x.new_zeros(B, w_hh.shape[1]) if h0 is None else h0
    xs = x @ w_ih.T + b_ih  # input projections of all steps at once: (B, T, H)
    hs = []
    for t in range(T):
        h = torch.tanh(xs[:, t] + h @ w_hh.T + b_hh)
        hs.append(h)
    return Trace(torch.stack(hs, 1), {})


def gru_scan(x: torch.Tensor, w_ih, w_hh, b_ih, b_hh, h0: torch.Tensor | None = None) -> Trace:
    """PyTorch's GRU step by step; gates ``reset`` R_t and ``update`` Z_t, each (B, T, H)."""
    B, T, _ = x.shape
    H = w_hh.shape[1]
    h = x.new_zeros(B, H) if h0 is None else h0
    xs = x @ w_ih.T + b_ih  # (B, T, 3H): r, z, n blocks
    hs, rs, zs = [], [], []
    for t in range(T):
        xr, xz, xn = xs[:, t].split(H, 1)
        hr, hz, hn = (h @ w_hh.T + b_hh).split(H, 1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        h = z * h + (1 - z) * n
        hs.append(h), rs.append(r), zs.append(z)
    return Trace(torch.stack(hs, 1), {"reset": torch.stack(rs, 1), "update": torch.stack(zs, 1)})


def lstm_scan(x: torch.Tensor, w_ih, w_hh, b_ih, b_hh, h0: torch.Tensor | None = None,
              c0: torch.Tensor | None = None) -> Trace:
    """PyTorch's LSTM step by step; gates ``input``, ``forget``, ``output``, each (B, T, H); cell states too."""
    B, T, _ = x.shape
    H = w_hh.shape[1]
    h = x.new_zeros(B, H) if h0 is None else h0
    c = x.new_zeros(B, H) if c0 is None else c0
    xs = x @ w_ih.T + b_ih  # (B, T, 4H): i, f, g, o blocks
    out = {k: [] for k in ("h", "c", "input", "forget", "output")}
    for t in range(T):
        gi, gf, gg, go = (xs[:, t] + h @ w_hh.T + b_hh).split(H, 1)
        i, f, o = torch.sigmoid(gi), torch.sigmoid(gf), torch.sigmoid(go)
        c = f * c + i * torch.tanh(gg)
        h = o * torch.tanh(c)
        for k, v in (("h", h), ("c", c), ("input", i), ("forget", f), ("output", o)):
            out[k].append(v)
    hidden, cell = torch.stack(out.pop("h"), 1), torch.stack(out.pop("c"), 1)
    return Trace(hidden, {k: torch.stack(v, 1) for k, v in out.items()}, cell=cell)


SCANS = {"rnn": rnn_scan, "gru": gru_scan, "lstm": lstm_scan}


class RecurrentNet(nn.Module):
    """A one-layer recurrent ``core`` over (B, T, D) inputs and a linear ``head`` on the last hidden state.

    ``forward`` uses PyTorch's layer (fused kernels, cuDNN on a GPU); ``trace`` runs the Python scan on the same
    weights and returns the hidden states and gates of every step.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, output_size: int,
                 forget_bias: float | None = None, recurrent_gain: float = 0.0):
        super().__init__()
        if cell not in _CORES:
            raise ValueError(f"unknown cell {cell!r}; choose one of {', '.join(CELLS)}")
        self.kind, self.hidden_size = cell, hidden_size
        self.core = _CORES[cell](input_size, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, output_size)
        with torch.no_grad():
            if recurrent_gain > 0:  # each block of W_hh orthogonal, scaled: gain > 1 makes a tanh RNN chaotic
                for block in self.core.weight_hh_l0.split(hidden_size, 0):
                    nn.init.orthogonal_(block, gain=recurrent_gain)
            if cell == "lstm" and forget_bias is not None:  # the two biases add up: put it all in b_ih
                self.core.bias_ih_l0[hidden_size:2 * hidden_size] = forget_bias
                self.core.bias_hh_l0[hidden_size:2 * hidden_size] = 0.0

    def weights(self) -> tuple[torch.Tensor, ...]:
        c = self.core
        return c.weight_ih_l0, c.weight_hh_l0, c.bias_ih_l0, c.bias_hh_l0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, output_size) from the last hidden state."""
        out, _ = self.core(x)
        return self.head(out[:, -1])

    def trace(self, x: torch.Tensor) -> tuple[torch.Tensor, Trace]:
        """The Python scan: (outputs (B, output_size), :class:`Trace`), equal to ``forward`` up to rounding."""
        tr = SCANS[self.kind](x, *self.weights())
        return self.head(tr.hidden[:, -1]), tr
