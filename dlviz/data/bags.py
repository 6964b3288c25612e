"""Bags of digit images for multiple-instance learning (MNIST-bags of Ilse, Tomczak & Welling 2018, on sklearn digits).

A bag is a set of instances (digit images) with one label: positive when it holds at least one instance of the
target digit (a *key instance*), negative otherwise. The instance labels exist (to measure localization) but a
model never sees them. Train bags draw from the training digits, test bags from the test digits, so no image is in
both. The ``clutter`` variant pastes each digit small onto a patch of random strokes: a whole-slide image in
pathology is such a bag of patches, with one label for the slide and a few tumour patches that decide it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..i18n import N_
from .augment import digits_in_clutter
from .digits import load_digits_split

INSTANCE_KINDS = (N_("digits"), N_("clutter"))  # marked N_(): the widget shows them translated
CLUTTER_CANVAS = 16  # side of a clutter patch; the 8x8 digit covers a quarter of it


@dataclass(frozen=True)
class Bags:
    """Padded bags over a pool of instance images.

    images (M, 1, S, S) float in [0, 1]: the pool; index (B, L) int64: the pool image in each slot, -1 past a bag's
    end; keys (B, L) bool: the slot holds the target digit; labels (B,) float 0/1; sizes (B,) int64; digits (M,)
    int64: the class of each pool image (never shown to a model; for the page's feature views).
    """

    images: torch.Tensor
    index: torch.Tensor
    keys: torch.Tensor
    labels: torch.Tensor
    sizes: torch.Tensor
    digits: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def mask(self) -> torch.Tensor:
        """(B, L) bool: the slot holds an instance."""
        return self.index >= 0

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Bags ``idx`` padded to their own largest size: x (b, L', 1, S, S) (zeros past the end), mask (b, L')
        bool, keys (b, L') bool, labels (b,)."""
        length = int(self.sizes[idx].max())
        index = self.index[idx, :length]
        mask = index >= 0
        x = self.images[index.clamp(min=0)] * mask[..., None, None, None]
        return x, mask, self.keys[idx, :length], self.labels[idx]


def bag_sizes(n: int, mean: int, spread: float, gen: torch.Generator) -> torch.Tensor:
    """(n,) sizes drawn uniformly from round(mean*(1-spread)) .. round(mean*(1+spread)), at least 1."""
    lo = max(1, round(mean * (1 - spread)))
    hi = max(lo, round(mean * (1 + spread)))
    return torch.randint(lo, hi + 1, (n,), generator=gen)


def make_bags(images: torch.Tensor, digits: torch.Tensor, target: int, n_bags: int, mean_size: int,
              spread: float, pos_fraction: float, key_instances: int, gen: torch.Generator) -> Bags:
    """``n_bags`` bags over ``images`` (M, 1, S, S) whose digit classes are ``digits`` (M,).

    round(pos_fraction * n_bags) bags (at least one, and at least one negative when n_bags > 1) are positive,
    in random order; each positive bag holds exactly min(key_instances, size) images of ``target`` at random
    places, the other instances are drawn (with replacement) from the other digits.
    """
    sizes = bag_sizes(n_bags, mean_size, spread, gen)
    n_pos = min(max(round(pos_fraction * n_bags), 1), max(n_bags - 1, 1))
    labels = torch.zeros(n_bags)
    labels[torch.randperm(n_bags, generator=gen)[:n_pos]] = 1.0
    length = int(sizes.max())
    valid = torch.arange(length)[None, :] < sizes[:, None]
    n_keys = torch.where(labels > 0, sizes.clamp(max=key_instances), torch.zeros_like(sizes))
    # Key slots: the first n_keys of a random order of each bag's valid slots.
    order = torch.rand(n_bags, length, generator=gen).masked_fill(~valid, 2.0).argsort(1)
    rank = order.argsort(1)
    keys = (rank < n_keys[:, None]) & valid
    pos_pool = torch.nonzero(digits == target).flatten()
    neg_pool = torch.nonzero(digits != target).flatten()
    pick_pos = pos_pool[torch.randint(len(pos_pool), (n_bags, length), generator=gen)]
    pick_neg = neg_pool[torch.randint(len(neg_pool), (n_bags, length), generator=gen)]
    index = torch.where(keys, pick_pos, pick_neg).masked_fill(~valid, -1)
    return Bags(images, index, keys, labels, sizes, digits)


def instance_pool(kind: str, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train and test instance images with their digit classes: (x_train, y_train, x_test, y_test).

    ``digits``: sklearn's 8x8 digits (1,437 train / 360 test). ``clutter``: each digit at a random place on a
    16x16 patch of random strokes (drawn with ``gen``: the clutter belongs to the run).
    """
    if kind not in INSTANCE_KINDS:
        raise ValueError(f"unknown instance kind {kind!r}; choose {', '.join(INSTANCE_KINDS)}")
    d = load_digits_split(8)
    if kind == "digits":
        return d.x_train, d.y_train, d.x_test, d.y_test
    return (digits_in_clutter(d.x_train, CLUTTER_CANVAS, gen), d.y_train,
            digits_in_clutter(d.x_test, CLUTTER_CANVAS, gen), d.y_test)


def train_test_bags(kind: str, target: int, n_train: int, n_test: int, mean_size: int, spread: float,
                    pos_fraction: float, key_instances: int, gen: torch.Generator) -> tuple[Bags, Bags]:
    """Train bags from the training digits and test bags from the test digits (no image in both)."""
    xtr, ytr, xte, yte = instance_pool(kind, gen)
    train = make_bags(xtr, ytr, target, n_train, mean_size, spread, pos_fraction, key_instances, gen)
    test = make_bags(xte, yte, target, n_test, mean_size, spread, pos_fraction, key_instances, gen)
    return train, test


__all__ = ["Bags", "INSTANCE_KINDS", "bag_sizes", "make_bags", "instance_pool", "train_test_bags"]
