"""Gray: the training set to ITU-R BT.601 grayscale, replicated to 3 channels (data stage)."""

from __future__ import annotations

import kornia
import numpy as np
import torch

from ..data.arrays import check_images
from .base import Countermeasure, map_uint8_chunks
from .registry import COUNTERMEASURES


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


