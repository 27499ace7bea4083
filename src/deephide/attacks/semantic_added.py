"""Control ``semantic-added``: the semantic image itself added to the cover, no hiding network.

It asks whether Deep Hiding's INN matters or whether any bounded, class-consistent semantic pattern
would do. Each secret s (the same banks Deep Hiding hides, from ``deephide.semantic.make_bank``) becomes

    delta = eps * (s - mean(s)) / max |s - mean(s)|      (mean over all of the secret's values)

so its full dynamic range fills the budget. ``-C``: one secret per class; ``-S``: each image a secret
of its class's group (sample-wise), assigned exactly as Deep Hiding's protect assigns them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data import ImageSet
from ..errors import DeephideError
from .registry import ATTACKS
from .base import AttackRun, finish_attack, start_attack

LUMA = (0.299, 0.587, 0.114)


def secret_bank(run: AttackRun, mode: str):
    """The run's SecretBank (lazy import: the semantic package is optional weight for model-free attacks)."""
    from ..semantic import make_bank

    h, w, _ = run.train.shape
    if h != w:
        raise DeephideError(f"{run.train.source}: semantic secrets are square; images are {h}x{w}")
    s = run.settings
    opts = {"per_class": s["per_class"], **s.get("bank_options", {})}
    return make_bank(s["source"], run.train, mode, size=h, seed=run.seed, **opts)


def secrets_float(images: np.ndarray, channels: int) -> torch.Tensor:
    """uint8 (M, H, W, 3) secrets -> float (M, channels, H, W) in [0, 1] (luma for one-channel data)."""
    t = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)
    if channels == 1:
        t = (t * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return t


def centred_scaled(secrets: torch.Tensor, eps: float) -> torch.Tensor:
    """eps * (s - mean(s)) / max|s - mean(s)| per secret (a constant secret gives zero noise)."""
    c = secrets - secrets.mean(dim=(1, 2, 3), keepdim=True)
    m = c.abs().amax(dim=(1, 2, 3), keepdim=True)
    return torch.where(m > 0, c / m.clamp_min(1e-12), torch.zeros_like(c)) * eps


def _run(name: str, mode: str, train: ImageSet, eps_levels: int, profile: str, seed: int, device: str,
         progress: bool, options: dict[str, Any]) -> ImageSet:
    run = start_attack(name, train, eps_levels, profile, seed, device, progress, options)
    bank = secret_bank(run, mode)
    noise = centred_scaled(secrets_float(bank.images, train.shape[2]), run.eps)
    assign = torch.from_numpy(bank.assign(train.labels, mode, run.seed))

    def fn(x: torch.Tensor, y: torch.Tensor, start: int) -> torch.Tensor:
        return x + noise[assign[start:start + x.shape[0]]].to(x.device, x.dtype)

    extra = {"secrets": bank.meta, "secrets_count": int(bank.images.shape[0])}
    return finish_attack(run, fn, mode, extra=extra)


@ATTACKS.register("semantic-added-C", help="control: the class's semantic image added directly, scaled into eps")
def semantic_added_c(train: ImageSet, *, eps_levels: int = 8, profile: str = "cpu", seed: int = 0,
                     device: str = "auto", progress: bool = True, **options: Any) -> ImageSet:
    """Class-wise: every image of class k gets the same centred, eps-scaled secret (source default ``sig``)."""
    return _run("semantic-added-C", "class", train, eps_levels, profile, seed, device, progress, options)


@ATTACKS.register("semantic-added-S", help="control: a semantic image of the class group "
                                           "added per image, scaled into eps")
def semantic_added_s(train: ImageSet, *, eps_levels: int = 8, profile: str = "cpu", seed: int = 0,
                     device: str = "auto", progress: bool = True, **options: Any) -> ImageSet:
    """Sample-wise: each image gets one of its class's ``per_class`` secrets (assigned as protect does)."""
    return _run("semantic-added-S", "sample", train, eps_levels, profile, seed, device, progress, options)
