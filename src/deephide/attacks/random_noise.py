"""random-noise-C: the EM paper's control, class-wise uniform random noise in [-eps, eps]."""

from __future__ import annotations

from typing import Any
import torch

from ..data import ImageSet
from .registry import ATTACKS
from .base import classwise, finish_attack, start_attack


@ATTACKS.register("random-noise-C", help="control: class-wise uniform random noise in [-eps, eps] (EM paper)")
def random_noise_c(train: ImageSet, *, eps_levels: int = 8, profile: str = "cpu", seed: int = 0,
                   device: str = "auto", progress: bool = True, **options: Any) -> ImageSet:
    """The EM paper's control: one U(-eps, eps) noise per class, added to every image of the class."""
    run = start_attack("random-noise-C", train, eps_levels, profile, seed, device, progress, options)
    h, w, c = train.shape
    noise = (torch.rand((train.num_classes, c, h, w), generator=run.gen) * 2 - 1) * run.eps
    return finish_attack(run, classwise(noise), "class")
