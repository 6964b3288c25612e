"""The CNN demo: LeNet's shapes, training moves the metrics the right way, divergence stops with a message."""

from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
import sys

import numpy as np
import torch

from conftest import ROOT
from dlviz.config import check_value
from dlviz.demos import all_demos, get_demo
from dlviz.demos.cnn import PRESETS, probe
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
    snaps = list(itertools.islice(CNN.run(TINY, torch.device("cpu")), 5))  # steps 0, 5, ..., 20
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
        return [s.metrics["train_loss"] for s in itertools.islice(run, 3)]

    assert losses(1) == losses(1)
    assert losses(1) != losses(2)


def test_probe_reads_a_snapshot_without_changing_it():
    snap = list(itertools.islice(CNN.run(TINY, torch.device("cpu")), 2))[-1]
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
