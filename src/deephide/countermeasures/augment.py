"""Batch-stage countermeasures: applied to every training batch (float (N, C, H, W) in [0, 1]).

Random parameters are drawn on the CPU from the trainer's generator and then moved to the batch's
device, so a run gives the same batches on any device. Each transform is split into a sampler
(``sample_*``) and a pure function of the sampled parameters, which the tests check by hand.
"""

from __future__ import annotations

import kornia.augmentation as KA
import torch
import torch.nn.functional as F

from ..errors import DeephideError
from .base import (Countermeasure, box_mask, centred_box, cpu_randint,
                   register_variant, seeded_global_rng)
from .registry import COUNTERMEASURES

# ---------------------------------------------------------------------------------------------
# Cutout (DeVries & Taylor 2017)


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
    """Cutout: zero one square per image, random centre, clipped at the border (batch); params: size=None (16 at 32 px, 116 at 224)."""

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


# ---------------------------------------------------------------------------------------------
# CutMix (Yun et al. 2019)


def cutmix(x: torch.Tensor, y: torch.Tensor, num_classes: int, perm: torch.Tensor, ratio: torch.Tensor,
           cy: torch.Tensor, cx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste into image i the box of image perm[i] with side floor(ratio_i * side), centred at (cy_i, cx_i).

    x: float (N, C, H, W); y: int64 (N,); perm, cy, cx: int64 (N,); ratio: float (N,) in [0, 1];
    all on x's device. The box is clipped at the border; the target is the soft label
    (1 - a) onehot(y) + a onehot(y[perm]) with a the *actual* (clipped) pasted area fraction, as
    in the reference implementation's lam correction. Returns (x', float (N, num_classes)).
    """
    n, _, h, w = x.shape
    side_h = torch.floor(ratio * h).long()
    side_w = torch.floor(ratio * w).long()
    y1, y2, x1, x2 = centred_box(cy, cx, side_h, side_w, h, w)
    mask = box_mask(y1, y2, x1, x2, h, w)
    mixed = torch.where(mask, x[perm], x)
    area = ((y2 - y1) * (x2 - x1)).to(x.dtype) / float(h * w)
    onehot = F.one_hot(y, num_classes).to(x.dtype)
    target = (1 - area)[:, None] * onehot + area[:, None] * onehot[perm]
    return mixed, target


@COUNTERMEASURES.register("CutMix")
class CutMix(Countermeasure):
    """CutMix: square box from a permuted batch image, soft labels by pasted area (batch); params: dist='side'|'area', shared=False."""

    name = "CutMix"
    stage = "batch"

    def __init__(self, dist: str = "side", shared: bool = False) -> None:
        if dist not in ("side", "area"):
            raise DeephideError(f"CutMix: dist must be 'side' or 'area', got {dist!r}")
        super().__init__(dist=dist, shared=bool(shared))
        # 'side': the paper's side ratio ~ U(0, 1); 'area': Yun et al.'s area ratio ~ U(0, 1) (side = sqrt)
        self.dist, self.shared = dist, bool(shared)

    def apply_batch(self, x: torch.Tensor, y: torch.Tensor, num_classes: int,
                    gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, h, w = x.shape
        k = 1 if self.shared else n  # shared: one box for the whole batch, as in the reference code
        perm = torch.randperm(n, generator=gen)
        u = torch.rand(k, generator=gen, dtype=torch.float64)
        ratio = u.sqrt() if self.dist == "area" else u
        cy, cx = cpu_randint(h, k, gen), cpu_randint(w, k, gen)
        dev = x.device
        ratio, cy, cx = ratio.expand(n).to(dev, x.dtype), cy.expand(n).to(dev), cx.expand(n).to(dev)
        return cutmix(x, y, num_classes, perm.to(dev), ratio, cy, cx)


# ---------------------------------------------------------------------------------------------
# Mixup (Zhang et al. 2018), with the paper's label rule


def mixup(x: torch.Tensor, perm: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """x' = lam x + (1 - lam) x[perm]; x float (N, C, H, W), perm int64 (N,), lam float (N,) in [0, 1]."""
    lam = lam.view(-1, 1, 1, 1)
    return lam * x + (1 - lam) * x[perm]


@COUNTERMEASURES.register("Mixup")
class Mixup(Countermeasure):
    """Mixup: blend with a permuted batch image, lam ~ U(0,1), original label kept (batch); params: mix_labels=False, shared=False."""

    name = "Mixup"
    stage = "batch"

    def __init__(self, mix_labels: bool = False, shared: bool = False) -> None:
        super().__init__(mix_labels=bool(mix_labels), shared=bool(shared))
        # the paper keeps the original int label; mix_labels=True gives Zhang et al.'s soft target
        self.mix_labels, self.shared = bool(mix_labels), bool(shared)

    def apply_batch(self, x: torch.Tensor, y: torch.Tensor, num_classes: int,
                    gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        perm = torch.randperm(n, generator=gen)
        lam = torch.rand(1 if self.shared else n, generator=gen).expand(n)
        perm, lam = perm.to(x.device), lam.to(x.device, x.dtype)
        xm = mixup(x, perm, lam)
        if not self.mix_labels:
            return xm, y
        onehot = F.one_hot(y, num_classes).to(x.dtype)
        return xm, lam[:, None] * onehot + (1 - lam)[:, None] * onehot[perm]


# ---------------------------------------------------------------------------------------------
# Gaussian noise


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


# ---------------------------------------------------------------------------------------------
# UEraser-Lite (Qin et al. 2023)


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
    """UEraser-Lite: kornia plasma brightness/contrast, channel shuffle, TrivialAugment per batch (batch); no parameters."""

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
