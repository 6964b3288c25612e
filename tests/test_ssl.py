"""Self-supervised learning: augmentations, losses against references, collapse metrics, and the demo's directions."""

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlviz.analysis.collapse import effective_rank, knn_accuracy_cosine, output_std, singular_values, spread_rank
from dlviz.data.augment import Augment, digits_in_clutter, two_views, views_torchvision
from dlviz.demos.ssl import DEMOS, PRESETS, Config, _Trainer, batch_stats_outputs, load_data, random_blur, run, variant
from dlviz.demos.base import snapshots
from dlviz.models.ssl import (EMATarget, KeyQueue, MemoryBank, SSLNet, info_nce_loss, info_nce_queue, key_drift,
                              negative_cosine, simsiam_loss)
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


def test_info_nce_queue_matches_a_hand_computation():
    """MoCo's logits [N, 1+K] with label 0, against a plain loop with math.exp (and a masked negative dropped)."""
    g = torch.Generator().manual_seed(1)
    q, k, negs = (F.normalize(torch.randn(n, 3, generator=g), dim=1) for n in (2, 2, 4))
    tau = 0.2
    total = 0.0
    for i in range(2):
        pos = math.exp(sum(q[i, d].item() * k[i, d].item() for d in range(3)) / tau)
        neg = sum(math.exp(sum(q[i, d].item() * negs[j, d].item() for d in range(3)) / tau) for j in range(4))
        total += -math.log(pos / (pos + neg))
    assert info_nce_queue(q, k, negs, tau).item() == pytest.approx(total / 2, rel=1e-5)
    mask = torch.zeros(2, 4, dtype=torch.bool)
    mask[0, 1] = True  # query 0 does not see negative 1
    pos0 = math.exp(float(q[0] @ k[0]) / tau)
    neg0 = sum(math.exp(float(q[0] @ negs[j]) / tau) for j in (0, 2, 3))
    pos1 = math.exp(float(q[1] @ k[1]) / tau)
    neg1 = sum(math.exp(float(q[1] @ negs[j]) / tau) for j in range(4))
    ref = -(math.log(pos0 / (pos0 + neg0)) + math.log(pos1 / (pos1 + neg1))) / 2
    assert info_nce_queue(q, k, negs, tau, mask).item() == pytest.approx(ref, rel=1e-5)


def test_key_queue_is_fifo_with_wrap_around():
    qu = KeyQueue(5, 1)
    qu.enqueue(torch.tensor([[1.0], [2.0], [3.0]]), step=1, index=torch.tensor([10, 11, 12]))
    assert qu.filled == 3 and qu.keys().flatten().tolist() == [1, 2, 3]
    slots = qu.enqueue(torch.tensor([[4.0], [5.0], [6.0]]), step=2)
    assert slots.tolist() == [3, 4, 0] and qu.ptr == 1  # wrapped: 6 overwrote the oldest (1)
    assert qu.filled == 5 and qu.keys().flatten().tolist() == [2, 3, 4, 5, 6]  # oldest first
    assert qu.ages(4).tolist() == [3, 3, 2, 2, 2]
    qu.enqueue(torch.arange(7.0, 14.0).view(7, 1), step=3)  # more than K at once: the last K stay
    assert qu.keys().flatten().tolist() == [9, 10, 11, 12, 13] and qu.keys().shape == (5, 1)


def test_momentum_update_half_averages():
    torch.manual_seed(0)
    net = SSLNet(8, 16)
    key = EMATarget(net)
    before = key.projector[0].weight.clone()
    with torch.no_grad():
        net.projector[0].weight.add_(2.0)
    key.update(net, 0.5)
    assert torch.allclose(key.projector[0].weight, 0.5 * before + 0.5 * net.projector[0].weight, atol=1e-6)
    assert key_drift(torch.nn.ModuleList([net.encoder, net.projector]), key) > 0
    key.update(net, 0.0)
    assert key_drift(torch.nn.ModuleList([net.encoder, net.projector]), key) == pytest.approx(0.0, abs=1e-6)


def test_memory_bank_update():
    g = torch.Generator().manual_seed(0)
    bank = MemoryBank(6, 2, g)
    assert torch.allclose(bank.bank.norm(dim=1), torch.ones(6))
    old = bank.bank[2].clone()
    f = torch.tensor([[3.0, 4.0]])
    bank.update(torch.tensor([2]), f, 0.5, step=7)
    ref = F.normalize(0.5 * old + 0.5 * torch.tensor([0.6, 0.8]), dim=0)
    assert torch.allclose(bank.bank[2], ref, atol=1e-6) and bank.step[2] == 7 and bank.step[0] == 0
    bank.update(torch.tensor([3]), f, 0.0, step=8)  # m = 0: the new feature, normalized
    assert torch.allclose(bank.bank[3], torch.tensor([0.6, 0.8]))
    assert bank.sample(9, g).shape == (9,)


def test_moco_loss_falls_and_its_queue_holds_recent_keys():
    cfg = Config(method="moco", batch_size=64, width=8, out_dim=32, queue_size=256, seed=3)
    t = _Trainer(cfg, load_data(cfg), torch.device("cpu"))
    losses = [float(t.train_step()[0]) for _ in range(30)]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3
    m, a = t.negatives_view()
    assert m["neg_age_max"] == 256 // 64 - 1 and len(a["neg_ages"]) == 256  # the last K/N = 4 steps
    assert 0.5 < m["neg_consistency"] <= 1.0 and m["key_drift"] > 0


def test_moco_and_instdisc_runs_and_summary():
    for method in ("moco", "instdisc"):
        r = Runner(DEMOS[0], replace(TINY, method=method, steps=10, eval_every=10, queue_size=128, proximal=0.3), "cpu")
        r.run_to_end()
        out = r.summary()
        assert out["method"] == method and np.isfinite(out["loss"]) and out["neg_age"] > 0
        assert 0 < out["neg_consistency"] <= 1.0 + 1e-6
    assert "key_drift" not in out  # InstDisc has no key encoder


def test_fresh_clutter_views_and_blur():
    cfg = replace(TINY, dataset="digits-clutter-views")
    t = _Trainer(cfg, load_data(cfg), torch.device("cpu"))
    x, idx = t._batch()
    v1, v2 = t._two_views(x, idx, Augment(1.0, 0, 0, 0, 0, 0))
    assert v1.shape == x.shape and not torch.allclose(v1, v2)  # each view has its own clutter
    g = torch.Generator().manual_seed(0)
    assert torch.equal(random_blur(x, g, p=0.0), x)
    b = random_blur(x, g, p=1.0)
    assert b.shape == x.shape and b.min() >= 0 and b.max() <= 1 + 1e-6 and not torch.allclose(b, x)
    assert torch.allclose(b.sum((1, 2, 3)), x.sum((1, 2, 3)), rtol=0.1)  # blur moves mass, keeps most of it


def test_moco_variants_and_figures():
    from dlviz.figures.ssl import negatives_figure, queue_sweep_figure

    assert variant(Config(method="moco", compare="method")).method == "instdisc"
    assert variant(Config(method="moco", compare="ema")).ema == 0.0
    assert PRESETS["moco-momentum"].config.compare == "ema"
    h = [{"step": 10, "neg_age": 3.5, "neg_consistency": 0.9, "key_drift": 0.2, "b_neg_age": 6.0,
          "b_neg_consistency": 0.8}]
    fig = negatives_figure(h, ["MoCo", "InstDisc"])
    names = [t.name for t in fig.data]
    assert names.count("MoCo") == 3 and names.count("InstDisc") == 3
    rows = [{"queue_size": k, "seed": s, "knn_acc": 0.9 + k / 1e5} for k in (64, 256) for s in (0, 1)]
    sf = queue_sweep_figure(rows, 0.85)
    assert [t.name for t in sf.data] == ["one seed", "mean over seeds", "random encoder"]
    assert list(sf.data[1].x) == [64, 256]


def test_run_labels_are_english_strings_shown_translated():
    """A run's legend name is a Msg: English for the CLI's JSON, Chinese through tr() (the page's legends)."""
    import json

    from dlviz.demos.ssl import run_label
    from dlviz.i18n import language, tr

    label = run_label(Config(stop_grad=False, out_bn=True))
    assert label == "SimSiam, no stop-grad, with output BN" and json.loads(json.dumps(label)) == label
    inst = run_label(Config(method="instdisc", proximal=0.1))
    assert inst == "InstDisc, bank m=0.5, K=1024, τ=0.1, λ=0.1"
    with language("zh"):
        assert tr(label) == "SimSiam, 无停止梯度, 有输出 BN" and tr(inst).startswith("InstDisc, 记忆库 m=0.5, K=1024")
    assert tr(label) == label


def test_a_comparison_of_a_setting_the_method_does_not_have_says_so():
    from dlviz.demos.ssl import Config, compare_warning
    from dlviz.i18n import tr

    assert "SimCLR has no" in tr(compare_warning(Config(method="simclr", compare="stop_grad")))
    assert "never receives gradients" in tr(compare_warning(Config(method="byol", compare="stop_grad")))
    assert "BYOL has no" in tr(compare_warning(Config(method="byol", compare="temperature")))
    for method, compare in (("byol", "ema"), ("simsiam", "stop_grad"), ("moco", "moco_v2"), ("simclr", "none")):
        assert compare_warning(Config(method=method, compare=compare)) is None, (method, compare)
