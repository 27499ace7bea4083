"""Image similarity: PSNR, SSIM and Pearson correlation, the one implementation every stage reports (protect's
verify, the reveal gate, hider training logs, ISGAN's loss, source tracing).

Value ranges: float tensors in [0, 1] (``peak`` 1) or uint8 arrays (``peak`` 255); shapes (N, C, H, W) for
tensors, (N, H, W, C) for uint8 arrays.

    >>> import torch
    >>> a = torch.zeros(1, 3, 8, 8); round(psnr(a, a + 0.1), 6)
    20.0
"""

from __future__ import annotations

import math

import numpy as np
import torch


def mse_psnr(mse: float, peak: float = 1.0) -> float:
    """PSNR (dB) of a mean squared error at pixel range ``peak`` (inf when the error is 0)."""
    return float("inf") if mse <= 0 else 10 * math.log10(peak ** 2 / mse)


def psnr(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, peak: float | None = None,
         cap: float | None = None) -> float:
    """PSNR (dB) over all elements of ``a`` and ``b`` (same shape).

    peak: the pixel range; default 255 for uint8 arrays and 1 for float tensors/arrays in [0, 1].
    cap: report at most this (e.g. 100 dB, so that averages over training steps stay finite); None = inf
    for identical inputs.
    """
    if isinstance(a, torch.Tensor):
        ta, tb = a.detach().float(), torch.as_tensor(b).detach().float()
        mse = float(torch.mean((ta - tb) ** 2))
        uint8 = a.dtype == torch.uint8
    else:
        mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
        uint8 = np.asarray(a).dtype == np.uint8
    v = mse_psnr(mse, peak if peak is not None else (255.0 if uint8 else 1.0))
    return min(v, cap) if cap is not None else v


def correlation(images: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Pearson correlation of each image (N, ...) with one reference image (...): (N,) in [-1, 1] (0 where either
    is constant)."""
    r = images.reshape(images.shape[0], -1).astype(np.float64)
    g = reference.reshape(-1).astype(np.float64)
    r = r - r.mean(1, keepdims=True)
    g = g - g.mean()
    den = np.linalg.norm(r, axis=1) * np.linalg.norm(g)
    return np.where(den > 0, r @ g / np.maximum(den, 1e-12), 0.0)


def ssim_window(h: int, w: int) -> int:
    """The SSIM Gaussian window: 11 px, or the largest odd size (>= 3) that fits an h x w image."""
    return max(3, min(11, h - (1 - h % 2), w - (1 - w % 2)))


def ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The SSIM map (kornia, Gaussian window :func:`ssim_window`) of float (N, C, H, W) images in [0, 1],
    differentiable: (N, C, H, W)."""
    import kornia

    return kornia.metrics.ssim(a, b, window_size=ssim_window(a.shape[-2], a.shape[-1]))


def ssim_t(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image mean SSIM of float (N, C, H, W) images in [0, 1], differentiable: (N,)."""
    return ssim_map(a, b).mean(dim=(1, 2, 3))


def ssim_uint8(a: np.ndarray, b: np.ndarray, batch: int = 1024, after_batch=None) -> float:
    """Mean SSIM between uint8 (N, H, W, C) arrays, a batch at a time (``after_batch(i, j)`` is called after rows
    i:j are done, e.g. to release a memory-mapped set's pages)."""
    vals = []
    for i in range(0, a.shape[0], batch):
        ta = torch.from_numpy(np.array(a[i:i + batch])).permute(0, 3, 1, 2).float().div(255)
        tb = torch.from_numpy(np.array(b[i:i + batch])).permute(0, 3, 1, 2).float().div(255)
        vals.append(ssim_t(ta, tb))
        if after_batch is not None:
            after_batch(i, i + batch)
    return float(torch.cat(vals).mean())
