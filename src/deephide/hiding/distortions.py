"""Distortions between hiding and what learns from the stored image during hider training (a "noise layer").

Not in the paper: this project's extension for robustness. A victim's trainer shifts and flips the
images (pad + random crop, horizontal flip) and a defender may JPEG-compress or filter them; a message
that only survives at one pixel phase lives in the finest wavelet band (a checkerboard-like
perturbation), which a shift or flip turns into its negative and JPEG removes. Revealing from a
distorted copy of the stored image during training (as robust watermarking does, e.g. HiDDeN) makes
the hider put the hidden image where those operations keep it. The revealed image is compared with
the secret distorted the same way for geometric distortions, and with the secret itself otherwise.

Each training step draws one distortion from the profile's ``reveal_distortions`` list (``none``
included if listed, so some steps train the undistorted path; a name listed twice is drawn twice as often).
The surrogate victim (hiding.surrogate) draws from ``sv_distortions`` the same way: there the families are
the countermeasures of the reference tables, so the shortcut the hider builds is one a victim still learns
after JPEG, bit-depth reduction, noise, filters, grayscale or Cutout (issue 33). Names: :data:`DISTORTIONS`;
every one passes a gradient to the stored image (tests/hiding/test_distortions.py).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ..errors import DeephideError

Distortion = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


def _none(stored: torch.Tensor, secret: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return stored, secret


def _shift_flip(stored: torch.Tensor, secret: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: a circular shift by (dy, dx) in {-2..2}^2 and a horizontal flip with p = 1/2,
    applied to both the stored image and the reveal target (the victim's crop + flip, without padding)."""
    n = stored.shape[0]
    shifts = torch.randint(-2, 3, (n, 2), generator=gen).tolist()
    flips = (torch.rand(n, generator=gen) < 0.5).tolist()
    outs, tgts = [], []
    for i in range(n):  # a Python loop over ~40 images: negligible next to the INN
        s, t = stored[i], secret[i]
        if flips[i]:
            s, t = s.flip(-1), t.flip(-1)
        dy, dx = shifts[i]
        outs.append(s.roll((dy, dx), dims=(-2, -1)))
        tgts.append(t.roll((dy, dx), dims=(-2, -1)))
    return torch.stack(outs), torch.stack(tgts)


def _jpeg(stored: torch.Tensor, secret: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable JPEG (kornia) at a quality drawn per image from U[10, 75]."""
    from kornia.enhance import jpeg_codec_differentiable

    q = 10.0 + 65.0 * torch.rand(stored.shape[0], generator=gen)
    out = jpeg_codec_differentiable(stored.float().clamp(0, 1), q.to(stored.device))
    return out, secret


def _jpeg_any(stored: torch.Tensor, secret: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable JPEG (kornia) at a quality drawn per image from U[10, 90] (the tables' JPEG10 .. JPEG50 and
    what photos are published with)."""
    from kornia.enhance import jpeg_codec_differentiable

    q = 10.0 + 80.0 * torch.rand(stored.shape[0], generator=gen)
    return jpeg_codec_differentiable(stored.float().clamp(0, 1), q.to(stored.device)), secret


def _bdr(stored: torch.Tensor, secret: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """2-bit bit-depth reduction (the BDR countermeasure: round(x * 3) / 3), rounding passed straight through."""
    q = torch.round(stored * 3.0) / 3.0
    return stored + (q - stored).detach(), secret


#: bdr-soft's staircase: the 2-bit BDR's thresholds (1/6, 1/2, 5/6 of the range) and the width of each soft step
#: (3 uint8 levels): the gradient is large within a few levels of a threshold and ~0 far from one (8 levels away:
#: a quarter of its peak), i.e. where an 8-level perturbation can change what BDR keeps
BDR_THRESHOLDS, BDR_SOFT_LEVELS = (1 / 6, 1 / 2, 5 / 6), 3.0


def _bdr_soft(stored: torch.Tensor, secret: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """2-bit BDR exactly as ``bdr`` (forward: round(x * 3) / 3), with the gradient of a smooth staircase of the same
    step heights, sum_k sigmoid((x - t_k) / tau) / 3, tau = 3 levels. Why: BDR keeps a pixel's perturbation only where
    it crosses a threshold (7.7% of the Fashion-MNIST pixels lie within 8 levels of one); the straight-through
    gradient of ``bdr`` asks every pixel to move as if all did, this one asks the pixels whose move BDR keeps."""
    q = torch.round(stored * 3.0) / 3.0
    tau = BDR_SOFT_LEVELS / 255.0
    soft = sum(torch.sigmoid((stored - t) / tau) for t in BDR_THRESHOLDS) / 3.0
    return q + (soft - soft.detach()), secret


def _noise(stored: torch.Tensor, secret: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Additive Gaussian noise, sigma 0.1 (the GaussN countermeasure), clamped to [0, 1]."""
    n = torch.randn(stored.shape, generator=gen, dtype=torch.float32).to(stored.device, stored.dtype)
    return (stored + 0.1 * n).clamp(0.0, 1.0), secret


def _median(stored: torch.Tensor, secret: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """3x3 median filter (MedianF; kornia: the gradient reaches the pixel each median picked)."""
    from kornia.filters import median_blur

    return median_blur(stored, (3, 3)), secret


def _gauss(stored: torch.Tensor, secret: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """3x3 Gaussian blur, sigma drawn from U[0.5, 1.5] per batch (GaussF at its paper sigma 0.1 is an identity
    on 8-bit images: a visible blur is what a defender would try), reflect border (kornia)."""
    from kornia.filters import gaussian_blur2d

    s = 0.5 + float(torch.rand((), generator=gen))
    return gaussian_blur2d(stored, (3, 3), (s, s), border_type="reflect"), secret


def _gray(stored: torch.Tensor, secret: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Grayscale (the Gray countermeasure: ITU-R 601 luma, kornia), replicated back to the input's channels."""
    from kornia.color import rgb_to_grayscale

    if stored.shape[1] != 3:
        return stored, secret
    return rgb_to_grayscale(stored).expand_as(stored), secret


def _crop_flip(stored: torch.Tensor, secret: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The victims' augmentation (pad-4 random crop + horizontal flip), applied to image and target alike."""
    from ..training.augment import random_crop_flip

    both = random_crop_flip(torch.cat((stored, secret.to(stored.dtype)), dim=1), gen)
    c = stored.shape[1]
    return both[:, :c], both[:, c:].to(secret.dtype)


def _cutout(stored: torch.Tensor, secret: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Cutout (DeVries & Taylor 2017, the Cutout countermeasure): one square of half the side, zeroed, centre
    uniform over the image (the square may leave it), per image."""
    n, _, h, w = stored.shape
    side = max(1, h // 2)
    cy = torch.randint(0, h, (n,), generator=gen)[:, None, None]
    cx = torch.randint(0, w, (n,), generator=gen)[:, None, None]
    rows = torch.arange(h)[None, :, None]
    cols = torch.arange(w)[None, None, :]
    hole = ((rows - cy).abs() * 2 < side) & ((cols - cx).abs() * 2 < side)
    return stored * (~hole)[:, None].to(stored.device, stored.dtype), secret


def _blur(stored: torch.Tensor, secret: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """3x3 mean filter (the MeanF countermeasure), reflect padding."""
    c = stored.shape[1]
    k = torch.full((c, 1, 3, 3), 1 / 9, dtype=stored.dtype, device=stored.device)
    return F.conv2d(F.pad(stored, (1, 1, 1, 1), mode="reflect"), k, groups=c), secret


#: name -> distortion(stored (N, C, H, W) in [0, 1], secret (N, C, H, W), generator) -> (distorted, target)
#: ``jpeg`` (qualities 10-75) and ``blur`` are as the first robust hiders used them; ``jpeg-any`` (10-90), ``mean``
#: (= ``blur``), ``median``, ``gauss``, ``bdr``, ``noise``, ``gray``, ``crop-flip``, ``cutout`` are the tables'
#: countermeasure families (issue 33); ``bdr-soft`` is BDR with a gradient only where BDR keeps a move
DISTORTIONS: dict[str, Distortion] = {"none": _none, "shift-flip": _shift_flip, "jpeg": _jpeg, "blur": _blur,
                                      "jpeg-any": _jpeg_any, "mean": _blur, "median": _median, "gauss": _gauss,
                                      "bdr": _bdr, "bdr-soft": _bdr_soft, "noise": _noise, "gray": _gray,
                                      "crop-flip": _crop_flip, "cutout": _cutout}


def check_distortions(names: Sequence[str], extra: Sequence[str] = (),
                      setting: str = "reveal_distortions") -> tuple[str, ...]:
    """``names`` (a list, or names joined by '+') as a tuple, each checked against :data:`DISTORTIONS` and ``extra``
    (other names the ``setting`` admits); an empty list means none."""
    if isinstance(names, str):
        names = [n for n in names.split("+") if n]
    known = [*DISTORTIONS, *extra]
    bad = [n for n in names if n not in known]
    if bad:
        raise DeephideError(f"{setting}: unknown {bad}; known: {', '.join(known)}")
    return tuple(names)


def distort(names: Sequence[str], stored: torch.Tensor, secret: torch.Tensor,
            gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One distortion drawn uniformly from ``names`` (none when empty), applied to the batch.

    stored: float (N, C, H, W) in [0, 1], what protect would store (gradients kept);
    secret: float (N, C, H, W) reveal target. Returns (image to reveal from, reveal target).
    """
    if not names:
        return stored, secret
    pick = names[int(torch.randint(len(names), (1,), generator=gen))]
    return DISTORTIONS[pick](stored, secret, gen)
