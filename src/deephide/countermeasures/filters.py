"""MeanF, MedianF, GaussF: 3x3 mean, median and Gaussian filters on the uint8 training set (data stage)."""

from __future__ import annotations

from typing import Any
import kornia
import numpy as np
import torch

from ..errors import DeephideError
from .base import Countermeasure, map_uint8_chunks, register_variant, safe_border, to_uint8
from .registry import COUNTERMEASURES


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


