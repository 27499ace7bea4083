"""LSP: linear separable synthetic patch noise (Yu et al., KDD 2022), model-free; float (n, C, H, W) noise in
[0, 1] pixel units that ``finish_attack`` adds, clips and quantises."""

from __future__ import annotations

import math
from typing import Any
import numpy as np

from ..data import ImageSet
from ..errors import DeephideError
from .registry import ATTACKS
from .base import finish_attack, run_rng, samplewise, scale_noise, start_attack


def lsp_points(labels: np.ndarray, num_classes: int, dim: int, class_sep: float, classwise_draw: bool,
               rng: np.random.Generator) -> np.ndarray:
    """Linearly separable points (sklearn ``make_classification`` as LSP calls it), one row per image.

    One Gaussian cluster per class: centroid a distinct vertex of the hypercube [-sep, sep]^dim, points
    N(0, I) @ A_k + centroid with A_k ~ U(-1, 1)^(dim x dim) (random covariance). ``classwise_draw``:
    every image of a class gets the same point. Returns float64 (len(labels), dim).
    """
    verts: set[tuple[int, ...]] = set()
    centroids = np.empty((num_classes, dim))
    for k in range(num_classes):
        for _ in range(1000):  # distinct vertices (2^dim choices, so this ends at once for dim >= 8)
            v = tuple(rng.integers(0, 2, dim).tolist())
            if v not in verts or len(verts) >= 2 ** min(dim, 62):
                break
        verts.add(v)
        centroids[k] = (np.asarray(v, dtype=np.float64) * 2 - 1) * class_sep
    out = np.empty((labels.shape[0], dim))
    for k in range(num_classes):
        idx = np.flatnonzero(labels == k)
        a = 2 * rng.uniform(size=(dim, dim)) - 1
        m = 1 if classwise_draw else idx.size
        pts = rng.standard_normal((m, dim)) @ a + centroids[k]
        out[idx] = pts if not classwise_draw else np.repeat(pts, idx.size, axis=0)
    return out


def lsp_noise(labels: np.ndarray, num_classes: int, shape: tuple[int, int, int], s: dict[str, Any],
              levels: int, rng: np.random.Generator) -> np.ndarray:
    """LSP noise float32 (n, C, H, W): points of ``ceil(H/patch) x ceil(W/patch) x C`` features, each feature
    repeated over a patch x patch block (cropped to H x W), scaled per image (``scale``: ``l2`` = LSP's
    sqrt(H*W*C) * l2_levels/255, then clipped to eps on write; ``linf`` = exactly eps)."""
    h, w, c = shape
    p = int(s["patch"])
    if p < 1:
        raise DeephideError(f"attack LSP: patch must be >= 1, got {p}")
    gh, gw = math.ceil(h / p), math.ceil(w / p)
    pts = lsp_points(labels, num_classes, gh * gw * c, s["class_sep"], bool(s["classwise"]), rng)
    img = pts.reshape(-1, gh, gw, c).repeat(p, axis=1).repeat(p, axis=2)[:, :h, :w, :]
    img = scale_noise(img, s["scale"], math.sqrt(h * w * c) * s["l2_levels"] / 255.0, levels / 255.0)
    return np.ascontiguousarray(img.transpose(0, 3, 1, 2), dtype=np.float32)


@ATTACKS.register("LSP", help="linear separable synthetic patch noise (Yu et al., KDD 2022)")
def lsp(train: ImageSet, *, eps_levels: int = 8, profile: str = "cpu", seed: int = 0, device: str = "auto",
        progress: bool = True, **options: Any) -> ImageSet:
    """LSP: per-image points from one well-separated Gaussian cluster per class (class_sep 10), upsampled to
    8x8 patches at 32 px, L2 norm sqrt(d) * 6/255 (their default), clipped into the L-inf budget.
    ``classwise=true`` gives every image of a class the same pattern."""
    run = start_attack("LSP", train, eps_levels, profile, seed, device, progress, options)
    noise = lsp_noise(train.labels, train.num_classes, train.shape, run.settings, run.levels, run_rng(run, 0x15B))
    over = float((np.abs(noise) > run.eps).mean())
    mode = "class" if run.settings["classwise"] else "sample"
    return finish_attack(run, samplewise(noise), mode, extra={"frac_values_clipped_to_eps": round(over, 4)})


