"""Multiple-instance learning: bags, poolings against hand computations, permutation invariance, a short run."""

import math
from dataclasses import replace
from itertools import islice

import numpy as np
import pytest
import torch

from dlviz.data.bags import instance_pool, make_bags, train_test_bags
from dlviz.data.digits import load_digits_split
from dlviz.demos.base import snapshots
from dlviz.demos.mil import (Config, bag_metrics, evaluate, instance_features, localization_chance, perm_bags,
                             roc_auc, run)
from dlviz.device import seeded
from dlviz.models.mil import POOLINGS, AttentionPool, MaxPool, MeanPool, MILNet, permutation_gap, shuffle_bags


def _random_bags(size: int = 8):
    g = torch.Generator().manual_seed(3)
    sizes = torch.tensor([5, 1, 7, 3])
    mask = torch.arange(7)[None, :] < sizes[:, None]
    x = torch.rand(4, 7, 1, size, size, generator=g) * mask[..., None, None, None]
    return x, mask


@pytest.mark.parametrize("pooling", POOLINGS)
def test_every_pooling_is_permutation_invariant_and_ignores_padding(pooling):
    x, mask = _random_bags()
    with seeded(0):
        net = MILNet(pooling, 8, width=4, dim=16, attn_dim=8).eval()
    with torch.no_grad():
        out, rel = net(x, mask)
        xs, ms, perm = shuffle_bags(x, mask, torch.Generator().manual_seed(1))
        assert not torch.equal(perm[0, :5], torch.arange(5))  # the shuffle really moved instances
        shuffled, rel_s = net(xs, ms)
        padded, _ = net(torch.cat([x, torch.rand(4, 3, 1, 8, 8)], 1), torch.cat([mask, torch.zeros(4, 3, dtype=bool)], 1))
    assert (out - shuffled).abs().max() < 1e-5
    assert (out - padded).abs().max() < 1e-5
    # the weights travel with their instances
    assert torch.allclose(rel.gather(1, perm), rel_s, atol=1e-6)
    assert permutation_gap(net, x, mask, torch.Generator().manual_seed(2)) < 1e-5
    assert float(rel[~mask].abs().max()) == 0.0


def test_attention_weights_match_a_hand_computation():
    pool = AttentionPool(dim=2, attn_dim=2)
    with torch.no_grad():
        pool.V.weight.copy_(torch.tensor([[1.0, -1.0], [0.5, 2.0]]))
        pool.V.bias.copy_(torch.tensor([0.1, -0.2]))
        pool.w.weight.copy_(torch.tensor([[2.0, -1.0]]))
        pool.w.bias.fill_(0.3)
    h = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [2.0, -1.0], [9.0, 9.0]]])
    mask = torch.tensor([[True, True, True, False]])
    with torch.no_grad():
        z, a = pool(h, mask)
    rows = [[1.0, 0.0], [0.0, 1.0], [2.0, -1.0]]
    scores = []
    for r in rows:
        t1 = math.tanh(1.0 * r[0] - 1.0 * r[1] + 0.1)
        t2 = math.tanh(0.5 * r[0] + 2.0 * r[1] - 0.2)
        scores.append(2.0 * t1 - 1.0 * t2 + 0.3)
    e = [math.exp(s) for s in scores]
    want = [v / sum(e) for v in e]
    assert torch.allclose(a[0, :3], torch.tensor(want), atol=1e-6) and float(a[0, 3]) == 0.0
    assert abs(float(a.sum()) - 1.0) < 1e-6
    want_z = [sum(w * r[d] for w, r in zip(want, rows)) for d in range(2)]
    assert torch.allclose(z[0], torch.tensor(want_z), atol=1e-6)


def test_gated_attention_multiplies_by_the_sigmoid_gate():
    pool = AttentionPool(dim=2, attn_dim=1, gated=True)
    with torch.no_grad():
        pool.V.weight.copy_(torch.tensor([[1.0, 2.0]]))
        pool.V.bias.zero_()
        pool.U.weight.copy_(torch.tensor([[-1.0, 1.0]]))
        pool.U.bias.zero_()
        pool.w.weight.fill_(3.0)
        pool.w.bias.zero_()
    rows = [[0.5, -0.5], [1.0, 1.0]]
    h = torch.tensor([rows])
    _, a = pool(h, torch.ones(1, 2, dtype=bool))
    s = [3.0 * math.tanh(r[0] + 2 * r[1]) / (1 + math.exp(-(-r[0] + r[1]))) for r in rows]
    want = [math.exp(v) / sum(math.exp(u) for u in s) for v in s]
    assert torch.allclose(a[0], torch.tensor(want), atol=1e-6)


def test_max_and_mean_pooling_equal_explicit_loops():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(3, 5, 4, generator=g)
    sizes = [5, 2, 4]
    mask = torch.arange(5)[None, :] < torch.tensor(sizes)[:, None]
    zmax, share = MaxPool()(h, mask)
    zmean, rel = MeanPool()(h, mask)
    for b, n in enumerate(sizes):
        for d in range(4):
            assert float(zmax[b, d]) == max(float(h[b, k, d]) for k in range(n))
            assert abs(float(zmean[b, d]) - sum(float(h[b, k, d]) for k in range(n)) / n) < 1e-6
        assert abs(float(share[b].sum()) - 1.0) < 1e-6 and torch.allclose(rel[b, :n], torch.full((n,), 1 / n))


def test_bag_labels_are_contains_the_target():
    d = load_digits_split(8)
    g = torch.Generator().manual_seed(5)
    bags = make_bags(d.x_train, d.y_train, 9, 300, 12, 0.3, 0.4, 2, g)
    valid = bags.mask
    cls = bags.digits[bags.index.clamp(min=0)]
    contains = ((cls == 9) & valid).any(1)
    assert torch.equal(bags.labels > 0, contains)
    assert torch.equal(bags.keys, (cls == 9) & valid)
    assert torch.equal(valid.sum(1), bags.sizes)
    assert int(bags.sizes.min()) >= round(12 * 0.7) and int(bags.sizes.max()) <= round(12 * 1.3)
    assert int((bags.labels > 0).sum()) == 120
    assert torch.equal(bags.keys[bags.labels > 0].sum(1), torch.full((120,), 2))
    assert 0.1 < localization_chance(bags) < 0.25
    x, mask, keys, y = bags.batch(torch.tensor([0, 1]))
    assert x.shape[:2] == mask.shape and torch.equal(mask, valid[[0, 1], :x.shape[1]])
    # test bags draw from the test digits only; clutter patches hold their digit
    train, test = train_test_bags("clutter", 3, 20, 20, 6, 0.0, 0.5, 1, torch.Generator().manual_seed(0))
    assert train.images.shape[1:] == (1, 16, 16) and len(train.images) == len(d.x_train)
    assert len(test.images) == len(d.x_test) and torch.equal(test.digits, d.y_test)
    xtr, *_ = instance_pool("digits", g)
    assert xtr is d.x_train


@pytest.mark.parametrize("pooling", POOLINGS)
def test_evaluation_from_shared_instance_embeddings_equals_the_model_on_each_bag(pooling):
    # The evaluation encodes each test image once and gathers bags from those rows: the same logits and weights as
    # the whole model run on every padded bag, for every pooling.
    d = load_digits_split(8)
    bags = make_bags(d.x_test, d.y_test, 9, 40, 12, 0.5, 0.5, 2, torch.Generator().manual_seed(4))
    with seeded(1):
        net = MILNet(pooling, 8, width=4, dim=16, attn_dim=8)
    ev = evaluate(net, bags, torch.device("cpu"))
    with torch.no_grad():
        for b in range(len(bags)):
            x, mask, _, _ = bags.batch(torch.tensor([b]))
            logit, rel = net(x, mask)
            assert abs(float(logit) - ev["_logits"][b]) < 1e-5
            assert np.allclose(rel[0].numpy(), ev["_rel"][b, :mask.shape[1]], atol=1e-6)
    h = instance_features(net, bags.images, torch.device("cpu"))
    assert h.shape == (len(bags.images), 16)
    assert bag_metrics(net, h, bags, torch.device("cpu"))["acc"] == ev["acc"]
    # the permutation check's bags: at most 16 and 160 instances, at least one
    big = make_bags(d.x_test, d.y_test, 9, 20, 50, 0.0, 0.5, 2, torch.Generator().manual_seed(0))
    assert len(perm_bags(big)) == 3
    assert len(perm_bags(bags)) == int((torch.cumsum(bags.sizes[:16], 0) <= 160).sum())
    huge = make_bags(d.x_test, d.y_test, 9, 5, 200, 0.0, 0.5, 2, torch.Generator().manual_seed(0))
    assert len(perm_bags(huge)) == 1


def test_roc_auc_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.normal(size=200) + y, 1)  # ties included
    assert abs(roc_auc(s, y) - roc_auc_score(y, s)) < 1e-12
    assert roc_auc(s, np.ones(200)) == 0.5


def test_short_run_attention_loss_falls_and_snapshots_carry_the_views():
    cfg = Config(poolings="attention", bag_size=5, key_instances=2, train_bags=200, test_bags=50,
                 steps=60, eval_every=30, batch_bags=8, width=16, dim=64, lr=3e-3, seed=1)
    snaps = list(snapshots(run(cfg, torch.device("cpu"))))
    first, mid, last = snaps
    # measured (seed 1): train loss 0.689 -> 0.472 over steps 1-30 -> 31-60; test loss 0.694 -> 0.218
    assert last.metrics["attention_loss"] < 0.85 * mid.metrics["attention_loss"]
    assert last.metrics["attention_test_loss"] < 0.7 * first.metrics["attention_test_loss"]
    assert last.metrics["attention_perm_gap"] < 1e-5
    rel = last.arrays["attention_show_rel"]
    assert rel.shape == last.arrays["show_keys"].shape and np.allclose(rel.sum(1), 1, atol=1e-5)
    assert last.arrays["attention_features"].shape == (360, 64)
    # the run is its own: the same config gives the same numbers, whatever the global RNG did meanwhile
    torch.manual_seed(123)
    again = list(islice(snapshots(run(replace(cfg, steps=30), torch.device("cpu"))), 2))[1]
    assert again.metrics["attention_loss"] == mid.metrics["attention_loss"]


def test_figures_by_structure():
    from dlviz.figures.mil import bag_figure, mil_curves

    rel = {"attention": np.full(6, 1 / 6), "max": np.eye(6)[2]}
    fig = bag_figure(np.zeros((6, 8, 8)), np.array([0, 0, 1, 0, 0, 1], bool), rel, {"attention": "attention", "max": "max"})
    bars = [t for t in fig.data if t.type == "bar"]
    assert [t.name for t in bars] == ["attention", "max"] and all(len(t.y) == 6 for t in bars)
    assert sum(s.type == "rect" for s in fig.layout.shapes) == 2  # one frame per key instance
    hist = [{"step": s, "mean_loss": 0.7, "mean_acc": 0.5, "mean_auc": 0.5, "attention_loss": 0.6,
             "attention_acc": 0.6, "attention_auc": 0.7, "attention_loc": 0.4} for s in (0, 10)]
    curves = mil_curves(hist, ["mean", "attention"], {"mean": "mean", "attention": "attention"}, 0.1)
    assert len(curves.data) == 3 * 2 + 1 + 1  # loss/acc/AUC per pooling, localization for attention, chance
    assert [a.text for a in curves.layout.annotations][:2] == ["train bag loss (BCE)", "test bag accuracy"]


def test_first_snapshot_at_the_largest_settings_costs_well_under_a_second_of_cpu():
    # Clutter patches, bags of 25-75, 300 test bags, the widest encoder, all four poolings: the step-0 evaluation
    # encodes the 360 test images once per pooling (it took ~11 s of CPU when it encoded every bag's instances).
    import time

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # one-time imports (torch._dynamo), as in a warm app
    load_digits_split(8)
    cfg = Config(instances="clutter", bag_size=50, size_spread=0.5, test_bags=300, poolings="all", batch_bags=32,
                 width=32, dim=128, attn_dim=64)
    gen = run(cfg, torch.device("cpu"))
    t = time.process_time()  # CPU of this process (all threads): independent of what else the machine runs
    first = next(gen)
    cpu = time.process_time() - t
    gen.close()
    assert not first.heartbeat and first.step == 0 and first.metrics["perm_bags"] >= 1
    assert first.arrays["gated_features"].shape == (360, 128)
    assert cpu < 2.5, f"step-0 snapshot took {cpu:.2f} s of CPU"  # measured: 0.5-0.6 s


def test_texts_are_english_and_shown_in_chinese():
    """Pooling names, a pooling's divergence message and the figures: English outside the UI (CLI, logs), Chinese
    through tr() / _() in a zh session; the pooling-set values stay as they are (links, the CLI)."""
    from dlviz.demos.base import DivergedError, check_finite
    from dlviz.demos.mil import LOSS_NAMES, POOL_LABELS, POOLING_SETS
    from dlviz.figures.mil import mil_curves
    from dlviz.i18n import _, language, tr

    assert "attention-vs-gated" in POOLING_SETS and POOL_LABELS["gated"] == "gated attention"
    with pytest.raises(DivergedError) as err:
        check_finite(float("nan"), 7, LOSS_NAMES["gated"])
    msg = err.value.args[0]
    assert str(msg).startswith("The gated attention pooling's loss became NaN at step 7")
    hist = [{"step": 0, "attention_loss": 0.7, "attention_acc": 0.5, "attention_auc": 0.5, "attention_loc": 0.1}]
    with language("zh"):
        assert "门控注意力汇聚的损失" in tr(msg) and "7" in tr(msg)
        assert [_(k) for k in POOLING_SETS][3] == "注意力 vs 门控注意力"
        curves = mil_curves(hist, ["attention"], {"attention": _(POOL_LABELS["attention"])}, 0.1)
        assert [a.text for a in curves.layout.annotations][:2] == ["训练包损失（BCE）", "测试包准确率"]
        assert curves.data[0].name == "注意力"
    assert tr(msg) == str(msg)
