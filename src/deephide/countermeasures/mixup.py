"""Mixup (Zhang et al. 2018), with the paper's label rule (batch stage)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Countermeasure
from .registry import COUNTERMEASURES


def mixup(x: torch.Tensor, perm: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """x' = lam x + (1 - lam) x[perm]; x float (N, C, H, W), perm int64 (N,), lam float (N,) in [0, 1]."""
    lam = lam.view(-1, 1, 1, 1)
    return lam * x + (1 - lam) * x[perm]


@COUNTERMEASURES.register("Mixup")
class Mixup(Countermeasure):
    """Mixup: blend with a permuted batch image, lam ~ U(0,1), original label kept (batch);
    params: mix_labels=False, shared=False."""

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


