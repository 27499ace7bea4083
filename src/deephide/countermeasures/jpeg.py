"""JPEG round trips of the uint8 training set (data stage): JPEG (any quality), JPEG2 ... JPEG90, and ISS's
grayscale-then-JPEG (Gray+JPEG, ISS-JPEG10)."""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any
import numpy as np
from PIL import Image

from ..errors import DeephideError
from ..data.arrays import check_images
from .base import Countermeasure, chunk_slices, register_variant
from .registry import COUNTERMEASURES
from .gray import Grayscale


def jpeg_roundtrip(images: np.ndarray, quality: int) -> np.ndarray:
    """Pillow JPEG encode + decode of each uint8 (n, H, W, C) image at ``quality``; same shape and dtype.

    Pillow's defaults otherwise: baseline, 4:2:0 chroma subsampling for RGB (1-channel images are
    encoded as 8-bit grayscale, no chroma), libjpeg's standard quantisation tables scaled by quality.
    """
    out = np.empty_like(images)
    gray = images.shape[3] == 1
    buf = io.BytesIO()
    for i in range(images.shape[0]):
        img = Image.fromarray(images[i, :, :, 0] if gray else images[i], "L" if gray else "RGB")
        buf.seek(0)
        buf.truncate()
        img.save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as dec:
            arr = np.asarray(dec.convert("L" if gray else "RGB"))
        out[i] = arr[:, :, None] if gray else arr
    return out


def default_workers() -> int:
    """Threads for JPEG: one per available core (Pillow releases the GIL inside libjpeg), at most 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))


def jpeg_images(images: np.ndarray, quality: int, workers: int | None = None) -> np.ndarray:
    """JPEG round trip of uint8 (N, H, W, C) images, chunks spread over a thread pool.

    workers=None: one thread per core for images of 64x64 and more; a single thread below, where
    the per-image Python work (GIL held) dominates and threads measured slower (32x32: 10.4k vs 8.4k/s).
    """
    n, h, w = images.shape[:3]
    if workers is None:
        workers = default_workers() if h * w >= 64 * 64 else 1
    if workers == 1 or n < 256:
        return jpeg_roundtrip(images, quality)
    out = np.empty_like(images)
    per = int(np.prod(images.shape[1:]))
    # chunks small enough to balance the threads, large enough to amortise the task overhead
    slices = list(chunk_slices(n, per, budget=max(per, per * -(-n // (4 * workers)))))

    def work(sl: slice) -> None:
        out[sl] = jpeg_roundtrip(images[sl], quality)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(work, slices))
    return out


def _workers(n: Any, where: str) -> int | None:
    if n is not None and (not isinstance(n, int) or n < 1):
        raise DeephideError(f"{where}: workers must be None or a positive integer, got {n!r}")
    return n


def _quality(q: Any, where: str) -> int:
    if not isinstance(q, int) or not 1 <= q <= 95:
        raise DeephideError(f"{where}: quality must be an integer in 1..95, got {q!r}")
    return q


@COUNTERMEASURES.register("JPEG")
class JPEG(Countermeasure):
    """Pillow JPEG round trip, 4:2:0 chroma (data); params: quality=75 (1..95), workers=None (threads)."""

    name = "JPEG"
    stage = "data"

    def __init__(self, quality: int = 75, workers: int | None = None) -> None:
        super().__init__(quality=_quality(quality, "JPEG"))
        self.quality, self.workers = quality, _workers(workers, "JPEG")

    def apply_data(self, images: np.ndarray, seed: int) -> np.ndarray:
        check_images(images, self.name)
        return jpeg_images(images, self.quality, self.workers)


JPEG_QUALITIES = (2, 5, 10, 20, 30, 40, 50, 60, 70, 75, 80, 90)
for _q in JPEG_QUALITIES:
    register_variant(f"JPEG{_q}", JPEG, f"JPEG round trip at quality={_q}; params: workers=None", quality=_q)


@COUNTERMEASURES.register("Gray+JPEG")
class GrayJPEG(Countermeasure):
    """Grayscale then JPEG, as in ISS (Liu et al. 2023) (data); params: quality=10 (1..95), workers=None."""

    name = "Gray+JPEG"
    stage = "data"

    def __init__(self, quality: int = 10, workers: int | None = None) -> None:
        super().__init__(quality=_quality(quality, "Gray+JPEG"))
        self.quality, self.workers = quality, _workers(workers, "Gray+JPEG")

    def apply_data(self, images: np.ndarray, seed: int) -> np.ndarray:
        g = Grayscale().apply_data(images, seed)
        return jpeg_images(g, self.quality, self.workers)


register_variant("ISS-JPEG10", GrayJPEG, "ISS: grayscale then JPEG quality=10; params: workers=None", quality=10)
