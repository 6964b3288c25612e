"""Teacher and student, live: knowledge distillation (``distill``) and an EMA teacher under noisy SGD (``ema``).

``distill``: a LeNet teacher trains on all training digits first (cached per seed and epochs, so Reset is quick);
then a small MLP student learns from n labelled digits plus the rest as an unlabelled transfer set, through the
teacher's softened outputs, while a twin (same initial weights, same batches) learns from the n labels alone.
``ema``: the student under noisy SGD with an exponential moving average of its weights evaluated beside it.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..config import param
from ..data.digits import load_image_dataset
from ..device import run_generator, seeded
from ..models.lenet import LeNet
from ..models.student import ema_update, kd_loss, student
from .base import Claim, Demo, Pacer, Preset, Snapshot, check_finite

INPUT_SIZE = 16  # digits upsampled to 16x16: the teacher reaches about 96-97% in 20 epochs (2 s of a CPU core)
TEACHER_LR, TEACHER_BATCH = 0.01, 64  # Adam, as the CNN page's Modern preset
LABELLED_BATCH, TRANSFER_BATCH = 32, 64
TEMPERATURES = (1.0, 2.0, 4.0, 8.0, 10.0, 20.0)
HIDDEN = (8, 16, 32, 64)
KD_LRS = (3e-4, 1e-3, 3e-3, 0.01, 0.03)
SGD_LRS = (0.01, 0.03, 0.05, 0.1, 0.2, 0.3, 1.0, 3.0)
EMA_MOMENTA = (0.0, 0.5, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0)


def _data():
    return load_image_dataset("digits", INPUT_SIZE)


# --- the teacher ---------------------------------------------------------------------------------------------

@lru_cache(maxsize=8)
def teacher_state(seed: int, epochs: int) -> dict[str, torch.Tensor]:
    """A LeNet trained on all 1,437 training digits (Adam, lr 0.01, batch 64) for ``epochs``; its CPU state_dict.

    Cached per (seed, epochs): read-only, shared by runs (``load_state_dict`` copies it). Deterministic: weights
    from ``seeded(seed)``, batch order from the run's own generator.
    """
    data = _data()
    g = run_generator(seed)
    with seeded(seed):
        model = LeNet(INPUT_SIZE)
    opt = torch.optim.Adam(model.parameters(), TEACHER_LR)
    n = len(data.y_train)
    for _ in range(epochs):
        order = torch.randperm(n, generator=g)
        for i in range(0, n, TEACHER_BATCH):
            idx = order[i:i + TEACHER_BATCH]
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def load_teacher(seed: int, epochs: int, device: torch.device) -> LeNet:
    """The cached teacher as a model in eval mode on ``device``."""
    with seeded(0):  # the weights are loaded next; the lock keeps this build's draws out of a seeded one
        model = LeNet(INPUT_SIZE)
    model.load_state_dict(teacher_state(seed, epochs))
    return model.to(device).eval()


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, torch.Tensor]:
    """(accuracy, logits (N, C) on the CPU) in eval mode without gradients."""
    was = model.training
    model.eval()
    with torch.no_grad():
        z = model(x)
    model.train(was)
    return float((z.argmax(1) == y).float().mean()), z.cpu()


# --- distillation ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DistillConfig:
    n_labels: int = param(100, "training digits the students may see with their labels (the same for both)",
                          lo=20, hi=500, step=10, label="labelled digits n")
    temperature: float = param(4.0, "T: the teacher's and the student's logits are divided by T before the "
                               "softmax of the soft term; larger T spreads the teacher's mass over wrong classes",
                               choices=TEMPERATURES, label="temperature T")
    alpha: float = param(0.9, "weight of the soft (teacher) term; 1 - alpha weights the hard labels. 0: the "
                         "distilled student ignores the teacher and equals the hard-label twin",
                         lo=0.0, hi=1.0, step=0.1, label="α (soft weight)")
    transfer: bool = param(True, "also distill on the other training digits, labels ignored (the transfer set); "
                           "off: both students see only the n labelled digits", label="unlabelled transfer set")
    omit_digit: int = param(-1, "leave every example of this digit out of the students' data (labelled and "
                            "transfer): can the distilled student still recognize it? -1: none",
                            lo=-1, hi=9, label="digit left out (-1: none)")
    hidden: int = param(32, "hidden units of the student MLP (256 -> hidden -> 10)", choices=HIDDEN,
                        label="student hidden units")
    lr: float = param(3e-3, "Adam learning rate of both students", choices=KD_LRS, label="learning rate")
    teacher_epochs: int = param(20, "epochs of the LeNet teacher on all training digits (trained once per seed "
                                "and epochs, then cached)", lo=1, hi=40, label="teacher epochs")
    steps: int = param(1000, "optimizer steps of the students (each: 32 labelled + 64 transfer digits)",
                       lo=50, hi=5000, step=50, label="steps")
    eval_every: int = param(20, "steps between snapshots (test accuracy of both students)", lo=1, hi=200,
                            label="steps per snapshot")
    seed: int = param(0, "seed for the teacher, the students' initial weights and the data order",
                      lo=0, hi=2**31 - 1, widget=False)


class _Students:
    """The distilled student and its hard-label twin: same initial weights, same labelled batches."""

    def __init__(self, config: DistillConfig, teacher_logits: torch.Tensor, device: torch.device):
        c, data = config, _data()
        self.config, self.gen = c, run_generator(c.seed + 1)
        xtr, ytr = data.x_train.to(device), data.y_train.to(device)
        order = torch.randperm(len(ytr), generator=self.gen).to(device)
        if c.omit_digit >= 0:
            order = order[ytr[order] != c.omit_digit]
        self.labelled, self.transfer = order[:c.n_labels], order[c.n_labels:]
        self.xtr, self.ytr, self.zt = xtr, ytr, teacher_logits.to(device)
        with seeded(c.seed + 1):
            self.kd = student(INPUT_SIZE * INPUT_SIZE, c.hidden).to(device)
        self.hard = copy.deepcopy(self.kd)
        self.opt_kd = torch.optim.Adam(self.kd.parameters(), c.lr)
        self.opt_hard = torch.optim.Adam(self.hard.parameters(), c.lr)
        self.use_transfer = c.transfer and len(self.transfer) > 0

    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step of each student; (distilled loss, hard loss) as 0-d tensors (no sync)."""
        c, g = self.config, self.gen
        li = self.labelled[torch.randint(len(self.labelled), (min(LABELLED_BATCH, len(self.labelled)),),
                                         generator=g).to(self.labelled.device)]
        x, y = self.xtr[li], self.ytr[li]
        loss = kd_loss(self.kd(x), self.zt[li], y, c.temperature, c.alpha)
        if self.use_transfer:
            ti = self.transfer[torch.randint(len(self.transfer), (TRANSFER_BATCH,), generator=g).to(li.device)]
            loss = loss + kd_loss(self.kd(self.xtr[ti]), self.zt[ti], None, c.temperature, c.alpha)
        self.opt_kd.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_kd.step()
        hard = F.cross_entropy(self.hard(x), y)
        self.opt_hard.zero_grad(set_to_none=True)
        hard.backward()
        self.opt_hard.step()
        return loss.detach(), hard.detach()


def run_distill(config: DistillConfig, device: torch.device) -> Iterator[Snapshot]:
    """Train (or fetch) the teacher, then both students; a snapshot at step 0 and every ``eval_every`` steps.

    Metrics: ``kd_acc``, ``hard_acc`` (test accuracy of the distilled and the hard-label student), ``gap``
    (their difference), ``teacher_acc``, ``kd_loss``, ``hard_loss`` (training losses since the last snapshot),
    ``omit_recall_kd`` / ``omit_recall_hard`` (share of the left-out digit's test examples recognized, when one is
    left out), ``teacher_seconds`` (0 when the teacher came from the cache), ``steps_per_second``.
    Arrays: ``teacher_logits``, ``kd_logits``, ``hard_logits`` (N_test, 10) on the test digits.
    """
    data = _data()
    pacer = Pacer()
    t0 = pacer.clock()
    cached = teacher_state.cache_info().hits
    yield from pacer.call(0, teacher_state, config.seed, config.teacher_epochs)  # heartbeats while it trains
    teacher_seconds = 0.0 if teacher_state.cache_info().hits > cached else pacer.clock() - t0
    teacher = load_teacher(config.seed, config.teacher_epochs, device)
    xte, yte = data.x_test.to(device), data.y_test.to(device)
    with torch.no_grad():
        zt_train = torch.cat([teacher(x) for x in data.x_train.to(device).split(512)])
    teacher_acc, zt_test = _accuracy(teacher, xte, yte)
    s = _Students(config, zt_train, device)
    omit = (yte == config.omit_digit) if config.omit_digit >= 0 else None
    consts = {"teacher_acc": teacher_acc, "teacher_seconds": teacher_seconds,
              "n_labelled": float(len(s.labelled)), "n_transfer": float(len(s.transfer) if s.use_transfer else 0)}

    def snapshot(step: int, kd_loss_: float | None, hard_loss: float | None, rate: float) -> Snapshot:
        kd_acc, z_kd = _accuracy(s.kd, xte, yte)
        hard_acc, z_hard = _accuracy(s.hard, xte, yte)
        m = {**consts, "kd_acc": kd_acc, "hard_acc": hard_acc, "gap": kd_acc - hard_acc, "steps_per_second": rate}
        if kd_loss_ is not None:
            m["kd_loss"] = check_finite(kd_loss_, step, "distillation loss")
            m["hard_loss"] = check_finite(hard_loss, step, "hard-label loss")
        if omit is not None:
            o = omit.cpu()
            m["omit_recall_kd"] = float((z_kd[o].argmax(1) == config.omit_digit).float().mean())
            m["omit_recall_hard"] = float((z_hard[o].argmax(1) == config.omit_digit).float().mean())
        return Snapshot(step, m, {"teacher_logits": zt_test.numpy(), "kd_logits": z_kd.numpy(),
                                  "hard_logits": z_hard.numpy()})

    yield snapshot(0, None, None, 0.0)
    pacer.reset()
    sums = [torch.zeros((), device=device), torch.zeros((), device=device)]
    count, t_window = 0, pacer.clock()
    for step in range(1, config.steps + 1):
        a, b = s.step()
        sums[0] += a
        sums[1] += b
        count += 1
        yield from pacer.beat(step)
        if step % config.eval_every == 0 or step == config.steps:
            rate = count / max(pacer.clock() - t_window, 1e-9)
            yield snapshot(step, float(sums[0]) / count, float(sums[1]) / count, rate)
            pacer.reset()
            sums[0].zero_(), sums[1].zero_()
            count, t_window = 0, pacer.clock()


def temperature_sweep(config: DistillConfig, temperatures=(1.0, 2.0, 4.0, 8.0, 20.0),
                      device: torch.device | str = "cpu") -> list[dict]:
    """Test accuracy of the distilled student after ``config.steps`` steps at each temperature (same teacher, same
    initial weights and batches); rows {"temperature", "kd_acc", "hard_acc"}. Runs the demo's own generator, so
    the hard-label twin (which does not depend on T) trains again in every row."""
    rows = []
    for t in temperatures:
        last = None
        for snap in run_distill(replace(config, temperature=float(t), eval_every=config.steps), torch.device(device)):
            if not snap.heartbeat:
                last = snap
        rows.append({"temperature": float(t), "kd_acc": last.metrics["kd_acc"], "hard_acc": last.metrics["hard_acc"]})
    return rows


_DISTILL_KEYS = ("kd_acc", "hard_acc", "gap", "teacher_acc", "kd_loss", "hard_loss", "omit_recall_kd",
                 "omit_recall_hard", "n_labelled", "n_transfer", "teacher_seconds")


def _summarize_distill(snap: Snapshot, runner) -> dict:
    out = {k: snap.metrics[k] for k in _DISTILL_KEYS if k in snap.metrics}
    out["steps"] = snap.step
    out["train_seconds"] = round(runner.compute_seconds, 3)
    return out


DISTILL_PRESETS = {
    "kd-100-labels": Preset(
        "Distillation beats hard labels with 100 labels", DistillConfig(),
        "The distilled student (teacher's soft targets at T = 4 on 100 labelled digits plus the 1,337 others "
        "unlabelled) climbs toward the teacher; its twin on the 100 hard labels stalls 5-9 points lower (seeds 0-4).",
        Claim("with 100 labels, after 1,000 steps the distilled student's test accuracy is at least 3 points above "
              "the hard-label twin's (same initial weights, same labelled batches)",
              lambda s: s["gap"] >= 0.03, ("kd_acc", "hard_acc", "gap", "teacher_acc", "steps"), max_steps=1000)),
    "soft-targets-same-images": Preset(
        "Soft targets at T=4 carry dark knowledge", DistillConfig(n_labels=50, transfer=False),
        "No transfer set: both students see the same 50 digits, one through the teacher's softened outputs, one "
        "through the labels. The soft targets say more per image (which wrong classes it resembles).",
        Claim("on the same 50 labelled digits and nothing else, the student taught by the teacher's T = 4 soft "
              "targets ends above the hard-label twin in test accuracy (measured +1 to +14 points on seeds 0-4)",
              lambda s: s["gap"] > 0, ("kd_acc", "hard_acc", "gap", "steps"), max_steps=1000)),
}


# --- the EMA teacher ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EmaConfig:
    lr: float = param(0.1, "SGD learning rate (no momentum): high values make the student's weights jitter",
                      choices=SGD_LRS, label="learning rate")
    batch_size: int = param(8, "digits per step: small batches make noisy gradients", choices=(4, 8, 16, 32, 64, 128),
                            label="batch size")
    ema: float = param(0.99, "m in θ_ema ← m θ_ema + (1 − m) θ: averages over about 1/(1 − m) steps; 0 copies the "
                       "student, 1 never moves", choices=EMA_MOMENTA, label="EMA momentum m")
    hidden: int = param(32, "hidden units of the student MLP (256 -> hidden -> 10)", choices=HIDDEN,
                        label="student hidden units")
    steps: int = param(1000, "SGD steps on the 1,437 labelled training digits", lo=50, hi=5000, step=50,
                       label="steps")
    eval_every: int = param(10, "steps between snapshots (test accuracy of the student and of its EMA)",
                            lo=1, hi=200, label="steps per snapshot")
    seed: int = param(0, "seed for the initial weights and the batches", lo=0, hi=2**31 - 1, widget=False)


def run_ema(config: EmaConfig, device: torch.device) -> Iterator[Snapshot]:
    """SGD on all labelled training digits with an EMA copy of the weights updated after every step.

    Metrics: ``raw_acc``, ``ema_acc`` (test accuracy of the student and of its EMA), ``raw_test_loss``,
    ``ema_test_loss``, ``loss`` (training loss since the last snapshot), ``steps_per_second``.
    """
    data = _data()
    gen = run_generator(config.seed)
    xtr, ytr = data.x_train.to(device), data.y_train.to(device)
    xte, yte = data.x_test.to(device), data.y_test.to(device)
    with seeded(config.seed):
        net = student(INPUT_SIZE * INPUT_SIZE, config.hidden).to(device)
    ema_net = copy.deepcopy(net)
    for p in ema_net.parameters():
        p.requires_grad_(False)
    opt = torch.optim.SGD(net.parameters(), config.lr)
    pacer = Pacer()

    def snapshot(step: int, loss: float | None, rate: float) -> Snapshot:
        raw_acc, z_raw = _accuracy(net, xte, yte)
        ema_acc, z_ema = _accuracy(ema_net, xte, yte)
        y = yte.cpu()
        m = {"raw_acc": raw_acc, "ema_acc": ema_acc, "raw_test_loss": float(F.cross_entropy(z_raw, y)),
             "ema_test_loss": float(F.cross_entropy(z_ema, y)), "steps_per_second": rate}
        if loss is not None:
            m["loss"] = check_finite(loss, step, "training loss", "The learning rate is too high for SGD: lower "
                                     "it (try 0.1) and press Reset.")
        return Snapshot(step, m)

    yield snapshot(0, None, 0.0)
    pacer.reset()
    total, count, t_window = torch.zeros((), device=device), 0, pacer.clock()
    for step in range(1, config.steps + 1):
        idx = torch.randint(len(ytr), (config.batch_size,), generator=gen).to(device)
        loss = F.cross_entropy(net(xtr[idx]), ytr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema_update(ema_net, net, config.ema)
        total += loss.detach()
        count += 1
        yield from pacer.beat(step)
        if step % config.eval_every == 0 or step == config.steps:
            yield snapshot(step, float(total) / count, count / max(pacer.clock() - t_window, 1e-9))
            pacer.reset()
            total.zero_()
            count, t_window = 0, pacer.clock()


def last_quarter(history: list[dict], key: str) -> tuple[float, float]:
    """(mean, std) of ``key`` over the snapshots in the last quarter of the steps so far (step > 3/4 of the last)."""
    if not history:
        return math.nan, math.nan
    end = history[-1]["step"]
    vals = [r[key] for r in history if key in r and r["step"] > 0.75 * end]
    if not vals:
        return math.nan, math.nan
    return float(np.mean(vals)), float(np.std(vals))


def _summarize_ema(snap: Snapshot, runner) -> dict:
    out = {k: snap.metrics[k] for k in ("raw_acc", "ema_acc", "loss") if k in snap.metrics}
    for k in ("raw", "ema"):
        out[f"{k}_acc_last_quarter"], out[f"{k}_std_last_quarter"] = last_quarter(runner.history, f"{k}_acc")
    out["steps"] = snap.step
    out["train_seconds"] = round(runner.compute_seconds, 3)
    return out


def _steadier(s: dict) -> bool:
    return (s["ema_acc_last_quarter"] > s["raw_acc_last_quarter"]
            and s["ema_std_last_quarter"] < s["raw_std_last_quarter"])


EMA_PRESETS = {
    "ema-steadier": Preset(
        "The EMA model is steadier under noisy SGD", EmaConfig(),
        "SGD at lr 0.1 on batches of 8: the student's accuracy jitters by points from one snapshot to the next; "
        "its EMA (m = 0.99, an average over about the last 100 steps) runs above it in a thin line.",
        Claim("over the last quarter of 1,000 steps the EMA model's mean test accuracy is higher than the raw "
              "student's and its standard deviation smaller",
              _steadier, ("ema_acc_last_quarter", "raw_acc_last_quarter", "ema_std_last_quarter",
                          "raw_std_last_quarter", "steps"), max_steps=1000)),
    "ema-m0-copies": Preset(
        "With m = 0 the EMA model is the student", EmaConfig(ema=0.0),
        "m = 0 copies the weights after every step: both curves coincide, the limit case of the update.",
        Claim("with m = 0 the EMA model's test accuracy equals the student's at every snapshot",
              lambda s: s["ema_acc_last_quarter"] == s["raw_acc_last_quarter"] and s["ema_acc"] == s["raw_acc"],
              ("ema_acc", "raw_acc", "steps"), max_steps=300)),
}


# --- benchmarks ---------------------------------------------------------------------------------------------------

UNSEEN = (200, 201, 202, 203, 204)  # the recipes were tuned on seeds 0-4


def _preset_summaries(demo_index: int, config, device: torch.device) -> list[dict]:
    """Each unseen seed's summary of ``config`` (a preset's), trained to the end by the same runner as the page."""
    from ..runner import Runner

    out = []
    for seed in UNSEEN:
        r = Runner(DEMOS[demo_index], replace(config, seed=seed), device)
        r.run_to_end()
        out.append({"seed": seed, **r.summary()})
    return out


def _bench_distill(device: torch.device) -> dict:
    """The 100-label preset on unseen seeds 200-204 (1,000 steps): gap per seed, teacher and student time, steps/s."""
    rows = [{"seed": s["seed"], "kd_acc": round(s["kd_acc"], 4), "hard_acc": round(s["hard_acc"], 4),
             "gap": round(s["gap"], 4), "teacher_acc": round(s["teacher_acc"], 4),
             "teacher_seconds": round(s["teacher_seconds"], 2), "train_seconds": s["train_seconds"],
             "steps_per_second": round(s["steps"] / max(s["train_seconds"], 1e-9), 1)}
            for s in _preset_summaries(0, DISTILL_PRESETS["kd-100-labels"].config, device)]
    return {"distill_seeds_gap_3pts": sum(r["gap"] >= 0.03 for r in rows),
            "distill_gap_median": float(np.median([r["gap"] for r in rows])), "distill_runs": rows}


def _bench_t_sweep(device: torch.device) -> dict:
    """Distilled student's test accuracy against T (100 labels, 1,000 steps), seeds 0-2; with and without transfer."""
    out = {}
    for transfer in (True, False):
        per_t: dict[float, list[float]] = {}
        for seed in range(3):
            for row in temperature_sweep(DistillConfig(seed=seed, transfer=transfer), device=device):
                per_t.setdefault(row["temperature"], []).append(row["kd_acc"])
        out[f"t_sweep_{'transfer' if transfer else 'labelled_only'}"] = {
            f"T={t:g}": round(float(np.mean(v)), 4) for t, v in per_t.items()}
    return out


def _bench_ema(device: torch.device) -> dict:
    """The EMA preset on unseen seeds 200-204: last-quarter mean and std of both models."""
    keys = ("raw_acc_last_quarter", "ema_acc_last_quarter", "raw_std_last_quarter", "ema_std_last_quarter")
    rows = [{"seed": s["seed"], **{k: round(s[k], 4) for k in keys}, "train_seconds": s["train_seconds"]}
            for s in _preset_summaries(1, EMA_PRESETS["ema-steadier"].config, device)]
    return {"ema_seeds_steadier": sum(_steadier(r) for r in rows), "ema_runs": rows}


DEMOS = [
    Demo(name="distill", title="Knowledge distillation",
         summary="A LeNet teacher's softened outputs teach a small MLP from 100 labels; its twin learns from the "
                 "labels alone.",
         config_cls=DistillConfig, presets=DISTILL_PRESETS, run=run_distill, summarize=_summarize_distill,
         benchmarks={"distill 100 labels": _bench_distill, "distill T sweep": _bench_t_sweep}),
    Demo(name="ema", title="EMA teacher",
         summary="An exponential moving average of the student's weights, evaluated beside it under noisy SGD.",
         config_cls=EmaConfig, presets=EMA_PRESETS, run=run_ema, summarize=_summarize_ema,
         benchmarks={"ema steadier": _bench_ema}),
]

__all__ = ["DistillConfig", "EmaConfig", "DISTILL_PRESETS", "EMA_PRESETS", "DEMOS", "run_distill", "run_ema",
           "teacher_state", "load_teacher", "temperature_sweep", "last_quarter", "INPUT_SIZE"]
