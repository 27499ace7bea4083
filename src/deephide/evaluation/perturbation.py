"""What a victim sees in a protection's perturbation: frequency content and class structure.

An unlearnable set works when its perturbation x_ue - x_c is an easier class cue than the image. Two
properties decide how easy, and both are cheap to measure without training anything:

- *Frequency*: the share of the perturbation's energy in each single-level Haar sub-band. A
  perturbation in the finest band (HH, a checkerboard) changes sign under a one-pixel shift or a
  horizontal flip, which is what a victim's crop/flip augmentation does, and a strided first layer
  then sees it in alternating signs; JPEG and 3x3 filters remove it.
- *Class structure*: the share of the perturbation's variance explained by its class means (1 = one
  fixed pattern per class), and how well the nearest class mean (cosine) names the class of
  held-out perturbations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data import ImageSet
from ..errors import DeephideError
from ..ops.wavelets import SUBBANDS, dwt


def _delta(clean: ImageSet, protected: ImageSet, sl: slice) -> np.ndarray:
    """Perturbation in uint8 levels, float64 (n, C, H, W)."""
    d = protected.images[sl].astype(np.float64) - clean.images[sl].astype(np.float64)
    return d.transpose(0, 3, 1, 2)


def perturbation_stats(clean: ImageSet, protected: ImageSet, n: int | None = 20_000, holdout: float = 0.25,
                       chunk: int = 4096) -> dict[str, Any]:
    """Frequency and class statistics of ``protected - clean`` over the first ``n`` images (None: all).

    clean, protected: uint8 (N, H, W, C) sets with the same shape and labels; H and W even.
    holdout: the last fraction of the ``n`` images is held out for the nearest-class-mean accuracy.
    Returns ``band_energy`` ({LL, HL, LH, HH}: shares summing to 1; LL = smooth, HH = checkerboard),
    ``lag1_autocorr`` (horizontal neighbours: < 0 checkerboard-like, > 0 smooth), ``class_share``
    (share of the variance explained by per-class means, in [0, 1]), ``class_mean_rms_levels``
    (RMS of the class-mean patterns around their average), ``ncm_accuracy`` (%, cosine to the class
    means of the first part) and ``n``.
    """
    if clean.images.shape != protected.images.shape:
        raise DeephideError(f"{protected.source}: shape {protected.images.shape} "
                            f"differs from clean {clean.images.shape}")
    if not np.array_equal(clean.labels, protected.labels):
        raise DeephideError(f"{protected.source}: labels differ from the clean set's")
    h, w = clean.shape[:2]
    if h % 2 or w % 2:
        raise DeephideError(f"{protected.source}: images are {h}x{w}; the Haar statistics need even sides")
    if not 0.0 < holdout < 1.0:
        raise DeephideError(f"perturbation_stats: holdout must be in (0, 1), got {holdout}")
    total = len(clean) if n is None else min(int(n), len(clean))
    n_fit = int(round(total * (1.0 - holdout)))
    if n_fit < 1 or total - n_fit < 1:
        raise DeephideError(f"{protected.source}: {total} images are too few for a class statistic with a hold-out")
    k = clean.num_classes
    dim = int(np.prod(clean.images.shape[1:]))
    band = np.zeros(4)
    lag_num = lag_den = 0.0
    sums, counts, sq = np.zeros((k, dim)), np.zeros(k), 0.0
    for i in range(0, n_fit, chunk):
        sl = slice(i, min(i + chunk, n_fit))
        d = _delta(clean, protected, sl)
        c = d.shape[1]
        coef = dwt(torch.from_numpy(d)).numpy()  # (n, 4C, H/2, W/2), group-major sub-bands
        band += [float((coef[:, g * c:(g + 1) * c] ** 2).sum()) for g in range(4)]
        lag_num += float((d[..., 1:] * d[..., :-1]).sum())
        lag_den += float((d[..., 1:] ** 2).sum())
        flat, y = d.reshape(d.shape[0], -1), clean.labels[sl]
        for cls in np.unique(y):
            sums[cls] += flat[y == cls].sum(0)
        counts += np.bincount(y, minlength=k)
        sq += float((flat ** 2).sum())
    seen = counts > 0
    mu = sums[seen] / counts[seen, None]
    grand = sums.sum(0) / n_fit
    ss_total = sq - n_fit * float(grand @ grand)
    ss_within = sq - float((counts[seen] * (mu ** 2).sum(1)).sum())
    mun = mu / np.maximum(np.linalg.norm(mu, axis=1, keepdims=True), 1e-12)
    classes = np.flatnonzero(seen)
    hits = 0
    for i in range(n_fit, total, chunk):
        sl = slice(i, min(i + chunk, total))
        flat = _delta(clean, protected, sl).reshape(sl.stop - sl.start, -1)
        pred = classes[(flat @ mun.T).argmax(1)]
        hits += int((pred == clean.labels[sl]).sum())
    energy = band.sum()
    return {
        "n": total,
        "band_energy": {b: (float(e / energy) if energy > 0 else 0.0) for b, e in zip(SUBBANDS, band)},
        "lag1_autocorr": lag_num / lag_den if lag_den > 0 else 0.0,
        "class_share": 1.0 - ss_within / ss_total if ss_total > 0 else 0.0,
        "class_mean_rms_levels": float(np.sqrt(((mu - grand) ** 2).mean())),
        "ncm_accuracy": 100.0 * hits / (total - n_fit),
    }
