"""Self-supervised learning: augmentations, losses against references, collapse metrics, and the demo's directions."""

import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlviz.analysis.collapse import effective_rank, knn_accuracy_cosine, output_std, singular_values, spread_rank
from dlviz.data.augment import Augment, digits_in_clutter, two_views, views_torchvision
from dlviz.demos.ssl import DEMOS, PRESETS, Config, batch_stats_outputs, run, variant
from dlviz.demos.base import snapshots
from dlviz.models.ssl import EMATarget, SSLNet, info_nce_loss, negative_cosine, simsiam_loss
from dlviz.runner import Runner

TINY = Config(batch_size=64, width=8, out_dim=32, steps=40, eval_every=20)


def test_two_views_draw_parameters_per_image():
    x = torch.zeros(16, 1, 16, 16)
    x[:, :, 4:12, 6:10] = 1.0  # the same image 16 times
    v1, v2 = two_views(x, Augment(), torch.Generator().manual_seed(0))
    assert v1.shape == x.shape and v1.min() >= 0 and v1.max() <= 1
    assert not torch.allclose(v1, v2)
    # Identical inputs get different views: parameters are drawn per image, not once per batch.
    assert (v1[1:] - v1[:1]).abs().flatten(1).max(1).values.min() > 1e-3
    # All strengths zero except a full crop: the identity.
    same, _ = two_views(x, Augment(crop_min=1.0, shift=0, rotation=0, jitter=0, noise=0, cutout=0))
    assert torch.allclose(same, x, atol=1e-5)


def test_torchvision_reference_and_clutter():
    x = torch.rand(4, 1, 16, 16)
    a, b = views_torchvision(x, Augment())
    assert a.shape == x.shape and b.shape == x.shape and a.min() >= 0 and a.max() <= 1
    c = digits_in_clutter(torch.ones(3, 1, 8, 8), 16, torch.Generator().manual_seed(0))
    assert c.shape == (3, 1, 16, 16) and (c == 1).flatten(1).sum(1).ge(64).all()


def test_negative_cosine_and_simsiam_stop_gradient():
    p, z = torch.randn(8, 5), torch.randn(8, 5)
    assert torch.allclose(negative_cosine(p, z), -F.cosine_similarity(p, z).mean(), atol=1e-6)
    assert negative_cosine(p, 3 * p).item() == pytest.approx(-1.0, abs=1e-6)
    p1, p2, z1, z2 = (torch.randn(4, 3, requires_grad=True) for _ in range(4))
    simsiam_loss(p1, p2, z1, z2, stop_grad=True).backward()
    assert z1.grad is None and z2.grad is None and p1.grad is not None
    simsiam_loss(p1, p2, z1, z2, stop_grad=False).backward()
    assert z1.grad is not None and z2.grad.abs().sum() > 0


def test_info_nce_matches_a_loop_and_temperature_divides_logits():
    torch.manual_seed(0)
    z1, z2 = torch.randn(5, 4), torch.randn(5, 4)
    for tau in (0.1, 1.0):
        z = F.normalize(torch.cat([z1, z2]), dim=1)
        losses = []
        for i in range(10):
            j = (i + 5) % 10
            others = [k for k in range(10) if k != i]  # 1 positive + 2(N-1) = 8 negatives
            logits = torch.stack([z[i] @ z[k] for k in others]) / tau
            losses.append(-(logits[others.index(j)] - torch.logsumexp(logits, 0)))
        assert info_nce_loss(z1, z2, tau).item() == pytest.approx(torch.stack(losses).mean().item(), rel=1e-5)


def test_ema_target_update():
    torch.manual_seed(0)
    net = SSLNet(8, 16)
    target = EMATarget(net)
    with torch.no_grad():
        for q in net.parameters():
            q.add_(1.0)
    before = [t.clone() for t in target.parameters()]
    target.update(net, 1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, target.parameters()))
    target.update(net, 0.0)
    assert torch.allclose(target.projector[0].weight, net.projector[0].weight)
    assert not any(q.requires_grad for q in target.parameters())


def test_collapse_metrics_against_closed_forms():
    d = 64
    assert output_std(torch.ones(100, d)) == pytest.approx(0.0, abs=1e-6)
    assert output_std(torch.randn(20000, d)) == pytest.approx(1 / np.sqrt(d), rel=0.05)
    assert effective_rank(np.ones(10)) == pytest.approx(10.0)
    assert effective_rank(np.array([1.0, 0, 0])) == pytest.approx(1.0)
    s = singular_values(torch.randn(500, 2) @ torch.randn(2, 16))  # rank 2 data
    assert s[2] < 1e-4 * s[0] and effective_rank(s) < 2.01
    # Weighted cosine kNN against a brute-force vote.
    g = torch.Generator().manual_seed(0)
    tr, te = torch.randn(200, 6, generator=g), torch.randn(50, 6, generator=g)
    ytr, yte = torch.randint(0, 3, (200,), generator=g), torch.randint(0, 3, (50,), generator=g)
    sim = F.normalize(te, dim=1) @ F.normalize(tr, dim=1).T
    pred = []
    for row in sim:
        top = row.topk(7)
        pred.append(int(np.argmax([sum(np.exp(v / 0.1) for v, i in zip(top.values.tolist(), top.indices.tolist())
                                       if ytr[i] == c) for c in range(3)])))
    ref = float((torch.tensor(pred) == yte).float().mean())
    assert knn_accuracy_cosine(tr, ytr, te, yte, k=7, temperature=0.1) == pytest.approx(ref)


def test_spread_rank_reads_a_collapse_as_low_where_the_plain_effective_rank_reads_it_high():
    """A collapsed output (one point plus small isotropic noise) has a flat spectrum: its plain effective rank is
    near d, above a healthy output's. Weighted by the variance it spans, it scores near 0."""
    g, d = torch.Generator().manual_seed(0), 64
    center = torch.randn(d, generator=g)
    collapsed = center + 0.01 * torch.randn(2000, d, generator=g)
    healthy = torch.randn(2000, 12, generator=g) @ torch.randn(12, d, generator=g)  # spread over 12 directions
    s_col, s_ok = singular_values(collapsed), singular_values(healthy)
    assert effective_rank(s_col) > 50 > 12 > effective_rank(s_ok) > 6  # the plain measure reads it backwards
    assert spread_rank(s_col) < 0.05 and spread_rank(s_ok) > 0.9 * effective_rank(s_ok)
    assert spread_rank(s_ok) > 100 * spread_rank(s_col)
    assert spread_rank(singular_values(torch.randn(5000, d, generator=g))) == pytest.approx(
        effective_rank(singular_values(torch.randn(5000, d, generator=g))), rel=0.05)  # isotropic: variance ~1


def test_batch_stats_outputs_leave_running_stats_alone():
    net = SSLNet(8, 16, out_bn=True)
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    z = batch_stats_outputs(net, torch.rand(32, 1, 16, 16))
    assert z.shape == (32, 16) and not net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items() if "num_batches" not in k)


def test_without_stop_gradient_the_output_collapses():
    cfg = replace(TINY, compare="stop_grad", steps=40, eval_every=40)
    first, last = list(itertools.islice(snapshots(run(cfg, torch.device("cpu"))), 2))
    m = last.metrics
    assert first.metrics["output_std"] > 0.5 * m["output_std_ref"]
    assert m["b_output_std"] < 0.5 * first.metrics["b_output_std"]  # no stop-gradient: collapsing
    assert m["output_std"] > 2 * m["b_output_std"]  # with stop-gradient: stays spread
    assert m["b_loss"] < m["loss"] and m["b_loss"] < -0.8
    assert last.arrays["b_pca"].shape == (len(last.arrays["b_features"]), 2)


def test_simclr_and_byol_run_and_summary():
    for method in ("simclr", "byol"):
        r = Runner(DEMOS[0], replace(TINY, method=method, steps=10, eval_every=10), "cpu")
        r.run_to_end()
        out = r.summary()
        for k in ("method", "knn_acc", "knn_acc_random_encoder", "output_std", "output_std_ref", "loss",
                  "effective_rank", "train_seconds"):
            assert k in out, k
        assert out["method"] == method and np.isfinite(out["loss"])
    assert r.latest.metrics["loss"] > -1.0  # BYOL's loss is a negative cosine


def test_presets_and_variants():
    assert PRESETS["simsiam"].config == Config()
    assert variant(Config(compare="stop_grad")).stop_grad is False
    assert variant(Config(method="simclr", compare="temperature")).temperature == 1.0
    assert variant(Config(method="byol", compare="ema")).ema == 0.0


def test_figures_structure():
    from dlviz.figures.ssl import pca_figure, spectrum_figure, ssl_curves

    h = [{"step": 0, "knn_acc": 0.9, "output_std": 0.1, "spread_rank": 40.0},
         {"step": 10, "loss": -0.5, "knn_acc": 0.92, "output_std": 0.1, "spread_rank": 38.0, "b_loss": -0.9,
          "b_knn_acc": 0.8, "b_output_std": 0.01, "b_spread_rank": 0.1}]
    fig = ssl_curves(h, ["with", "without"], 0.125, 0.9, 0.95)
    names = [t.name for t in fig.data]
    assert names.count("with") == 4 and names.count("without") == 4  # 4 panels, both runs on one step axis
    assert "1/√d" in names and "random encoder" in names and "raw pixels" in names
    assert tuple(fig.layout.yaxis2.range) == (0, 1.3 * 0.125)
    assert len(spectrum_figure([("a", np.ones(5)), ("b", np.ones(5))]).data) == 2
    pf = pca_figure(np.zeros((10, 2)), np.arange(10) % 3, "t")
    assert tuple(pf.layout.xaxis.range) == (-1.05, 1.05) and len(pf.data) == 3
