"""Named dataset loaders, each ``fn(path, split, **options) -> ImageSet`` registered in DATASETS.

Nothing is downloaded: Fashion-MNIST comes from the Debian package (or a given directory), CIFAR and
image folders from a local copy the user points at, and ``synthetic`` is generated.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DeephideError
from .imageset import ImageSet
from .registry import DATASETS, SPLITS, check_split, int_option, need_path
from .arrays import check_labels
from .formats import load_any
from .holdout import split_holdout
from .unpickle import load_pickle_dict

log = logging.getLogger("deephide")

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_IDX_IMAGES, _IDX_LABELS = 0x00000803, 0x00000801  # idx magic: ubyte data, 3 resp. 1 dimensions


# ---------------------------------------------------------------- option checks


# ---------------------------------------------------------------- Fashion-MNIST (idx files)


def _read_bytes(path: Path) -> bytes:
    """File contents, gunzipped when the file starts with the gzip magic."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, zlib.error) as e:
        raise DeephideError(f"{path}: unreadable or corrupt ({type(e).__name__}: {str(e)[:80]})") from None


def read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    """An idx ubyte file as a uint8 array of its declared shape; magic and size are checked."""
    raw = _read_bytes(path)
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DeephideError(f"{path}: truncated idx file ({len(raw)} bytes)")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DeephideError(f"{path}: not an idx file of the expected kind "
                            f"(magic {found:#010x}, expected {magic:#010x})")
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != expected:
        raise DeephideError(f"{path}: truncated or corrupt idx file ({len(raw) - header} data bytes, "
                            f"header says {expected})")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find_idx(root: Path, prefix: str, kind: str) -> Path:
    """``<prefix>-<kind>-idx?-ubyte[.gz]`` (or the dotted variant) under ``root``."""
    dim = "3" if kind == "images" else "1"
    names = [f"{prefix}-{kind}-idx{dim}-ubyte.gz", f"{prefix}-{kind}-idx{dim}-ubyte",
             f"{prefix}-{kind}.idx{dim}-ubyte.gz", f"{prefix}-{kind}.idx{dim}-ubyte"]
    for n in names:
        if (root / n).is_file():
            return root / n
    raise DeephideError(f"{root}: no {names[0]} (nor {names[1]})")


@DATASETS.register("fashion-mnist")
def fashion_mnist(path: str | None = None, split: str = "train", size: int = 32, channels: int = 3,
                  holdout: int = 0) -> ImageSet:
    """Fashion-MNIST from idx files (default /usr/share/datasets/fashion-mnist);
    32x32 RGB, size=28 / channels=1 for native;
    holdout=1: the selection view (train = 55,000 without the validation hold-out, test = the 5,000 hold-out)."""
    check_split(split, "fashion-mnist")
    holdout = int_option("holdout", holdout, 0, 1)
    size = int_option("size", size, 28, 4096)
    channels = int_option("channels", channels, 1, 3)
    if channels == 2:
        raise DeephideError("dataset option channels=2: must be 1 or 3")
    root = Path(path).expanduser() if path else Path(FASHION_MNIST_DIR)
    if not root.is_dir():
        raise DeephideError(f"{root}: no such directory (install Fashion-MNIST with: "
                            "sudo apt-get install dataset-fashion-mnist, "
                            "or give fashion-mnist:/dir/with/idx-files)")
    prefix = "train" if split == "train" or holdout else "t10k"
    ipath, lpath = _find_idx(root, prefix, "images"), _find_idx(root, prefix, "labels")
    imgs = read_idx(ipath, _IDX_IMAGES, 3)
    labels = read_idx(lpath, _IDX_LABELS, 1)
    if imgs.shape[1:] != (28, 28):
        raise DeephideError(f"{ipath}: images are {imgs.shape[1]}x{imgs.shape[2]}, expected 28x28")
    if labels.shape[0] != imgs.shape[0]:
        raise DeephideError(f"{lpath}: {labels.shape[0]} labels for {imgs.shape[0]} images in {ipath.name}")
    labels = check_labels(labels, imgs.shape[0], len(FASHION_MNIST_CLASSES), str(lpath))
    prov = {"idx_files": [ipath.name, lpath.name], "root": str(root)}
    if holdout:
        imgs, labels, part = split_holdout(imgs, labels, split, "fashion-mnist", str(lpath))
        prov["selection"] = part
    # one pass into a fresh writable array (frombuffer views are read-only); zero padding keeps the
    # native pixels (the paper's 32x32 view pads 2 on each side); gray is replicated to RGB
    lo = (size - 28) // 2
    gray = np.zeros((imgs.shape[0], size, size), dtype=np.uint8)
    gray[:, lo:lo + 28, lo:lo + 28] = imgs
    out = np.empty((imgs.shape[0], size, size, channels), dtype=np.uint8)
    for c in range(channels):  # per-channel copies: several times faster than np.repeat on axis 3
        out[..., c] = gray
    return ImageSet(out, labels, FASHION_MNIST_CLASSES, prov, str(root))


# ---------------------------------------------------------------- CIFAR-10 / CIFAR-100 (python batches)


def _cifar_root(path: str | None, loader: str, subdir: str, probe: str) -> Path:
    """The directory holding the batch files: ``path`` itself or ``path/subdir``."""
    root = need_path(path, loader, f"{loader}:/path/to/{subdir} (the 'python version' from "
                                    "https://www.cs.toronto.edu/~kriz/cifar.html, fetched by you)")
    if (root / probe).is_file():
        return root
    if (root / subdir / probe).is_file():
        return root / subdir
    if not root.exists():
        raise DeephideError(f"{root}: no such directory")
    raise DeephideError(f"{root}: no {probe} here or in {subdir}/ (expected the CIFAR 'python version' layout)")


def _cifar_batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> (images uint8 (N, 32, 32, 3), labels int64 (N,))."""
    if not path.is_file():
        raise DeephideError(f"{path}: no such file")
    d = load_pickle_dict(path)
    data = d.get("data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DeephideError(f"{path}: 'data' must be a uint8 array (N, 3072), got {got}")
    if label_key not in d:
        raise DeephideError(f"{path}: missing '{label_key}' (has: {', '.join(sorted(d))})")
    raw = d[label_key]
    try:
        labels = np.asarray(raw) if isinstance(raw, (list, tuple, np.ndarray)) else None
    except (ValueError, TypeError):
        labels = None
    if labels is None:
        raise DeephideError(f"{path}: '{label_key}' must be a list of integers")
    labels = check_labels(labels, data.shape[0], num_classes, str(path), label_key)
    # stored as planes (R then G then B, each 32x32 row-major): go to NHWC
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, labels


def _names(meta: dict[str, Any], key: str, path: Path) -> tuple[str, ...]:
    names = meta.get(key)
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(x, (bytes, str)) for x in names):
        raise DeephideError(f"{path}: '{key}' must be a non-empty list of names")
    return tuple(x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in names)


def _concat(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@DATASETS.register("cifar10")
def cifar10(path: str | None = None, split: str = "train") -> ImageSet:
    """CIFAR-10 'python version' batches from a local directory (cifar-10-batches-py or its parent)."""
    check_split(split, "cifar10")
    root = _cifar_root(path, "cifar10", "cifar-10-batches-py", "batches.meta")
    names = _names(load_pickle_dict(root / "batches.meta"), "label_names", root / "batches.meta")
    files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    images, labels = _concat([_cifar_batch(root / f, "labels", len(names)) for f in files])
    return ImageSet(images, labels, names, {"root": str(root), "batches": files}, str(root))


@DATASETS.register("cifar100")
def cifar100(path: str | None = None, split: str = "train", label: str = "fine") -> ImageSet:
    """CIFAR-100 'python version' (train/test/meta) from a local directory; label=coarse for the 20 superclasses."""
    check_split(split, "cifar100")
    if label not in ("fine", "coarse"):
        raise DeephideError(f"dataset option label={label!r}: choose fine or coarse")
    root = _cifar_root(path, "cifar100", "cifar-100-python", "meta")
    names = _names(load_pickle_dict(root / "meta"), f"{label}_label_names", root / "meta")
    images, labels = _cifar_batch(root / split, f"{label}_labels", len(names))
    return ImageSet(images, labels, names, {"root": str(root), "batches": [split], "label": label}, str(root))


# ---------------------------------------------------------------- synthetic (tests, smoke runs)


_CHUNK = 4096


def _synthetic_arrays(n: int, classes: int, size: int, channels: int,
                      seed: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Class-coloured oriented gratings + noise: learnable, deterministic, uint8 (n, size, size, channels)."""
    crng = np.random.default_rng([seed, 1000])  # class structure is shared by both splits
    colour = crng.uniform(0.15, 0.85, size=(classes, channels)).astype(np.float32)
    theta = (np.arange(classes) * np.pi / classes + crng.uniform(0, np.pi / (4 * classes), classes)).astype(np.float32)
    freq = crng.uniform(1.5, 4.5, size=classes).astype(np.float32)
    srng = np.random.default_rng([seed, SPLITS.index(split)])  # samples: one stream per split
    labels = srng.permutation(np.arange(n) % classes).astype(np.int64)
    phase = srng.uniform(0, 2 * np.pi, size=n).astype(np.float32)
    gain = srng.uniform(0.8, 1.2, size=(n, 1, 1, 1)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    images = np.empty((n, size, size, channels), dtype=np.uint8)
    for lo in range(0, n, _CHUNK):  # bounded float memory for large n
        sl = slice(lo, min(n, lo + _CHUNK))
        lab = labels[sl]
        proj = xx[None] * np.cos(theta[lab])[:, None, None] + yy[None] * np.sin(theta[lab])[:, None, None]
        wave = np.sin(2 * np.pi * freq[lab][:, None, None] * proj + phase[sl, None, None])[..., None]
        img = 255 * colour[lab][:, None, None, :] * gain[sl] + 45 * wave
        img += srng.normal(0, 12, size=img.shape).astype(np.float32)
        images[sl] = np.clip(np.rint(img), 0, 255)
    return images, labels


@DATASETS.register("synthetic")
def synthetic(path: str | None = None, split: str = "train", n: int | None = None, classes: int = 10,
              size: int = 32, channels: int = 3, seed: int = 0) -> ImageSet:
    """Deterministic learnable toy set (class-coloured gratings + noise); options n, classes, size, channels, seed."""
    check_split(split, "synthetic")
    if path:
        raise DeephideError(f"synthetic: takes no path (got '{path}'); use synthetic?n=...&classes=...")
    if n is None:
        n = 200 if split == "train" else 100
    n = int_option("n", n, 1, 10_000_000)
    classes = int_option("classes", classes, 1, 100_000)
    size = int_option("size", size, 2, 4096)
    channels = int_option("channels", channels, 1, 3)
    if channels == 2:
        raise DeephideError("dataset option channels=2: must be 1 or 3")
    seed = int_option("seed", seed, 0)
    images, labels = _synthetic_arrays(n, classes, size, channels, seed, split)
    prov = {"generator": "gratings", "n": n, "classes": classes, "size": size, "channels": channels, "seed": seed}
    return ImageSet(images, labels, tuple(f"class_{k}" for k in range(classes)), prov, f"synthetic[{split}]")


# ---------------------------------------------------------------- stored formats


@DATASETS.register("file")
def file(path: str | None = None, split: str = "train", mmap: bool = False) -> ImageSet:
    """A stored ImageSet, APBench/ISS PNG folder or AVATAR npz at PATH (format detected; the split is ignored).

    ``mmap=true`` maps a stored ImageSet's images instead of reading them (sets larger than memory).
    """
    return load_any(need_path(path, "file", "file:/path/to/set (a stored ImageSet, PNG folder or .npz)"),
                    mmap=bool(mmap))
