"""CutMix (Yun et al. 2019): a box of another image of the batch, labels mixed by area (batch stage)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import DeephideError
from .base import Countermeasure, box_mask, centred_box, cpu_randint
from .registry import COUNTERMEASURES


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
    """CutMix: square box from a permuted batch image, soft labels by pasted area (batch);
    params: dist='side'|'area', shared=False."""

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


