"""Sequence-to-sequence toy tasks over digits: reverse, sort or copy a sequence (generated, endless, offline).

Each output token comes from one input position (``source``), so a model that solved the task by attention
should look there: the anti-diagonal for reverse, the diagonal for copy, a permutation for sort.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

TASKS = ("reverse", "sort", "copy")


@dataclass(frozen=True)
class SeqBatch:
    src: torch.Tensor  # (B, L) input symbols in 0..vocab-1
    tgt: torch.Tensor  # (B, L) output symbols
    source: torch.Tensor  # (B, L) position in src that tgt[:, i] was taken from

    def decoder_input(self, bos: int) -> torch.Tensor:
        """Teacher forcing: BOS followed by the target shifted right by one, (B, L)."""
        return torch.cat([torch.full_like(self.tgt[:, :1], bos), self.tgt[:, :-1]], dim=1)

    def to(self, device) -> "SeqBatch":
        return SeqBatch(self.src.to(device), self.tgt.to(device), self.source.to(device))


def make_batch(task: str, n: int, length: int, vocab: int, generator: torch.Generator) -> SeqBatch:
    """``n`` random sequences of ``length`` symbols from ``vocab`` and their targets for ``task``."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    src = torch.randint(0, vocab, (n, length), generator=generator)
    positions = torch.arange(length).expand(n, length)
    if task == "reverse":
        source = positions.flip(1)
    elif task == "copy":
        source = positions.clone()
    else:  # stable sort: equal symbols keep their input order, so the source position is well defined
        source = torch.sort(src, dim=1, stable=True).indices
    return SeqBatch(src, torch.gather(src, 1, source), source)
