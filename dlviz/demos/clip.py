"""CLIP, live: a tiny image encoder and a tiny Transformer text encoder learn a shared space from captions.

Data: coloured digits on a canvas with generated captions (``dlviz.data.captions``). Each snapshot measures what
the paper measures: zero-shot digit accuracy from class prompts in a template never seen in training (bare word,
each template, and the ensemble of templates), a linear probe on the frozen image features, caption -> image
retrieval on held-out captions, plus the batch similarity matrix, the learned temperature and a PCA of both
modalities. It also carries a frozen CPU copy of the text tower, so the page can embed typed captions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..analysis.embedding import pca
from ..config import param
from ..data.captions import (BARE_TEMPLATE, MAX_LEN, PROMPT_TEMPLATES, TRAIN_TEMPLATES, VOCAB, CaptionData,
                             load_caption_data, prompts, tokenize_all)
from ..device import run_generator, seeded
from ..models.clip import TinyCLIP, text_state
from .base import Claim, Demo, Pacer, Preset, Snapshot, check_finite, finish

LEARNING_RATES = (1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 1e-2, 3e-2)
TEMPERATURES = (0.01, 0.03, 0.07, 0.1, 0.3, 1.0)
TEXT_DIM = 64
N_PCA = 300  # test images in the joint PCA
PROBE_RIDGE = 1e-2  # ridge penalty of the linear probe, relative to the mean feature variance x N
WARMUP = 50  # steps of linear learning-rate warm-up; then a cosine decay to 0 at the run's last step (as CLIP)
WEIGHT_DECAY = 0.1  # AdamW weight decay of the weight matrices (not of gains, biases, the temperature)


@dataclass(frozen=True)
class Config:
    batch_size: int = param(128, "pairs per step: each image's caption is its positive, the other N-1 captions "
                            "its negatives (and the same for each caption)", choices=(16, 32, 64, 128, 256),
                            label="batch size N")
    embed_dim: int = param(64, "dimension d of the shared embedding space", choices=(16, 32, 64, 128),
                           label="embedding dim d")
    width: int = param(16, "channels of the image encoder's first conv layer (then 2x, 4x)", choices=(8, 16, 32),
                       label="image encoder width")
    layers: int = param(1, "Transformer blocks of the text encoder", choices=(1, 2), label="text layers")
    learn_temperature: bool = param(True, "learn the logit scale exp(t) = 1/τ (clipped at 100, as in the paper); "
                                    "off: τ stays at its initial value", label="learn the temperature")
    temperature: float = param(0.07, "initial temperature τ (the paper starts at 0.07); the logits are "
                               "cosine / τ", choices=TEMPERATURES, label="temperature τ (initial)")
    lr: float = param(2e-3, "peak AdamW learning rate: 50 warm-up steps, then a cosine decay to 0 at the last step",
                      choices=LEARNING_RATES, label="learning rate")
    steps: int = param(800, "optimizer steps (the learning rate decays to 0 at the last one)", lo=10, hi=10000,
                       label="steps")
    eval_every: int = param(50, "optimizer steps between snapshots (zero-shot, probe, retrieval, PCA)",
                            lo=1, hi=500, label="steps per snapshot")
    seed: int = param(0, "seed for initialization, rendered pairs and batch order", lo=0, hi=2**31 - 1,
                      widget=False)


TARGET_STEPS = 800  # the default run: about 45 s of training alone on 2 CPU cores at width 16 (see the bench)
# The claims say "800 steps" as constant text (the catalogue translates constants only; tests check it matches).

PRESETS = {
    "zero-shot": Preset(
        "Zero-shot digits from captions", Config(),
        "Never trained on labels: the digit is read by comparing each test image with the prompts 'a photo of the "
        "number zero' ... 'nine', a template no training caption used. Watch the diagonal light up.",
        Claim("after 800 steps (under a minute of training on 2 CPU cores) zero-shot accuracy with the "
              "held-out prompt 'a photo of the number {word}' is at least 85% (chance: 10%), a linear probe on the "
              "frozen image features at least 95%, and held-out caption -> image R@5 at least 90%",
              lambda s: s["zs_acc"] >= 0.85 and s["probe_acc"] >= 0.95 and s["r_at_5"] >= 0.90,
              ("zs_acc", "probe_acc", "r_at_5", "probe_acc_random_encoder", "zs_ensemble", "steps", "train_seconds"),
              max_steps=TARGET_STEPS)),
    "prompt-ensemble": Preset(
        "Prompt ensembling: as good as the best template", Config(),
        "Five held-out templates and the bare word: averaging the templates' class embeddings (the paper's "
        "ensemble) does about as well as the best single template, which no one can pick without test labels. "
        "Here the templates err alike, so the paper's gain of a few points does not appear.",
        Claim("after 800 steps the ensemble of 5 held-out templates is within 1 point of the best single "
              "template (chosen in hindsight on the test labels) or better",
              lambda s: s["zs_ensemble"] >= s["zs_best_single"] - 0.01,
              ("zs_ensemble", "zs_best_single", "zs_bare", "zs_acc", "steps"), max_steps=TARGET_STEPS)),
    "fixed-temperature": Preset(
        "A fixed temperature of 1: digits yes, retrieval no", Config(learn_temperature=False, temperature=1.0),
        "With τ = 1 the logits stay in [-1, 1]: the softmax over the batch can hardly single out the right caption, "
        "so the loss stays high. Picking one of 10 digit prompts still works; finding one image among 720 from its "
        "full caption does not (compare retrieval R@5 with the learned temperature's).",
        Claim("with τ fixed at 1, after 800 steps held-out caption -> image R@5 stays below 60% (the "
              "learned temperature: 90% or more), while zero-shot digit accuracy still reaches 80%: a 10-way choice "
              "needs no sharp softmax, telling 720 images apart does",
              lambda s: s["r_at_5"] < 0.60 and s["zs_acc"] >= 0.80,
              ("r_at_5", "zs_acc", "loss", "loss_floor", "steps"), max_steps=TARGET_STEPS)),
}


def display_index(data: CaptionData) -> np.ndarray:
    """The 10 test pairs of the live similarity matrix: the first test image of each digit, digit 0 first."""
    d = data.digit_test.numpy()
    return np.array([int(np.flatnonzero(d == k)[0]) for k in range(10)])


def ridge_probe(h_train: torch.Tensor, y_train: torch.Tensor, h_test: torch.Tensor, y_test: torch.Tensor,
                n_classes: int = 10, ridge: float = PROBE_RIDGE) -> float:
    """Accuracy of a closed-form ridge regression onto one-hot labels (standardized features plus a bias)."""
    mu, sd = h_train.mean(0), h_train.std(0) + 1e-6
    a = torch.cat([(h_train - mu) / sd, torch.ones(len(h_train), 1)], 1).double()
    b = torch.cat([(h_test - mu) / sd, torch.ones(len(h_test), 1)], 1).double()
    y = F.one_hot(y_train, n_classes).double()
    w = torch.linalg.solve(a.T @ a + ridge * len(a) * torch.eye(a.shape[1], dtype=a.dtype), a.T @ y)
    return float(((b @ w).argmax(1) == y_test).double().mean())


def learning_rate(peak: float, step: int, steps: int, warmup: int = WARMUP) -> float:
    """The rate of optimizer step ``step`` (1-based) of ``steps``: linear warm-up, then cosine decay to 0."""
    ramp = min(1.0, step / warmup) if warmup > 0 else 1.0
    return peak * ramp * 0.5 * (1.0 + float(np.cos(np.pi * min(step / max(steps, 1), 1.0))))


class _Trainer:
    """One CLIP run: model, optimizer, batch order, and the evaluation of every snapshot."""

    def __init__(self, config: Config, data: CaptionData, device: torch.device):
        self.config, self.device, self.data = config, device, data
        self.gen = run_generator(config.seed)
        with seeded(config.seed):
            self.model = TinyCLIP(len(VOCAB), MAX_LEN, config.embed_dim, config.width, TEXT_DIM, config.layers,
                                  config.temperature, config.learn_temperature).to(device)
        decay = [p for n, p in self.model.named_parameters() if p.ndim >= 2]
        rest = [p for n, p in self.model.named_parameters() if p.ndim < 2 and p.requires_grad]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                                      {"params": rest, "weight_decay": 0.0}], lr=config.lr)
        self.step = 0
        self.x, self.tokens = data.x_train.to(device), data.train_tokens.to(device)
        self.order, self.pos = torch.randperm(len(self.x), generator=self.gen), 0
        # Fixed evaluation inputs: test images, class prompts of every template, held-out retrieval captions.
        self.x_test, self.y_test = data.x_test.to(device), data.digit_test.to(device)
        self.templates = (BARE_TEMPLATE,) + PROMPT_TEMPLATES
        self.prompt_ids = torch.stack([tokenize_all(prompts(t)) for t in self.templates]).to(device)  # (T, 10, L)
        self.caption_ids = data.test_tokens.to(device)
        self.probe_x = data.x_train.to(device)  # the probe trains on every training render, with its digit label
        self.probe_y = data.digit_train.to(device)
        self.display = display_index(data)
        self.unseen = data.unseen_combo_test.to(device)

    def train_step(self) -> torch.Tensor:
        """One AdamW step on a batch of pairs (each image with one of its training captions, drawn at random)."""
        n = self.config.batch_size
        if self.pos + n > len(self.order):
            self.order, self.pos = torch.randperm(len(self.x), generator=self.gen), 0
        idx = self.order[self.pos:self.pos + n]
        self.pos += n
        which = torch.randint(0, self.tokens.shape[1], (n,), generator=self.gen)
        self.step += 1
        for group in self.opt.param_groups:
            group["lr"] = learning_rate(self.config.lr, self.step, self.config.steps)
        loss = self.model(self.x[idx], self.tokens[idx, which])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.model.clamp_scale()
        return loss.detach()

    @torch.no_grad()
    def evaluate(self) -> tuple[dict[str, float], dict]:
        m = self.model
        was = m.training
        m.eval()  # BatchNorm with its running statistics
        enc = m.image_encoder
        # The probe reads the conv net's last feature map (its global max and the map itself: the representation
        # before the MLP head and projection, like SimCLR's h); zero-shot reads the projected embedding.
        z_test = torch.cat([enc.features(x) for x in self.x_test.split(512)])  # (N_test, 4w * 10)
        img = F.normalize(m.w_i(enc.fc(z_test)), dim=-1)  # (N_test, d)
        z_probe = torch.cat([enc.features(x) for x in self.probe_x.split(512)])
        T, C, L = self.prompt_ids.shape
        cls = m.encode_text(self.prompt_ids.view(T * C, L)).view(T, C, -1)  # (T, 10, d): bare word, then templates
        acc = [float(((img @ cls[t].T).argmax(1) == self.y_test).float().mean()) for t in range(T)]
        ens = F.normalize(F.normalize(cls[1:], dim=-1).mean(0), dim=-1)  # the paper: average the embeddings
        pred_ens = (img @ ens.T).argmax(1)
        pred_main = (img @ cls[1].T).argmax(1)
        cap = m.encode_text(self.caption_ids)  # (N_test, d)
        m.train(was)
        sims = cap @ img.T  # caption -> image
        rank = (sims > sims.diagonal()[:, None]).sum(1)  # images scored above the caption's own image
        scale = float(m.logit_scale)
        metrics = {
            "zs_acc": acc[1], "zs_bare": acc[0], "zs_ensemble": float((pred_ens == self.y_test).float().mean()),
            "zs_best_single": max(acc[1:]), "zs_acc_unseen_combo": float((pred_main == self.y_test)[self.unseen]
                                                                          .float().mean()),
            "probe_acc": ridge_probe(z_probe.cpu(), self.probe_y.cpu(), z_test.cpu(), self.y_test.cpu()),
            "r_at_1": float((rank < 1).float().mean()), "r_at_5": float((rank < 5).float().mean()),
            "logit_scale": scale, "temperature": 1.0 / scale,
            **{f"zs_t{t}": acc[t + 1] for t in range(T - 1)},
        }
        d = torch.as_tensor(self.display, device=self.device)
        joint = torch.cat([img[:N_PCA], cls[1]]).cpu().numpy()
        coords = pca(joint)[0]
        arrays = {
            "sim": (img[d] @ cap[d].T).cpu().numpy(),  # (10, 10) cosine: image i (rows) vs caption j
            "display": self.display,
            "gallery": img.cpu().numpy(),  # (N_test, d): the page's retrieval gallery
            "prompt_emb": cls.cpu().numpy(),  # (T, 10, d)
            "pca_img": coords[:N_PCA], "pca_txt": coords[N_PCA:],
            "text_state": text_state(m),
            "zs_per_class": np.bincount(self.y_test[pred_main == self.y_test].cpu().numpy(), minlength=10)
            / np.maximum(np.bincount(self.y_test.cpu().numpy(), minlength=10), 1),
        }
        return metrics, arrays


def loss_floor(batch: int, scale: float) -> float:
    """The smallest possible loss with logits scale x cosine: positive at +scale, every negative at -scale."""
    return float(np.log1p((batch - 1) * np.exp(-2 * scale)))


EARLY_STEP = 10  # an extra snapshot here when eval_every is larger (see run)


def run(config: Config, device: torch.device) -> Iterator[Snapshot]:
    """Train a tiny CLIP; a snapshot before training, at step 10 and every ``eval_every`` steps.

    Metrics: ``loss`` (mean of the window), ``loss_chance`` (log N), ``loss_floor``, ``logit_scale``,
    ``temperature``, ``zs_acc`` (held-out template 'a photo of the number {word}'), ``zs_bare``, ``zs_t0..4``
    (each prompt template), ``zs_best_single``, ``zs_ensemble``, ``zs_acc_unseen_combo`` (test images whose
    (digit, colour) pair training never showed), ``probe_acc``, ``r_at_1``, ``r_at_5``, ``steps_per_second``.
    Arrays: ``sim`` (10, 10), ``display`` (10,), ``gallery`` (N_test, d), ``prompt_emb`` (T, 10, d),
    ``pca_img`` (300, 2), ``pca_txt`` (10, 2), ``text_state`` (the text tower's weights), ``zs_per_class`` (10,).
    """
    data = load_caption_data(config.seed)
    trainer = _Trainer(config, data, device)
    pacer = Pacer()
    consts = {"loss_chance": float(np.log(config.batch_size))}

    def snapshot(step: int, loss: float | None, rate: float) -> Iterator[Snapshot]:
        m, a = yield from pacer.call(step, trainer.evaluate)
        m.update(consts)
        m["loss_floor"] = loss_floor(config.batch_size, m["logit_scale"])
        if loss is not None:
            m["loss"] = check_finite(loss, step, "loss", "Lower the learning rate and press Reset.")
        m["steps_per_second"] = rate
        return Snapshot(step, m, a)

    first = finish(snapshot(0, None, 0.0))
    consts["probe_acc_random_encoder"] = first.metrics["probe_acc"]
    first.metrics["probe_acc_random_encoder"] = consts["probe_acc_random_encoder"]
    yield first
    total, count = torch.zeros((), device=device), 0
    pacer.reset()
    t_window = pacer.clock()
    for step in range(1, config.steps + 1):
        total += yield from pacer.call(step, trainer.train_step)
        count += 1
        # One early snapshot at step 10: the first picture after Start comes within about a second and a half
        # (ten steps and one evaluation) rather than after the first ``eval_every`` steps.
        if step % config.eval_every == 0 or step == config.steps or (step == EARLY_STEP < config.eval_every):
            rate = count / max(pacer.clock() - t_window, 1e-9)
            yield (yield from snapshot(step, float(total) / count, rate))
            pacer.reset()
            total.zero_()
            count, t_window = 0, pacer.clock()


_SUMMARY_KEYS = ("loss", "loss_chance", "loss_floor", "temperature", "logit_scale", "zs_acc", "zs_bare",
                 "zs_ensemble", "zs_best_single", "zs_acc_unseen_combo", "probe_acc", "probe_acc_random_encoder",
                 "r_at_1", "r_at_5", "steps_per_second")


def _summarize(snap: Snapshot, runner) -> dict:
    out = {k: snap.metrics[k] for k in _SUMMARY_KEYS if k in snap.metrics}
    out["zs_templates"] = {t: snap.metrics[f"zs_t{i}"] for i, t in enumerate(PROMPT_TEMPLATES)
                           if f"zs_t{i}" in snap.metrics}
    out["steps"] = snap.step
    out["train_seconds"] = round(runner.compute_seconds, 3)
    return out


BENCH_SEEDS = (220, 221, 222, 223, 224)  # nobody tuned on these


def _bench(device: torch.device) -> dict:
    """The default preset (its full step budget) over 5 unseen seeds: the issue's targets (zero-shot with the
    held-out template >= 85%, ensemble >= best single template, linear probe >= 95%), R@5, and the training time
    with its snapshot evaluations (setup excluded: what the 60 s budget counts) and steps per second of it."""
    from ..runner import Runner

    rows = []
    for seed in BENCH_SEEDS:
        r = Runner(DEMOS[0], replace(PRESETS["zero-shot"].config, seed=seed), device)
        r.run_to_end()
        m = r.latest.metrics
        rows.append({"seed": seed, "steps": r.latest.step, "train_seconds": round(r.compute_seconds, 1),
                     **{k: round(m[k], 4) for k in ("zs_acc", "zs_bare", "zs_best_single", "zs_ensemble",
                                                    "zs_acc_unseen_combo", "probe_acc", "probe_acc_random_encoder",
                                                    "r_at_5", "temperature")}})
    med = lambda k: float(np.median([row[k] for row in rows]))  # noqa: E731
    return {"clip_zs_acc_median": med("zs_acc"), "clip_probe_acc_median": med("probe_acc"),
            "clip_r_at_5_median": med("r_at_5"), "clip_train_seconds_max": max(r["train_seconds"] for r in rows),
            "clip_steps_per_second": round(sum(r["steps"] for r in rows) / sum(r["train_seconds"] for r in rows), 1),
            "clip_seeds_zs_85": sum(r["zs_acc"] >= 0.85 for r in rows),
            "clip_seeds_ensemble_ge_best": sum(r["zs_ensemble"] >= r["zs_best_single"] for r in rows),
            "clip_seeds_ensemble_within_1pt": sum(r["zs_ensemble"] >= r["zs_best_single"] - 0.01 for r in rows),
            "clip_seeds_probe_95": sum(r["probe_acc"] >= 0.95 for r in rows), "clip_runs": rows}


DEMOS = [Demo(
    name="clip", title="CLIP: images and captions in one space",
    summary="A tiny CLIP trains live on captioned coloured digits: zero-shot prompts, ensembling, probe, retrieval.",
    config_cls=Config, presets=PRESETS, run=run, summarize=_summarize,
    benchmarks={"clip targets: zero-shot, ensemble, probe, R@5 (seeds 220-224)": _bench},
)]

__all__ = ["Config", "PRESETS", "DEMOS", "run", "ridge_probe", "loss_floor", "display_index"]
