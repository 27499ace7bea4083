"""Source tracing: does a set of images carry the owner's logo? (the paper's reveal byproduct, made usable)

Score = Pearson correlation between the image revealed by the hider's inverse and the logo.
The decision threshold is calibrated on clean images (which carry nothing): the (1 - fpr)
quantile of their scores, so about ``fpr`` of clean images are flagged by construction.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch

from .errors import DeephideError
from .ops.metrics import correlation


def trace_scores(images: np.ndarray, hider: torch.nn.Module, logo: np.ndarray, batch_size: int = 256,
                 device: str = "auto") -> np.ndarray:
    """Scores of uint8 images (N, H, W, 3): correlation of what the hider reveals with the logo."""
    from .data import ImageSet
    from .protect import reveal

    if images.shape[1:] != logo.shape:
        raise DeephideError(f"trace: images are {images.shape[1:]} but the logo is {logo.shape}")
    ds = ImageSet(images, np.zeros(len(images), np.int64), ("?",), source="trace input")
    return correlation(reveal(ds, hider, batch_size=batch_size, device=device, progress=False), logo)


def calibrate(clean_scores: np.ndarray, fpr: float = 0.01) -> float:
    """Threshold with about ``fpr`` of clean scores above it."""
    if not 0 < fpr < 1:
        raise DeephideError(f"--fpr must be in (0, 1), got {fpr}")
    return float(np.quantile(clean_scores, 1.0 - fpr))


def jpeg(images: np.ndarray, quality: int = 75) -> np.ndarray:
    """JPEG round trip of uint8 (N, H, W, 3) images at ``quality`` (Pillow defaults)."""
    from PIL import Image

    out = np.empty_like(images)
    for i, im in enumerate(images):
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        out[i] = np.asarray(Image.open(buf).convert("RGB"))
    return out


def evaluate_tracing(clean: np.ndarray, protected: np.ndarray, hider: torch.nn.Module, logo: np.ndarray,
                     fpr: float = 0.01, jpeg_quality: int | None = 75, device: str = "auto") -> dict[str, Any]:
    """False-positive rate on clean images and detection rate on protected ones (also after JPEG).

    The threshold is calibrated on the first half of ``clean`` and the FPR measured on the second
    half, so the reported FPR is an honest held-out number.
    """
    half = len(clean) // 2
    if half < 10:
        raise DeephideError("trace: need at least 20 clean images to calibrate and measure")
    cal = trace_scores(clean[:half], hider, logo, device=device)
    thr = calibrate(cal, fpr)
    held = trace_scores(clean[half:], hider, logo, device=device)
    prot = trace_scores(protected, hider, logo, device=device)
    out = {"threshold": thr, "target_fpr": fpr, "fpr_clean": float((held > thr).mean()),
           "detection": float((prot > thr).mean()), "n_clean": int(len(clean) - half),
           "n_protected": int(len(protected)),
           "score_clean_mean": float(held.mean()), "score_protected_mean": float(prot.mean())}
    if jpeg_quality:
        pj, cj = trace_scores(jpeg(protected, jpeg_quality), hider, logo, device=device), \
            trace_scores(jpeg(clean[half:], jpeg_quality), hider, logo, device=device)
        out.update({"jpeg_quality": jpeg_quality, "detection_jpeg": float((pj > thr).mean()),
                    "fpr_clean_jpeg": float((cj > thr).mean())})
    return out
