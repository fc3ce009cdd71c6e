"""Data sets as tensors: MNIST (bundled IDX files, or torchvision where it imports),
seeded toy 2-d sets, and scikit-learn's 8x8 digits for fast tests.

A data set is one tensor on the device; training takes batches as index slices.
"""
from __future__ import annotations

import functools
import gzip
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ._compat import torchvision_available

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_TRAIN_SIZE = 55_000  # the first 55k training images; the last 5k are validation
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(RuntimeError):
    """A data file is missing or unreadable; the message names the file and the fix."""


@dataclass
class ImageSet:
    """Images (N, C, H, W) as float32 in [0, 1], with integer labels (N,) when known."""

    x: torch.Tensor
    y: torch.Tensor | None
    name: str

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device) -> "ImageSet":
        y = None if self.y is None else self.y.to(device)
        return ImageSet(self.x.to(device), y, self.name)


# ----------------------------------------------------------------------------- IDX
def read_idx(path: str | os.PathLike) -> torch.Tensor:
    """Read an IDX file (optionally gzip-compressed) into a tensor.

    The format: two zero bytes, a type code, the number of dimensions, one big-endian
    int32 per dimension, then the values in row-major order.

    Args:
        path: the file; a ".gz" suffix means gzip.
    Returns:
        A tensor with the file's shape (uint8 for the MNIST files).
    Raises:
        DataError: missing, truncated, or not an IDX file (wrong magic number).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found. {_RESTORE_HINT}")
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot be read ({e}); the file is corrupt or truncated. {_RESTORE_HINT}") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        magic = raw[:4].hex() if raw else "empty file"
        raise DataError(f"{path}: not an IDX file (magic number {magic}, expected 0000 + type + ndim). {_RESTORE_HINT}")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated header. {_RESTORE_HINT}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"{path}: has {len(raw)} bytes but its header {shape} implies {expected}; "
            f"the file is truncated or corrupt. {_RESTORE_HINT}")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return torch.from_numpy(arr.astype(dtype.newbyteorder("="), copy=True))


_RESTORE_HINT = ("genlab ships MNIST in data/mnist/ (restore it with `git checkout -- data/mnist`), "
                 "or install torchvision and set GENLAB_DOWNLOAD=1 to fetch it online.")


# ----------------------------------------------------------------------------- MNIST
def _find(root: Path, name: str) -> Path:
    for candidate in (root / f"{name}.gz", root / name):
        if candidate.exists():
            return candidate
    return root / f"{name}.gz"  # read_idx reports it missing


@functools.lru_cache(maxsize=4)
def _mnist_raw(part: str, root: str, source: str) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 28, 28) and int64 labels (N,) of one MNIST file pair (cached)."""
    if source == "torchvision":
        return _mnist_torchvision(part, Path(root))
    img_name, lbl_name = MNIST_FILES[part]
    images = read_idx(_find(Path(root), img_name))
    labels = read_idx(_find(Path(root), lbl_name)).long()
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != (images.shape[0],):
        raise DataError(f"{root}: MNIST {part} files have shapes {tuple(images.shape)} and "
                        f"{tuple(labels.shape)}, expected (N, 28, 28) and (N,). {_RESTORE_HINT}")
    return images, labels


def _mnist_torchvision(part: str, bundled: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision's MNIST, fed from the bundled files (offline) or downloaded when allowed."""
    from torchvision.datasets import MNIST

    cache = Path(os.environ.get("GENLAB_CACHE", Path.home() / ".cache" / "genlab")) / "torchvision"
    raw = cache / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for img_name, lbl_name in MNIST_FILES.values():  # torchvision wants them uncompressed
        for name in (img_name, lbl_name):
            src = _find(bundled, name)
            if not (raw / name).exists() and src.exists():
                # a part file of this process's own: two processes filling the cache at once
                # (parallel training runs) each write theirs and rename it into place
                part = raw / f"{name}.{os.getpid()}.part"
                opener = gzip.open if src.suffix == ".gz" else open
                with opener(src, "rb") as fin, open(part, "wb") as fout:
                    shutil.copyfileobj(fin, fout)
                os.replace(part, raw / name)
    download = os.environ.get("GENLAB_DOWNLOAD", "") not in ("", "0")
    try:
        ds = MNIST(root=str(cache), train=(part == "train"), download=download)
    except RuntimeError as e:
        raise DataError(f"torchvision could not load MNIST from {cache}: {e}. {_RESTORE_HINT}") from e
    return ds.data, ds.targets.long()


def load_mnist(split: str = "train", device: torch.device | str = "cpu", *,
               root: str | os.PathLike | None = None, source: str = "auto",
               limit: int | None = None) -> ImageSet:
    """MNIST as an ImageSet with pixels in [0, 1].

    Args:
        split: "train" (first 55k training images), "val" (last 5k) or "test" (10k).
        device: where the tensors live.
        root: folder with the four IDX files (.gz or raw); defaults to the bundled data/mnist.
        source: "bundled" (genlab's IDX reader), "torchvision", or "auto" (torchvision where
            it imports, the bundled reader otherwise).
        limit: keep only the first `limit` images (quick experiments and tests).
    Returns:
        ImageSet with x (N, 1, 28, 28) float32 and y (N,) int64.
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', not {split!r}")
    if source == "auto":
        source = "torchvision" if torchvision_available() else "bundled"
    root = Path(root) if root is not None else DATA_DIR / "mnist"
    images, labels = _mnist_raw("test" if split == "test" else "train", str(root), source)
    if split == "train":
        images, labels = images[:MNIST_TRAIN_SIZE], labels[:MNIST_TRAIN_SIZE]
    elif split == "val":
        images, labels = images[MNIST_TRAIN_SIZE:], labels[MNIST_TRAIN_SIZE:]
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = images.to(device=device, dtype=torch.float32).div_(255.0).unsqueeze(1)  # (N, 1, 28, 28)
    return ImageSet(x, labels.to(device), f"mnist-{split}")


def load_digits8(split: str = "train", device: torch.device | str = "cpu") -> ImageSet:
    """scikit-learn's 8x8 digits (1797 images, 16 grey levels) scaled to [0, 1].

    "train" is the first 1500 images, "test" the remaining 297.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).div_(16.0).unsqueeze(1)  # (1797, 1, 8, 8)
    y = torch.tensor(d.target, dtype=torch.long)
    sl = slice(0, 1500) if split == "train" else slice(1500, None)
    return ImageSet(x[sl].to(device), y[sl].to(device), f"digits8-{split}")


def load_images(name: str, split: str, device: torch.device | str = "cpu", limit: int | None = None) -> ImageSet:
    """Load an image data set by the name a checkpoint card records ("mnist" or "digits8")."""
    if name == "mnist":
        return load_mnist(split, device, limit=limit)
    if name == "digits8":
        ds = load_digits8("test" if split == "test" else "train", device)
        return ds if limit is None else ImageSet(ds.x[:limit], ds.y[:limit], ds.name)
    raise ValueError(f"unknown image data set {name!r}; known: mnist, digits8")


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dynamic binarization: each pixel becomes 1 with probability equal to its intensity."""
    return torch.bernoulli(x, generator=generator)


# ----------------------------------------------------------------------------- toy 2-d
TOY_SETS = ("ring8", "spiral", "moons", "checkerboard")


def toy2d(name: str, n: int, seed: int = 0, device: torch.device | str = "cpu") -> torch.Tensor:
    """Points (n, 2) of a toy 2-d distribution, the same for the same seed.

    ring8: 8 Gaussians (std 0.02) on a circle of radius 2; spiral: one noisy arm;
    moons: two interleaved half circles; checkerboard: uniform on 8 squares of [-4, 4]^2.
    """
    g = torch.Generator().manual_seed(seed)
    if name == "ring8":
        k = torch.randint(0, 8, (n,), generator=g)
        angle = k.float() * (2 * math.pi / 8)
        centers = 2.0 * torch.stack([angle.cos(), angle.sin()], 1)
        pts = centers + 0.02 * torch.randn(n, 2, generator=g)
    elif name == "spiral":
        t = torch.rand(n, generator=g).sqrt() * 3 * math.pi  # sqrt keeps density even along the arm
        pts = torch.stack([t * t.cos(), t * t.sin()], 1) / 3.0 + 0.1 * torch.randn(n, 2, generator=g)
    elif name == "moons":
        upper = torch.rand(n, generator=g) < 0.5
        t = torch.rand(n, generator=g) * math.pi
        x = torch.where(upper, t.cos(), 1 - t.cos())
        y = torch.where(upper, t.sin(), 0.5 - t.sin())
        pts = (torch.stack([x, y], 1) - torch.tensor([0.5, 0.25])) * 2 + 0.1 * torch.randn(n, 2, generator=g)
    elif name == "checkerboard":
        x1 = torch.rand(n, generator=g) * 4 - 2
        x2 = torch.rand(n, generator=g) - 2 * torch.randint(0, 2, (n,), generator=g).float()
        x2 = x2 + torch.floor(x1).remainder(2)
        pts = torch.stack([x1, x2], 1) * 2
    else:
        raise ValueError(f"unknown toy set {name!r}; known: {', '.join(TOY_SETS)}")
    return pts.to(device)


# ----------------------------------------------------------------------------- by name
DATASETS = ("mnist", "digits8") + TOY_SETS
TOY_TRAIN_SIZE = 16_384


def load_dataset(name: str, split: str, device: torch.device | str = "cpu", limit: int | None = None,
                 seed: int = 0) -> ImageSet:
    """Any data set by the name a checkpoint card records: images ("mnist", "digits8") or a toy
    2-d set (points in `x`, no labels; "train" draws `limit` or 16,384 points with `seed`, other
    splits 2,500 fresh points with seed + 1)."""
    if name in TOY_SETS:
        n = (limit or TOY_TRAIN_SIZE) if split == "train" else 2500
        return ImageSet(toy2d(name, n, seed=seed if split == "train" else seed + 1, device=device), None,
                        f"{name}-{split}")
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    return load_images(name, split, device, limit=limit)
