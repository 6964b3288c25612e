"""Self-supervised learning, live: SimSiam, BYOL, SimCLR, MoCo (v1/v2) and InstDisc on digits; collapse versus
non-collapse, and where the negatives of a contrastive method come from (the batch, a queue, a memory bank).

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
from ..data.augment import Augment, digits_in_clutter, random_view, two_views
from ..data.digits import ImageData, load_image_dataset
from ..device import run_generator, seeded
from ..i18n import N_, Msg
from ..models.ssl import (EMATarget, KeyQueue, MemoryBank, SSLNet, info_nce_loss, info_nce_queue, key_drift, mlp,
                          negative_cosine, simsiam_loss)
from .base import Claim, Demo, Pacer, Preset, Snapshot, check_finite, finish, snapshots

METHODS = ("simsiam", "byol", "simclr", "moco", "instdisc")
CONTRASTIVE = ("simclr", "moco", "instdisc")  # methods with negatives (a temperature)
LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
# compare=<field>: the second run flips that boolean, or takes the value below.
# Marked N_(): the compare selectbox shows them translated (format_func=_); the values stay (links, the CLI).
COMPARE = (N_("none"), N_("stop_grad"), N_("predictor"), N_("head_bn"), N_("out_bn"), N_("encoder_bn"), N_("ema"),
           N_("temperature"), N_("moco_v2"), N_("method"))
EMA_CHOICES = (0.0, 0.5, 0.9, 0.99, 0.996, 0.999, 1.0)
QUEUE_SIZES = (64, 128, 256, 512, 1024, 2048, 4096)
BANK_MOMENTA = (0.0, 0.5, 0.9)
PROXIMAL = (0.0, 0.1, 0.3, 1.0, 3.0)
TEMPERATURES = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
OPTIMIZERS = {
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4),
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr, weight_decay=1e-4),
}
DATASETS = ("digits", "digits-clutter", "digits-clutter-views", "mnist", "fashion-mnist")
KNN_K, KNN_T = 20, 0.1  # weighted kNN: 20 neighbours, weights exp(cos / 0.1)
BN_GROUPS = 4  # MoCo's Shuffle BN: the batch is split over this many "devices", each with its own BN statistics


@dataclass(frozen=True)
class Config:
    method: str = param("simsiam", "simsiam: positives only, stop-gradient + predictor; byol: + momentum "
                        "(EMA) target; simclr: InfoNCE with the other images of the batch as negatives; moco: "
                        "InfoNCE against a queue of K keys from a momentum key encoder; instdisc: InfoNCE against "
                        "K features sampled from a memory bank of one feature per training image",
                        choices=METHODS, label="SSL method")
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
    ema: float = param(0.99, "BYOL's target / MoCo's key encoder: θk <- m θk + (1-m) θq; m=0 copies the online "
                       "network every step, m=1 freezes a random one", choices=EMA_CHOICES,
                       label="momentum m (BYOL, MoCo)")
    temperature: float = param(0.1, "SimCLR, MoCo, InstDisc: the cosine similarities are divided by this before "
                               "the softmax", choices=TEMPERATURES, label="temperature τ")
    queue_size: int = param(1024, "MoCo: keys in the FIFO queue; InstDisc: negatives sampled from the bank per step",
                            choices=QUEUE_SIZES, label="negatives K (MoCo, InstDisc)")
    moco_v2: bool = param(True, "MoCo v2: MLP projection head (BatchNorm in its hidden layer if 'BN in "
                          "projector' is on) and stronger augmentation (jitter at least 0.4, random blur); off: MoCo "
                          "v1's linear head and the augmentation below", label="MoCo v2")
    bank_momentum: float = param(0.5, "InstDisc: v_i <- normalize(m v_i + (1-m) f_i) when image i is seen (the "
                                 "paper: 0.5)", choices=BANK_MOMENTA, label="bank momentum (InstDisc)")
    proximal: float = param(0.0, "InstDisc: proximal term λ ||f_i - v_i||² that keeps a feature near its bank "
                            "entry (0: off)", choices=PROXIMAL, label="proximal λ (InstDisc)")
    batch_size: int = param(128, "images per step; SimCLR sees 2(N-1) negatives per view",
                            choices=(16, 32, 64, 128, 256), label="batch size N")
    out_dim: int = param(64, "projector output dimension d", choices=(16, 32, 64, 128), label="output dim d")
    width: int = param(16, "channels of the first conv layer (then 2x, 4x)", choices=(8, 16, 32), label="width")
    optimizer: str = param("sgd", "SGD with momentum 0.9 and weight decay 1e-4 (SimSiam's optimizer; BYOL and "
                           "SimCLR use LARS with large batches) or Adam (weight decay 1e-4)",
                           choices=tuple(OPTIMIZERS), label="optimizer")
    lr: float = param(0.1, "learning rate", choices=LEARNING_RATES, label="learning rate")
    steps: int = param(600, "optimizer steps", lo=10, hi=5000, label="steps")
    eval_every: int = param(10, "optimizer steps between evaluations (kNN, std, spectrum, PCA)", lo=1, hi=200,
                            label="steps per snapshot")
    dataset: str = param("digits", "digits: sklearn 8x8 digits upsampled; digits-clutter: the same digits at "
                         "random places on a cluttered canvas (raw pixels fail there; both views share the "
                         "clutter, so it is a shortcut the network may match instead of the digit); "
                         "digits-clutter-views: the same test images, but in training every view pastes the digit "
                         "at a new place on its own fresh clutter, so only the digit is shared; mnist / "
                         "fashion-mnist from $DLVIZ_DATA", choices=DATASETS, label="dataset")
    input_size: int = param(16, "image side in pixels", choices=(12, 16, 20, 28), label="input size (px)")
    crop_min: float = param(0.6, "random resized crop: smallest area kept", lo=0.2, hi=1.0, step=0.05,
                            label="crop: min area")
    shift: float = param(0.1, "extra random shift, fraction of the side", lo=0.0, hi=0.4, step=0.05, label="shift")
    rotation: float = param(10.0, "largest random rotation (degrees)", lo=0.0, hi=45.0, step=5.0,
                            label="rotation (deg)")
    noise: float = param(0.05, "std of added Gaussian noise", lo=0.0, hi=0.3, step=0.01, label="noise")
    cutout: float = param(0.25, "side of the square zeroed in half the views, fraction of the side",
                          lo=0.0, hi=0.6, step=0.05, label="cutout")
    jitter: float = param(0.2, "intensity jitter (contrast and brightness)", lo=0.0, hi=0.8, step=0.05,
                          label="jitter")
    compare: str = param("none", "run a second model beside this one that differs in one setting (boolean "
                         "flipped; ema -> 0.0/0.99; temperature -> 1.0/0.1; method: MoCo <-> InstDisc, others "
                         "-> MoCo), same data and views",
                         choices=COMPARE, label="compare with")
    seed: int = param(0, "seed for initialization, data order and augmentations", lo=0, hi=2**31 - 1, widget=False)

    @property
    def augment(self) -> Augment:
        return Augment(self.crop_min, self.shift, self.rotation, self.jitter, self.noise, self.cutout)

    @property
    def strong(self) -> bool:
        """MoCo v2's stronger augmentation (jitter at least 0.4, random blur)."""
        return self.method == "moco" and self.moco_v2

    @property
    def train_augment(self) -> Augment:
        a = self.augment
        return replace(a, jitter=max(a.jitter, 0.4)) if self.strong else a


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
    "moco": Preset(
        "MoCo v2: a queue of keys from a momentum encoder", Config(method="moco"),
        "InfoNCE against a queue of 1024 keys; watch kNN rise above the random encoder and the stored keys stay "
        "consistent (cosine near 1) while the key encoder trails the query encoder.",
        Claim("by step 400 MoCo's kNN accuracy is at least 2 points above the random encoder's",
              lambda s: s["knn_acc"] >= s["knn_acc_random_encoder"] + 0.02,
              ("knn_acc", "knn_acc_random_encoder", "neg_consistency", "steps"), max_steps=400)),
    "moco-momentum": Preset(
        "MoCo: momentum 0.99 versus 0 (the paper's ablation)", Config(method="moco", compare="ema"),
        "Dashed/right run: m = 0, the key encoder is a copy of the query encoder at every step, so the queue holds "
        "keys from 8 different encoders. The paper's run fails to train; at this toy scale it trains, but slower.",
        Claim("by step 300 the run with m = 0.99 has a lower loss (by at least 0.3) and a higher kNN accuracy than "
              "the run with m = 0",
              lambda s: s["loss"] <= s["compare"]["loss"] - 0.3 and s["knn_acc"] > s["compare"]["knn_acc"],
              ("loss", "knn_acc", "compare", "steps"), max_steps=300)),
    "instdisc-vs-moco": Preset(
        "Memory bank (InstDisc) versus queue (MoCo): stale versus consistent negatives",
        Config(method="moco", compare="method"),
        "Dashed/right run: InstDisc's memory bank. Its entries are an epoch old and were written by many past "
        "encoders; MoCo's queued keys are at most K/N steps old and come from a slowly moving key encoder.",
        Claim("by step 200 the bank's negatives are older on average than the queue's and less consistent "
              "(cosine with the current network's output for the same view) than MoCo's keys",
              lambda s: s["compare"]["neg_age"] > s["neg_age"]
              and s["compare"]["neg_consistency"] < s["neg_consistency"],
              ("neg_age", "neg_consistency", "knn_acc", "compare", "steps"), max_steps=200)),
}


def queue_sweep(config: Config, sizes=(64, 256, 1024, 4096), steps: int = 150, seeds=(0,),
                device: torch.device | str = "cpu") -> list[dict]:
    """MoCo's kNN accuracy at each queue size K: one short run per (K, seed) with ``config``'s other settings.
    Returns rows {queue_size, seed, knn_acc, knn_acc_random_encoder, loss}."""
    rows = []
    for seed in seeds:
        for k in sizes:
            cfg = replace(config, method="moco", queue_size=k, steps=steps, eval_every=steps, compare="none",
                          seed=seed)
            last = None
            for last in snapshots(run(cfg, torch.device(device))):
                if last.step == 0:
                    random_knn = last.metrics["knn_acc"]
            rows.append({"queue_size": k, "seed": seed, "knn_acc": last.metrics["knn_acc"],
                         "knn_acc_random_encoder": random_knn, "loss": last.metrics["loss"]})
    return rows


def variant(config: Config) -> Config:
    """The second run of a comparison: ``config`` with the ``compare`` setting changed."""
    field = config.compare
    if field == "ema":
        return replace(config, ema=0.0 if config.ema != 0.0 else 0.99, compare="none")
    if field == "temperature":
        return replace(config, temperature=1.0 if config.temperature < 1.0 else 0.1, compare="none")
    if field == "method":
        return replace(config, method="instdisc" if config.method == "moco" else "moco", compare="none")
    return replace(config, **{field: not getattr(config, field)}, compare="none")


NAMES = {"simsiam": "SimSiam", "byol": "BYOL", "simclr": "SimCLR", "moco": "MoCo", "instdisc": "InstDisc"}


# "compare with" settings a method does not have: its two runs would be the same
_NO_EFFECT = {"simclr": ("stop_grad", "predictor", "ema", "moco_v2"), "moco": ("stop_grad", "predictor"),
              "instdisc": ("stop_grad", "predictor", "ema", "moco_v2"),
              "simsiam": ("moco_v2", "temperature"), "byol": ("moco_v2", "temperature", "stop_grad")}


def compare_warning(config: Config) -> Msg | None:
    """Why a comparison shows two identical runs (a setting the method does not have), or None."""
    if config.compare not in _NO_EFFECT.get(config.method, ()):
        return None
    if config.method == "byol" and config.compare == "stop_grad":
        return Msg(N_("BYOL's target never receives gradients, so the stop-gradient switch changes nothing: "
                      "compare 'ema' or 'head_bn' instead."))
    if config.method == "byol":
        return Msg(N_("BYOL has no {setting}: both runs are the same."), setting=Msg(config.compare))
    return Msg(N_("{method} has no {setting}: both runs are the same. Pick another 'compare with' setting."),
               method=NAMES[config.method], setting=Msg(config.compare))


_SWITCHES = {"stop_grad": N_("stop-grad"), "predictor": N_("predictor"), "head_bn": N_("head BN"),
             "out_bn": N_("output BN"), "encoder_bn": N_("encoder BN")}


def run_label(config: Config) -> Msg:
    """A short name of one run for legends: method plus what differs from the method's defaults. A :class:`Msg`
    (English as a str: the CLI's JSON), shown translated with ``tr``."""
    base = Config(method=config.method)
    parts: list = [NAMES[config.method]]
    if config.method == "moco":
        parts = ["MoCo v2" if config.moco_v2 else "MoCo v1", f"m={config.ema:g}", f"K={config.queue_size}",
                 f"τ={config.temperature:g}"]
    if config.method == "instdisc":
        parts += [Msg(N_("bank m={m}"), m=f"{config.bank_momentum:g}"), f"K={config.queue_size}",
                  f"τ={config.temperature:g}"]
        if config.proximal:
            parts.append(f"λ={config.proximal:g}")
    for f, name in _SWITCHES.items():
        if config.method in CONTRASTIVE and f in ("stop_grad", "predictor"):
            continue
        if (config.method == "moco" and not config.moco_v2) and f == "head_bn":
            continue
        if config.method == "byol" and f == "stop_grad":
            continue
        if getattr(config, f) != getattr(base, f):
            parts.append(Msg(N_("with {part}") if getattr(config, f) else N_("no {part}"), part=Msg(name)))
    if config.method == "byol":
        parts.append(f"m={config.ema:g}")
    if config.method == "simclr":
        parts.append(f"τ={config.temperature:g}")
    # A template that is not a msgid: tr() joins the translated parts.
    return Msg(", ".join(f"{{p{i}}}" for i in range(len(parts))), **{f"p{i}": p for i, p in enumerate(parts)})


def _clutter_digits(size: int) -> ImageData:
    """The digits at ~60% of the canvas side: what gets pasted on the clutter."""
    return load_image_dataset("digits", max(8, round(size * 0.6)))


@lru_cache(maxsize=4)
def _clutter_data(size: int) -> ImageData:
    """Digits at random places on clutter: each digit is ~60% of the canvas side, the split is the digits' own."""
    base = _clutter_digits(size)
    g = torch.Generator().manual_seed(1234)
    return ImageData("digits-clutter", digits_in_clutter(base.x_train, size, g), base.y_train,
                     digits_in_clutter(base.x_test, size, g), base.y_test, base.classes)


def load_data(config: Config) -> ImageData:
    """The config's dataset (may raise DatasetMissing for the optional torchvision sets)."""
    if config.dataset in ("digits-clutter", "digits-clutter-views"):
        return _clutter_data(config.input_size)
    return load_image_dataset(config.dataset, config.input_size, n_train=3000, n_test=1000)


class _Trainer:
    """One SSL run: model, optimizer, the data generator for its batches and views, and its evaluation."""

    def __init__(self, config: Config, data: ImageData, device: torch.device):
        self.config, self.device = config, device
        self.gen = run_generator(config.seed)
        c = config
        with seeded(config.seed):
            self.net = SSLNet(c.width, c.out_dim, c.predictor and c.method not in CONTRASTIVE, c.head_bn, c.out_bn,
                              c.encoder_bn)
            if c.method == "moco" and not c.moco_v2:
                self.net.projector = torch.nn.Linear(self.net.encoder.dim, c.out_dim)  # v1: linear
            elif c.method in ("moco", "instdisc"):
                self.net.projector = mlp(self.net.encoder.dim, self.net.encoder.dim, c.out_dim, bn=c.head_bn)  # v2
            self.net.to(device)
            self.target = EMATarget(self.net).to(device) if c.method in ("byol", "moco") else None
        self.opt = OPTIMIZERS[c.optimizer](self.net.parameters(), c.lr)
        self.xtr, self.ytr = data.x_train.to(device), data.y_train.to(device)
        self.xte, self.yte = data.x_test.to(device), data.y_test.to(device)
        self.n_classes = len(data.classes)
        self.order, self.pos = torch.randperm(len(self.xtr), generator=self.gen), 0
        # digits-clutter-views: the bare digits (same order as the cluttered training set), pasted anew per view
        self.bare = _clutter_digits(c.input_size).x_train if c.dataset == "digits-clutter-views" else None
        self.steps_done = 0
        self.queue = self.bank = None
        if c.method == "moco":
            self.queue = KeyQueue(c.queue_size, c.out_dim, device)
            self.queue_views = torch.zeros(c.queue_size, *self.xtr.shape[1:], device=device)
            self._fill_queue()
        elif c.method == "instdisc":
            self.bank = MemoryBank(len(self.xtr), c.out_dim, self.gen, device)
            self.bank_views = self.xtr.clone()  # the view that last wrote each entry (for its consistency)

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(images (B, 1, S, S), their indices in the training set (B,))."""
        b = self.config.batch_size
        if self.pos + b > len(self.order):
            self.order, self.pos = torch.randperm(len(self.xtr), generator=self.gen), 0
        idx = self.order[self.pos:self.pos + b].to(self.device)
        self.pos += b
        return self.xtr[idx], idx

    @torch.no_grad()
    def _fill_queue(self) -> None:
        """Start the queue full of keys of the untrained key encoder (made "at step 0"). MoCo's code starts it
        with random unit vectors; here that is a trap: the first K/N steps then see negatives unrelated to any
        image, and pulling q toward k alone collapses the output before real keys arrive."""
        c, nf = self.config, torch.nn.functional.normalize
        left = c.queue_size
        while left > 0:
            idx = torch.randint(0, len(self.xtr), (min(c.batch_size, left),), generator=self.gen).to(self.device)
            v = self._two_views(self.xtr[idx], idx, c.train_augment)[1]
            if c.strong:
                v = random_blur(v, self.gen)
            slots = self.queue.enqueue(nf(self.target(v), dim=1), 0, idx)
            self.queue_views[slots] = v
            left -= len(idx)

    def _two_views(self, x: torch.Tensor, idx: torch.Tensor, aug: Augment) -> tuple[torch.Tensor, torch.Tensor]:
        """Two augmented views of the batch; with fresh clutter, each view first pastes the bare digit at a new
        place on its own clutter."""
        if self.bare is None:
            return two_views(x, aug, self.gen)
        bare, size = self.bare[idx.cpu()], x.shape[-1]
        b, s = len(bare), bare.shape[-1]
        oy = torch.randint(0, size - s + 1, (b,), generator=self.gen)
        ox = torch.randint(0, size - s + 1, (b,), generator=self.gen)
        placed = torch.zeros(b, 1, size, size)
        for i in range(b):  # one place per image, shared by both views (the crop and shift then move each view)
            placed[i, 0, oy[i]:oy[i] + s, ox[i]:ox[i] + s] = bare[i, 0]
        views = [torch.maximum(digits_in_clutter(torch.zeros_like(bare), size, self.gen), placed) for _ in range(2)]
        return tuple(random_view(v.to(self.device), aug, self.gen) for v in views)

    def train_step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step; returns (loss, batch output std in train mode) as 0-d tensors (no sync)."""
        c = self.config
        self.steps_done += 1
        x, idx = self._batch()
        if c.method in ("moco", "instdisc"):
            return self._negatives_step(x, idx)
        v1, v2 = self._two_views(x, idx, c.augment)
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

    def _negatives_step(self, x: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """MoCo: query q = f_q(view 1), key k = f_k(view 2) (no gradient), InfoNCE against the queue, then the
        momentum update of f_k and enqueue k. InstDisc: one view; its feature f must pick its own bank entry
        v_i among K sampled bank entries; then v_i <- normalize(m v_i + (1-m) f)."""
        c, step = self.config, self.steps_done
        nf = torch.nn.functional.normalize
        if c.method == "moco":
            v1, v2 = self._two_views(x, idx, c.train_augment)
            if c.strong:
                v1, v2 = random_blur(v1, self.gen), random_blur(v2, self.gen)
            # Shuffle BN (MoCo Sec. 3.3) on BN_GROUPS virtual devices: queries in groups in batch order, keys in
            # groups of a shuffled order, so q_i and k_i never share BatchNorm statistics.
            q = nf(torch.cat([self.net(v)[1] for v in v1.chunk(BN_GROUPS)]), dim=1)
            with torch.no_grad():
                perm = torch.randperm(len(v2), generator=self.gen).to(self.device)
                k = torch.empty_like(q)
                k[perm] = nf(torch.cat([self.target(v) for v in v2[perm].chunk(BN_GROUPS)]), dim=1)
            loss = info_nce_queue(q, k, self.queue.keys(), c.temperature)
        else:
            v1 = self._two_views(x, idx, c.augment)[0]
            q = nf(self.net(v1)[1], dim=1)
            neg_idx = self.bank.sample(c.queue_size, self.gen)
            old = self.bank.bank[idx]
            loss = info_nce_queue(q, old, self.bank.bank[neg_idx], c.temperature,
                                  negative_mask=idx[:, None] == neg_idx[None, :])
            if c.proximal:
                loss = loss + c.proximal * (q - old).pow(2).sum(1).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if c.method == "moco":
            self.target.update(self.net, c.ema)
            slots = self.queue.enqueue(k, step, idx)
            self.queue_views[slots] = v2[-c.queue_size:]
        else:
            self.bank.update(idx, q, c.bank_momentum, step)
            self.bank_views[idx] = v1
        with torch.no_grad():
            std = q.detach().std(0).mean()
        return loss.detach(), std

    @torch.no_grad()
    def negatives_view(self) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """Where the negatives come from: their age in steps, and their consistency, the mean cosine between up to
        256 stored negatives and what the network that makes them (MoCo: the key encoder; InstDisc: the encoder
        itself) outputs now for the same input (the stored view); MoCo also the key encoder's drift."""
        nf = torch.nn.functional.normalize
        step = self.steps_done
        g = torch.Generator().manual_seed(12345)  # the same probe slots every time, outside the run's own stream
        if self.queue is not None:
            ages = self.queue.ages(step)
            real = (self.queue.index >= 0).nonzero().flatten().cpu()
            if len(real):
                pick = real[torch.randperm(len(real), generator=g)[:256]].to(self.device)
                now = nf(batch_stats_outputs(self.target, self.queue_views[pick]), dim=1)
                cons = float((now * self.queue.buf[pick]).sum(1).mean())
            else:
                cons = float("nan")
            drift = key_drift(torch.nn.ModuleList([self.net.encoder, self.net.projector]), self.target)
            return ({"neg_age": float(ages.float().mean()), "neg_age_max": float(ages.max()), "neg_consistency": cons,
                     "key_drift": drift}, {"neg_ages": ages.cpu().numpy()})
        ages = step - self.bank.step
        pick = torch.randperm(len(ages), generator=g)[:256].to(self.device)
        now = nf(batch_stats_outputs(self.net, self.bank_views[pick]), dim=1)
        cons = float((now * self.bank.bank[pick]).sum(1).mean())
        return ({"neg_age": float(ages.float().mean()), "neg_age_max": float(ages.max()), "neg_consistency": cons},
                {"neg_ages": ages.cpu().numpy()})

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
        if self.queue is not None or self.bank is not None:
            m, a = self.negatives_view()
            metrics.update(m)
            arrays.update(a)
        return metrics, arrays


def random_blur(x: torch.Tensor, gen: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """MoCo v2's random Gaussian blur, for small images: with probability ``p`` a 3x3 Gaussian of sigma in
    [0.1, 1.0] pixels (each image draws its own)."""
    b = len(x)
    sigma = (0.1 + 0.9 * torch.rand(b, generator=gen)).to(x.device).view(b, 1, 1)
    on = (torch.rand(b, generator=gen) < p).to(x.device)
    r = torch.tensor([-1.0, 0.0, 1.0], device=x.device)
    k1 = torch.exp(-r.view(1, 1, 3) ** 2 / (2 * sigma**2))  # (B, 1, 3)
    k2 = k1.transpose(1, 2) * k1  # (B, 3, 3)
    k2 = k2 / k2.sum((1, 2), keepdim=True)
    blurred = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
                                         .transpose(0, 1), k2.unsqueeze(1), groups=b).transpose(0, 1)
    return torch.where(on.view(b, 1, 1, 1), blurred, x)


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
        proj = net.projector
        head = proj[:-1] if isinstance(proj, torch.nn.Sequential) and isinstance(proj[-1], torch.nn.BatchNorm1d) \
            else proj
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
              "negatives": {"simclr": float(2 * (config.batch_size - 1)), "moco": float(config.queue_size),
                            "instdisc": float(config.queue_size)}.get(config.method, 0.0)}

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
                 "output_std_train", "loss", "effective_rank", "spread_rank", "feature_std", "neg_age", "neg_age_max",
                 "neg_consistency", "key_drift")


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


UNSEEN = (200, 201, 202, 203, 204)  # the MoCo / InstDisc recipes were tuned on seeds 0-4


def _bench_moco(device: torch.device) -> dict:
    """MoCo preset on 5 unseen seeds, at most 60 s of training each: kNN against the random encoder."""
    from ..runner import Runner

    rows = []
    for seed in UNSEEN:
        r = Runner(DEMOS[0], replace(PRESETS["moco"].config, seed=seed), device)
        r.run_to_end(max_seconds=60)
        m = r.latest.metrics
        rows.append({"seed": seed, "steps": r.latest.step, "train_seconds": round(r.compute_seconds, 1),
                     "knn_acc": round(m["knn_acc"], 4), "knn_acc_random_encoder": round(m["knn_acc_random_encoder"], 4),
                     "gain_points": round(100 * (m["knn_acc"] - m["knn_acc_random_encoder"]), 2)})
    return {"moco_knn_gain_points_median": float(np.median([r["gain_points"] for r in rows])),
            "moco_seeds_gain_at_least_2_points": sum(r["gain_points"] >= 2 for r in rows), "moco_runs": rows}


def _bench_moco_momentum(device: torch.device) -> dict:
    """The momentum ablation on 5 unseen seeds, 300 steps: m = 0.99 against m = 0 (loss and kNN margins)."""
    from ..runner import Runner

    rows = []
    for seed in UNSEEN:
        r = Runner(DEMOS[0], replace(PRESETS["moco-momentum"].config, seed=seed, steps=300), device)
        r.run_to_end()
        m = r.latest.metrics
        rows.append({"seed": seed, "loss_m0.99": round(m["loss"], 3), "loss_m0": round(m["b_loss"], 3),
                     "knn_m0.99": round(m["knn_acc"], 4), "knn_m0": round(m["b_knn_acc"], 4),
                     "knn_margin_points": round(100 * (m["knn_acc"] - m["b_knn_acc"]), 2)})
    margins = [r["knn_margin_points"] for r in rows]
    return {"moco_momentum_knn_margin_points_mean": float(np.mean(margins)),
            "moco_momentum_knn_margin_points_min": float(np.min(margins)),
            "moco_momentum_loss_margin_mean": float(np.mean([r["loss_m0"] - r["loss_m0.99"] for r in rows])),
            "moco_momentum_runs": rows}


def _bench_queue_sweep(device: torch.device) -> dict:
    """kNN accuracy against K (64 .. 4096), 200 steps of the MoCo preset, 5 unseen seeds."""
    rows = queue_sweep(PRESETS["moco"].config, (64, 256, 1024, 4096), 200, UNSEEN, device)
    means = {k: round(float(np.mean([r["knn_acc"] for r in rows if r["queue_size"] == k])), 4)
             for k in (64, 256, 1024, 4096)}
    vals = list(means.values())
    return {"moco_knn_by_queue_size": means, "moco_queue_sweep_monotone": all(a <= b for a, b in zip(vals, vals[1:])),
            "moco_queue_sweep_runs": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                                      for r in rows]}


DEMOS = [Demo(
    name="ssl", title="Self-supervised learning: collapse or not",
    summary="SimSiam, BYOL, SimCLR, MoCo and InstDisc train live on digits: loss, output std vs 1/sqrt(d), kNN "
            "accuracy, spectrum, the age and consistency of the negatives.",
    config_cls=Config, presets=PRESETS, run=run, summarize=_summarize,
    benchmarks={"ssl simsiam knn in 60s": _bench_simsiam, "ssl no stop-grad collapse": _bench_no_stop_grad,
                "ssl moco knn in 60s": _bench_moco, "ssl moco momentum ablation": _bench_moco_momentum,
                "ssl moco queue sweep": _bench_queue_sweep},
)]

__all__ = ["Config", "PRESETS", "DEMOS", "run", "variant", "run_label", "load_data", "pixel_knn", "queue_sweep",
           "random_blur"]
