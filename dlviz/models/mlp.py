"""A small multilayer perceptron (flattens its input), optionally with BatchNorm after each hidden layer."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


class MLP(nn.Module):
    """(B, ...) inputs flattened to (B, in_dim) -> [Linear -> (BatchNorm1d) -> act] per hidden width -> Linear.

    ``layers`` is an ``nn.Sequential``; parameter names are ``layers.<i>.weight`` / ``.bias``.
    """

    def __init__(self, in_dim: int, hidden: tuple[int, ...] = (32, 32), n_classes: int = 2,
                 activation: str = "relu", batchnorm: bool = False):
        super().__init__()
        mods: list[nn.Module] = []
        width = in_dim
        for h in hidden:
            mods.append(nn.Linear(width, h))
            if batchnorm:
                mods.append(nn.BatchNorm1d(h))
            mods.append(ACTIVATIONS[activation]())
            width = h
        mods.append(nn.Linear(width, n_classes))
        self.layers = nn.Sequential(*mods)
        self.in_dim, self.hidden, self.n_classes = in_dim, tuple(hidden), n_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.flatten(1))
