"""Data-stage countermeasures: applied once to the uint8 training set before training.

Every transform here accepts uint8 (N, H, W, C) with C in {1, 3} and any H, W, and returns the
same shape and dtype. They are deterministic (the ``seed`` argument is accepted and unused).
Float work is done on the 0..255 scale and rounded back to the nearest integer.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kornia
import numpy as np
import torch
from PIL import Image

from ..errors import DeephideError
from ..data.arrays import check_images
from .base import (Countermeasure, chunk_slices, map_uint8_chunks,
                   register_variant, safe_border, to_uint8)
from .registry import COUNTERMEASURES


@COUNTERMEASURES.register("Vanilla")
class Vanilla(Countermeasure):
    """No countermeasure (identity); no parameters."""

    name = "Vanilla"
    stage = "data"

    def __init__(self) -> None:
        super().__init__()


@COUNTERMEASURES.register("EarlyStop")
class EarlyStop(Countermeasure):
    """Early stopping: data unchanged, the trainer reports the best evaluation's accuracy; no parameters."""

    name = "EarlyStop"
    stage = "data"
    select = "best"

    def __init__(self) -> None:
        super().__init__()


# ---------------------------------------------------------------------------------------------
# filters


def mean_filter(x: torch.Tensor, k: int = 3) -> torch.Tensor:
    """k x k mean of uint8 (N, C, H, W) -> uint8, border mirrored without repeating the edge.

    ``reflect`` (torch/kornia) = OpenCV's BORDER_REFLECT_101, the default of ``cv2.blur``. The
    window sum is an integer and sum/9 never lies on .5, so float32 rounding is exact.
    """
    f = kornia.filters.box_blur(x.float(), (k, k), border_type=safe_border("reflect", *x.shape[-2:]))
    return to_uint8(f)


def median_filter(x: torch.Tensor, k: int = 3) -> torch.Tensor:
    """k x k median of uint8 (N, C, H, W) -> uint8 per channel, border replicated (edge pixel repeated).

    ``replicate`` is what ``cv2.medianBlur`` and Pillow's ``ImageFilter.MedianFilter`` use; a zero
    border (older kornia) would pull edge pixels towards black. The median picks an input value, so
    the float32 pass is exact.
    """
    f = kornia.filters.median_blur(x.float(), (k, k), border_type="replicate")
    return to_uint8(f)


def gaussian_filter(x: torch.Tensor, sigma: float, k: int = 3) -> torch.Tensor:
    """k x k Gaussian blur (std ``sigma`` px, normalised kernel) of uint8 (N, C, H, W) -> uint8.

    Border ``reflect`` = OpenCV BORDER_REFLECT_101, the default of ``cv2.GaussianBlur`` and of
    torchvision's ``GaussianBlur``. At sigma 0.1 the off-centre taps are ~e^-50: exactly the identity.
    """
    f = kornia.filters.gaussian_blur2d(x.float(), (k, k), (float(sigma), float(sigma)),
                                       border_type=safe_border("reflect", *x.shape[-2:]))
    return to_uint8(f)


def _odd_kernel(k: Any, where: str) -> int:
    if not isinstance(k, int) or k < 1 or k % 2 == 0:
        raise DeephideError(f"{where}: kernel must be a positive odd integer, got {k!r}")
    return k


@COUNTERMEASURES.register("MeanF")
class MeanFilter(Countermeasure):
    """k x k mean filter, reflect-101 border (data); params: kernel=3."""

    name = "MeanF"
    stage = "data"

    def __init__(self, kernel: int = 3) -> None:
        super().__init__(kernel=_odd_kernel(kernel, "MeanF"))
        self.kernel = kernel

    def apply_data(self, images: np.ndarray, seed: int) -> np.ndarray:
        return map_uint8_chunks(images, lambda t: mean_filter(t, self.kernel), self.name)


@COUNTERMEASURES.register("MedianF")
class MedianFilter(Countermeasure):
    """k x k median filter, replicated border (data); params: kernel=3."""

    name = "MedianF"
    stage = "data"

    def __init__(self, kernel: int = 3) -> None:
        super().__init__(kernel=_odd_kernel(kernel, "MedianF"))
        self.kernel = kernel

    def apply_data(self, images: np.ndarray, seed: int) -> np.ndarray:
        return map_uint8_chunks(images, lambda t: median_filter(t, self.kernel), self.name)


@COUNTERMEASURES.register("GaussF")
class GaussianFilter(Countermeasure):
    """k x k Gaussian blur, reflect-101 border (data); params: sigma=0.1 (paper: ~identity), kernel=3."""

    name = "GaussF"
    stage = "data"

    def __init__(self, sigma: float = 0.1, kernel: int = 3) -> None:
        if not sigma > 0:
            raise DeephideError(f"GaussF: sigma must be > 0, got {sigma!r}")
        super().__init__(sigma=float(sigma), kernel=_odd_kernel(kernel, "GaussF"))
        self.sigma, self.kernel = float(sigma), kernel

    def apply_data(self, images: np.ndarray, seed: int) -> np.ndarray:
        return map_uint8_chunks(images, lambda t: gaussian_filter(t, self.sigma, self.kernel), self.name)


register_variant("GaussF-0.8", GaussianFilter, "GaussF with sigma=0.8 (a visible 3x3 blur); params: kernel=3",
                 sigma=0.8)


# ---------------------------------------------------------------------------------------------
# bit-depth reduction and grayscale


def bdr_lut(bits: int) -> np.ndarray:
    """uint8 (256,) lookup table of bit-depth reduction to ``bits`` bits, in exact integer arithmetic.

    Quantiser: with L = 2^bits - 1 and x = v / 255, q = round(x * L) / L, stored as round(q * 255).
    Neither rounding ever meets a tie (255 and L are odd), so no tie rule is involved.
    2 bits -> levels {0, 85, 170, 255}: 0..42 -> 0, 43..127 -> 85, 128..212 -> 170, 213..255 -> 255.
    """
    levels = (1 << bits) - 1
    v = np.arange(256, dtype=np.int64)
    q = (2 * v * levels + 255) // 510  # round(v * L / 255)
    return ((2 * q * 255 + levels) // (2 * levels)).astype(np.uint8)  # round(q * 255 / L)


@COUNTERMEASURES.register("BDR")
class BitDepthReduction(Countermeasure):
    """Bit-depth reduction q = round(x(2^b-1))/(2^b-1) per channel (data); params: bits=2 (1..8)."""

    name = "BDR"
    stage = "data"

    def __init__(self, bits: int = 2) -> None:
        if not isinstance(bits, int) or not 1 <= bits <= 8:
            raise DeephideError(f"BDR: bits must be an integer in 1..8, got {bits!r}")
        super().__init__(bits=bits)
        self.bits = bits
        self._lut = bdr_lut(bits)

    def apply_data(self, images: np.ndarray, seed: int) -> np.ndarray:
        check_images(images, self.name)
        return self._lut[images]  # a per-value map: one table lookup, exact, no float


for _b in range(1, 8):
    register_variant(f"BDR-{_b}", BitDepthReduction, f"BDR with bits={_b}; no parameters", bits=_b)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> uint8 (N, 3, H, W): ITU-R BT.601 luma 0.299 R + 0.587 G + 0.114 B, replicated.

    kornia's uint8 path is OpenCV's fixed point (weights x 2^15, round half up), bit-exact with
    ``cv2.cvtColor(..., COLOR_RGB2GRAY)``.
    """
    return kornia.color.rgb_to_grayscale(x).expand(-1, 3, -1, -1)


@COUNTERMEASURES.register("Gray")
class Grayscale(Countermeasure):
    """Grayscale: BT.601 luma replicated to 3 channels; 1-channel input unchanged (data); no parameters."""

    name = "Gray"
    stage = "data"

    def __init__(self) -> None:
        super().__init__()

    def apply_data(self, images: np.ndarray, seed: int) -> np.ndarray:
        check_images(images, self.name)
        if images.shape[3] == 1:
            return images.copy()
        return map_uint8_chunks(images, grayscale, self.name)


# ---------------------------------------------------------------------------------------------
# JPEG


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
