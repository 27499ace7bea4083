"""Cutout (DeVries & Taylor 2017): one square zeroed per training image (batch stage)."""

from __future__ import annotations

import torch

from ..errors import DeephideError
from .base import Countermeasure, box_mask, centred_box, cpu_randint
from .registry import COUNTERMEASURES


def paper_cutout_size(side: int) -> int:
    """Cutout side for an image side: the paper's 16 px at 32 and 116 px at 224, linear in between/beyond.

    The paper gives only the two points (16/32 = 0.5, 116/224 = 0.52); the line through both gives
    14 px for Fashion-MNIST's 28 px and 33 px at 64 px.
    """
    return max(1, int(round(16 + (side - 32) * (116 - 16) / (224 - 32))))


def cutout(x: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, size: int) -> torch.Tensor:
    """Zero a size x size square centred at (cy, cx) in each image, clipped at the border.

    x: float (N, C, H, W) in [0, 1]; cy, cx: int64 (N,) centres on x's device. Zero = black in
    [0, 1] pixel space (the paper's fill). Returns a new tensor.
    """
    h, w = x.shape[-2:]
    s = torch.full_like(cy, size)
    y1, y2, x1, x2 = centred_box(cy, cx, s, s, h, w)
    return x.masked_fill(box_mask(y1, y2, x1, x2, h, w), 0.0)


@COUNTERMEASURES.register("Cutout")
class Cutout(Countermeasure):
    """Cutout: zero one square per image, random centre, clipped at the border (batch);
    params: size=None (16 at 32 px, 116 at 224)."""

    name = "Cutout"
    stage = "batch"

    def __init__(self, size: int | None = None) -> None:
        if size is not None and (not isinstance(size, int) or size < 1):
            raise DeephideError(f"Cutout: size must be a positive integer, got {size!r}")
        super().__init__(size=size)
        self.size = size

    def apply_batch(self, x: torch.Tensor, y: torch.Tensor, num_classes: int,
                    gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, h, w = x.shape
        size = self.size or paper_cutout_size(min(h, w))
        # centres anywhere in the image, as in DeVries & Taylor: boxes near the border are clipped
        cy, cx = cpu_randint(h, n, gen).to(x.device), cpu_randint(w, n, gen).to(x.device)
        return cutout(x, cy, cx, size), y


