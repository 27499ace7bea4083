"""Distortions between hiding and revealing during hider training (a "noise layer").

Not in the paper: this project's extension for robustness. A victim's trainer shifts and flips the
images (pad + random crop, horizontal flip) and a defender may JPEG-compress or filter them; a message
that only survives at one pixel phase lives in the finest wavelet band (a checkerboard-like
perturbation), which a shift or flip turns into its negative and JPEG removes. Revealing from a
distorted copy of the stored image during training (as robust watermarking does, e.g. HiDDeN) makes
the hider put the hidden image where those operations keep it. The revealed image is compared with
the secret distorted the same way for geometric distortions, and with the secret itself otherwise.

Each training step draws one distortion from the profile's ``reveal_distortions`` list (``none``
included if listed, so some steps train the undistorted path). Names: :data:`DISTORTIONS`.
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


def _blur(stored: torch.Tensor, secret: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """3x3 mean filter (the MeanF countermeasure), reflect padding."""
    c = stored.shape[1]
    k = torch.full((c, 1, 3, 3), 1 / 9, dtype=stored.dtype, device=stored.device)
    return F.conv2d(F.pad(stored, (1, 1, 1, 1), mode="reflect"), k, groups=c), secret


#: name -> distortion(stored (N, C, H, W) in [0, 1], secret (N, C, H, W), generator) -> (distorted, target)
DISTORTIONS: dict[str, Distortion] = {"none": _none, "shift-flip": _shift_flip, "jpeg": _jpeg, "blur": _blur}


def check_distortions(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` as a tuple, each checked against :data:`DISTORTIONS` (an empty list means none)."""
    if isinstance(names, str):
        names = [n for n in names.split("+") if n]
    bad = [n for n in names if n not in DISTORTIONS]
    if bad:
        raise DeephideError(f"reveal_distortions: unknown {bad}; known: {', '.join(DISTORTIONS)}")
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
