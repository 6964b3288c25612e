"""LeNet-5 as in d2l: two 5x5 convolutions with pooling, then 120-84-10, with switchable activation and pooling."""

from __future__ import annotations

import functools

import torch
from torch import nn

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}
POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}


class LeNet(nn.Module):
    """LeNet for (B, 1, S, S) inputs, S in {8, 16, 28}.

    Layers (names used by the figures): conv1 (6 maps, 5x5, pad 2) -> act -> pool1 (2x2) -> conv2 (16 maps, 5x5;
    pad 2 when S < 16, so 8x8 digits keep a 2x2 map) -> act -> pool2 -> fc1 120 -> act -> fc2 84 -> act -> fc3 10.
    """

    def __init__(self, input_size: int = 16, activation: str = "relu", pool: str = "max", n_classes: int = 10):
        super().__init__()
        act, pool_cls = ACTIVATIONS[activation], POOLS[pool]
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5, padding=2 if input_size < 16 else 0)
        self.act, self.pool = act(), pool_cls(2, 2)
        with torch.no_grad():
            n_flat = self._convs(torch.zeros(1, 1, input_size, input_size))[-1].numel()
        self.fc1, self.fc2, self.fc3 = nn.Linear(n_flat, 120), nn.Linear(120, 84), nn.Linear(84, n_classes)

    def _convs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs after conv1+act, pool1, conv2+act, pool2 (in that order)."""
        a1 = self.act(self.conv1(x))
        p1 = self.pool(a1)
        a2 = self.act(self.conv2(p1))
        return [a1, p1, a2, self.pool(a2)]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 84-d penultimate features, (B, 84)."""
        h = self._convs(x)[-1].flatten(1)
        return self.act(self.fc2(self.act(self.fc1(h))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.features(x))

    def feature_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Activations of every convolution for a batch: {"conv1": (B, 6, S, S), "conv2": (B, 16, s, s)}."""
        a1, _, a2, _ = self._convs(x)
        return {"conv1": a1, "conv2": a2}

    def layer_stats(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, dict[str, float]]:
        """Per activated layer (conv1, conv2, fc1, fc2) on a batch: ``pre_mean`` and ``pre_std`` the mean and std
        of the pre-activations z over units and images, ``act_mean`` the mean activation f(z), ``slope`` the mean
        slope f'(z) (sigmoid: f(z)(1 - f(z)) <= 1/4, equal to 1/4 only at z = 0; ReLU: the share of active
        units), ``saturated`` the share of units with |z| > 3 (sigmoid slope below 0.05).

        With labels ``y``, the same forward pass also gives ``grad``: the norm of the cross-entropy's gradient
        with respect to each layer's weight (conv1, conv2, fc1, fc2 and fc3), without touching ``.grad``.
        """
        out: dict[str, dict[str, float]] = {}

        def record(name: str, z: torch.Tensor) -> torch.Tensor:
            a = self.act(z)
            zd, ad = z.detach(), a.detach()
            slope = ad * (1 - ad) if isinstance(self.act, nn.Sigmoid) else (zd > 0).to(zd.dtype)
            out[name] = {"pre_mean": float(zd.mean()), "pre_std": float(zd.std()), "act_mean": float(ad.mean()),
                         "slope": float(slope.mean()), "saturated": float((zd.abs() > 3).to(zd.dtype).mean())}
            return a

        with torch.set_grad_enabled(y is not None):
            h = self.pool(record("conv1", self.conv1(x)))
            h = self.pool(record("conv2", self.conv2(h))).flatten(1)
            logits = self.fc3(record("fc2", self.fc2(record("fc1", self.fc1(h)))))
            if y is not None:
                layers = ("conv1", "conv2", "fc1", "fc2", "fc3")
                grads = torch.autograd.grad(nn.functional.cross_entropy(logits, y),
                                            [getattr(self, k).weight for k in layers])
                for k, g in zip(layers, grads):
                    out.setdefault(k, {})["grad"] = float(g.norm())
        return out

    def layer_shapes(self, input_size: int) -> list[tuple[str, tuple[int, ...], int]]:
        """(layer, output shape for one image, parameter count) for every layer, from a real forward pass."""
        rows, x = [("input", (1, input_size, input_size), 0)], torch.zeros(1, 1, input_size, input_size)
        with torch.no_grad():
            for name, layer in [("conv1 + act", self.conv1), ("pool1", self.pool), ("conv2 + act", self.conv2),
                                ("pool2", self.pool), ("flatten", None), ("fc1 + act", self.fc1),
                                ("fc2 + act", self.fc2), ("fc3 (logits)", self.fc3)]:
                x = x.flatten(1) if layer is None else layer(x)
                n = sum(p.numel() for p in layer.parameters()) if layer is not None else 0
                rows.append((name, tuple(x.shape[1:]), n))
        return rows


@functools.lru_cache(maxsize=64)
def shapes(input_size: int, activation: str = "relu", pool: str = "max") -> tuple:
    """``LeNet(...).layer_shapes(input_size)``, computed once per architecture: the CNN page shows it in every
    full run, where building the model and its forward pass were 6% of the run. The global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        return tuple(LeNet(input_size, activation, pool).layer_shapes(input_size))
