"""The foundation: config parsing, the runner's controls and failure handling, data loading, device choice."""

from __future__ import annotations

import dataclasses
import gzip
import os
import struct
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from dlviz.config import ConfigError, describe, param, to_strings, with_overrides
from dlviz.data.digits import DatasetMissing, load_digits_split, load_image_dataset
from dlviz.demos.base import Demo, DivergedError, Preset, Snapshot
from dlviz.device import available_devices, pick_device, run_generator
from dlviz.runner import Runner


@dataclass(frozen=True)
class ToyConfig:
    steps: int = param(10, "how many snapshots", lo=1, hi=1000)
    lr: float = param(0.1, "learning rate", choices=(0.01, 0.1, 1.0))
    mode: str = param("ok", "what the toy does", choices=("ok", "nan", "raise", "diverge"))
    fast: bool = param(True, "a flag")
    seed: int = param(0, "seed", lo=0, hi=2**31 - 1, widget=False)


def toy_run(config: ToyConfig, device):
    """Gradient descent on f(w) = w^2 from w = 1, one snapshot per step."""
    w = torch.tensor(1.0)
    for step in range(config.steps + 1):
        loss = float(w**2)
        if config.mode == "nan" and step == 3:
            loss = float("nan")
        if config.mode == "raise" and step == 3:
            raise ValueError("boom")
        if config.mode == "diverge" and step == 3:
            raise DivergedError("custom message")
        yield Snapshot(step, {"loss": loss}, {"w": np.array([float(w)])})
        w = w - config.lr * 2 * w


TOY = Demo("toy", "Toy", "w^2", ToyConfig, {"default": Preset("Default", ToyConfig())}, toy_run)


def test_overrides_parse_types_and_reject_bad_values():
    c = with_overrides(ToyConfig(), {"steps": "5", "lr": "1.0", "fast": "false", "mode": "nan"})
    assert (c.steps, c.lr, c.fast, c.mode) == (5, 1.0, False, "nan")
    for bad, word in [({"steps": "0"}, "steps"), ({"steps": "x"}, "int"), ({"mode": "what"}, "choose"),
                      ({"nope": "1"}, "unknown"), ({"fast": "maybe"}, "bool"), ({"lr": "nan"}, "float")]:
        with pytest.raises(ConfigError, match=word):
            with_overrides(ToyConfig(), bad)


def test_config_round_trips_through_strings():
    c = ToyConfig(steps=7, lr=0.01, mode="raise", fast=False, seed=3)
    assert with_overrides(ToyConfig(), to_strings(c)) == c
    assert to_strings(c, base=dataclasses.replace(c, steps=1)) == {"steps": "7"}
    d = describe(ToyConfig)
    assert d["steps"]["range"] == [1, 1000] and d["lr"]["choices"] == [0.01, 0.1, 1.0]


def test_runner_play_pause_step_reset():
    r = Runner(TOY, ToyConfig(steps=10))
    assert r.status == "idle"
    r.step()
    assert r.status == "paused" and r.latest.step == 0
    r.step()
    assert r.latest.step == 1
    r.play()
    assert r.status == "running"
    r.advance(10.0)
    assert r.status == "done" and r.latest.step == 10
    assert [h["step"] for h in r.history] == list(range(11))
    assert r.history[-1]["loss"] < r.history[0]["loss"]
    r.reset()
    assert r.status == "idle" and r.history == [] and r.latest is None


def test_runner_stops_on_nan_with_message_and_keeps_history():
    r = Runner(TOY, ToyConfig(mode="nan"))
    r.run_to_end()
    assert r.status == "failed"
    assert "NaN" in r.message or "nan" in r.message
    assert "learning rate (0.1)" in r.message and "too high" in r.message
    assert len(r.history) == 3  # steps 0-2 were kept


def test_runner_turns_exceptions_into_messages():
    r = Runner(TOY, ToyConfig(mode="raise"))
    r.run_to_end()
    assert r.status == "failed" and "ValueError: boom" in r.message and len(r.history) == 3
    r = Runner(TOY, ToyConfig(mode="diverge"))
    r.run_to_end()
    assert r.status == "failed" and r.message == "custom message"


def test_runner_history_is_bounded_but_keeps_the_ends():
    r = Runner(TOY, ToyConfig(steps=1000), max_history=100)
    r.run_to_end()
    assert len(r.history) <= 100
    assert r.history[0]["step"] == 0 and r.history[-1]["step"] == 1000
    steps = [h["step"] for h in r.history]
    assert steps == sorted(steps)


def test_runner_summary_has_steps_and_seconds():
    r = Runner(TOY, ToyConfig(steps=4))
    r.run_to_end()
    s = r.summary()
    assert s["steps"] == 4 and s["status"] == "done" and s["train_seconds"] >= 0 and "loss" in s


def test_digits_split_is_fixed_and_resizes():
    a, b = load_digits_split(8), load_digits_split(16)
    assert a.x_train.shape == (1437, 1, 8, 8) and a.x_test.shape == (360, 1, 8, 8)
    assert b.x_train.shape == (1437, 1, 16, 16)
    assert torch.equal(a.y_test, b.y_test)  # same split at every size
    assert 0.0 <= float(a.x_train.min()) and float(a.x_train.max()) <= 1.0
    assert sorted(torch.bincount(a.y_test).tolist())[0] >= 34  # stratified


def _write_idx(path, array: np.ndarray, gz: bool = False) -> None:
    """Write the MNIST idx format: big-endian magic (0x08 = uint8, ndim), sizes, then bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_torchvision_sets_load_from_local_idx_files(tmp_path, name, folder):
    rng = np.random.default_rng(0)
    raw = tmp_path / folder / "raw"
    for prefix, n in (("train", 40), ("t10k", 20)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    d = load_image_dataset(name, size=16, root=str(tmp_path), n_train=30, n_test=10)
    assert d.x_train.shape == (30, 1, 16, 16) and d.x_test.shape == (10, 1, 16, 16)
    assert d.y_train.max() <= 9 and len(d.classes) == 10
    assert float(d.x_train.max()) <= 1.0


def test_missing_dataset_is_a_clear_message(tmp_path):
    with pytest.raises(DatasetMissing, match="digits"):
        load_image_dataset("mnist", root=str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="unknown dataset"):
        load_image_dataset("imagenet")


def test_server_threads_come_from_the_environment(monkeypatch):
    from dlviz.device import server_threads

    monkeypatch.setenv("DLVIZ_THREADS", "3")
    assert server_threads() == 3
    monkeypatch.setenv("DLVIZ_THREADS", "0")  # nonsense falls back to the default
    assert 1 <= server_threads() <= 4

def test_device_choice_and_seeding():
    assert available_devices()[-1] == "cpu"
    assert pick_device(force_cpu=True).type == "cpu"
    assert pick_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="not available"):
        pick_device("tpu")
    a = torch.rand(3, generator=run_generator(5))
    assert torch.equal(a, torch.rand(3, generator=run_generator(5)))
    assert not torch.equal(a, torch.rand(3, generator=run_generator(6)))
