"""Looking at a bank: the paper's Table J statistic and contact sheets for a person to inspect."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DeephideError
from ..fsutil import atomic_file
from .bank import SecretBank

FeaturesFn = Callable[[np.ndarray], np.ndarray]
PIXEL_SIDE = 16


def pixel_features(images: np.ndarray) -> np.ndarray:
    """Default features: float32 (M, 16*16*3), images area-averaged to 16x16, scaled to [-1, 1].

    Centring at mid-gray (not at the data mean, which would make the inter statistic undefined)
    keeps the cosine sensitive to where shapes and colours are; raw [0, 1] pixels would put every
    cosine near 1. A stand-in for the paper's ResNet-18 features, which need a trained model.
    """
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    x = torch.nn.functional.adaptive_avg_pool2d(x, PIXEL_SIDE)
    return x.reshape(x.shape[0], -1).numpy()


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na = np.linalg.norm(a, axis=-1)
    nb = np.linalg.norm(b, axis=-1)
    return (a * b).sum(-1) / np.maximum(na * nb, 1e-12)


def semantic_stats(bank: SecretBank, features_fn: FeaturesFn | None = None) -> dict[str, float]:
    """Table J of the paper, on the secrets of ``bank``.

    intra: mean over secrets of cos(feature, its class's mean feature) (1 = members identical).
    inter: mean over classes of cos(class mean, mean of all secrets' features) (lower = classes
        further from the common centre). between: mean cos between distinct class means (lower =
        classes more distinct), an extra reading of the same features.
    features_fn: uint8 (M, H, W, 3) -> float (M, D); default ``pixel_features``. Pass e.g. a
        trained ResNet-18's penultimate features for the paper's version.
    """
    feats = np.asarray((features_fn or pixel_features)(bank.images), dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] != bank.images.shape[0]:
        raise DeephideError(f"semantic_stats: features_fn must return (M, D) for M={bank.images.shape[0]}, "
                            f"got {feats.shape}")
    classes = sorted(set(bank.group.tolist()))
    means = np.stack([feats[bank.group == k].mean(0) for k in classes])
    lookup = {k: i for i, k in enumerate(classes)}
    intra = _cos(feats, means[[lookup[int(g)] for g in bank.group]]).mean()
    inter = _cos(means, feats.mean(0, keepdims=True)).mean()
    if len(classes) > 1:
        mm = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        sim = mm @ mm.T
        between = float(sim[~np.eye(len(classes), dtype=bool)].mean())
    else:
        between = float("nan")
    return {"intra": float(intra), "inter": float(inter), "between": between,
            "secrets": int(feats.shape[0]), "classes": len(classes)}


def _slug(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()
    return s[:40] or "class"


def write_contact_sheets(bank: SecretBank, out_dir: str | Path, max_members: int = 64,
                         min_tile: int = 96) -> list[Path]:
    """One PNG per class (``class-003-cat.png``): a grid of its secrets, 2 px white gaps.

    Small secrets are enlarged by an integer factor with nearest neighbour (pixels stay visible)
    until a tile is at least ``min_tile`` px. Returns the written paths.
    """
    from PIL import Image

    out_dir = Path(out_dir)
    names = list(bank.meta.get("class_names") or [])
    h, w = bank.images.shape[1:3]
    f = max(1, -(-min_tile // max(h, w)))
    paths = []
    for k in range(bank.num_classes):
        idx = bank.members(k)[:max_members]
        cols = int(np.ceil(np.sqrt(idx.size)))
        rows = -(-idx.size // cols)
        gap = 2
        sheet = np.full((rows * (h * f + gap) + gap, cols * (w * f + gap) + gap, 3), 255, np.uint8)
        for n, i in enumerate(idx):
            r, c = divmod(n, cols)
            tile = bank.images[i].repeat(f, 0).repeat(f, 1)
            y, x = gap + r * (h * f + gap), gap + c * (w * f + gap)
            sheet[y : y + h * f, x : x + w * f] = tile
        name = names[k] if k < len(names) else str(k)
        path = out_dir / f"class-{k:03d}-{_slug(name)}.png"
        with atomic_file(path) as fh:
            Image.fromarray(sheet).save(fh, format="PNG")
        paths.append(path)
    return paths


def network_features(net: "object", batch_size: int = 256) -> FeaturesFn:
    """Features of a victim-zoo model for :func:`semantic_stats`: its last conv map, globally
    average-pooled (the penultimate layer of a ResNet-18, as in the paper's Table J).

    Returns ``uint8 (M, H, W, 3) -> float (M, C')``; the model is used in eval mode, fp32, on CPU.
    """
    import torch

    def fn(images: np.ndarray) -> np.ndarray:
        net.eval()
        outs = []
        with torch.no_grad():
            for i in range(0, images.shape[0], batch_size):
                x = torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size])).permute(0, 3, 1, 2).float() / 255
                outs.append(net.features(x).float().mean(dim=(2, 3)).numpy())
        return np.concatenate(outs)

    return fn
