"""Sequence data, all generated: the d2l noisy sine, the adding problem and a recall task with a lag L.

Every generator takes an explicit ``torch.Generator`` so a seed reproduces the data exactly; tensors are float32
on the CPU, batch first: inputs (B, T, D).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SINE_T, SINE_TAU, SINE_TRAIN, SINE_NOISE = 1000, 4, 600, 0.2  # d2l section 9.1: T = 1,000, window 4, 600 to train
RECALL_SYMBOLS = 8  # alphabet of the recall task: chance accuracy is 1/8


# -- the d2l noisy sine ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sine:
    """x_t = sin(0.01 t) + N(0, noise^2) for t = 1..T, cut into windows of ``tau`` values that predict the next.

    ``series`` (T,); ``features`` (T - tau, tau, 1) windows; ``labels`` (T - tau, 1): the value after each
    window; the first ``n_train`` windows train, the rest test.
    """

    time: torch.Tensor
    series: torch.Tensor
    features: torch.Tensor
    labels: torch.Tensor
    tau: int
    n_train: int


def noisy_sine(gen: torch.Generator, T: int = SINE_T, tau: int = SINE_TAU, noise: float = SINE_NOISE,
               n_train: int = SINE_TRAIN) -> Sine:
    time = torch.arange(1, T + 1, dtype=torch.float32)
    x = torch.sin(0.01 * time) + noise * torch.randn(T, generator=gen)
    features = torch.stack([x[i:T - tau + i] for i in range(tau)], 1).unsqueeze(-1)  # (T - tau, tau, 1)
    return Sine(time, x, features, x[tau:].unsqueeze(-1), tau, n_train)


def k_step_ahead(predict, series: torch.Tensor, tau: int, max_k: int) -> torch.Tensor:
    """d2l's multistep table: column ``tau + k - 1`` holds the k-step-ahead predictions fed with their own outputs.

    ``predict`` maps (N, tau, 1) windows to (N, 1). Returns (N, tau + max_k) with N = T - tau - max_k + 1: row i
    starts from the observed x[i : i + tau]; column tau + k - 1 predicts x[i + tau + k - 1] from k - 1 of its
    own predictions.
    """
    T = len(series)
    n = T - tau - max_k + 1
    cols = [series[i:i + n] for i in range(tau)]
    for _ in range(max_k):
        window = torch.stack(cols[-tau:], 1).unsqueeze(-1)
        cols.append(predict(window).reshape(n))
    return torch.stack(cols, 1)


# -- long-range memory tasks ------------------------------------------------------------------------------
def adding_problem(n: int, L: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Hochreiter and Schmidhuber's adding problem: inputs (n, L, 2), targets (n, 1).

    Channel 0 holds L numbers uniform in [0, 1]; channel 1 marks two of them, one in each half of the sequence.
    The target is the sum of the two marked numbers. Predicting the mean (1) scores MSE 1/6 = 0.167.
    """
    values = torch.rand(n, L, generator=gen)
    if L < 2:
        raise ValueError(f"the adding problem needs L >= 2 (got {L})")
    half = L // 2
    first = torch.randint(0, half, (n,), generator=gen)
    second = torch.randint(half, L, (n,), generator=gen)
    marks = torch.zeros(n, L)
    rows = torch.arange(n)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    target = (values * marks).sum(1, keepdim=True)
    return torch.stack([values, marks], -1), target


ADDING_BASELINE_MSE = 1.0 / 6.0  # variance of the sum of two independent U(0, 1): what "predict 1" scores


def recall_task(n: int, L: int, gen: torch.Generator, n_symbols: int = RECALL_SYMBOLS
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Remember the first symbol through L distractors: inputs (n, L + 2, n_symbols + 1), targets (n,) long.

    Step 0 shows a symbol (one-hot among ``n_symbols``); steps 1..L show random symbols of the same alphabet
    (the distractors); the last step sets the extra "query" channel, where the network must name the first
    symbol. Chance accuracy is 1 / n_symbols.
    """
    symbols = torch.randint(0, n_symbols, (n, L + 1), generator=gen)
    x = torch.zeros(n, L + 2, n_symbols + 1)
    x[:, :L + 1].scatter_(2, symbols.unsqueeze(-1), 1.0)
    x[:, L + 1, n_symbols] = 1.0
    return x, symbols[:, 0].clone()
