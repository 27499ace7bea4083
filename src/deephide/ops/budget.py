"""The L-inf budget guarantee: project float stego images, then quantise to uint8 within budget."""

from __future__ import annotations

import torch

from ..errors import DeephideError


def parse_eps(text: str | float) -> int:
    """The budget as given on the command line -> uint8 levels (an int, 1..255): ``8/255``, ``8`` or ``0.03137``
    (a fraction of 1 that is a whole number of levels, to 1e-3 of a level).

    In code a budget is ``levels`` (int uint8 levels) or ``eps`` (a fraction of 1, = levels / 255) at the edges only.

    >>> parse_eps("8/255"), parse_eps("16"), parse_eps("0.03137")
    (8, 16, 8)
    """
    try:
        if isinstance(text, str) and "/" in text:
            num, den = text.split("/", 1)
            val = float(num) / float(den) * 255.0
        else:
            val = float(text)
            val = val * 255.0 if val < 1.0 else val
    except ValueError:
        raise DeephideError(f"--eps: cannot read '{text}' (write 8/255, 8 or 0.031)") from None
    levels = int(round(val))
    if not 1 <= levels <= 255 or abs(levels - val) > 1e-6 * max(1.0, val) + 1e-3:
        raise DeephideError(f"--eps: {text} is not a whole number of uint8 levels in 1..255")
    return levels


def project_to_budget(stego: torch.Tensor, cover: torch.Tensor, eps: float) -> torch.Tensor:
    """Clamp ``stego`` into [cover - eps, cover + eps] intersected with [0, 1].

    stego, cover: float (N, C, H, W), cover in [0, 1]; eps >= 0. Returns a new float tensor.
    """
    if stego.shape != cover.shape:
        raise DeephideError(f"project_to_budget: shapes differ, {tuple(stego.shape)} vs {tuple(cover.shape)}")
    if not (stego.is_floating_point() and cover.is_floating_point()):
        raise DeephideError("project_to_budget: stego and cover must be float tensors")
    if eps < 0:
        raise DeephideError(f"project_to_budget: eps must be >= 0, got {eps}")
    cover = cover.to(stego.dtype)
    return torch.minimum(torch.maximum(stego, cover - eps), cover + eps).clamp(0.0, 1.0)


def quantise_within_budget(stego_float: torch.Tensor, cover_uint8: torch.Tensor, levels: int = 8) -> torch.Tensor:
    """Round float stego images to uint8 so every pixel is within ``levels`` of the clean pixel.

    stego_float: float (N, C, H, W), nominally in [0, 1] (values outside are clipped).
    cover_uint8: uint8 tensor of the same shape, the clean images.
    Returns uint8 (N, C, H, W). Rounding is round-half-to-even of stego * 255; the clip to
    cover +- levels and 0..255 is done in int16, so the bound holds exactly (no float slack).
    """
    if stego_float.shape != cover_uint8.shape:
        raise DeephideError(
            f"quantise_within_budget: shapes differ, {tuple(stego_float.shape)} vs {tuple(cover_uint8.shape)}"
        )
    if cover_uint8.dtype != torch.uint8:
        raise DeephideError(f"quantise_within_budget: cover must be uint8, got {cover_uint8.dtype}")
    if not stego_float.is_floating_point():
        raise DeephideError(f"quantise_within_budget: stego must be float, got {stego_float.dtype}")
    if not isinstance(levels, int) or not 0 <= levels <= 255:
        raise DeephideError(f"quantise_within_budget: levels must be an integer in 0..255, got {levels!r}")
    if not bool(torch.isfinite(stego_float).all()):
        raise DeephideError("quantise_within_budget: stego contains NaN or infinite values")
    # clamp in float first so the int16 cast cannot overflow on wild values
    q = torch.round(stego_float.float().clamp(-1.0, 2.0) * 255.0).to(torch.int16)
    c = cover_uint8.to(torch.int16)
    q = torch.minimum(torch.maximum(q, c - levels), c + levels).clamp(0, 255)
    return q.to(torch.uint8)


def clipped_count(stego_float: torch.Tensor, stored: torch.Tensor) -> int:
    """How many values the clip of :func:`quantise_within_budget` moved: ``stored`` (its uint8 result for
    ``stego_float``) against the plain rounding of ``stego_float``. 0 when the hider kept the budget itself."""
    return int((torch.round(stego_float.float().clamp(-1.0, 2.0) * 255.0) != stored.float()).sum())


def bounded_perturbation(raw: torch.Tensor, cover: torch.Tensor, eps: float) -> torch.Tensor:
    """Map an unbounded perturbation into the budget smoothly: the hider keeps the budget itself.

    raw: float (N, C, H, W), any value; cover: float (N, C, H, W) in [0, 1]; eps > 0 ([0, 1] units).
    Returns delta with cover + delta in [cover - eps, cover + eps] and in [0, 1] at every element:
    delta = up * tanh(raw / up) for raw >= 0 and -down * tanh(-raw / down) below, where
    up = min(eps, 1 - cover) and down = min(eps, cover) are the room left on each side. The map
    has f(0) = 0 and slope 1 at 0 (a fresh INN still returns the cover exactly, a small
    perturbation passes unchanged), so the clip on write has nothing left to do.

    Why this shape: a symmetric eps * tanh(raw / eps) still leaves the [0, 1] box to the clip,
    which on Fashion-MNIST's black background (about half the pixels at 0) would cut every
    negative value; measuring the headroom per pixel makes the stored value equal the hider's.

    Example:
        >>> c = torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1)
        >>> d = bounded_perturbation(torch.tensor([-1.0, 1.0, 1.0]).view(1, 3, 1, 1), c, 8 / 255)
        >>> [round(v * 255, 2) for v in d.flatten().tolist()]
        [0.0, 8.0, 0.0]
    """
    if raw.shape != cover.shape:
        raise DeephideError(f"bounded_perturbation: shapes differ, {tuple(raw.shape)} vs {tuple(cover.shape)}")
    if not eps > 0:
        raise DeephideError(f"bounded_perturbation: eps must be > 0, got {eps}")
    raw, cover = raw.float(), cover.float()  # the headroom of a 0-level pixel needs float32, not bf16
    floor = 1e-6  # << one level (1/255): a room of 0 gives raw/floor finite, tanh 1, value and gradient 0
    up = torch.clamp(1.0 - cover, min=0.0, max=eps)
    down = torch.clamp(cover, min=0.0, max=eps)
    # where the room is 0 the ratio is huge, tanh is +-1 and the product is exactly 0 (zero gradient too)
    pos = up * torch.tanh(raw.clamp(min=0.0) / up.clamp(min=floor))
    neg = down * torch.tanh(raw.clamp(max=0.0) / down.clamp(min=floor))
    return pos + neg
