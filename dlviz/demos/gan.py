"""GANs training live: a 2-D GAN (GAN Lab's views and more), the 1-D picture of the original paper, digits.

Three demos share one training loop (:class:`dlviz.models.gan.GanTrainer`): ``gan`` (2-D data: the
discriminator over the plane, generator gradients, the warped noise grid, mode coverage), ``gan-1d``
(Goodfellow et al. 2014, Figure 1: D(x) flattens to 1/2) and ``gan-digits`` (8x8 digits, diversity measured
by a classifier trained once on real digits).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Iterator

import numpy as np
import torch
from torch import nn

from ..analysis.gan_metrics import class_diversity, grid_divergences, histogram_density, mode_coverage
from ..config import param
from ..data.digits import load_digits_split
from ..data.toy2d import NOISE_KINDS, TOY2D, get_toy2d, noise_grid_lines, sample_noise
from ..device import seed_all
from ..models.gan import ACTIVATIONS, LOSSES, OPTIMIZERS, Discriminator, GanTrainer, d_probability, g_loss, mlp
from .base import Demo, Preset, Snapshot, check_finite

LEARNING_RATES = (1e-5, 3e-5, 1e-4, 2e-4, 3e-4, 1e-3, 3e-3, 0.005, 0.01, 0.03, 0.05, 0.1, 0.3, 1.0)
HEAT_RES = 60  # discriminator heatmap: HEAT_RES x HEAT_RES points (small, so it redraws several times a second)
N_SHOW = 500  # real and generated samples drawn
N_METRIC = 2000  # generated samples behind the mode and divergence metrics (the definition)
N_ARROWS = 150  # generated samples that carry a gradient arrow


# -- 2-D GAN -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    dataset: str = param("ring", "the data distribution: ring of 8 Gaussians, 5x5 grid, two moons, spiral, or "
                         "the d2l example (a Gaussian mapped by x A + b)", choices=tuple(TOY2D))
    noise: str = param("gaussian", "distribution of the generator's input z", choices=NOISE_KINDS)
    noise_dim: int = param(2, "dimension of z (1: G draws a curve; 2: G warps a sheet)", choices=(1, 2),
                           label="noise dim")
    loss: str = param("non-saturating", "the game: original minimax, non-saturating G loss, least squares, "
                      "or Wasserstein with gradient penalty", choices=LOSSES)
    g_depth: int = param(3, "hidden layers of the generator (0 = affine map)", lo=0, hi=6, label="G depth")
    g_width: int = param(128, "units per hidden layer of G", choices=(4, 8, 16, 32, 64, 128, 256), label="G width")
    d_depth: int = param(3, "hidden layers of the discriminator", lo=1, hi=6, label="D depth")
    d_width: int = param(128, "units per hidden layer of D", choices=(4, 8, 16, 32, 64, 128, 256), label="D width")
    activation: str = param("relu", "nonlinearity of both networks", choices=tuple(ACTIVATIONS))
    g_optimizer: str = param("adam", "optimizer of G (Adam uses beta1 = 0.5)", choices=tuple(OPTIMIZERS),
                             label="G optimizer")
    g_lr: float = param(1e-3, "learning rate of G", choices=LEARNING_RATES, label="G learning rate")
    d_optimizer: str = param("adam", "optimizer of D", choices=tuple(OPTIMIZERS), label="D optimizer")
    d_lr: float = param(1e-3, "learning rate of D", choices=LEARNING_RATES, label="D learning rate")
    d_steps: int = param(1, "k: discriminator steps per generator step", lo=1, hi=10, label="k (D steps per G step)")
    batch_size: int = param(256, "samples per step (real and fake each)", choices=(8, 16, 32, 64, 128, 256, 512),
                            label="batch size")
    gp_weight: float = param(0.1, "WGAN-GP: weight of the gradient penalty", choices=(0.01, 0.1, 1.0, 10.0),
                             label="gradient penalty")
    steps: int = param(4000, "generator steps in the run", lo=100, hi=50000)
    eval_every: int = param(25, "generator steps between snapshots", lo=1, hi=500, label="steps per snapshot")
    seed: int = param(0, "seed for initialization, data and noise", lo=0, hi=2**31 - 1, widget=False)


PRESETS = {
    "ring-covered": Preset("Ring of 8: all modes covered (non-saturating, Adam)", Config(),
                           "Samples spread to all 8 modes within seconds; the heatmap fades toward 1/2."),
    "ring-collapse": Preset("Ring of 8: mode collapse (minimax, G outpaces D)",
                            Config(loss="minimax", g_lr=0.01, d_lr=1e-3, batch_size=64),
                            "The generator piles onto a few modes and hops between them: coverage stays at 3 or less."),
    "wgan-gp": Preset("Ring of 8 with WGAN-GP (critic instead of a classifier)",
                      Config(loss="wgan-gp", d_steps=5, gp_weight=0.1, g_lr=1e-3, d_lr=1e-3),
                      "The heatmap shows the critic f(x), not a probability: it slopes up toward the data."),
    "d2l-affine": Preset("d2l: an affine G learns a Gaussian mapped by x A + b",
                         Config(dataset="affine", g_depth=0, d_depth=2, d_width=8, activation="tanh",
                                g_lr=0.005, d_lr=0.05, batch_size=8, steps=2000, eval_every=10),
                         "G is one linear layer, so the warped grid stays a grid: G only learns A and b."),
    "grid-25": Preset("5x5 grid: 25 modes (harder)", Config(dataset="grid", steps=8000),
                      "More modes than the ring: count how many the generator finds."),
}


def _grid_points(bounds, res: int = HEAT_RES) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    xs = np.linspace(bounds[0], bounds[1], res, dtype=np.float32)
    ys = np.linspace(bounds[2], bounds[3], res, dtype=np.float32)
    xx, yy = np.meshgrid(xs, ys)
    return xs, ys, torch.from_numpy(np.stack([xx.ravel(), yy.ravel()], 1))


def _map_lines(G: nn.Module, lines: np.ndarray, device) -> np.ndarray:
    """G applied to noise-space polylines (NaN rows kept as line breaks), (M, 2)."""
    ok = ~np.isnan(lines).any(1)
    out = np.full((len(lines), 2), np.nan, dtype=np.float32)
    out[ok] = G(torch.from_numpy(lines[ok]).to(device)).cpu().numpy()
    return out


def run(config: Config, device: torch.device) -> Iterator[Snapshot]:
    """Train a 2-D GAN; a snapshot before training and every ``eval_every`` generator steps.

    Arrays: ``real``/``fake`` (N_SHOW, 2); ``d_grid`` (HEAT_RES, HEAT_RES) D's output on ``grid_x`` x ``grid_y``
    (rows = y); ``arrow_from``/``arrow_vec`` (N_ARROWS, 2) generated points and the direction G's loss pushes
    them (-grad_x of the G loss); ``manifold`` (M, 2) the image of a noise-space grid (NaN = line break);
    ``bounds``; ``modes`` (K, 2) or None with ``mode_std``.
    """
    data = get_toy2d(config.dataset)
    rng = seed_all(config.seed)
    G = mlp(config.noise_dim, 2, config.g_depth, config.g_width, config.activation).to(device)
    D = Discriminator(2, config.d_depth, config.d_width, config.activation).to(device)
    trainer = GanTrainer(G, D, OPTIMIZERS[config.g_optimizer](G.parameters(), config.g_lr),
                         OPTIMIZERS[config.d_optimizer](D.parameters(), config.d_lr), config.loss, config.d_steps,
                         config.gp_weight, rng)

    def real(n):
        return data.sample(n, rng).to(device)

    def noise(n):
        return sample_noise(n, config.noise_dim, config.noise, rng).to(device)

    # Fixed evaluation sets: the same noise every frame, so the figure shows points moving, not resampled.
    eval_gen = torch.Generator().manual_seed(config.seed + 1)
    z_eval = sample_noise(N_METRIC, config.noise_dim, config.noise, eval_gen).to(device)
    real_eval = data.sample(N_METRIC, eval_gen).numpy()
    real_show = torch.from_numpy(real_eval[:N_SHOW]).to(device)
    grid_x, grid_y, grid = _grid_points(data.bounds)
    grid = grid.to(device)
    lines = noise_grid_lines(config.noise_dim, config.noise)

    def snapshot(step: int, ld: float, lg: float) -> Snapshot:
        with torch.no_grad():
            fake = G(z_eval)
            check_finite(fake.abs().max(), step, "generator output",
                         "G's samples blew up: lower the learning rates and press Reset.")
            d_grid = d_probability(D(grid), config.loss).reshape(HEAT_RES, HEAT_RES)
            d_real = d_probability(D(real_show), config.loss).mean()
            manifold = _map_lines(G, lines, device)
        x = fake[:N_ARROWS].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(g_loss(D(x), config.loss) * len(x), x)  # per-sample gradients
        fake_np = fake.cpu().numpy()
        metrics = {"d_loss": ld, "g_loss": lg, "d_real": float(d_real),
                   "d_fake": float(d_probability(D(fake[:N_SHOW]), config.loss).mean()),
                   **grid_divergences(real_eval, fake_np, data.bounds)}
        if data.modes is not None:
            cov = mode_coverage(fake_np, data.modes, data.mode_std)
            metrics.update(modes_covered=float(cov.covered), modes_total=float(cov.total),
                           high_quality=cov.high_quality)
        return Snapshot(step, metrics, {
            "real": real_eval[:N_SHOW], "fake": fake_np[:N_SHOW], "d_grid": d_grid.cpu().numpy(),
            "grid_x": grid_x, "grid_y": grid_y, "arrow_from": fake_np[:N_ARROWS], "arrow_vec": -grad.cpu().numpy(),
            "manifold": manifold, "bounds": data.bounds, "modes": data.modes, "mode_std": data.mode_std})

    with torch.no_grad():
        ld0 = check_finite(_d_loss_now(D, G, real, noise, config), 0, "discriminator loss")
        lg0 = float(g_loss(D(G(noise(config.batch_size))), config.loss))
    yield snapshot(0, ld0, lg0)
    yield from _train_loop(trainer, real, noise, config, snapshot, device)


def _d_loss_now(D, G, real, noise, config) -> float:
    from ..models.gan import d_loss

    return float(d_loss(D(real(config.batch_size)), D(G(noise(config.batch_size))), config.loss))


def _train_loop(trainer: GanTrainer, real, noise, config, snapshot, device) -> Iterator[Snapshot]:
    """The shared loop: train, average the losses over each window, yield a snapshot every ``eval_every``."""
    ld_sum, lg_sum = torch.zeros((), device=device), torch.zeros((), device=device)
    n = 0
    for step in range(1, config.steps + 1):
        ld, lg = trainer.step(real, noise, config.batch_size)
        ld_sum += ld
        lg_sum += lg
        n += 1
        if step % config.eval_every == 0 or step == config.steps:
            # One sync per snapshot; the runner stops the run if a loss is NaN or infinite.
            yield snapshot(step, ld_sum.item() / n, lg_sum.item() / n)
            ld_sum.zero_(), lg_sum.zero_()
            n = 0


def _summarize(snap: Snapshot, runner) -> dict:
    m = snap.metrics
    out = {k: round(v, 4) for k, v in m.items()}
    if "modes_covered" in m:
        out.update(modes_covered=int(m["modes_covered"]), modes_total=int(m["modes_total"]))
    return {**out, "steps": snap.step}


def _bench_ring_covered(device: torch.device) -> dict:
    """Ring-covered preset, seeds 0-2: seconds of training until 8/8 modes with >= 80% high-quality samples."""
    from ..runner import Runner

    out: dict = {}
    for seed in (0, 1, 2):
        r = Runner(DEMOS[0], replace(PRESETS["ring-covered"].config, seed=seed), device)
        r.run_to_end(max_seconds=30,
                     until=lambda s: s.metrics["modes_covered"] == 8 and s.metrics["high_quality"] >= 0.8)
        m = r.latest.metrics
        ok = m["modes_covered"] == 8 and m["high_quality"] >= 0.8
        out[f"seed{seed}"] = {"seconds": round(r.compute_seconds, 2), "steps": r.latest.step, "reached": ok,
                              "modes_covered": int(m["modes_covered"]), "high_quality": round(m["high_quality"], 3)}
    return {"ring_covered": out, "target": "8/8 modes, >= 80% high quality within 30 s"}


def _bench_ring_collapse(device: torch.device) -> dict:
    """Ring-collapse preset run to the end for seeds 0-2: modes covered at the end (target: <= 3 each)."""
    from ..runner import Runner

    out = {}
    for seed in (0, 1, 2):
        r = Runner(DEMOS[0], replace(PRESETS["ring-collapse"].config, seed=seed), device)
        r.run_to_end()
        tail = [row["modes_covered"] for row in r.history[len(r.history) // 2:]]
        out[f"seed{seed}"] = {"modes_covered_end": int(r.latest.metrics["modes_covered"]),
                              "max_modes_second_half": int(max(tail)), "seconds": round(r.compute_seconds, 2)}
    return {"ring_collapse": out, "target": "<= 3 modes for three seeds"}


DEMOS = [
    Demo(name="gan", title="GAN in 2-D",
         summary="A generator learns a 2-D distribution against a discriminator: heatmap, gradients, mode coverage.",
         config_cls=Config, presets=PRESETS, run=run, summarize=_summarize,
         benchmarks={"gan ring-covered": _bench_ring_covered, "gan ring-collapse": _bench_ring_collapse}),
]
