"""Standard training augmentation applied to whole batches on the data's device (no per-image loop)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Pad-``pad`` random crop back to the input size plus random horizontal flip.

    x: (N, C, H, W) any dtype, any device. Zero padding, as torchvision's RandomCrop(padding=4).
    Random numbers come from the CPU generator ``gen`` so results match across devices.
    """
    n, _, h, w = x.shape
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(x.device)
    flip = (torch.rand(n, generator=gen) < 0.5).to(x.device)
    xp = F.pad(x, (pad, pad, pad, pad))
    rows = dy[:, None] + torch.arange(h, device=x.device)[None, :]           # (N, H)
    cols = dx[:, None] + torch.arange(w, device=x.device)[None, :]           # (N, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)                    # flip = reversed columns
    # one gather over the batch instead of a Python loop over images
    idx_n = torch.arange(n, device=x.device)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2)


def random_resized_crop_flip(x: torch.Tensor, gen: torch.Generator, size: int,
                             scale: tuple[float, float] = (0.08, 1.0),
                             ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> torch.Tensor:
    """ImageNet-style random resized crop to ``size`` plus horizontal flip, batched via affine grids.

    x: float (N, C, H, W). One crop box per image (area fraction ~ U(scale), log-uniform aspect).
    """
    n, _, h, w = x.shape
    area = torch.empty(n).uniform_(scale[0], scale[1], generator=gen)
    logr = torch.empty(n).uniform_(torch.log(torch.tensor(ratio[0])).item(),
                                   torch.log(torch.tensor(ratio[1])).item(), generator=gen)
    r = torch.exp(logr)
    cw = torch.sqrt(area * r).clamp(max=1.0)   # crop width as a fraction of W
    ch = torch.sqrt(area / r).clamp(max=1.0)
    cx = (torch.rand(n, generator=gen) * 2 - 1) * (1 - cw)
    cy = (torch.rand(n, generator=gen) * 2 - 1) * (1 - ch)
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = cw * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = ch
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta.to(x.device, x.dtype), (n, x.shape[1], size, size), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def augment_batch(x: torch.Tensor, kind: str, gen: torch.Generator) -> torch.Tensor:
    """Apply the profile's augmentation ``kind`` to a float batch in [0, 1]."""
    if kind == "none":
        return x
    if kind == "crop-flip":
        return random_crop_flip(x, gen)
    if kind == "rrc-flip":
        return random_resized_crop_flip(x, gen, size=x.shape[-1])
    if kind == "auto":  # the paper: crop-flip for CIFAR-sized images, random-resized-crop for ImageNet
        return random_crop_flip(x, gen) if x.shape[-1] < 128 else random_resized_crop_flip(x, gen, x.shape[-1])
    raise ValueError(f"unknown augmentation '{kind}'")
