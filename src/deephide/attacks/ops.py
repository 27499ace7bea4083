"""OPS, the one-pixel shortcut (Wu et al., ICLR 2023): an L0 attack, exempt from the L-inf budget.

For each class, OPS searches every pixel position p and every extreme colour c in {0, 1}^C for the one
whose change is large and consistent over the class: it maximises

    score(p, c) = mean |c - x[p]| / std |c - x[p]|      (over the class's images and channels)

(the authors' ``pixel_search``), skipping (position, colour) pairs taken by earlier classes, then sets
that pixel of every image of the class to c. So exactly one pixel per image changes (none where the
image already had that colour there).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data import ImageSet
from ..errors import DeephideError
from .registry import ATTACKS
from .base import AttackRun, finish_attack, start_attack


def colour_bits(value: int, channels: int) -> np.ndarray:
    """Colour index -> {0, 1}^C, first channel the most significant bit (as OPS: v // 4, v // 2 % 2, v % 2)."""
    return np.array([(value >> (channels - 1 - ch)) & 1 for ch in range(channels)], dtype=np.float32)


def ops_scores(class_images: np.ndarray) -> np.ndarray:
    """OPS objective for one class: uint8 (n, H, W, C) -> float64 (H*W, 2^C) of mean/std of |c - x[p]|.

    std = 0 gives +inf when the mean is positive (a perfectly consistent change) and 0 when the colour is
    already every image's value (no change at all; numpy's 0/0 = nan would otherwise win the ranking).
    """
    n, h, w, c = class_images.shape
    x = class_images.reshape(n, h * w, c).astype(np.float32) / 255.0
    out = np.zeros((h * w, 2 ** c))
    for v in range(2 ** c):
        d = np.abs(colour_bits(v, c) - x)  # (n, P, C)
        mean = d.mean(axis=(0, 2), dtype=np.float64)
        std = d.std(axis=(0, 2), dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[:, v] = np.where(std > 0, mean / np.where(std > 0, std, 1.0), np.where(mean > 0, np.inf, 0.0))
    return out


def ops_search(images: np.ndarray, labels: np.ndarray, num_classes: int, sparsity: int) -> list[dict[str, Any]]:
    """The OPS pixels: for each class (in label order) its ``sparsity`` best (position, colour) pairs.

    Ties are broken towards the highest flat index (position * 2^C + colour) with a stable sort, a fixed
    choice where OPS's unstable argsort leaves it open. Returns dicts with class, row, col, colour, score.
    """
    _, _, w, c = images.shape
    taken: set[tuple[int, int]] = set()
    chosen: list[dict[str, Any]] = []
    for k in range(num_classes):
        idx = np.flatnonzero(labels == k)
        if idx.size == 0:
            continue
        scores = ops_scores(images[idx])
        for point, value in taken:
            scores[point, value] = 0.0
        order = np.argsort(scores, axis=None, kind="stable")
        for r in range(sparsity):
            point, value = np.unravel_index(order[-1 - r], scores.shape)
            taken.add((int(point), int(value)))
            row, col = divmod(int(point), w)
            s = float(scores[point, value])
            chosen.append({"class": k, "row": row, "col": col,
                           "colour": colour_bits(int(value), c).astype(int).tolist(),
                           "score": s if np.isfinite(s) else "inf"})
    return chosen


def _apply(pixels: list[dict[str, Any]]):
    def fn(x: torch.Tensor, y: torch.Tensor, start: int) -> torch.Tensor:
        out = x.clone()
        for p in pixels:
            m = y == p["class"]
            if bool(m.any()):
                colour = torch.tensor(p["colour"], dtype=x.dtype, device=x.device)
                out[m, :, p["row"], p["col"]] = colour
        return out
    return fn


@ATTACKS.register("OPS", help="one-pixel shortcut, class-wise, L0 = 1 (Wu et al., ICLR 2023)")
def ops(train: ImageSet, *, eps_levels: int = 8, profile: str = "cpu", seed: int = 0, device: str = "auto",
        progress: bool = True, **options: Any) -> ImageSet:
    """One pixel (position + colour in {0,1}^C) per class maximising mean/std of the change over the class;
    model-free and deterministic (``seed`` unused). Exempt from the L-inf budget: recorded as ``L0=1``."""
    run: AttackRun = start_attack("OPS", train, eps_levels, profile, seed, device, progress, options)
    k = int(run.settings["sparsity"])
    if not 1 <= k <= train.shape[0] * train.shape[1]:
        raise DeephideError(f"attack OPS: sparsity must be in 1..{train.shape[0] * train.shape[1]}, got {k}")
    pixels = ops_search(train.images, train.labels, train.num_classes, k)
    return finish_attack(run, _apply(pixels), "class", l0=k, extra={"ops_pixels": pixels})
