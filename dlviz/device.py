"""Which device trains: CUDA, then Apple's MPS, then CPU; and seeding every generator a demo uses."""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch


def available_devices() -> list[str]:
    """Device names usable here, best first (always ends with "cpu")."""
    out = []
    if torch.cuda.is_available():
        out.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out + ["cpu"]


def pick_device(requested: str | None = None, force_cpu: bool = False) -> torch.device:
    """The device to train on: ``requested`` if it is available, else the best one; CPU when forced."""
    if force_cpu:
        return torch.device("cpu")
    devices = available_devices()
    if requested and requested != "auto":
        if requested.split(":")[0] not in devices:
            raise ValueError(f"device {requested!r} is not available here; available: {', '.join(devices)}")
        return torch.device(requested)
    return torch.device(devices[0])


def describe_device(device: torch.device) -> str:
    """A one-line, human description: "CUDA: NVIDIA H100 80GB", "CPU (2 threads)"."""
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "MPS: Apple GPU"
    return f"CPU ({torch.get_num_threads()} threads)"


def seed_all(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a fresh torch.Generator seeded the same (for data order)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def default_threads() -> int:
    """CPU threads for training in the app: half the cores, at most 4.

    Small models gain little from more threads, and the browser and the streamlit server need a core too:
    measured on this project's 2-core machine, oversubscribed torch threads made live training many times slower.
    """
    if os.environ.get("DLVIZ_THREADS", "").isdigit():  # the benchmark compares settings this way
        return max(1, int(os.environ["DLVIZ_THREADS"]))
    return max(1, min(4, (os.cpu_count() or 2) // 2))


@contextlib.contextmanager
def all_cpu_threads(cap: int = 8):
    """Torch uses every core (up to ``cap``) inside the block, then goes back to the app's setting.

    For one-off computations behind a spinner (a landscape slice, a batch of Hessian products): nothing trains
    meanwhile, so the cores the live setting leaves to the browser are free. Measured in the app on 2 cores: the
    41x41 landscape slice took 3.2 s with the app's 1 thread, 1.6-2.2 s inside this block.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(max(before, min(cap, os.cpu_count() or 1)))
    try:
        yield
    finally:
        torch.set_num_threads(before)

