"""Self-supervised learning, live: SimSiam, BYOL and SimCLR on digits; collapse versus non-collapse.

One generator trains one run, or two runs side by side (``compare``: the second run flips one setting) on the
same data order and the same augmented views, so their curves share one step axis.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Iterator

import numpy as np
import torch

from ..analysis.collapse import (effective_rank, knn_accuracy_cosine, output_std, output_std_ref, singular_values,
                                 spread_rank)
from ..analysis.embedding import pca
from ..config import param
from ..data.augment import Augment, digits_in_clutter, two_views
from ..data.digits import ImageData, load_image_dataset
from ..device import run_generator, seeded
from ..models.ssl import EMATarget, SSLNet, info_nce_loss, negative_cosine, simsiam_loss
from .base import Claim, Demo, Pacer, Preset, Snapshot, check_finite, finish

METHODS = ("simsiam", "byol", "simclr")
LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
# compare=<field>: the second run flips that boolean, or takes the value below.
COMPARE = ("none", "stop_grad", "predictor", "head_bn", "out_bn", "encoder_bn", "ema", "temperature")
EMA_CHOICES = (0.0, 0.5, 0.9, 0.99, 0.996, 1.0)
TEMPERATURES = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
OPTIMIZERS = {
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4),
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr, weight_decay=1e-4),
}
KNN_K, KNN_T = 20, 0.1  # weighted kNN: 20 neighbours, weights exp(cos / 0.1)


@dataclass(frozen=True)
class Config:
    method: str = param("simsiam", "simsiam: positives only, stop-gradient + predictor; byol: + momentum "
                        "(EMA) target; simclr: InfoNCE with the other images of the batch as negatives",
                        choices=METHODS)
    stop_grad: bool = param(True, "SimSiam: no gradient through the target branch z (BYOL's target never gets "
                            "one; SimCLR has none)", label="stop-gradient")
    predictor: bool = param(True, "SimSiam/BYOL: a small MLP h maps one view's z to predict the other's",
                            label="predictor")
    head_bn: bool = param(True, "BatchNorm in the hidden layer of projector and predictor",
                          label="BN in projector/predictor")
    out_bn: bool = param(False, "BatchNorm without affine at the projector output (as in SimSiam's code); "
                         "it pins each dimension's batch variance, which slows collapse and hides it in "
                         "batch statistics", label="BN at projector output")
    encoder_bn: bool = param(True, "BatchNorm in the conv encoder", label="BN in encoder")
    ema: float = param(0.99, "BYOL: target <- m*target + (1-m)*online; m=0 is SimSiam with a copy, m=1 a "
                       "frozen random target", choices=EMA_CHOICES, label="EMA momentum m (BYOL)")
    temperature: float = param(0.1, "SimCLR: the cosine similarities are divided by this before the softmax",
                               choices=TEMPERATURES, label="temperature (SimCLR)")
    batch_size: int = param(128, "images per step; SimCLR sees 2(N-1) negatives per view",
                            choices=(16, 32, 64, 128, 256), label="batch size N")
    out_dim: int = param(64, "projector output dimension d", choices=(16, 32, 64, 128), label="output dim d")
    width: int = param(16, "channels of the first conv layer (then 2x, 4x)", choices=(8, 16, 32))
    optimizer: str = param("sgd", "SGD with momentum 0.9 and weight decay 1e-4 (SimSiam's optimizer; BYOL and "
                           "SimCLR use LARS with large batches) or Adam (weight decay 1e-4)",
                           choices=tuple(OPTIMIZERS))
    lr: float = param(0.1, "learning rate", choices=LEARNING_RATES, label="learning rate")
    steps: int = param(600, "optimizer steps", lo=10, hi=5000)
    eval_every: int = param(10, "optimizer steps between evaluations (kNN, std, spectrum, PCA)", lo=1, hi=200,
                            label="steps per snapshot")
    dataset: str = param("digits", "digits: sklearn 8x8 digits upsampled; digits-clutter: the same digits at "
                         "random places on a cluttered canvas (raw pixels fail there; both views share the "
                         "clutter, so it is a shortcut the network may match instead of the digit); mnist / "
                         "fashion-mnist from $DLVIZ_DATA", choices=("digits", "digits-clutter", "mnist", "fashion-mnist"))
    input_size: int = param(16, "image side in pixels", choices=(12, 16, 20, 28), label="input size (px)")
    crop_min: float = param(0.6, "random resized crop: smallest area kept", lo=0.2, hi=1.0, step=0.05,
                            label="crop: min area")
    shift: float = param(0.1, "extra random shift, fraction of the side", lo=0.0, hi=0.4, step=0.05)
    rotation: float = param(10.0, "largest random rotation (degrees)", lo=0.0, hi=45.0, step=5.0,
                            label="rotation (deg)")
    noise: float = param(0.05, "std of added Gaussian noise", lo=0.0, hi=0.3, step=0.01)
    cutout: float = param(0.25, "side of the square zeroed in half the views, fraction of the side",
                          lo=0.0, hi=0.6, step=0.05)
    jitter: float = param(0.2, "intensity jitter (contrast and brightness)", lo=0.0, hi=0.8, step=0.05)
    compare: str = param("none", "run a second model beside this one that differs in one setting (boolean "
                         "flipped; ema -> 0.0/0.99; temperature -> 1.0/0.1), same data and views",
                         choices=COMPARE, label="compare with")
    seed: int = param(0, "seed for initialization, data order and augmentations", lo=0, hi=2**31 - 1, widget=False)

    @property
    def augment(self) -> Augment:
        return Augment(self.crop_min, self.shift, self.rotation, self.jitter, self.noise, self.cutout)


def _std_ratio(s: dict, run: str = "") -> float:
    """Output std / (1/sqrt(d)) of the main run or (``run="compare"``) of the second run of a comparison."""
    return (s["compare"] if run else s)["output_std"] / s["output_std_ref"]


def _collapsed(s: dict, run: str = "") -> bool:
    """The collapse claims' test: output std < 0.1/sqrt(d) and loss < -0.99 (the best possible is -1)."""
    return _std_ratio(s, run) < 0.1 and (s["compare"] if run else s)["loss"] < -0.99


PRESETS = {
    "simsiam": Preset("SimSiam", Config(),
                      "kNN accuracy climbs above the random encoder; the output std stays near 1/sqrt(d).",
                      Claim("by step 400 kNN accuracy is above the random encoder's and the output std is within 50% "
                            "of 1/sqrt(d)",
                            lambda s: s["knn_acc"] > s["knn_acc_random_encoder"] and abs(_std_ratio(s) - 1) <= 0.5,
                            ("knn_acc", "knn_acc_random_encoder", "output_std_ratio", "steps"), max_steps=400)),
    "simsiam-no-stop-grad": Preset(
        "SimSiam without stop-gradient collapses", Config(compare="stop_grad"),
        "Dashed/right run: the loss races to -1 while the output std falls to 0 and the PCA cloud shrinks to a point.",
        Claim("by step 100 the run without stop-gradient has collapsed (output std < 0.1/sqrt(d), loss < -0.99) "
              "while SimSiam's std stays above 0.5/sqrt(d)",
              lambda s: _collapsed(s, "compare") and _std_ratio(s) > 0.5,
              ("output_std_ratio", "compare", "steps"), max_steps=100)),
    "simsiam-no-predictor": Preset(
        "SimSiam without predictor", Config(compare="predictor"),
        "The paper reports collapse without the predictor, and this toy run collapses too (dashed/right): within "
        "about 50 steps its loss nears -1 and its output std falls below 0.1/sqrt(d).",
        Claim("by step 100 the run without predictor has collapsed (output std < 0.1/sqrt(d), loss < -0.99) while "
              "SimSiam's std stays above 0.5/sqrt(d)",
              lambda s: _collapsed(s, "compare") and _std_ratio(s) > 0.5,
              ("output_std_ratio", "compare", "steps"), max_steps=100)),
    "byol": Preset("BYOL", Config(method="byol"),
                   "A momentum (EMA) target instead of the stop-gradient copy, no negatives: watch the std and kNN.",
                   Claim("no collapse without negatives: after 400 steps the output std is within 50% of 1/sqrt(d) "
                         "and kNN accuracy is at least the random encoder's minus 1 point",
                         lambda s: abs(_std_ratio(s) - 1) <= 0.5
                         and s["knn_acc"] >= s["knn_acc_random_encoder"] - 0.01,
                         ("knn_acc", "knn_acc_random_encoder", "output_std_ratio", "steps"), max_steps=400)),
    "byol-no-bn": Preset(
        "BYOL without BatchNorm", Config(method="byol", compare="head_bn"),
        "The 'BN gives hidden negatives' debate: the dashed/right run has no BN in projector/predictor. As in "
        "BYOL's code each view goes through the network as its own batch, so BatchNorm mixes the images of one "
        "view's batch (never an image with its own other view). In this toy run the version without BN collapses "
        "within about 150 steps; BYOL with BN does not.",
        Claim("by step 200 the run without BN in projector and predictor has collapsed (output std < 0.1/sqrt(d), "
              "loss < -0.99) while BYOL with BN keeps its std within 50% of 1/sqrt(d)",
              lambda s: _collapsed(s, "compare") and abs(_std_ratio(s) - 1) <= 0.5,
              ("output_std_ratio", "compare", "steps"), max_steps=200)),
    "simclr-temperature": Preset(
        "SimCLR, temperature 0.1 versus 1.0", Config(method="simclr", compare="temperature"),
        "Same 2(N-1) negatives, temperature 0.1 (solid) vs 1.0 (dashed): both learn (kNN above the random "
        "encoder), but at 1.0 the embedding's spectrum concentrates on fewer directions (lower effective rank).",
        Claim("by step 150 both temperatures' kNN accuracy is above the random encoder's and τ = 0.1 keeps a richer "
              "spectrum: effective rank at least 1.3x the τ = 1 run's",
              lambda s: min(s["knn_acc"], s["compare"]["knn_acc"]) > s["knn_acc_random_encoder"]
              and s["effective_rank"] >= 1.3 * s["compare"]["effective_rank"],
              ("knn_acc", "effective_rank", "compare", "steps"), max_steps=150)),
}


def variant(config: Config) -> Config:
    """The second run of a comparison: ``config`` with the ``compare`` setting changed."""
    field = config.compare
    if field == "ema":
        return replace(config, ema=0.0 if config.ema != 0.0 else 0.99, compare="none")
    if field == "temperature":
        return replace(config, temperature=1.0 if config.temperature < 1.0 else 0.1, compare="none")
    return replace(config, **{field: not getattr(config, field)}, compare="none")


def run_label(config: Config) -> str:
    """A short name of one run for legends: method plus what differs from the method's defaults."""
    base = Config(method=config.method)
    parts = [config.method.replace("simsiam", "SimSiam").replace("byol", "BYOL").replace("simclr", "SimCLR")]
    for f in ("stop_grad", "predictor", "head_bn", "out_bn", "encoder_bn"):
        if config.method == "simclr" and f in ("stop_grad", "predictor"):
            continue
        if config.method == "byol" and f == "stop_grad":
            continue
        if getattr(config, f) != getattr(base, f):
            parts.append(("with " if getattr(config, f) else "no ") + f.replace("_", "-").replace("head-bn", "head BN")
                         .replace("out-bn", "output BN").replace("encoder-bn", "encoder BN"))
    if config.method == "byol":
        parts.append(f"m={config.ema:g}")
    if config.method == "simclr":
        parts.append(f"τ={config.temperature:g}")
    return ", ".join(parts)


@lru_cache(maxsize=4)
def _clutter_data(size: int) -> ImageData:
    """Digits at random places on clutter: each digit is ~60% of the canvas side, the split is the digits' own."""
    base = load_image_dataset("digits", max(8, round(size * 0.6)))
    g = torch.Generator().manual_seed(1234)
    return ImageData("digits-clutter", digits_in_clutter(base.x_train, size, g), base.y_train,
                     digits_in_clutter(base.x_test, size, g), base.y_test, base.classes)


def load_data(config: Config) -> ImageData:
    """The config's dataset (may raise DatasetMissing for the optional torchvision sets)."""
    if config.dataset == "digits-clutter":
        return _clutter_data(config.input_size)
    return load_image_dataset(config.dataset, config.input_size, n_train=3000, n_test=1000)


class _Trainer:
    """One SSL run: model, optimizer, the data generator for its batches and views, and its evaluation."""

    def __init__(self, config: Config, data: ImageData, device: torch.device):
        self.config, self.device = config, device
        self.gen = run_generator(config.seed)
        c = config
        with seeded(config.seed):
            self.net = SSLNet(c.width, c.out_dim, c.predictor and c.method != "simclr", c.head_bn, c.out_bn,
                              c.encoder_bn).to(device)
            self.target = EMATarget(self.net).to(device) if c.method == "byol" else None
        self.opt = OPTIMIZERS[c.optimizer](self.net.parameters(), c.lr)
        self.xtr, self.ytr = data.x_train.to(device), data.y_train.to(device)
        self.xte, self.yte = data.x_test.to(device), data.y_test.to(device)
        self.n_classes = len(data.classes)
        self.order, self.pos = torch.randperm(len(self.xtr), generator=self.gen), 0

    def _batch(self) -> torch.Tensor:
        b = self.config.batch_size
        if self.pos + b > len(self.order):
            self.order, self.pos = torch.randperm(len(self.xtr), generator=self.gen), 0
        idx = self.order[self.pos:self.pos + b].to(self.device)
        self.pos += b
        return self.xtr[idx]

    def train_step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step; returns (loss, batch output std in train mode) as 0-d tensors (no sync)."""
        c = self.config
        v1, v2 = two_views(self._batch(), c.augment, self.gen)
        if c.method == "simclr":  # SimCLR's code encodes both views as one batch: BatchNorm sees 2N images
            _, z, _ = self.net(torch.cat([v1, v2]))
            z1, z2 = z.chunk(2)
        else:  # SimSiam's and BYOL's code forward each view on its own: BatchNorm statistics per view
            (_, z1, p1), (_, z2, p2) = self.net(v1), self.net(v2)
        if c.method == "simsiam":
            loss = simsiam_loss(p1, p2, z1, z2, c.stop_grad)
        elif c.method == "byol":
            with torch.no_grad():
                t1, t2 = self.target(v1), self.target(v2)
            loss = 0.5 * negative_cosine(p1, t2) + 0.5 * negative_cosine(p2, t1)
        else:
            loss = info_nce_loss(z1, z2, c.temperature)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.target is not None:
            self.target.update(self.net, c.ema)
        with torch.no_grad():
            std = torch.nn.functional.normalize(z1.detach(), dim=1).std(0).mean()
        return loss.detach(), std

    @torch.no_grad()
    def evaluate(self) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """kNN of encoder features (eval mode: train set as memory, test set as queries); output std, spectrum
        and PCA of the test outputs z with BatchNorm in batch-statistics mode (as in training, running
        statistics untouched) and before an output BatchNorm, so that a constant output really shows as 0.
        """
        was = self.net.training
        self.net.eval()
        h_tr = torch.cat([self.net.encoder(x) for x in self.xtr.split(1024)])
        h_te = self.net.encoder(self.xte)
        knn = knn_accuracy_cosine(h_tr, self.ytr, h_te, self.yte, KNN_K, KNN_T, self.n_classes)
        z_te = batch_stats_outputs(self.net, self.xte)
        self.net.train(was)
        sv = singular_values(z_te)
        zn = torch.nn.functional.normalize(z_te, dim=1).cpu().numpy()
        metrics = {"knn_acc": knn, "output_std": output_std(z_te), "effective_rank": effective_rank(sv),
                   "spread_rank": spread_rank(sv), "feature_std": output_std(h_te)}
        arrays = {"sv": sv, "pca": pca(zn)[0], "features": h_te.cpu().numpy(), "embedding": zn}
        return metrics, arrays


@torch.no_grad()
def batch_stats_outputs(net: SSLNet, x: torch.Tensor) -> torch.Tensor:
    """Projector outputs (N, d) of ``x`` as one batch with BatchNorm using batch statistics, running statistics
    left as they were, and the affine-free output BatchNorm (if any) skipped: it would pin every dimension's
    variance to 1 and hide a collapse."""
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [(m.training, m.momentum) for m in bns]
    for m in bns:
        m.train()
        m.momentum = 0.0  # running <- running: nothing learned from the evaluation batch
    try:
        head = net.projector[:-1] if isinstance(net.projector[-1], torch.nn.BatchNorm1d) else net.projector
        z = head(net.encoder(x))
    finally:
        for m, (tr, mom) in zip(bns, saved):
            m.train(tr)
            m.momentum = mom
    return z


def pixel_knn(data: ImageData) -> float:
    """Weighted cosine kNN on raw pixels: the baseline any learned feature should beat."""
    return knn_accuracy_cosine(data.x_train.flatten(1), data.y_train, data.x_test.flatten(1), data.y_test,
                               KNN_K, KNN_T, len(data.classes))


def run(config: Config, device: torch.device) -> Iterator[Snapshot]:
    """Train one run (or two with ``compare``); a snapshot before training and every ``eval_every`` steps.

    Metrics of run A are ``loss, output_std, output_std_train, knn_acc, effective_rank, spread_rank`` (the
    collapse-aware one: effective rank x total variance of z/||z||), ``feature_std``; run B's
    carry a ``b_`` prefix. Arrays per run (B: ``b_`` prefix): ``sv`` (d,) singular values; ``pca`` (N_test, 2)
    PCA of the normalized test outputs; ``features`` (N_test, 4w) encoder features; ``embedding`` (N_test, d).
    """
    data = load_data(config)
    configs = [config] + ([variant(config)] if config.compare != "none" else [])
    trainers = [_Trainer(c, data, device) for c in configs]
    prefixes = ["", "b_"][:len(trainers)]
    consts = {"output_std_ref": output_std_ref(config.out_dim), "knn_acc_pixels": pixel_knn(data),
              "negatives": float(2 * (config.batch_size - 1)) if config.method == "simclr" else 0.0}

    # Pause/Reset within a fraction of a second: at batch 256, width 32 and 28 px one evaluation (kNN over the
    # training set) takes ~1 s of a CPU core and one step a large part of it, so both run through the pacer.
    pacer = Pacer()

    def snapshot(step: int, losses, stds, steps_per_s: float) -> Iterator[Snapshot]:
        """Heartbeats between the runs' evaluations; returns the snapshot."""
        metrics, arrays = dict(consts), {}
        for pre, t, loss, std in zip(prefixes, trainers, losses, stds):
            m, a = yield from pacer.call(step, t.evaluate)
            if loss is not None:
                m["loss"] = check_finite(loss, step, "loss", "Lower the learning rate and press Reset.")
                m["output_std_train"] = std
            metrics.update({pre + k: v for k, v in m.items()})
            arrays.update({pre + k: v for k, v in a.items()})
        metrics["steps_per_second"] = steps_per_s
        return Snapshot(step, metrics, arrays)

    first = finish(snapshot(0, [None] * len(trainers), [None] * len(trainers), 0.0))
    # The untrained encoder is the random-encoder baseline (same architecture, same seed).
    consts["knn_acc_random_encoder"] = first.metrics["knn_acc"]
    first.metrics["knn_acc_random_encoder"] = consts["knn_acc_random_encoder"]
    yield first

    sums = [[torch.zeros((), device=device), torch.zeros((), device=device)] for _ in trainers]
    pacer.reset()
    count, t_window = 0, pacer.clock()
    for step in range(1, config.steps + 1):
        for t, acc in zip(trainers, sums):
            loss, std = yield from pacer.call(step, t.train_step)
            acc[0] += loss
            acc[1] += std
        count += 1
        if step % config.eval_every == 0 or step == config.steps:
            losses = [float(a[0]) / count for a in sums]
            stds = [float(a[1]) / count for a in sums]
            rate = count / max(pacer.clock() - t_window, 1e-9)
            yield (yield from snapshot(step, losses, stds, rate))
            pacer.reset()
            for a in sums:
                a[0].zero_(), a[1].zero_()
            count, t_window = 0, pacer.clock()


_SUMMARY_KEYS = ("knn_acc", "knn_acc_random_encoder", "knn_acc_pixels", "output_std", "output_std_ref",
                 "output_std_train", "loss", "effective_rank", "spread_rank", "feature_std")


def _summarize(snap: Snapshot, runner) -> dict:
    c: Config = runner.config
    out = {"method": c.method, "run": run_label(c)}
    out.update({k: snap.metrics[k] for k in _SUMMARY_KEYS if k in snap.metrics})
    out["output_std_ratio"] = snap.metrics["output_std"] / snap.metrics["output_std_ref"]
    if c.compare != "none":
        out["compare"] = {"run": run_label(variant(c)),
                          **{k: snap.metrics["b_" + k] for k in _SUMMARY_KEYS if "b_" + k in snap.metrics}}
    out["steps"] = snap.step
    out["train_seconds"] = round(runner.compute_seconds, 3)
    return out


def _bench_simsiam(device: torch.device) -> dict:
    """SimSiam preset, 3 seeds, at most 60 s of training each: kNN vs random encoder and pixels, std / ref."""
    from ..runner import Runner

    rows = []
    for seed in (0, 1, 2):
        r = Runner(DEMOS[0], replace(PRESETS["simsiam"].config, seed=seed), device)
        r.run_to_end(max_seconds=60)
        m = r.latest.metrics
        rows.append({"seed": seed, "steps": r.latest.step, "train_seconds": round(r.compute_seconds, 1),
                     "knn_acc": round(m["knn_acc"], 4), "knn_acc_random_encoder": round(m["knn_acc_random_encoder"], 4),
                     "knn_acc_pixels": round(m["knn_acc_pixels"], 4),
                     "output_std_ratio": round(m["output_std"] / m["output_std_ref"], 3)})
    return {"simsiam_knn_acc_median": float(np.median([r["knn_acc"] for r in rows])),
            "simsiam_seeds_meeting_target": sum(r["knn_acc"] >= 0.9 and r["knn_acc"] > r["knn_acc_random_encoder"]
                                                and abs(r["output_std_ratio"] - 1) <= 0.5 for r in rows),
            "simsiam_runs": rows}


def _bench_no_stop_grad(device: torch.device) -> dict:
    """SimSiam without stop-gradient, 3 seeds, 300 steps: the first step with std < 0.1/sqrt(d) and loss <= -0.99."""
    from ..runner import Runner

    rows = []
    cfg = replace(PRESETS["simsiam"].config, stop_grad=False, steps=300, eval_every=10)
    for seed in (0, 1, 2):
        r = Runner(DEMOS[0], replace(cfg, seed=seed), device)
        hit = None
        r.run_to_end(until=lambda s: s.step > 0 and s.metrics["loss"] <= -0.99
                     and s.metrics["output_std"] < 0.1 * s.metrics["output_std_ref"])
        m = r.latest.metrics
        if r.latest.step > 0 and m["loss"] <= -0.99 and m["output_std"] < 0.1 * m["output_std_ref"]:
            hit = r.latest.step
        rows.append({"seed": seed, "collapsed_at_step": hit, "loss": round(m["loss"], 4),
                     "output_std_ratio": round(m["output_std"] / m["output_std_ref"], 4),
                     "knn_acc": round(m["knn_acc"], 4), "train_seconds": round(r.compute_seconds, 1)})
    return {"no_stop_grad_seeds_collapsed_within_300": sum(r["collapsed_at_step"] is not None for r in rows),
            "no_stop_grad_runs": rows}


DEMOS = [Demo(
    name="ssl", title="Self-supervised learning: collapse or not",
    summary="SimSiam, BYOL and SimCLR train live on digits: loss, output std vs 1/sqrt(d), kNN accuracy, spectrum.",
    config_cls=Config, presets=PRESETS, run=run, summarize=_summarize,
    benchmarks={"ssl simsiam knn in 60s": _bench_simsiam, "ssl no stop-grad collapse": _bench_no_stop_grad},
)]

__all__ = ["Config", "PRESETS", "DEMOS", "run", "variant", "run_label", "load_data", "pixel_knn"]
