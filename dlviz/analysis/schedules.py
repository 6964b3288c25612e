"""Learning-rate schedules as PyTorch's own ``torch.optim.lr_scheduler`` classes, and their curves for plotting.

The race attaches one scheduler per optimizer, so the learning rate a trajectory used is the one torch set.
"""

from __future__ import annotations

import numpy as np
import torch

SCHEDULES = ("constant", "step", "cosine", "warmup-linear")
SCHEDULE_LATEX = {
    "constant": r"\eta_t = \eta",
    "step": r"\eta_t = \eta \cdot 0.5^{\lfloor t / (T/4) \rfloor}",
    "cosine": r"\eta_t = \tfrac{\eta}{2}\left(1 + \cos \tfrac{\pi t}{T}\right)",
    "warmup-linear": r"\eta_t = \eta \cdot \begin{cases} (t+1)/W & t < W = T/10 \\ (T - t)/(T - W) & t \ge W \end{cases}",
}


def warmup_steps(total_steps: int) -> int:
    """Warm-up length of ``warmup-linear``: a tenth of the run, at least one step."""
    return max(1, total_steps // 10)


def make_scheduler(opt: torch.optim.Optimizer, kind: str, total_steps: int):
    """A torch scheduler implementing ``kind`` over ``total_steps`` optimizer steps (None for constant)."""
    total_steps = max(1, int(total_steps))
    if kind == "constant":
        return None
    if kind == "step":  # halve every quarter of the run
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, total_steps // 4), gamma=0.5)
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps, eta_min=0.0)
    if kind == "warmup-linear":  # linear warm-up to the base rate, then linear decay to 0 (BERT's schedule)
        w = warmup_steps(total_steps)

        def factor(t: int) -> float:
            return (t + 1) / w if t < w else max(0.0, (total_steps - t) / max(1, total_steps - w))

        return torch.optim.lr_scheduler.LambdaLR(opt, factor)
    raise ValueError(f"unknown schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")


def lr_multipliers(kind: str, total_steps: int) -> np.ndarray:
    """(total_steps,) factor the schedule applies to the base rate at steps 0 .. total_steps-1 (from torch)."""
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=1.0)
    sched = make_scheduler(opt, kind, total_steps)
    out = np.empty(total_steps)
    for t in range(total_steps):
        out[t] = opt.param_groups[0]["lr"]
        opt.step()  # no gradient: a no-op, but keeps torch's "step before scheduler" order
        if sched is not None:
            sched.step()
    return out
