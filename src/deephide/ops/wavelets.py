"""Orthonormal single-level 2-D Haar transform (the fixed, unlearned front end of the HiNet INN).

Channel layout (group-major, as in HiNet): for an input with C channels, ``dwt`` returns 4C
channels ordered ``[LL_0..LL_{C-1}, HL_0..HL_{C-1}, LH_0..LH_{C-1}, HH_0..HH_{C-1}]``, i.e.
channel ``g * C + c`` holds sub-band ``g`` (0=LL, 1=HL, 2=LH, 3=HH) of input channel ``c``.

With the 2x2 block ``[[a, c], [b, d]]`` (a = even row/even col, b = odd row/even col,
c = even row/odd col, d = odd row/odd col) the coefficients are
``LL = (a+b+c+d)/2``, ``HL = (-a-b+c+d)/2`` (column difference), ``LH = (-a+b-c+d)/2`` (row
difference), ``HH = (a-b-c+d)/2``. The 4x4 matrix with entries +-1/2 is orthogonal, so the
transform preserves energy (sum of squares) and ``iwt`` is its transpose. LL is twice the 2x2
mean, so a constant image of value v has LL = 2v and zero detail bands.
"""

from __future__ import annotations

import torch

from ..errors import DeephideError

#: Sub-band names in the order of the channel groups produced by :func:`dwt`.
SUBBANDS: tuple[str, ...] = ("LL", "HL", "LH", "HH")


def _check_float4d(x: torch.Tensor, what: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise DeephideError(f"{what}: expected a 4-D tensor (N, C, H, W), got {getattr(x, 'shape', type(x).__name__)}")
    if not x.is_floating_point():
        raise DeephideError(f"{what}: expected a floating-point tensor, got {x.dtype}")


def dwt(x: torch.Tensor) -> torch.Tensor:
    """Haar analysis: (N, C, H, W) -> (N, 4C, H/2, W/2), group-major [LL, HL, LH, HH].

    Any float dtype and device; H and W must be even. Values: LL in [0, 2] for images in [0, 1],
    detail bands in [-1, 1].
    """
    _check_float4d(x, "dwt input")
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        raise DeephideError(f"dwt input: height and width must be even, got {h}x{w}")
    a = x[:, :, 0::2, 0::2]
    b = x[:, :, 1::2, 0::2]
    c = x[:, :, 0::2, 1::2]
    d = x[:, :, 1::2, 1::2]
    # halving first keeps every intermediate in range and makes the 1/2 scaling exact
    a, b, c, d = a * 0.5, b * 0.5, c * 0.5, d * 0.5
    ll = a + b + c + d
    hl = -a - b + c + d
    lh = -a + b - c + d
    hh = a - b - c + d
    return torch.cat((ll, hl, lh, hh), dim=1)


def iwt(y: torch.Tensor) -> torch.Tensor:
    """Haar synthesis, the exact inverse of :func:`dwt`: (N, 4C, h, w) -> (N, C, 2h, 2w)."""
    _check_float4d(y, "iwt input")
    n, c4, h, w = y.shape
    if c4 % 4:
        raise DeephideError(f"iwt input: channel count must be a multiple of 4, got {c4}")
    ll, hl, lh, hh = (t * 0.5 for t in y.chunk(4, dim=1))
    a = ll - hl - lh + hh
    b = ll - hl + lh - hh
    c = ll + hl - lh - hh
    d = ll + hl + lh + hh
    # interleave without index assignment so autograd, any device and any dtype just work
    top = torch.stack((a, c), dim=-1)  # (N, C, h, w, 2): even rows, columns even/odd
    bottom = torch.stack((b, d), dim=-1)  # odd rows
    out = torch.stack((top, bottom), dim=3)  # (N, C, h, 2, w, 2)
    return out.reshape(n, c4 // 4, 2 * h, 2 * w)


def lowpass(x: torch.Tensor) -> torch.Tensor:
    """The LL sub-band of :func:`dwt` only: (N, C, H, W) -> (N, C, H/2, W/2), = 2 x the 2x2 mean."""
    return dwt(x)[:, : x.shape[1]]
