"""The CNN demo: LeNet's shapes, training moves the metrics the right way, divergence stops with a message."""

from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT
from dlviz.config import check_value
from dlviz.demos import all_demos, get_demo
from dlviz.demos.base import snapshots
from dlviz.demos.cnn import PRESETS, layer_table, probe
from dlviz.models.lenet import LeNet
from dlviz.runner import Runner

CNN = get_demo("cnn")
TINY = dataclasses.replace(CNN.default_config(), input_size=16, epochs=1, eval_every=5)


def test_lenet_shapes_match_d2l_at_28_pixels():
    rows = LeNet(28).layer_shapes(28)
    shapes = {name: shape for name, shape, _ in rows}
    assert shapes["conv1 + act"] == (6, 28, 28) and shapes["pool1"] == (6, 14, 14)
    assert shapes["conv2 + act"] == (16, 10, 10) and shapes["flatten"] == (400,)
    assert shapes["fc3 (logits)"] == (10,)
    assert sum(n for *_, n in rows) == sum(p.numel() for p in LeNet(28).parameters())
    for size in (8, 16):  # small inputs still give a valid network
        assert LeNet(size)(torch.zeros(2, 1, size, size)).shape == (2, 10)


def test_training_lowers_loss_and_raises_accuracy():
    snaps = list(itertools.islice(snapshots(CNN.run(TINY, torch.device("cpu"))), 5))  # steps 0, 5, ..., 20
    first, last = snaps[0].metrics, snaps[-1].metrics
    assert [s.step for s in snaps] == [0, 5, 10, 15, 20]
    assert last["test_loss"] < first["test_loss"] - 0.2
    assert last["test_acc"] > first["test_acc"] + 0.2
    arrays = snaps[-1].arrays
    assert arrays["filters"].shape == (6, 5, 5) and arrays["features"].shape == (360, 84)
    assert arrays["confusion"].sum() == 360 and np.trace(arrays["confusion"]) == round(last["test_acc"] * 360)


def test_same_seed_same_run_and_other_seed_differs():
    def losses(seed):
        run = CNN.run(dataclasses.replace(TINY, seed=seed), torch.device("cpu"))
        return [s.metrics["train_loss"] for s in itertools.islice(snapshots(run), 3)]

    assert losses(1) == losses(1)
    assert losses(1) != losses(2)


def test_probe_reads_a_snapshot_without_changing_it():
    snap = list(itertools.islice(snapshots(CNN.run(TINY, torch.device("cpu"))), 2))[-1]
    before = {k: v.clone() for k, v in snap.arrays["state"].items()}
    out = probe(TINY, snap.arrays["state"], torch.rand(3, 1, 16, 16))
    assert out["conv1"].shape == (3, 6, 16, 16) and out["probs"].shape == (3, 10)
    assert np.allclose(out["probs"].sum(1), 1, atol=1e-5)
    assert all(torch.equal(before[k], snap.arrays["state"][k]) for k in before)


def test_learning_rate_too_high_stops_with_a_message():
    r = Runner(CNN, dataclasses.replace(PRESETS["lr-too-high"].config, input_size=16))
    r.run_to_end(max_seconds=60)
    assert r.status == "failed"
    assert "learning rate" in r.message and "too high" in r.message and "Reset" in r.message
    assert len(r.history) >= 1  # the history before the explosion is kept


def test_every_demo_honours_the_contract():
    for name, demo in all_demos().items():
        assert demo.presets, name
        fields = {f.name for f in dataclasses.fields(demo.config_cls)}
        assert "seed" in fields, name
        for slug, preset in demo.presets.items():
            assert isinstance(preset.config, demo.config_cls), (name, slug)
            for f in dataclasses.fields(preset.config):  # every preset value is one a widget can show
                check_value(f, getattr(preset.config, f.name))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlviz", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_cli_list_json_names_every_demo_with_presets_and_config():
    out = _cli("list", "--json")
    assert out.returncode == 0, out.stderr
    demos = json.loads(out.stdout)["demos"]
    assert set(demos["cnn"]["presets"]) == {"lenet-1998", "modern", "lr-too-high"}
    assert demos["cnn"]["config"]["seed"]["default"] == 0
    assert demos["cnn"]["config"]["lr"]["default"] == 0.01


def test_cli_run_prints_metrics_as_last_json_line():
    out = _cli("run", "cnn", "--preset", "modern", "--set", "epochs=1", "--set", "input_size=16",
               "--device", "cpu", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["steps"] == 23 and result["test_acc"] > 0.3 and result["train_seconds"] > 0
    assert result["config"]["input_size"] == 16 and result["preset"] == "modern"


def test_cli_rejects_bad_settings_clearly():
    out = _cli("run", "cnn", "--set", "epochs=0")
    assert out.returncode == 2 and "epochs" in out.stderr and "Traceback" not in out.stderr
    out = _cli("run", "nosuchdemo")
    assert out.returncode == 2 and "unknown demo" in out.stderr


def test_sigmoid_lenet_starts_unsaturated_and_layer_stats_match_the_forward_pass():
    """At PyTorch's default init the sigmoid pre-activations have a std near 0.3 (linear range, slope near 1/4)."""
    from dlviz.data.digits import load_image_dataset

    torch.manual_seed(0)
    x = load_image_dataset("digits", 16).x_train[:256]
    model = LeNet(16, "sigmoid", "avg")
    stats = model.layer_stats(x)
    assert list(stats) == ["conv1", "conv2", "fc1", "fc2"]
    for row in stats.values():
        assert 0.15 < row["pre_std"] < 0.45 and row["saturated"] == 0.0
        assert 0.23 < row["slope"] <= 0.25 and 0.4 < row["act_mean"] < 0.6  # all-positive outputs, mean near 1/2
    with torch.no_grad():
        z1 = model.conv1(x)
        h = model.pool(model._convs(x)[2]).flatten(1)
        z3 = model.fc1(h)
        conv1_mean = float(model.feature_maps(x)["conv1"].mean())
    assert stats["conv1"]["pre_std"] == pytest.approx(float(z1.std()), rel=1e-5)
    assert stats["conv1"]["act_mean"] == pytest.approx(conv1_mean, rel=1e-5)
    assert stats["fc1"]["slope"] == pytest.approx(float((torch.sigmoid(z3) * (1 - torch.sigmoid(z3))).mean()), rel=1e-5)
    relu = LeNet(16, "relu", "max").layer_stats(x)
    with torch.no_grad():
        share = float((LeNet(16, "relu").conv1(x) > 0).float().mean())
    assert 0 < relu["conv1"]["slope"] < 1 and abs(relu["conv1"]["slope"] - share) < 0.3  # ReLU: share active


def test_1998_preset_layer_metrics_show_small_input_gradients_then_a_saturated_fc2():
    """What the page says about the 1998 preset: conv1's gradient starts far below fc3's, and ten SGD steps at
    lr 2 (all-positive sigmoid inputs) push fc2's pre-activations below -3: that layer saturates."""
    cfg = dataclasses.replace(PRESETS["lenet-1998"].config, epochs=1, eval_every=10)
    snaps = [s for s in itertools.islice(CNN.run(cfg, torch.device("cpu")), 50) if s.metrics][:2]
    start, ten = snaps[0].metrics, snaps[1].metrics
    assert snaps[1].step == 10
    assert start["grad_conv1"] < 1e-2 * start["grad_fc3"]
    assert start["saturated_fc2"] == 0.0 and start["slope_fc2"] > 0.23
    assert ten["pre_mean_fc2"] < -3 and ten["saturated_fc2"] > 0.9 and ten["slope_fc2"] < 0.05
    table = layer_table(start, ten)
    assert [r["layer"] for r in table] == ["conv1", "conv2", "fc1", "fc2", "fc3"] and table[-1]["z now"] == "-"


def test_update_rules_cover_every_optimizer():
    from dlviz.demos.cnn import OPTIMIZERS, UPDATE_RULES

    assert set(UPDATE_RULES) == set(OPTIMIZERS)
    assert r"\sqrt" in UPDATE_RULES["adam"] and "v" in UPDATE_RULES["momentum"]


def test_layer_stats_gradients_equal_autograd_and_leave_grad_alone():
    torch.manual_seed(1)
    model, x, y = LeNet(16, "sigmoid", "avg"), torch.rand(32, 1, 16, 16), torch.randint(0, 10, (32,))
    stats = model.layer_stats(x, y)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    for name in ("conv1", "conv2", "fc1", "fc2", "fc3"):
        assert stats[name]["grad"] == pytest.approx(float(getattr(model, name).weight.grad.norm()), rel=1e-4)
    model.zero_grad(set_to_none=True)
    model.layer_stats(x, y)
    assert all(p.grad is None for p in model.parameters())
