"""MLP generators and discriminators, and the GAN losses (minimax, non-saturating, least squares, WGAN-GP).

The discriminator always returns one raw score per example, shape (B,): a logit for the minimax and
non-saturating losses, D(x) itself for least squares, a critic value for WGAN-GP. ``d_probability`` turns it
into the number the figures show.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "tanh": nn.Tanh, "elu": nn.ELU}
LOSSES = ("minimax", "non-saturating", "least-squares", "wgan-gp")


def mlp(in_dim: int, out_dim: int, depth: int, width: int, activation: str = "relu",
        out_act: nn.Module | None = None) -> nn.Sequential:
    """``depth`` hidden layers of ``width`` units with ``activation``, then a linear layer (and ``out_act``)."""
    act = ACTIVATIONS[activation]
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(depth):
        layers += [nn.Linear(d, width), act()]
        d = width
    layers.append(nn.Linear(d, out_dim))
    if out_act is not None:
        layers.append(out_act)
    return nn.Sequential(*layers)


class Discriminator(nn.Module):
    """MLP on flattened inputs, one score per example: (B, ...) -> (B,)."""

    def __init__(self, in_dim: int, depth: int, width: int, activation: str = "leaky_relu"):
        super().__init__()
        self.net = mlp(in_dim, 1, depth, width, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).squeeze(1)


def d_probability(score: torch.Tensor, loss: str) -> torch.Tensor:
    """What D says about "real": sigmoid of the logit; the raw output (clipped to [0, 1]) for least squares;
    the critic value itself for WGAN-GP (it is not a probability)."""
    if loss in ("minimax", "non-saturating"):
        return torch.sigmoid(score)
    if loss == "least-squares":
        return score.clamp(0, 1)
    return score


def d_loss(real_score: torch.Tensor, fake_score: torch.Tensor, loss: str) -> torch.Tensor:
    """Discriminator (critic) loss to minimize; the WGAN gradient penalty is added by :func:`gradient_penalty`."""
    if loss in ("minimax", "non-saturating"):
        # -[log D(x) + log(1 - D(G(z)))] with D = sigmoid(score), written stably
        return F.softplus(-real_score).mean() + F.softplus(fake_score).mean()
    if loss == "least-squares":
        return 0.5 * ((real_score - 1) ** 2).mean() + 0.5 * (fake_score ** 2).mean()
    if loss == "wgan-gp":
        return fake_score.mean() - real_score.mean()
    raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")


def g_loss(fake_score: torch.Tensor, loss: str) -> torch.Tensor:
    """Generator loss to minimize, per the chosen game.

    minimax: log(1 - D(G(z))) (saturates when D rejects the fakes); non-saturating: -log D(G(z));
    least squares: (D(G(z)) - 1)^2 / 2; WGAN: -f(G(z)).
    """
    if loss == "minimax":
        return -F.softplus(fake_score).mean()
    if loss == "non-saturating":
        return F.softplus(-fake_score).mean()
    if loss == "least-squares":
        return 0.5 * ((fake_score - 1) ** 2).mean()
    if loss == "wgan-gp":
        return -fake_score.mean()
    raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")


def gradient_penalty(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator | None = None
                     ) -> torch.Tensor:
    """WGAN-GP: mean of (||grad_x f(x_hat)|| - 1)^2 at random points x_hat between real and fake samples."""
    shape = (len(real),) + (1,) * (real.dim() - 1)
    eps = torch.rand(shape, generator=gen).to(real.device)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(disc(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


OPTIMIZERS = {
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr),
    # beta1 = 0.5 as in DCGAN: less momentum keeps the two players from overshooting each other
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999)),
    "rmsprop": lambda params, lr: torch.optim.RMSprop(params, lr=lr),
}
WGAN_GP_BETAS = (0.0, 0.9)  # Gulrajani et al. 2017, Algorithm 1: Adam(alpha = 1e-4, beta1 = 0, beta2 = 0.9)
GP_WEIGHT = 10.0  # their lambda (Algorithm 1 and every experiment of the paper)


def make_optimizer(name: str, params, lr: float, loss: str):
    """``OPTIMIZERS[name]``, except that Adam under the WGAN-GP loss uses the paper's betas (0, 0.9)."""
    if name == "adam" and loss == "wgan-gp":
        return torch.optim.Adam(params, lr=lr, betas=WGAN_GP_BETAS)
    return OPTIMIZERS[name](params, lr)


class GanTrainer:
    """One training iteration of the lecture's loop: ``k`` discriminator steps, then one generator step.

    ``sample_real(n)`` and ``sample_noise(n)`` return tensors on the device.
    """

    def __init__(self, gen: nn.Module, disc: nn.Module, g_opt, d_opt, loss: str, k: int = 1,
                 gp_weight: float = GP_WEIGHT, rng: torch.Generator | None = None):
        self.G, self.D, self.g_opt, self.d_opt = gen, disc, g_opt, d_opt
        self.loss, self.k, self.gp_weight, self.rng = loss, k, gp_weight, rng

    def d_step(self, sample_real, sample_noise, batch_size: int) -> torch.Tensor:
        """One discriminator (critic) step on a fresh batch; returns its loss, detached."""
        real = sample_real(batch_size)
        with torch.no_grad():
            fake = self.G(sample_noise(batch_size))
        ld = d_loss(self.D(real), self.D(fake), self.loss)
        if self.loss == "wgan-gp":
            ld = ld + self.gp_weight * gradient_penalty(self.D, real, fake, self.rng)
        self.d_opt.zero_grad(set_to_none=True)
        ld.backward()
        self.d_opt.step()
        return ld.detach()

    def step(self, sample_real, sample_noise, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(discriminator loss of the last D step, generator loss), detached, on the device."""
        for _ in range(self.k):
            ld = self.d_step(sample_real, sample_noise, batch_size)
        lg = g_loss(self.D(self.G(sample_noise(batch_size))), self.loss)
        self.g_opt.zero_grad(set_to_none=True)
        lg.backward()
        self.g_opt.step()
        return ld, lg.detach()
