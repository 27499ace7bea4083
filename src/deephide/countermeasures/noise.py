"""GaussN: Gaussian noise added to every training batch (batch stage); GaussN-0.05, GaussN-0.2."""

from __future__ import annotations

import torch

from ..errors import DeephideError
from .base import Countermeasure, register_variant
from .registry import COUNTERMEASURES


@COUNTERMEASURES.register("GaussN")
class GaussianNoise(Countermeasure):
    """Additive Gaussian noise, std sigma in [0,1] pixels, fresh per batch, clamped (batch); params: sigma=0.1."""

    name = "GaussN"
    stage = "batch"

    def __init__(self, sigma: float = 0.1) -> None:
        if not sigma >= 0:
            raise DeephideError(f"GaussN: sigma must be >= 0, got {sigma!r}")
        super().__init__(sigma=float(sigma))
        # N(0, 0.1) read as standard deviation 0.1 (variance 0.01) on the [0, 1] scale
        self.sigma = float(sigma)

    def apply_batch(self, x: torch.Tensor, y: torch.Tensor, num_classes: int,
                    gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        noise = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
        return (x + self.sigma * noise).clamp_(0.0, 1.0), y


for _s in (0.05, 0.2):
    register_variant(f"GaussN-{_s}", GaussianNoise, f"GaussN with sigma={_s}; no parameters", sigma=_s)


