"""GAN topic: metrics against hand-made cases, losses against torch references, the demos move the right way."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlviz.analysis.gan_metrics import (ModeVisits, class_diversity, grid_divergences, histogram_density,
                                        js_divergence, kl_divergence, mode_coverage, modes_hit, spread_ratio)
from dlviz.data.toy2d import D2L_A, D2L_B, TOY2D, noise_grid_lines, ring_modes, sample_noise
from dlviz.demos import get_demo
from dlviz.demos.base import snapshots
from dlviz.demos.gan import (PRESETS, PRESETS_1D, PRESETS_DIGITS, Config, Config1D, ConfigDigits, run, run_1d,
                             run_digits)
from dlviz.models.gan import LOSSES, d_loss, g_loss, gradient_penalty, make_optimizer
from dlviz.runner import Runner

CPU = torch.device("cpu")


# -- metrics ---------------------------------------------------------------------------------------------------
def test_mode_coverage_counts_modes_and_quality():
    modes, std = ring_modes(), 0.05
    rng = np.random.default_rng(0)
    one = modes[0] + std * rng.standard_normal((2000, 2))
    cov = mode_coverage(one, modes, std)
    assert cov.covered == 1 and cov.high_quality > 0.98 and cov.total == 8
    every = modes[np.arange(2000) % 8] + std * rng.standard_normal((2000, 2))
    assert mode_coverage(every, modes, std).covered == 8
    assert mode_coverage(np.zeros((2000, 2)), modes, std).high_quality == 0.0  # the center is no mode
    # The 1% rule: 15 of 2,000 samples at a second mode do not cover it, 25 do.
    for n, expected in ((15, 1), (25, 2)):
        s = np.concatenate([np.repeat(modes[:1], 2000 - n, 0), np.repeat(modes[1:2], n, 0)])
        assert mode_coverage(s, modes, std).covered == expected


def test_divergences_against_closed_forms():
    p, q = np.array([0.5, 0.5, 0.0, 0.0]), np.array([0.0, 0.0, 0.5, 0.5])
    assert js_divergence(p, q) == pytest.approx(math.log(2))
    assert js_divergence(p, p) == 0.0
    a, b = np.array([0.25, 0.75]), np.array([0.5, 0.5])
    assert kl_divergence(a, b) == pytest.approx(0.25 * math.log(0.5) + 0.75 * math.log(1.5))
    h = histogram_density(np.random.default_rng(0).normal(size=(500, 2)), (-3, 3, -3, 3), bins=10)
    assert h.shape == (10, 10) and h.sum() == pytest.approx(1.0)
    real = TOY2D["ring"].sample(2000, torch.Generator().manual_seed(0)).numpy()
    near = grid_divergences(real, TOY2D["ring"].sample(2000, torch.Generator().manual_seed(1)).numpy(), (-3, 3, -3, 3))
    far = grid_divergences(real, real + 1.0, (-3, 3, -3, 3))
    assert near["js"] < 0.1 < far["js"] and near["kl"] < far["kl"]


def test_grid_js_reaches_ln2_for_disjoint_samples_and_zero_for_identical_ones():
    ring = TOY2D["ring"]
    real = ring.sample(2000, torch.Generator().manual_seed(0)).numpy()
    # All 2,000 samples at the origin (no ring sample there): disjoint histograms. Pseudo-counts capped this at 0.48.
    disjoint = grid_divergences(real, np.zeros((2000, 2)), ring.bounds)
    assert disjoint["js"] == pytest.approx(math.log(2), rel=0.01) and math.isfinite(disjoint["kl"])
    assert grid_divergences(real, real + 1.0, ring.bounds)["js"] > 0.6
    assert grid_divergences(real, real.copy(), ring.bounds)["js"] == pytest.approx(0.0, abs=1e-12)
    other = ring.sample(2000, torch.Generator().manual_seed(1)).numpy()  # the same distribution, other samples
    assert 0 < grid_divergences(real, other, ring.bounds)["js"] < 0.03  # the finite-sample bias is small


def test_collapse_metrics_on_synthetic_samples():
    """A tight clump between two modes: 0 modes covered, spread near 0, at most 2 modes hit; the same clump
    hopping around the ring visits all 8 within the window; samples of the data themselves spread like it."""
    modes, std = ring_modes(), 0.05
    rng = np.random.default_rng(0)
    data = modes[np.arange(2000) % 8] + std * rng.standard_normal((2000, 2))
    assert spread_ratio(data[::-1], data) == pytest.approx(1.0) and modes_hit(data, modes).sum() == 8
    between = 0.5 * (modes[0] + modes[1])
    clump = between + 0.05 * rng.standard_normal((2000, 2))
    assert mode_coverage(clump, modes, std).covered == 0
    assert spread_ratio(clump, data) < 0.05 and 1 <= modes_hit(clump, modes).sum() <= 2
    visits, seen = ModeVisits(window=500), []
    for i, step in enumerate(range(0, 1000, 25)):  # the clump jumps to the next mode every 50 steps
        hop = modes[(i // 2) % 8] + 0.05 * rng.standard_normal((2000, 2))
        hit = modes_hit(hop, modes)
        seen.append(visits.update(step, hit))
        assert hit.sum() == 1
    assert seen[0] == 1 and seen[-1] == 8
    stuck = ModeVisits(window=500)  # a generator stuck on one mode visits one mode, however long the window
    assert max(stuck.update(s, modes_hit(modes[3] + 0.05 * rng.standard_normal((500, 2)), modes))
               for s in range(0, 1000, 25)) == 1
    # The window slides: a mode last hit more than 500 steps ago no longer counts.
    w = ModeVisits(window=500)
    w.update(0, np.eye(8, dtype=bool)[0])
    assert w.update(499, np.eye(8, dtype=bool)[1]) == 2 and w.update(500, np.eye(8, dtype=bool)[1]) == 1


def test_class_diversity_extremes():
    uniform = np.eye(10)[np.arange(100) % 10]
    d = class_diversity(uniform)
    assert d["class_entropy"] == pytest.approx(math.log(10)) and d["inception_score"] == pytest.approx(10, rel=1e-6)
    single = class_diversity(np.eye(10)[np.zeros(100, dtype=int)])
    assert single["class_entropy"] == pytest.approx(0, abs=1e-6) and single["inception_score"] == pytest.approx(1)


# -- data ------------------------------------------------------------------------------------------------------
def test_datasets_match_their_definitions():
    g = torch.Generator().manual_seed(0)
    ring = TOY2D["ring"]
    cov = mode_coverage(ring.sample(4000, g).numpy(), ring.modes, ring.mode_std)
    assert cov.covered == 8 and cov.high_quality > 0.98
    grid = TOY2D["grid"]
    assert mode_coverage(grid.sample(4000, g).numpy(), grid.modes, grid.mode_std).covered == 25
    x = TOY2D["affine"].sample(20000, g)
    a = torch.tensor(D2L_A)
    assert torch.allclose(x.mean(0), torch.tensor(D2L_B), atol=0.05)
    assert torch.allclose(torch.cov(x.T), a.T @ a, atol=0.1)
    for name, data in TOY2D.items():  # samples stay inside the figure's frame
        s = data.sample(2000, g).numpy()
        x0, x1, y0, y1 = data.bounds
        inside = (s[:, 0] > x0) & (s[:, 0] < x1) & (s[:, 1] > y0) & (s[:, 1] < y1)
        assert inside.mean() > 0.99, name
    u = sample_noise(1000, 2, "uniform", g)
    assert u.shape == (1000, 2) and u.abs().max() <= 1
    lines = noise_grid_lines(2, "gaussian", lines=5, points=10)
    assert lines.shape == (5 * 2 * 11 - 1, 2) and np.isnan(lines).any(1).sum() == 9


# -- losses ----------------------------------------------------------------------------------------------------
def test_losses_against_torch_references():
    real, fake = torch.randn(64), torch.randn(64)
    bce = F.binary_cross_entropy_with_logits
    ref = bce(real, torch.ones(64)) + bce(fake, torch.zeros(64))
    assert torch.allclose(d_loss(real, fake, "minimax"), ref, atol=1e-6)
    assert torch.allclose(g_loss(fake, "non-saturating"), bce(fake, torch.ones(64)), atol=1e-6)
    # minimax G minimizes log(1 - D(G(z))) = -BCE(fake, 0)
    assert torch.allclose(g_loss(fake, "minimax"), torch.log(1 - torch.sigmoid(fake)).mean(), atol=1e-5)
    assert torch.allclose(g_loss(fake, "least-squares"), 0.5 * ((fake - 1) ** 2).mean())
    assert torch.allclose(d_loss(real, fake, "wgan-gp"), fake.mean() - real.mean())
    # A linear critic with a unit-norm weight has gradient norm 1 everywhere: zero penalty.
    critic = torch.nn.Linear(2, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[0.6, 0.8]]))
    gp = gradient_penalty(lambda x: critic(x).squeeze(1), torch.randn(32, 2), torch.randn(32, 2))
    assert gp.item() == pytest.approx(0.0, abs=1e-10)


def test_optimal_discriminator_is_density_ratio():
    """Minimizing the minimax D loss point by point gives D*(x) = p_data / (p_data + p_g) (the paper's Prop. 1)."""
    p_data, p_g = torch.tensor([0.1, 0.4, 0.3, 0.2]), torch.tensor([0.4, 0.1, 0.3, 0.2])
    logit = torch.zeros(4, requires_grad=True)
    opt = torch.optim.LBFGS([logit], max_iter=200)

    def closure():
        opt.zero_grad()
        loss = (p_data * F.softplus(-logit)).sum() + (p_g * F.softplus(logit)).sum()
        loss.backward()
        return loss

    opt.step(closure)
    assert torch.allclose(torch.sigmoid(logit), p_data / (p_data + p_g), atol=1e-4)


# -- demos -----------------------------------------------------------------------------------------------------
def test_presets_and_registration():
    from dlviz.demos import all_demos

    assert {"gan", "gan-1d", "gan-digits"} <= set(all_demos())
    assert PRESETS["ring-covered"].config == Config() and "ring-collapse" in PRESETS
    assert PRESETS_1D["goodfellow-fig1"].config == Config1D() and PRESETS_DIGITS["mlp-gan"].config == ConfigDigits()
    assert get_demo("gan-digits").run is run_digits and get_demo("gan-1d").run is run_1d


def test_wgan_gp_uses_the_papers_hyperparameters_or_says_why_not():
    """Gulrajani et al. 2017, Algorithm 1: lambda = 10, n_critic = 5, Adam with betas (0, 0.9). The 2-D preset takes
    the authors' own toy script's lambda = 0.1 (gan_toy.py), and its note says so; digits keep the paper's 10."""
    preset = PRESETS["wgan-gp"]
    cfg = preset.config
    assert cfg.loss == "wgan-gp" and cfg.d_steps == 5 and cfg.g_optimizer == "adam"
    assert cfg.gp_weight == 0.1 and "toy script" in preset.note and "paper's" in preset.note
    assert ConfigDigits().gp_weight == 10.0
    params = [torch.nn.Parameter(torch.zeros(2))]
    assert make_optimizer("adam", params, 1e-3, "wgan-gp").defaults["betas"] == (0.0, 0.9)
    assert make_optimizer("adam", params, 1e-3, "non-saturating").defaults["betas"] == (0.5, 0.999)


def test_2d_gan_learns_the_ring():
    snaps = list(run(replace(Config(), steps=300, eval_every=150), CPU))
    first, last = snaps[0], snaps[-1]
    assert first.arrays["d_grid"].shape == (60, 60) and last.arrays["fake"].shape == (500, 2)
    assert last.arrays["arrow_vec"].shape == last.arrays["arrow_from"].shape
    assert last.metrics["js"] < first.metrics["js"] - 0.05
    assert last.metrics["high_quality"] > first.metrics["high_quality"]
    assert last.metrics["modes_covered"] >= 2


@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_trains_without_nan(loss):
    cfg = replace(Config(), loss=loss, noise_dim=1, noise="uniform", dataset="moons", g_width=32, d_width=32,
                  steps=20, eval_every=10, batch_size=64)
    snaps = list(run(cfg, CPU))
    assert snaps[-1].step == 20 and all(math.isfinite(v) for v in snaps[-1].metrics.values())
    assert "modes_covered" not in snaps[-1].metrics  # moons have no modes


def test_1d_discriminator_flattens_toward_half():
    snaps = list(snapshots(run_1d(replace(Config1D(), steps=400, eval_every=400), CPU)))
    warm, last = snaps[1], snaps[-1]  # [0] untrained, [1] after D's warm-up, [-1] after G trained
    assert warm.metrics["d_gap"] > 0.3  # D separates the data from G's samples
    assert last.metrics["d_gap"] < 0.5 * warm.metrics["d_gap"]
    assert abs(last.metrics["gen_mean"] - 2.0) < abs(warm.metrics["gen_mean"] - 2.0)


def test_digits_gan_gains_diversity_and_cli_summary():
    cfg = replace(ConfigDigits(), steps=200, eval_every=200)
    r = Runner(get_demo("gan-digits"), cfg, CPU)
    r.run_to_end()
    first, last = r.history[0], r.history[-1]
    assert last["inception_score"] > first["inception_score"] + 0.2
    assert r.latest.arrays["samples"].shape == (64, 8, 8)
    out = r.summary()
    assert {"class_entropy", "train_seconds", "classifier_test_acc"} <= set(out) and out["classifier_test_acc"] > 0.9


def test_gan_cli_summary_has_the_issue_fields():
    r = Runner(get_demo("gan"), replace(Config(), steps=20, eval_every=10, g_width=16, d_width=16), CPU)
    r.run_to_end()
    out = r.summary()
    assert out["modes_total"] == 8 and isinstance(out["modes_covered"], int)
    assert {"high_quality", "train_seconds"} <= set(out)


@pytest.mark.slow
def test_collapse_preset_stays_on_few_modes():
    cfg = PRESETS["ring-collapse"].config
    snaps = [s for s in run(cfg, CPU) if s.metrics]  # heartbeats carry no metrics
    assert snaps[-1].metrics["modes_covered"] <= 3
    late = [s.metrics for s in snaps[len(snaps) // 4:]]  # a tight clump that hops: few modes at once, many visited
    assert np.median([m["spread"] for m in late]) < 0.3
    assert np.mean([m["modes_visited"] for m in late]) > 2 * np.mean([m["modes_now"] for m in late]) + 2
