"""Image classification data: sklearn's 8x8 digits (always there) and MNIST / Fashion-MNIST from a local folder.

All loaders return :class:`ImageData` with float tensors in [0, 1] shaped (N, 1, H, W); the results are
read-only and cached, so pages may share them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..i18n import N_, Msg

DIGITS_TEST_FRACTION = 0.2  # 1,437 train / 360 test
SPLIT_SEED = 0  # the split is fixed, so every run and every page sees the same 360 test digits
DATA_DIR_ENV = "DLVIZ_DATA"  # folder holding torchvision datasets (e.g. <dir>/MNIST/raw/*-ubyte)

# sklearn digits are small 8x8 images; torchvision sets are subsampled to keep CPU demos quick.
TORCHVISION_SETS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
FASHION_CLASSES = ("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot")


class DatasetMissing(FileNotFoundError):
    """An optional dataset is not on disk; the message (a :class:`dlviz.i18n.Msg`: English, shown translated with
    ``tr(exc.args[0])``) says where it was looked for and how to get it."""


@dataclass(frozen=True)
class ImageData:
    """A train/test split of grayscale images. Tensors: x (N, 1, H, W) float in [0, 1]; y (N,) int64."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]

    @property
    def size(self) -> int:
        return int(self.x_train.shape[-1])


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp_(0, 1)


@lru_cache(maxsize=8)
def load_digits_split(size: int = 8) -> ImageData:
    """sklearn's 1,797 digits, split 1,437/360 by a fixed stratified seed, upsampled to ``size`` x ``size``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target, dtype=torch.int64)
    idx_train, idx_test = train_test_split(np.arange(len(y)), test_size=DIGITS_TEST_FRACTION,
                                           random_state=SPLIT_SEED, stratify=d.target)
    x = _resize(x, size)
    return ImageData("digits", x[idx_train], y[idx_train], x[idx_test], y[idx_test],
                     tuple(str(i) for i in range(10)))


def data_dir(root: str | os.PathLike | None = None) -> Path:
    """The folder for optional datasets: ``root``, else $DLVIZ_DATA, else ./data."""
    return Path(root or os.environ.get(DATA_DIR_ENV) or "data")


# $DLVIZ_DATA as the server started: a server setting, shown read-only in the sidebar (no visitor can change it).
_SERVER_DATA_DIR = os.environ.get(DATA_DIR_ENV) or "data"


def server_data_dir() -> Path:
    """The data folder the server was started with ($DLVIZ_DATA at import, else ./data)."""
    return Path(_SERVER_DATA_DIR)


def _unreadable(name: str, raw: str, exc: Exception) -> DatasetMissing:
    reason = f"{type(exc).__name__}: {str(exc)[:160]}" if str(exc) else type(exc).__name__
    return DatasetMissing(Msg(N_(
        "{dataset} in {folder} could not be read ({reason}): the *-ubyte files are truncated or not in the idx "
        "format. Copy the four files again (e.g. unpack the .gz downloads there), or use the built-in 'digits' "
        "dataset, which needs no download."), dataset=TORCHVISION_SETS[name], folder=raw, reason=reason))


@lru_cache(maxsize=8)
def _load_torchvision(name: str, root: str, size: int, n_train: int, n_test: int) -> ImageData:
    import torchvision

    cls = getattr(torchvision.datasets, TORCHVISION_SETS[name])
    raw = f"{Path(root).resolve()}/{TORCHVISION_SETS[name]}/raw"
    try:
        train = cls(root, train=True, download=False)
        test = cls(root, train=False, download=False)
    except RuntimeError as exc:  # torchvision: "Dataset not found. You can use download=True to download it"
        if "not found" not in str(exc).lower():
            raise _unreadable(name, raw, exc) from None
        raise DatasetMissing(Msg(N_(
            "{dataset} was not found in {folder} ({reason}). Put the four *-ubyte(.gz) files there, set {env} to "
            "the folder holding them, or use the built-in 'digits' dataset, which needs no download."),
            dataset=TORCHVISION_SETS[name], folder=raw, reason=str(exc), env=DATA_DIR_ENV)) from None
    except Exception as exc:  # a truncated file, a wrong magic number (AssertionError), unreadable, ...
        raise _unreadable(name, raw, exc) from None

    def take(ds, n):
        if ds.data.ndim != 3 or len(ds.data) != len(ds.targets) or len(ds.targets) == 0:
            raise ValueError(f"{tuple(ds.data.shape)} images for {len(ds.targets)} labels")
        if int(ds.targets.min()) < 0 or int(ds.targets.max()) >= 10:
            raise ValueError(f"labels outside 0-9 ({int(ds.targets.min())} to {int(ds.targets.max())})")
        g = torch.Generator().manual_seed(SPLIT_SEED)
        idx = torch.randperm(len(ds.targets), generator=g)[:n]
        x = ds.data[idx].float().div_(255).unsqueeze(1)
        return _resize(x, size), ds.targets[idx].long()

    try:
        xtr, ytr = take(train, n_train)
        xte, yte = take(test, n_test)
    except Exception as exc:
        raise _unreadable(name, raw, exc) from None
    classes = FASHION_CLASSES if name == "fashion-mnist" else tuple(str(i) for i in range(10))
    return ImageData(name, xtr, ytr, xte, yte, classes)


def load_image_dataset(name: str, size: int = 8, root: str | None = None,
                       n_train: int = 6000, n_test: int = 1000) -> ImageData:
    """Load ``digits`` (built in) or ``mnist`` / ``fashion-mnist`` from a local folder, at ``size`` pixels.

    Raises :class:`DatasetMissing` with instructions when an optional set is not on disk.
    """
    if name == "digits":
        return load_digits_split(size)
    if name not in TORCHVISION_SETS:
        raise ValueError(f"unknown dataset {name!r}; choose digits, {', '.join(TORCHVISION_SETS)}")
    return _load_torchvision(name, str(data_dir(root)), size, n_train, n_test)


def download_torchvision(name: str, root: str | None = None) -> Path:
    """Try to download an optional dataset (only when asked); raises DatasetMissing with the reason offline."""
    import torchvision

    folder = data_dir(root)
    try:
        for train in (True, False):
            getattr(torchvision.datasets, TORCHVISION_SETS[name])(str(folder), train=train, download=True)
    except Exception as exc:  # offline, proxy, disk full...
        raise DatasetMissing(Msg(N_("Downloading {dataset} failed ({reason}). Copy the files by hand or use the "
                                    "built-in digits."), dataset=name, reason=f"{type(exc).__name__}: {exc}")) from None
    _load_torchvision.cache_clear()
    return folder
