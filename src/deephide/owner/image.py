"""One photo protected at its own size and in its own mode: the INN run on the whole image (in overlapping tiles where
it is large), the class's secret resized to the cover, the budget kept exactly on the stored values.

Modes: RGB as it is; grey (L, and 16-bit I;16) gets a grey perturbation (the channel mean of the INN's), so it stays
grey; the alpha of RGBA / LA is written back untouched; palette, CMYK and 1-bit images are converted first (scan.py
says to what). Budget: ``levels`` uint8 levels (8 = 8/255) per value, 16-bit images ``levels`` x 257.

>>> import torch
>>> from deephide.hiding.inn import Hider, HiderConfig
>>> h = Hider(HiderConfig(blocks=1, growth=4, clamp=2.0, image_size=32, eps_levels=8))
>>> im = Image.fromarray(np.full((30, 45), 128, np.uint8), "L")
>>> out, st = protect_image(im, "L", h, np.zeros((32, 32, 3), np.uint8), levels=8)
>>> out.mode, out.size, st["max_change"] <= 8
('L', (45, 30), True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import DeephideError
from ..ops.metrics import mse_psnr, ssim_uint8
from ..semantic.bank import resize_secret

#: tile side and overlap of the INN pass on large images (even: tiles start on the Haar grid); memory of the INN pass
#: is that of one tile, whatever the image's size
TILE, OVERLAP = 1024, 32
#: PSNR of an unchanged image, reported as this (dB) so averages and JSON stay finite
PSNR_CAP = 100.0


def _starts(n: int, tile: int, step: int) -> list[int]:
    if n <= tile:
        return [0]
    out = list(range(0, n - tile, step))
    return out + [n - tile]


def _window(th: int, tw: int, overlap: int) -> torch.Tensor:
    """Blend weights of one tile: 1 inside, a linear ramp (never 0) over ``overlap`` pixels at every edge."""
    def ramp(n: int) -> torch.Tensor:
        r = torch.ones(n)
        k = min(overlap, n // 2)
        if k:
            up = torch.arange(1, k + 1, dtype=torch.float32) / (k + 1)
            r[:k], r[n - k:] = up, up.flip(0)
        return r
    return ramp(th)[:, None] * ramp(tw)[None, :]


@torch.no_grad()
def tiled_delta(hider: torch.nn.Module, cover: torch.Tensor, secret: torch.Tensor, tile: int = TILE,
                overlap: int = OVERLAP) -> torch.Tensor:
    """The hider's perturbation of ``cover`` (float (1, 3, H, W) in [0, 1], H and W even) hiding ``secret`` (same
    shape), computed tile by tile (``tile`` x ``tile``, ``overlap`` pixels shared and blended) when the image is
    larger than one tile. Returns float (1, 3, H, W)."""
    h, w = cover.shape[-2:]
    if h <= tile and w <= tile:
        return hider.hide_any_size(cover, secret) - cover
    acc = torch.zeros_like(cover)
    wsum = torch.zeros((1, 1, h, w))
    step = tile - overlap
    for y in _starts(h, tile, step):
        for x in _starts(w, tile, step):
            th, tw = min(tile, h), min(tile, w)
            c, s = cover[..., y:y + th, x:x + tw], secret[..., y:y + th, x:x + tw]
            win = _window(th, tw, overlap)
            acc[..., y:y + th, x:x + tw] += (hider.hide_any_size(c, s) - c) * win
            wsum[..., y:y + th, x:x + tw] += win
    return acc / wsum


def _split(im: Image.Image, mode: str) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """(values, alpha, sixteen): the colour or grey values (H, W, C) as uint8 or uint16, the alpha plane or None."""
    if im.mode != mode:
        im = im.convert("RGBA" if mode == "RGBA" else mode)
    if mode == "I;16":
        return np.array(im, dtype=np.uint16)[..., None], None, True
    a = np.array(im)
    if mode in ("LA", "RGBA"):
        return a[..., :-1].copy(), a[..., -1].copy(), False
    return (a[..., None] if a.ndim == 2 else a), None, False


def even_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (1, 3, H', W') in [0, 1], H' and W' the next even sides: the INN works on even sides,
    so an odd image gets one replicated row / column, cropped again after."""
    h, w = rgb.shape[:2]
    x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float().div(255)
    if h % 2 or w % 2:
        x = torch.nn.functional.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
    return x


def protect_image(im: Image.Image, mode: str, hider: torch.nn.Module, secret: np.ndarray, levels: int = 8,
                  tile: int = TILE) -> tuple[Image.Image, dict[str, Any]]:
    """``im`` protected: the same size, written in ``mode`` (scan.out_mode), every value within ``levels`` of the
    original (x 257 for 16-bit), and its statistics (PSNR / SSIM against the original, the largest and the mean
    absolute change in uint8 levels).

    secret: uint8 (S, S, 3), the secret this image hides (resized here to the image). ``levels`` also sets the
    strength: the hider's own perturbation (kept within its ``eps_levels``) is scaled by levels / eps_levels.
    """
    values, alpha, sixteen = _split(im, mode)
    h, w, ch = values.shape
    v8 = (np.round(values.astype(np.float64) / 257.0).astype(np.uint8) if sixteen else values)
    rgb = np.repeat(v8, 3, axis=2) if ch == 1 else v8
    cover = even_tensor(rgb)
    ph, pw = cover.shape[-2:]
    sec_t = torch.from_numpy(resize_secret(secret, pw, ph).copy()).permute(2, 0, 1)[None].float().div(255)
    own = getattr(getattr(hider, "config", None), "eps_levels", None)
    delta = tiled_delta(hider, cover, sec_t, tile=tile)[..., :h, :w] * (levels / own if own else 1.0)
    if ch == 1:  # grey stays grey
        delta = delta.mean(dim=1, keepdim=True)
    d = delta[0].permute(1, 2, 0).numpy().astype(np.float64)
    if sixteen:
        base = values.astype(np.int64)
        raw = np.round(base + d * 65535.0).astype(np.int64)
        q = np.clip(np.clip(raw, base - levels * 257, base + levels * 257), 0, 65535)
        out_vals = q.astype(np.uint16)
        q8 = np.round(q / 257.0).astype(np.uint8)
    else:
        base = values.astype(np.int64)
        raw = np.round(base + d * 255.0).astype(np.int64)
        q = np.clip(np.clip(raw, base - levels, base + levels), 0, 255)
        out_vals = q8 = q.astype(np.uint8)
    change = np.abs(out_vals.astype(np.int64) - values.astype(np.int64)) / (257.0 if sixteen else 1.0)
    if change.max(initial=0) > levels + 1e-9:  # cannot happen by construction: refuse, never write it
        raise DeephideError(f"budget violated ({change.max():.2f} > {levels} levels)")
    mse = float(np.mean((q8.astype(np.float64) - v8.astype(np.float64)) ** 2))
    small = min(h, w) < 11  # SSIM's 11x11 window needs the room
    stats = {"psnr": min(mse_psnr(mse, 255.0), PSNR_CAP),
             "ssim": None if small else float(ssim_uint8(v8[None], q8[None])),
             "max_change": float(change.max(initial=0)), "mean_change": float(change.mean()),
             # values the clips (budget and range) changed after rounding: ~0 for a hider that keeps its own budget
             "clip_share": float((raw != q).mean())}
    if mode == "I;16":
        out = Image.fromarray(out_vals[..., 0])  # uint16 -> I;16
    else:
        planes = out_vals if alpha is None else np.concatenate([out_vals, alpha[..., None]], axis=2)
        out = Image.fromarray(planes[..., 0] if planes.shape[2] == 1 else planes, mode)
    return out, stats
