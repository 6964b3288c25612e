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

from ..analysis.gan_metrics import (ModeVisits, class_diversity, grid_divergences, histogram_density, mode_coverage,
                                    modes_hit, spread_ratio)
from ..config import param
from ..data.digits import load_digits_split
from ..data.toy2d import NOISE_KINDS, TOY2D, get_toy2d, noise_grid_lines, sample_noise
from ..device import run_generator, seeded
from ..models.gan import (ACTIVATIONS, GP_WEIGHT, LOSSES, OPTIMIZERS, Discriminator, GanTrainer, d_probability,
                          g_loss, make_optimizer, mlp)
from .base import Claim, Demo, Pacer, Preset, Snapshot, check_finite

LEARNING_RATES = (1e-5, 3e-5, 1e-4, 2e-4, 3e-4, 1e-3, 3e-3, 0.005, 0.01, 0.03, 0.05, 0.1, 0.3, 1.0)
HEAT_RES = 60  # discriminator heatmap: HEAT_RES x HEAT_RES points (small, so it redraws several times a second)
N_SHOW = 500  # real and generated samples drawn
N_METRIC = 2000  # generated samples behind the mode and divergence metrics (the definition)
N_ARROWS = 100  # generated samples that carry a gradient arrow
VISIT_WINDOW = 500  # generator steps over which "modes visited" takes the union of the modes hit


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
    g_optimizer: str = param("adam", "optimizer of G. Adam's betas are (0.5, 0.999) as in DCGAN, and (0, 0.9) with "
                             "WGAN-GP as in Gulrajani et al.", choices=tuple(OPTIMIZERS),
                             label="G optimizer")
    g_lr: float = param(1e-3, "learning rate of G", choices=LEARNING_RATES, label="G learning rate")
    d_optimizer: str = param("adam", "optimizer of D (Adam: as for G)", choices=tuple(OPTIMIZERS),
                             label="D optimizer")
    d_lr: float = param(1e-3, "learning rate of D", choices=LEARNING_RATES, label="D learning rate")
    d_steps: int = param(1, "k: discriminator steps per generator step (WGAN-GP's paper: n_critic = 5)", lo=1, hi=10,
                         label="k (D steps per G step)")
    batch_size: int = param(256, "samples per step (real and fake each)", choices=(8, 16, 32, 64, 128, 256, 512),
                            label="batch size")
    gp_weight: float = param(GP_WEIGHT, "WGAN-GP: weight λ of the gradient penalty. The paper uses 10 (the "
                             "authors' own 2-D toy script 0.1, which learns faster)", choices=(0.01, 0.1, 1.0, 10.0),
                             label="gradient penalty")
    steps: int = param(3000, "generator steps in the run", lo=100, hi=50000)
    eval_every: int = param(25, "generator steps between snapshots", lo=1, hi=500, label="steps per snapshot")
    seed: int = param(0, "seed for initialization, data and noise", lo=0, hi=2**31 - 1, widget=False)


PRESETS = {
    "ring-covered": Preset("Ring of 8: all modes covered (non-saturating, Adam)", Config(),
                           "Samples spread to all 8 modes within a few hundred steps on most seeds and most of them "
                           "sit near a mode; the heatmap fades toward 1/2. The count of covered modes then wobbles: "
                           "a mode can lose its share of the samples for a while.",
                           Claim("by step 1500 the samples have covered all 8 modes at once, and over steps 1000-1500 "
                                 "the median share of high-quality samples (within 3 std of a mode) is >= 70%",
                                 lambda s: s["first_step_all_modes"] is not None
                                 and s["median_high_quality_last_500"] >= 0.7,
                                 ("first_step_all_modes", "min_modes_last_500", "median_high_quality_last_500"),
                                 max_steps=1500)),
    # D's learning rate 3e-5 (was 3e-4, G 10x faster: G covered all 8 modes on seeds 3 and 9 of 0-9, on 3 of
    # 105-109). Measured, seeds 0-9 (tuning): at most 1-2 modes covered at once through the second half (2 on
    # seed 1, 1 on the others) and 8 modes visited within 500 steps on all ten (d_lr 1e-4: seed 3 covered 8).
    "ring-collapse": Preset("Ring of 8: mode collapse (G learns 100x faster than D)",
                            Config(g_lr=3e-3, d_lr=3e-5, batch_size=64, steps=2000),
                            "Textbook collapse: the samples mostly form one tight clump (spread often under 0.1 of "
                            "the data's, widening at times) "
                            "that hops around the ring. 'Modes covered' mostly reads 0 or 1, since the clump often "
                            "sits between modes, while 'modes visited' over 500 steps reaches 7-8: one mode at a "
                            "time, never all at once. With D only 10x slower (learning rate 3e-4) G covers all 8 "
                            "modes on some seeds.",
                            Claim("collapse: over the second half of the run at most 3 of 8 modes are covered at any "
                                  "snapshot, while the samples visit at least 6 modes within 500 steps",
                                  lambda s: s["max_modes_second_half"] <= 3 and s["max_visited_second_half"] >= 6,
                                  ("max_modes_second_half", "max_spread_second_half", "max_visited_second_half"))),
    "wgan-gp": Preset("Ring of 8 with WGAN-GP (critic instead of a classifier)",
                      # λ = 0.1 (the authors' 2-D toy script), not the paper's 10: measured at step 1000, seeds 0-2,
                      # λ = 10: 8, 1, 0 modes covered (seeds 1-2 still far off); λ = 0.1, seeds 0-9: 6, 8, 8, 7, 8,
                      # 8, 8, 8, 8, 7 modes, spread 0.91-1.03, critic gap 0.15, 0.08, 0.02, 0.01, 0.13, 0.14, 0.10,
                      # 0.09, 0.04, 0.03 (seeds 0, 4, 5: from 1.0, 1.6, 1.5 at step 100, still falling).
                      Config(loss="wgan-gp", d_steps=5, gp_weight=0.1, g_lr=1e-3, d_lr=1e-3),
                      "The heatmap shows the critic f(x), not a probability: it slopes up toward the data. n_critic = 5 "
                      "and Adam (0, 0.9) as in the paper, but a learning rate of 1e-3 instead of its 1e-4 (measured, "
                      "seed 0: 1e-3 has about 80% of the samples near a mode after 2,000 steps, 1e-4 under half after "
                      "3,000) and the gradient penalty λ = 0.1 of the authors' 2-D toy script instead of the paper's "
                      "10 (with 10, some seeds still sit on 0-1 modes at step 1000). The critic's gap f(real) - "
                      "f(fake), its estimate of the distance, shrinks as G matches the data.",
                      Claim("by step 1000 at least 7 of 8 modes are covered, the samples' spread is within 20% of the "
                            "data's, and the critic's mean gap f(real) - f(fake) is below 0.2 (about 1-1.6 at step 100)",
                            lambda s: s["modes_covered"] >= 7 and abs(s["spread"] - 1) <= 0.2
                            and abs(s["d_real"] - s["d_fake"]) < 0.2,
                            ("modes_covered", "spread", "d_real", "d_fake", "high_quality"), max_steps=1000)),
    "d2l-affine": Preset("d2l: an affine G learns a Gaussian mapped by x A + b",
                         Config(dataset="affine", g_depth=0, d_depth=2, d_width=8, activation="tanh",
                                g_lr=0.005, d_lr=0.05, batch_size=8, steps=2000, eval_every=10),
                         "G is one linear layer, so the warped grid stays a grid: G only learns A and b.",
                         Claim("after 2000 steps G's samples match the data: Jensen-Shannon divergence < 0.1 on the "
                               "grid, spread within 15% of the data's, and D gives real and fake the same mean output "
                               "(within 0.05)", lambda s: s["js"] < 0.1 and abs(s["spread"] - 1) <= 0.15
                               and abs(s["d_real"] - s["d_fake"]) < 0.05, ("js", "spread", "d_real", "d_fake"))),
    "grid-25": Preset("5x5 grid: 25 modes (harder)", Config(dataset="grid", steps=8000),
                      "More modes than the ring, found slowly: the samples spread over the whole grid at once, "
                      "but few modes hold a fair share of them for a long time (seed 0: 4 of 25 at step 2000, 7 at "
                      "step 3000; the ring has all 8 by step 500). Count how many the generator finds by the end.",
                      Claim("at step 2000 the samples spread over the whole grid (0.7-1.4 of the data's spread) but at "
                            "most 12 of the 25 modes are covered (the ring: all 8 by step 500)",
                            lambda s: 0.7 <= s["spread"] <= 1.4 and s["modes_covered"] <= 12,
                            ("modes_covered", "spread", "high_quality", "steps"), max_steps=2000)),
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

    Metrics: losses, mean D outputs, ``js``/``kl`` on the grid, ``spread`` (generated / data total std); with
    modes, ``modes_covered``/``high_quality`` (within 3 std), ``modes_now`` (modes nearest to at least 1/(2K) of
    the samples) and ``modes_visited`` (the union of ``modes_now`` over the last VISIT_WINDOW steps).
    """
    data = get_toy2d(config.dataset)
    rng = run_generator(config.seed)
    with seeded(config.seed):
        G = mlp(config.noise_dim, 2, config.g_depth, config.g_width, config.activation).to(device)
        D = Discriminator(2, config.d_depth, config.d_width, config.activation).to(device)
    trainer = GanTrainer(G, D, make_optimizer(config.g_optimizer, G.parameters(), config.g_lr, config.loss),
                         make_optimizer(config.d_optimizer, D.parameters(), config.d_lr, config.loss), config.loss,
                         config.d_steps, config.gp_weight, rng)

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
    visits = ModeVisits(VISIT_WINDOW)

    def snapshot(step: int, ld: float, lg: float) -> Snapshot:
        with torch.no_grad():
            fake = G(z_eval)
            check_finite(fake.abs().max(), step, "generator output",
                         "G's samples blew up: lower the learning rates and press Reset.")
            d_grid = d_probability(D(grid), config.loss).reshape(HEAT_RES, HEAT_RES)
            d_real = d_probability(D(real_show), config.loss).mean()
            manifold = _map_lines(G, lines, device)
            d_fake = d_probability(D(fake[:N_SHOW]), config.loss).mean()
        x = fake[:N_ARROWS].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(g_loss(D(x), config.loss) * len(x), x)  # per-sample gradients
        fake_np = fake.cpu().numpy()
        metrics = {"d_loss": ld, "g_loss": lg, "d_real": float(d_real), "d_fake": float(d_fake),
                   **grid_divergences(real_eval, fake_np, data.bounds), "spread": spread_ratio(fake_np, real_eval)}
        if data.modes is not None:
            cov = mode_coverage(fake_np, data.modes, data.mode_std)
            hit = modes_hit(fake_np, data.modes)
            metrics.update(modes_covered=float(cov.covered), modes_total=float(cov.total),
                           high_quality=cov.high_quality, modes_now=float(hit.sum()),
                           modes_visited=float(visits.update(step, hit)))
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
    # Pause/Reset within a fraction of a second: 500 steps per snapshot take minutes at the largest settings, where
    # one step (k = 10 D steps, 6 x 256 layers, batch 512) takes 0.3-0.6 s of a CPU core: the pacer's worker runs it.
    pacer = Pacer()
    for step in range(1, config.steps + 1):
        ld, lg = yield from pacer.call(step, trainer.step, real, noise, config.batch_size)
        ld_sum += ld
        lg_sum += lg
        n += 1
        if step % config.eval_every == 0 or step == config.steps:
            # One sync per snapshot; the runner stops the run if a loss is NaN or infinite.
            yield (yield from pacer.call(step, snapshot, step, ld_sum.item() / n, lg_sum.item() / n))
            pacer.reset()
            ld_sum.zero_(), lg_sum.zero_()
            n = 0


def _summarize(snap: Snapshot, runner) -> dict:
    m = snap.metrics
    out = {k: round(v, 4) for k, v in m.items()}
    if "modes_covered" in m:
        out.update({k: int(m[k]) for k in ("modes_covered", "modes_total", "modes_now", "modes_visited")})
        # Over the run's snapshots (claims): the first step with every mode covered, the first with every mode
        # covered and >= 80% high-quality samples, and the most modes covered in the second half.
        hist = runner.history
        full = [r for r in hist if r.get("modes_covered") == r.get("modes_total")]
        out["first_step_all_modes"] = int(full[0]["step"]) if full else None
        good = [r for r in full if r.get("high_quality", 0.0) >= 0.8]
        out["first_step_all_modes_80pct"] = int(good[0]["step"]) if good else None
        half = hist[len(hist) // 2:]
        out["max_modes_second_half"] = int(max((r.get("modes_covered", 0) for r in half), default=0))
        out["max_visited_second_half"] = int(max((r.get("modes_visited", 0) for r in half), default=0))
        out["max_spread_second_half"] = round(max((r.get("spread", 0.0) for r in half), default=0.0), 4)
        late = [r for r in hist if r["step"] >= snap.step - VISIT_WINDOW]  # the last 500 steps
        out["min_modes_last_500"] = int(min(r.get("modes_covered", 0) for r in late)) if late else None
        out["median_high_quality_last_500"] = round(float(np.median([r.get("high_quality", 0.0) for r in late])), 4) \
            if late else None
    return {**out, "steps": snap.step}


class _Threads:
    """Benchmarks run these tiny MLPs on one intra-op thread (faster than two on a 2-core CPU, and not slowed by
    spin-waiting when other processes share the cores); the previous setting is restored afterwards."""

    def __enter__(self):
        self.n = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.n)


def _bench_ring_covered(device: torch.device) -> dict:
    """Ring-covered preset, seeds 0-2: training time until 8/8 modes with >= 80% high-quality samples.

    Reports wall seconds of training and the process's CPU seconds (one thread: what the wall time would be on
    an idle core when other processes share the machine); the 30 s budget is counted in CPU seconds.
    """
    from ..runner import Runner

    def reached(s: Snapshot) -> bool:
        return s.metrics["modes_covered"] == 8 and s.metrics["high_quality"] >= 0.8

    out: dict = {}
    for seed in (0, 1, 2):
        r = Runner(DEMOS[0], replace(PRESETS["ring-covered"].config, seed=seed), device)
        with _Threads():
            r.prime()  # setup (data, models, first snapshot) is not training
            cpu0 = time.process_time()
            r.run_to_end(max_seconds=600, until=lambda s: reached(s) or time.process_time() - cpu0 > 30)
            cpu = time.process_time() - cpu0
        m = r.latest.metrics
        out[f"seed{seed}"] = {"wall_seconds": round(r.compute_seconds, 2), "cpu_seconds": round(cpu, 2),
                              "steps": r.latest.step, "reached": reached(r.latest),
                              "modes_covered": int(m["modes_covered"]), "high_quality": round(m["high_quality"], 3)}
    return {"ring_covered": out, "target": "8/8 modes, >= 80% high quality within 30 s"}


def _bench_ring_collapse(device: torch.device) -> dict:
    """Ring-collapse preset run to the end for seeds 0-2: modes covered at the end (target: <= 3 each)."""
    from ..runner import Runner

    out = {}
    for seed in (0, 1, 2):
        r = Runner(DEMOS[0], replace(PRESETS["ring-collapse"].config, seed=seed), device)
        with _Threads():
            r.run_to_end()
        tail = [row["modes_covered"] for row in r.history[len(r.history) // 2:]]
        out[f"seed{seed}"] = {"modes_covered_end": int(r.latest.metrics["modes_covered"]),
                              "max_modes_second_half": int(max(tail)), "seconds": round(r.compute_seconds, 2)}
    return {"ring_collapse": out, "target": "<= 3 modes for three seeds"}


# -- 1-D: the picture of the original paper ----------------------------------------------------------------
@dataclass(frozen=True)
class Config1D:
    data_mean: float = param(2.0, "mean of the data's Gaussian", lo=-2.0, hi=3.0, step=0.25, label="data mean")
    data_std: float = param(0.5, "standard deviation of the data's Gaussian", lo=0.1, hi=1.5, step=0.05,
                            label="data std")
    loss: str = param("non-saturating", "the game (as in the 2-D demo). WGAN-GP here uses λ = 0.1, as the authors' "
                      "toy script does: with the paper's 10 this 1-D generator swings far past the data and back",
                      choices=LOSSES)
    width: int = param(32, "hidden units per layer of G and D (two hidden layers each)", choices=(8, 16, 32, 64))
    lr: float = param(1e-3, "learning rate of both players (Adam: betas (0.5, 0.999), with WGAN-GP (0, 0.9) as in "
                      "the paper, whose learning rate is 1e-4)", choices=LEARNING_RATES, label="learning rate")
    d_steps: int = param(1, "k: discriminator steps per generator step (WGAN-GP's paper: n_critic = 5)", lo=1, hi=10,
                         label="k (D steps per G step)")
    d_warmup: int = param(300, "discriminator steps before G starts (as in the paper's panel (b): D first "
                          "learns to tell the two densities apart)", lo=0, hi=2000, label="D warm-up steps")
    batch_size: int = param(128, "samples per step", choices=(16, 32, 64, 128, 256), label="batch size")
    steps: int = param(3000, "generator steps in the run", lo=100, hi=20000)
    eval_every: int = param(20, "generator steps between snapshots", lo=1, hi=200, label="steps per snapshot")
    seed: int = param(0, "seed for initialization, data and noise", lo=0, hi=2**31 - 1, widget=False)


PRESETS_1D = {
    "goodfellow-fig1": Preset("Goodfellow et al. 2014, Figure 1: D(x) flattens to 1/2", Config1D(),
                              "Green (G's density) slides onto black (the data); blue D(x) flattens toward 1/2.",
                              Claim("by step 1000 G's mean is within 0.15 of the data's 2.0 and D(x) is within 0.03 "
                                    "of 1/2 on average over the data (mean |D(x) - 1/2| weighted by the data density)",
                                    lambda s: abs(s["gen_mean"] - 2.0) < 0.15 and s["d_gap"] < 0.03,
                                    ("gen_mean", "d_gap", "js", "steps"), max_steps=1000)),
}
X1D = (-4.0, 6.0)  # the x axis of the 1-D picture
GP_WEIGHT_1D = 0.1  # as in the WGAN-GP authors' toy script; lambda = 10 makes G oscillate by +-10 around the data here
N_Z_ARROWS = 25  # noise values whose mapping z -> G(z) is drawn


def run_1d(config: Config1D, device: torch.device) -> Iterator[Snapshot]:
    """1-D GAN with uniform noise on [-1, 1]. Arrays: ``x`` (200,) grid; ``data_pdf``, ``gen_pdf`` (densities,
    the latter a histogram of 20,000 samples), ``d_x`` D(x) on the grid; ``z`` (N_Z_ARROWS,) and ``g_z`` = G(z)."""
    rng = run_generator(config.seed)
    with seeded(config.seed):
        G = mlp(1, 1, 2, config.width, "leaky_relu").to(device)
        D = Discriminator(1, 2, config.width, "leaky_relu").to(device)
    trainer = GanTrainer(G, D, make_optimizer("adam", G.parameters(), config.lr, config.loss),
                         make_optimizer("adam", D.parameters(), config.lr, config.loss), config.loss, config.d_steps,
                         GP_WEIGHT_1D, rng)

    def real(n):
        return (config.data_mean + config.data_std * torch.randn(n, 1, generator=rng)).to(device)

    def noise(n):
        return sample_noise(n, 1, "uniform", rng).to(device)

    bins = 100
    edges = np.linspace(*X1D, bins + 1)
    x = 0.5 * (edges[1:] + edges[:-1]).astype(np.float32)
    data_pdf = np.exp(-0.5 * ((x - config.data_mean) / config.data_std) ** 2) / (config.data_std * math.sqrt(2 * math.pi))
    eval_gen = torch.Generator().manual_seed(config.seed + 1)
    z_eval = sample_noise(20000, 1, "uniform", eval_gen).to(device)
    real_eval = (config.data_mean + config.data_std * torch.randn(20000, 1, generator=eval_gen)).numpy()
    z_arrows = torch.linspace(-1, 1, N_Z_ARROWS).unsqueeze(1).to(device)
    x_t = torch.from_numpy(x).unsqueeze(1).to(device)
    width = edges[1] - edges[0]

    def snapshot(step: int, ld: float, lg: float) -> Snapshot:
        with torch.no_grad():
            fake = G(z_eval).cpu().numpy()
            check_finite(np.abs(fake).max(), step, "generator output")
            d_x = d_probability(D(x_t), config.loss).cpu().numpy()
            d_real = d_probability(D(torch.from_numpy(real_eval[:2000]).to(device)), config.loss).mean()
            d_fake = d_probability(D(torch.from_numpy(fake[:2000]).to(device)), config.loss).mean()
            g_z = G(z_arrows).cpu().numpy()[:, 0]
        gen_pdf = histogram_density(fake, X1D, bins, smoothing=0.0) / width
        # How far D is from 1/2 where the data lives (the equilibrium of the paper: D = 1/2 everywhere)
        d_gap = float(np.sum(np.abs(d_x - 0.5) * data_pdf) * width)
        div = grid_divergences(real_eval, fake, X1D, bins)
        return Snapshot(step, {"d_loss": ld, "g_loss": lg, "d_real": float(d_real), "d_fake": float(d_fake),
                               "d_gap": d_gap, **div, "gen_mean": float(fake.mean()), "gen_std": float(fake.std())},
                        {"x": x, "data_pdf": data_pdf, "gen_pdf": gen_pdf, "d_x": d_x,
                         "z": z_arrows.cpu().numpy()[:, 0], "g_z": g_z})

    with torch.no_grad():
        ld0 = _d_loss_now(D, G, real, noise, config)
        lg0 = float(g_loss(D(G(noise(config.batch_size))), config.loss))
    yield snapshot(0, ld0, lg0)
    pacer = Pacer()  # the warm-up is up to 2,000 D steps: heartbeats keep Pause/Reset immediate
    for _ in range(config.d_warmup):
        ld = yield from pacer.call(0, trainer.d_step, real, noise, config.batch_size)
    if config.d_warmup:
        with torch.no_grad():  # computed here, yielded outside: a generator suspended inside no_grad leaves the
            after = snapshot(0, float(ld), float(g_loss(D(G(noise(config.batch_size))), config.loss)))  # thread
        yield after  # that resumes it (and every other run trained on that thread) without gradients
    yield from _train_loop(trainer, real, noise, config, snapshot, device)


# -- Digits --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConfigDigits:
    noise_dim: int = param(32, "dimension of the generator's Gaussian input", choices=(4, 8, 16, 32, 64),
                           label="noise dim")
    loss: str = param("non-saturating", "the game", choices=LOSSES)
    g_width: int = param(256, "units of G's two hidden layers", choices=(32, 64, 128, 256, 512), label="G width")
    d_width: int = param(256, "units of D's two hidden layers", choices=(32, 64, 128, 256, 512), label="D width")
    lr: float = param(1e-3, "learning rate of both players (Adam: betas (0.5, 0.999), with WGAN-GP (0, 0.9) as in "
                      "the paper, whose learning rate is 1e-4)", choices=LEARNING_RATES, label="learning rate")
    d_steps: int = param(1, "k: discriminator steps per generator step (WGAN-GP's paper: n_critic = 5)", lo=1, hi=10,
                         label="k (D steps per G step)")
    batch_size: int = param(64, "images per step", choices=(16, 32, 64, 128, 256), label="batch size")
    gp_weight: float = param(GP_WEIGHT, "WGAN-GP: weight λ of the gradient penalty (the paper's 10)",
                             choices=(0.1, 1.0, 10.0),
                             label="gradient penalty")
    steps: int = param(3000, "generator steps in the run", lo=100, hi=30000)
    eval_every: int = param(50, "generator steps between snapshots", lo=1, hi=500, label="steps per snapshot")
    seed: int = param(0, "seed for initialization, data and noise", lo=0, hi=2**31 - 1, widget=False)


PRESETS_DIGITS = {
    "mlp-gan": Preset("MLP GAN on 8x8 digits", ConfigDigits(),
                      "Blobs turn into strokes, then digits; the class histogram shows which digits G makes.",
                      Claim("by step 1500 a classifier trained on real digits finds every kind among G's samples: "
                            "class entropy >= 1.8 nats (uniform: 2.30; at step 0 about 0.75) and inception score >= 4",
                            lambda s: s["class_entropy"] >= 1.8 and s["inception_score"] >= 4,
                            ("class_entropy", "inception_score", "confidence", "steps"), max_steps=1500)),
}
N_GRID = 64  # fixed noise vectors shown as an 8x8 sample grid
N_CLASSIFY = 500  # generated images classified per snapshot


@lru_cache(maxsize=1)
def digit_classifier() -> tuple[nn.Module, float]:
    """An MLP trained once (seed 0, CPU) on the real training digits; returns (model in eval mode, test accuracy).

    Cached read-only: callers only run it under ``torch.no_grad``.
    """
    data = load_digits_split(8)
    g = torch.Generator().manual_seed(0)
    with seeded(0):
        model = mlp(64, 10, 1, 128, "relu")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    x, y = data.x_train.flatten(1), data.y_train
    for _ in range(400):
        idx = torch.randint(len(y), (256,), generator=g)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval().requires_grad_(False)
    acc = float((model(data.x_test.flatten(1)).argmax(1) == data.y_test).float().mean())
    return model, acc


def run_digits(config: ConfigDigits, device: torch.device) -> Iterator[Snapshot]:
    """MLP GAN on the 1,437 training digits (pixels in [0, 1]). Arrays: ``samples`` (N_GRID, 8, 8) from fixed
    noise; ``class_hist`` (10,) share of N_CLASSIFY generated images per predicted class; ``real`` (16, 8, 8)."""
    classifier, _ = digit_classifier()
    data = load_digits_split(8)
    rng = run_generator(config.seed)
    x_all = data.x_train.flatten(1).to(device)
    with seeded(config.seed):
        G = mlp(config.noise_dim, 64, 2, config.g_width, "leaky_relu", nn.Sigmoid()).to(device)
        D = Discriminator(64, 2, config.d_width, "leaky_relu").to(device)
    trainer = GanTrainer(G, D, make_optimizer("adam", G.parameters(), config.lr, config.loss),
                         make_optimizer("adam", D.parameters(), config.lr, config.loss), config.loss, config.d_steps,
                         config.gp_weight, rng)

    def real(n):
        return x_all[torch.randint(len(x_all), (n,), generator=rng).to(device)]

    def noise(n):
        return torch.randn(n, config.noise_dim, generator=rng).to(device)

    z_fixed = torch.randn(N_CLASSIFY, config.noise_dim, generator=torch.Generator().manual_seed(config.seed + 1))
    z_fixed = z_fixed.to(device)

    def snapshot(step: int, ld: float, lg: float) -> Snapshot:
        with torch.no_grad():
            fake = G(z_fixed)
            probs = torch.softmax(classifier(fake.cpu()), 1).numpy()
            d_real = d_probability(D(x_all[:N_CLASSIFY]), config.loss).mean()
            d_fake = d_probability(D(fake), config.loss).mean()
        pred = probs.argmax(1)
        fake_np = fake.cpu().numpy().reshape(-1, 8, 8)
        return Snapshot(step, {"d_loss": ld, "g_loss": lg, "d_real": float(d_real), "d_fake": float(d_fake),
                               **class_diversity(probs)},
                        {"samples": fake_np[:N_GRID], "class_hist": np.bincount(pred, minlength=10) / len(pred)})

    with torch.no_grad():
        ld0 = _d_loss_now(D, G, real, noise, config)
        lg0 = float(g_loss(D(G(noise(config.batch_size))), config.loss))
    yield snapshot(0, ld0, lg0)
    yield from _train_loop(trainer, real, noise, config, snapshot, device)


def _summarize_digits(snap: Snapshot, runner) -> dict:
    return {**{k: round(v, 4) for k, v in snap.metrics.items()}, "classifier_test_acc": round(digit_classifier()[1], 4),
            "steps": snap.step}


def _bench_digits(device: torch.device) -> dict:
    """The digits preset to the end: class entropy (ln 10 = 2.30 is uniform) and training seconds."""
    from ..runner import Runner

    r = Runner(DEMOS[2], PRESETS_DIGITS["mlp-gan"].config, device)
    with _Threads():
        r.run_to_end()
    m = r.latest.metrics
    return {"digits_class_entropy": round(m["class_entropy"], 3), "digits_inception_score": round(m["inception_score"], 2),
            "digits_train_seconds": round(r.compute_seconds, 2)}


DEMOS = [
    Demo(name="gan", title="GAN in 2-D",
         summary="A generator learns a 2-D distribution against a discriminator: heatmap, gradients, mode coverage.",
         config_cls=Config, presets=PRESETS, run=run, summarize=_summarize,
         benchmarks={"gan ring-covered": _bench_ring_covered, "gan ring-collapse": _bench_ring_collapse}),
    Demo(name="gan-1d", title="GAN in 1-D (the original paper's picture)",
         summary="Data density, generator density and D(x), which flattens to 1/2 as the two densities meet.",
         config_cls=Config1D, presets=PRESETS_1D, run=run_1d),
    Demo(name="gan-digits", title="GAN on 8x8 digits",
         summary="An MLP GAN draws digits live; a classifier trained on real digits measures their diversity.",
         config_cls=ConfigDigits, presets=PRESETS_DIGITS, run=run_digits, summarize=_summarize_digits,
         benchmarks={"gan-digits entropy": _bench_digits}),
]
