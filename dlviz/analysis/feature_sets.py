"""Feature sets the explorer embeds without any page having trained: raw pixels, a random-initialized network,
and (for the CLI) a LeNet trained by the CNN demo's own generator.

Every set covers all 1,797 sklearn digits (the 1,437 training digits first, then the 360 test digits), so the
target "t-SNE of all 1,797 digits" is measured on exactly what the page shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch

from ..data.digits import load_digits_split
from ..device import seeded
from ..i18n import N_, Msg
from ..models.lenet import LeNet

CNN_INPUT = 28  # the CNN page's default input size: the random and trained networks see the same images


@dataclass(frozen=True)
class FeatureSet:
    """Features of N examples: features (N, D) float32; labels (N,) int; images (N, H, W) in [0, 1] or None.

    Same fields as ``dlviz.ui.feature_sources.FeatureSource`` (which pages publish), so either can be embedded.
    """

    name: str
    features: np.ndarray
    labels: np.ndarray
    images: np.ndarray | None = None
    class_names: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""


def _all_digits(size: int) -> tuple[torch.Tensor, np.ndarray]:
    d = load_digits_split(size)
    return torch.cat([d.x_train, d.x_test]), torch.cat([d.y_train, d.y_test]).numpy()


def _images() -> np.ndarray:
    return _all_digits(8)[0][:, 0].numpy()


def pixel_features(seed: int = 0) -> FeatureSet:
    """The 64 raw pixel intensities of every digit (the baseline every learned feature must beat)."""
    x, y = _all_digits(8)
    return FeatureSet(N_("raw pixels (64-d)"), x.flatten(1).numpy().astype(np.float32), y, x[:, 0].numpy(),
                      tuple(str(i) for i in range(10)), Msg(N_("8x8 intensities in [0, 1], no learning at all")))


def _lenet_features(model: LeNet, device: torch.device | str = "cpu") -> np.ndarray:
    x, _ = _all_digits(CNN_INPUT)
    was = model.training
    model.eval()
    with torch.no_grad():
        feats = torch.cat([model.features(b.to(device)).cpu() for b in x.split(512)])
    model.train(was)
    return feats.numpy().astype(np.float32)


def random_network_features(seed: int = 0, device: torch.device | str = "cpu") -> FeatureSet:
    """84-d penultimate features of a LeNet with random (PyTorch default) initial weights, never trained."""
    with seeded(seed):
        model = LeNet(CNN_INPUT, "relu", "max").to(device)
    _, y = _all_digits(8)
    return FeatureSet(N_("random-initialized LeNet (84-d)"), _lenet_features(model, device), y, _images(),
                      tuple(str(i) for i in range(10)),
                      Msg(N_("untrained LeNet (ReLU, max pooling, seed {seed}): a random projection through convolutions"),
                          seed=seed))


def trained_cnn_features(seed: int = 0, device: torch.device | str = "cpu", epochs: int = 3) -> FeatureSet:
    """84-d penultimate features of a LeNet trained by the CNN demo's generator (Modern preset, ``epochs``)."""
    from ..demos.cnn import PRESETS
    from ..demos import get_demo
    from ..runner import Runner

    config = replace(PRESETS["modern"].config, seed=seed, epochs=epochs, eval_every=100, input_size=CNN_INPUT)
    runner = Runner(get_demo("cnn"), config, device)
    runner.run_to_end()
    model = LeNet(CNN_INPUT, config.activation, config.pool)
    model.load_state_dict(runner.latest.arrays["state"])
    _, y = _all_digits(8)
    acc = runner.latest.metrics["test_acc"]
    return FeatureSet(N_("trained LeNet (84-d)"), _lenet_features(model), y, _images(),
                      tuple(str(i) for i in range(10)),
                      Msg(N_("LeNet after {epochs} epochs of the CNN demo (test accuracy {acc}); 1,437 of these "
                             "digits were seen in training"), epochs=epochs, acc=f"{acc:.1%}"))


# Named registry: feeds the demo's `source` choices (CLI --set source=...) and the page's built-in sources.
BUILTIN: dict[str, Callable[..., FeatureSet]] = {
    "pixels": pixel_features,
    "random": random_network_features,
    "cnn": trained_cnn_features,
}


def load_builtin(name: str, seed: int = 0, device: torch.device | str = "cpu") -> FeatureSet:
    """A built-in feature set by registry name (``pixels``, ``random``, ``cnn``)."""
    if name not in BUILTIN:
        raise KeyError(f"unknown feature source {name!r}; known: {', '.join(BUILTIN)}")
    return BUILTIN[name](seed) if name == "pixels" else BUILTIN[name](seed, device)


def subsample(fs: FeatureSet, n: int, seed: int = 0) -> FeatureSet:
    """At most ``n`` examples, stratified-ish by a seeded permutation (order kept), for quick views and tests."""
    if n >= len(fs.labels):
        return fs
    idx = np.sort(np.random.default_rng(seed).permutation(len(fs.labels))[:n])
    return replace(fs, features=fs.features[idx], labels=fs.labels[idx],
                   images=None if fs.images is None else fs.images[idx])


def from_published(source) -> FeatureSet:
    """A FeatureSet from a page's published ``FeatureSource`` (duck-typed: no streamlit import here)."""
    cfg = ", ".join(f"{k}={v}" for k, v in list(dict(source.config).items())[:6])
    images = None if source.images is None else np.asarray(source.images, dtype=np.float32)
    if images is not None and images.ndim == 4:  # (N, 1, H, W) -> (N, H, W)
        images = images[:, 0]
    n_cls = int(np.max(source.labels)) + 1 if len(source.labels) else 0
    names = tuple(source.class_names) or tuple(str(i) for i in range(n_cls))
    return FeatureSet(source.name, np.asarray(source.features, dtype=np.float32).reshape(len(source.features), -1),
                      np.asarray(source.labels).astype(int), images, names,
                      Msg(N_("published by the {page} page at step {step}"), page=Msg(source.page), step=source.step)
                      if not cfg else Msg(N_("published by the {page} page at step {step} ({config})"),
                                          page=Msg(source.page), step=source.step, config=cfg))


def problem(fs: FeatureSet) -> str | None:
    """What is wrong with a feature set, in words (None when it can be embedded)."""
    f, y = fs.features, fs.labels
    if f.ndim != 2 or len(f) < 10:
        return Msg(N_("'{name}' has {n} examples of shape {shape}: at least 10 feature vectors are needed."),
                   name=Msg(fs.name), n=len(f), shape=f.shape[1:])
    if len(y) != len(f):
        return Msg(N_("'{name}' has {n} feature vectors but {labels} labels: republish it from its page."),
                   name=Msg(fs.name), n=len(f), labels=len(y))
    if not np.isfinite(f).all():
        return Msg(N_("'{name}' contains NaN or infinite features (the model probably diverged): lower its "
                      "learning rate, retrain it on its page and come back."), name=Msg(fs.name))
    if fs.images is not None and len(fs.images) != len(f):
        return Msg(N_("'{name}' has {images} images for {n} feature vectors: republish it from its page."),
                   name=Msg(fs.name), images=len(fs.images), n=len(f))
    return None
