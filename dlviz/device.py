"""Which device trains: CUDA, then Apple's MPS, then CPU; and the random generators of a run."""

from __future__ import annotations

import contextlib
import os
import random
import threading

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


_GLOBAL_RNG = threading.RLock()  # held while code draws from the process-wide generators (model initialization)


def run_generator(seed: int) -> torch.Generator:
    """A run's own generator: data order, noise, crops. Runs never seed or draw from torch's global one while
    they train, so two sessions training at once cannot change each other's numbers."""
    return torch.Generator().manual_seed(int(seed))


@contextlib.contextmanager
def seeded(seed: int):
    """Build models here: ``nn.Module`` initializers draw from torch's global generator, which every thread shares.

    Inside the block that generator (and python's and numpy's) is seeded with ``seed`` and no other thread can
    draw from it (a process-wide lock); afterwards the global state is what it was. So a model built from a
    config and a seed has the same weights alone, from the CLI, or beside twenty other sessions.
    """
    with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        py, npy = random.getstate(), np.random.get_state()
        random.seed(seed)
        np.random.seed(int(seed) % 2**32)
        torch.manual_seed(int(seed))
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(npy)


def server_threads() -> int:
    """Torch threads for every training and computation thread of the app: ``$DLVIZ_THREADS``, else half the
    cores, at most 4. A server setting, never a session's: the count is process-wide in effect and changes
    floating-point rounding, so one fixed count keeps every run reproducible (alone, from the CLI, under load).

    Small models gain little from more threads, and the browser and the streamlit server need a core too:
    measured on this project's 2-core machine, oversubscribed torch threads made live training many times slower.
    """
    if os.environ.get("DLVIZ_THREADS", "").isdigit() and int(os.environ["DLVIZ_THREADS"]) > 0:
        return int(os.environ["DLVIZ_THREADS"])
    return max(1, min(4, (os.cpu_count() or 2) // 2))
