"""UEraser-Lite (Qin et al. 2023): strong random augmentation of every training batch (batch stage)."""

from __future__ import annotations

import kornia.augmentation as KA
import torch

from .base import Countermeasure, seeded_global_rng
from .registry import COUNTERMEASURES


def ueraser_pipeline() -> torch.nn.Module:
    """UEraser-Lite's kornia pipeline, as published with APBench (Qin et al.).

    1. RandomPlasmaBrightness(roughness=(0.1, 0.7), intensity=(0.0, 1.0), p=1)
    2. RandomPlasmaContrast(roughness=(0.1, 0.7), p=1)
    3. RandomChannelShuffle(p=0.5)
    4. TrivialAugment() with kornia's default policy: one op per batch, drawn uniformly from
       auto_contrast, equalize, rotate +-30 deg, posterize 0-4 bits, solarize, contrast/brightness/
       sharpness 0.1-1.9, shear_x/y +-0.3, translate_x/y +-0.5; magnitude drawn per image.
    Plasma and channel-shuffle parameters are drawn per image.
    """
    return KA.AugmentationSequential(
        KA.RandomPlasmaBrightness(roughness=(0.1, 0.7), intensity=(0.0, 1.0), same_on_batch=False, p=1.0),
        KA.RandomPlasmaContrast(roughness=(0.1, 0.7), same_on_batch=False, p=1.0),
        KA.RandomChannelShuffle(same_on_batch=False, p=0.5),
        KA.auto.TrivialAugment(),
    )


@COUNTERMEASURES.register("UEraser")
class UEraser(Countermeasure):
    """UEraser-Lite: kornia plasma brightness/contrast, channel shuffle, TrivialAugment per batch (batch);
    no parameters."""

    name = "UEraser"
    stage = "batch"

    def __init__(self) -> None:
        super().__init__()
        self._aug = ueraser_pipeline()

    def apply_batch(self, x: torch.Tensor, y: torch.Tensor, num_classes: int,
                    gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        # kornia draws from torch's global RNG: seed it from gen and restore it afterwards
        with seeded_global_rng(gen, x.device), torch.no_grad():
            out = self._aug(x)
        return out.clamp(0.0, 1.0), y  # not in place: kornia may hand back its input
