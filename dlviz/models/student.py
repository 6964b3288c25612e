"""Teacher and student: the distillation loss, softened targets and the EMA (momentum) update of a model's weights.

Shapes: logits (B, C); labels (B,) int64. The teacher is the CNN page's LeNet (``dlviz.models.lenet``); the student
is a small MLP without BatchNorm (``student``), so an EMA of its parameters is the whole of its state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .mlp import MLP


def student(in_dim: int, hidden: int, n_classes: int = 10) -> MLP:
    """The student: (B, ...) flattened -> Linear(in_dim, hidden) -> ReLU -> Linear(hidden, n_classes); no BatchNorm."""
    return MLP(in_dim, (hidden,), n_classes)


def soft_targets(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(z / T) over the last dimension: T = 1 is the ordinary softmax, a larger T spreads the mass."""
    return F.softmax(logits / temperature, dim=-1)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None,
            temperature: float, alpha: float) -> torch.Tensor:
    """Hinton et al. (2015): alpha T^2 KL(softmax(z_t/T) || softmax(z_s/T)) + (1 - alpha) CE(y, z_s), batch means.

    ``labels=None`` (a transfer batch: images without labels) leaves only the first term. The gradient of the soft
    term with respect to z_s is (q_s - q_t) / T, and q_s - q_t itself shrinks like 1/T for large T, so the soft
    gradients scale as 1/T^2; the T^2 factor keeps their weight against the hard term the same at any T.
    """
    t = temperature
    log_q_s = F.log_softmax(student_logits / t, dim=1)
    log_q_t = F.log_softmax(teacher_logits.detach() / t, dim=1)
    kl = (log_q_t.exp() * (log_q_t - log_q_s)).sum(1).mean()
    loss = alpha * t * t * kl
    if labels is not None:
        loss = loss + (1 - alpha) * F.cross_entropy(student_logits, labels)
    return loss


@torch.no_grad()
def ema_update(ema_model: nn.Module, model: nn.Module, m: float) -> None:
    """theta_ema <- m theta_ema + (1 - m) theta for every parameter; buffers (BatchNorm statistics, if any) are
    copied from ``model``. m = 0 copies the model, m = 1 keeps the EMA model as it was."""
    for pe, p in zip(ema_model.parameters(), model.parameters()):
        pe.mul_(m).add_(p.detach(), alpha=1 - m)
    for be, b in zip(ema_model.buffers(), model.buffers()):
        be.copy_(b)


def mean_soft_targets(logits: torch.Tensor, labels: torch.Tensor, temperature: float,
                      n_classes: int = 10) -> torch.Tensor:
    """(C, C): row c is the mean of softmax(z/T) over the examples of true class c: which classes the teacher finds
    alike ("dark knowledge"). A class with no example gets a row of zeros."""
    q = soft_targets(logits, temperature)
    out = torch.zeros(n_classes, n_classes, dtype=q.dtype)
    out.index_add_(0, labels, q)
    counts = torch.bincount(labels, minlength=n_classes).clamp(min=1).to(q.dtype)
    return out / counts[:, None]
