"""AR: autoregressive perturbations, one AR filter per class (Sandoval-Segura et al., NeurIPS 2022), model-free."""

from __future__ import annotations

from typing import Any
import numpy as np

from ..data import ImageSet
from ..errors import DeephideError
from .registry import ATTACKS
from .base import finish_attack, run_rng, samplewise, scale_noise, start_attack


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
        out[i:i + chunk] = scale_noise(g, s["norm"], s["l2_eps"], levels / 255.0)
    return out


@ATTACKS.register("AR", help="autoregressive perturbations, one AR filter per class "
                             "(Sandoval-Segura et al., NeurIPS 2022)")
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
    coef, drawn = _stable_coefficients(train.num_classes, c, size, s, run_rng(run, 0xA2))
    noise = ar_noise(train.labels, coef, train.shape, s, run.levels, run_rng(run, 0xA3))
    extra = {"ar_coefficients": coef.tolist(), "ar_candidates_drawn": drawn}
    return finish_attack(run, samplewise(noise), "sample", extra=extra)


