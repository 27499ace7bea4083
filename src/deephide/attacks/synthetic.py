"""Model-free synthetic poisons: LSP (Yu et al., KDD 2022), AR (Sandoval-Segura et al., NeurIPS 2022)
and the class-wise uniform random noise control of the EM paper (``random-noise-C``).

All noises are float (n, C, H, W) in [0, 1] pixel units; ``finish_attack`` adds, clips and quantises.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..data import ImageSet
from ..errors import DeephideError
from .registry import ATTACKS
from .base import AttackRun, classwise, finish_attack, samplewise, start_attack


def _rng(run: AttackRun, tag: int) -> np.random.Generator:
    """A numpy generator for one purpose of one run (stable across versions of the calling code)."""
    return np.random.default_rng([run.seed % (2**32), tag])


def _scale(noise: np.ndarray, how: str, l2: float, linf: float) -> np.ndarray:
    """Per-image scaling of (n, ...) noise: ``l2`` to that L2 norm, ``linf`` to that L-inf norm."""
    flat = noise.reshape(noise.shape[0], -1)
    if how == "l2":
        norm = np.linalg.norm(flat, axis=1)
        target = l2
    elif how == "linf":
        norm = np.abs(flat).max(axis=1)
        target = linf
    else:
        raise DeephideError(f"noise scaling '{how}': choose l2 or linf")
    norm = np.where(norm > 0, norm, 1.0)
    return (flat * (target / norm)[:, None]).reshape(noise.shape)


# ------------------------------------------------------------------ LSP


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
    img = _scale(img, s["scale"], math.sqrt(h * w * c) * s["l2_levels"] / 255.0, levels / 255.0)
    return np.ascontiguousarray(img.transpose(0, 3, 1, 2), dtype=np.float32)


@ATTACKS.register("LSP", help="linear separable synthetic patch noise (Yu et al., KDD 2022)")
def lsp(train: ImageSet, *, eps_levels: int = 8, profile: str = "cpu", seed: int = 0, device: str = "auto",
        progress: bool = True, **options: Any) -> ImageSet:
    """LSP: per-image points from one well-separated Gaussian cluster per class (class_sep 10), upsampled to
    8x8 patches at 32 px, L2 norm sqrt(d) * 6/255 (their default), clipped into the L-inf budget.
    ``classwise=true`` gives every image of a class the same pattern."""
    run = start_attack("LSP", train, eps_levels, profile, seed, device, progress, options)
    noise = lsp_noise(train.labels, train.num_classes, train.shape, run.settings, run.levels, _rng(run, 0x15B))
    over = float((np.abs(noise) > run.eps).mean())
    mode = "class" if run.settings["classwise"] else "sample"
    return finish_attack(run, samplewise(noise), mode, extra={"frac_values_clipped_to_eps": round(over, 4)})


# ------------------------------------------------------------------ AR


def ar_coefficients(num_classes: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    """Random AR(3x3) coefficients, float64 (K, C, 3, 3): N(0, 1), last entry 0, normalised to sum 1 (AR's
    ``ARProcessPerturb3Channel`` default: 'random AR parameters are more stable when normalized')."""
    b = rng.standard_normal((num_classes, channels, 3, 3))
    b[..., 2, 2] = 0.0
    return b / b.sum(axis=(2, 3), keepdims=True)


def ar_generate(coef: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Run the AR process per image: coef (n, C, 3, 3) -> float64 (n, C, size[0], size[1]).

    Start from N(0, 1); then, in raster order, x[i+2, j+2] = sum(coef * x[i:i+3, j:j+3]) (the 3x3 window
    ending at the pixel; the coefficient of the pixel itself is 0). The two finished rows above a row are
    applied to the whole row at once; only the two left neighbours need the sequential sweep.
    """
    n, c = coef.shape[:2]
    h, w = size
    # (H, W, n, C): one pixel of every image and channel is one contiguous slice
    x = np.ascontiguousarray(rng.standard_normal((n, c, h, w)).transpose(2, 3, 0, 1))
    b = coef.transpose(2, 3, 0, 1)  # (3, 3, n, C)
    for r in range(2, h):
        acc = np.zeros((w - 2, n, c))
        for a in range(2):
            for k in range(3):
                acc += b[a, k] * x[r - 2 + a, k:k + w - 2]
        row = x[r]
        for j in range(w - 2):
            row[j + 2] = acc[j] + b[2, 0] * row[j] + b[2, 1] * row[j + 1]
    return np.ascontiguousarray(x.transpose(2, 3, 0, 1))


def _stable_coefficients(num_classes: int, channels: int, size: tuple[int, int], s: dict[str, Any],
                         rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Per-class coefficients whose process stays bounded.

    Most N(0, 1) draws normalised to sum 1 diverge (|x| of 1e10..1e90 at 36x36), and the AR authors
    shipped hand-picked coefficients. Here candidates are drawn in batches of 256 and one probe image per
    candidate is generated; a candidate is kept when |x| stays below ``max_abs`` (the N(0, 1) start
    reaches ~4). Returns (K, C, 3, 3) and the number of candidates drawn.
    """
    kept: list[np.ndarray] = []
    drawn = 0
    while len(kept) < num_classes:
        if drawn >= int(s["max_tries"]):
            raise DeephideError(f"attack AR: only {len(kept)} stable AR processes in {drawn} draws; raise max_tries=")
        cand = ar_coefficients(256, channels, rng)
        with np.errstate(over="ignore", invalid="ignore"):  # diverging candidates overflow; they are dropped
            probe = ar_generate(cand, size, rng)
            ok = np.isfinite(probe).all(axis=(1, 2, 3)) & (np.abs(probe).max(axis=(1, 2, 3)) < s["max_abs"])
        kept.extend(cand[ok][: num_classes - len(kept)])
        drawn += 256
    return np.stack(kept), drawn


def ar_noise(labels: np.ndarray, coef: np.ndarray, shape: tuple[int, int, int], s: dict[str, Any],
             levels: int, rng: np.random.Generator, chunk: int = 8192) -> np.ndarray:
    """AR noise float32 (n, C, H, W): each image's own process with its class's coefficients, generated at
    (H + crop) x (W + crop), cropped (top-left ``crop`` rows/cols dropped) and scaled per image."""
    h, w, _ = shape
    crop = int(s["crop"])
    out = np.empty((labels.shape[0], coef.shape[1], h, w), dtype=np.float32)
    for i in range(0, labels.shape[0], chunk):
        g = ar_generate(coef[labels[i:i + chunk]], (h + crop, w + crop), rng)[:, :, crop:, crop:]
        out[i:i + chunk] = _scale(g, s["norm"], s["l2_eps"], levels / 255.0)
    return out


@ATTACKS.register("AR", help="autoregressive perturbations, one AR filter per class (Sandoval-Segura et al., NeurIPS 2022)")
def ar(train: ImageSet, *, eps_levels: int = 8, profile: str = "cpu", seed: int = 0, device: str = "auto",
       progress: bool = True, **options: Any) -> ImageSet:
    """AR: class-wise AR(3x3) coefficients, every image its own process from a random N(0, 1) start
    (generated 36x36, crop 4 at 32 px); scaled to L-inf = eps (``norm=l2``: AR's L2 = 1, clipped to eps)."""
    run = start_attack("AR", train, eps_levels, profile, seed, device, progress, options)
    s = run.settings
    h, w, c = train.shape
    size = (h + int(s["crop"]), w + int(s["crop"]))
    if size[0] < 3 or size[1] < 3:
        raise DeephideError(f"{train.source}: images too small for a 3x3 AR process")
    coef, drawn = _stable_coefficients(train.num_classes, c, size, s, _rng(run, 0xA2))
    noise = ar_noise(train.labels, coef, train.shape, s, run.levels, _rng(run, 0xA3))
    extra = {"ar_coefficients": coef.tolist(), "ar_candidates_drawn": drawn}
    return finish_attack(run, samplewise(noise), "sample", extra=extra)


# ------------------------------------------------------------------ control: class-wise random noise


@ATTACKS.register("random-noise-C", help="control: class-wise uniform random noise in [-eps, eps] (EM paper)")
def random_noise_c(train: ImageSet, *, eps_levels: int = 8, profile: str = "cpu", seed: int = 0,
                   device: str = "auto", progress: bool = True, **options: Any) -> ImageSet:
    """The EM paper's control: one U(-eps, eps) noise per class, added to every image of the class."""
    run = start_attack("random-noise-C", train, eps_levels, profile, seed, device, progress, options)
    h, w, c = train.shape
    noise = (torch.rand((train.num_classes, c, h, w), generator=run.gen) * 2 - 1) * run.eps
    return finish_attack(run, classwise(noise), "class")
