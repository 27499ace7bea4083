"""Does a hider hide in photos at their own size? The reveal gate of ``protect.reveal_gate``, run through the folder
product's own path: each photo protected by :func:`deephide.owner.image.protect_image` (the INN on the whole image,
the class's secret resized to it, the budget kept on the stored uint8 values), revealed from those stored values
with z = 0 at the photo's size, and compared with its secret resized the same way.

The trivial answer is the one of the class-wise gate: the mean of the bank's secrets (resized to the photo), the
best constant guess in MSE for an image whose class is unknown. A hider hides where its reveal PSNR beats that by
``protect.GATE_MARGIN_DB`` (8 dB).

>>> import torch
>>> from deephide.hiding.inn import Hider, HiderConfig
>>> from deephide.semantic.bank import SecretBank
>>> h = Hider(HiderConfig(blocks=1, growth=4, clamp=2.0, image_size=32, eps_levels=8))
>>> bank = SecretBank(np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8), np.arange(2), 2)
>>> g = photo_gate(h, bank, [np.full((20, 30, 3), 90, np.uint8)] * 2)
>>> g["n"], g["hides"]  # a fresh hider is the identity: it hides nothing
(2, False)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import DeephideError
from ..ops.metrics import mse_psnr, ssim_uint8
from ..semantic.bank import SecretBank, resize_secret
from .image import even_tensor, protect_image


@torch.no_grad()
def photo_gate(hider: torch.nn.Module, bank: SecretBank, photos: list[np.ndarray], levels: int = 8,
               seed: int = 0) -> dict[str, Any]:
    """Reveal quality of ``hider`` on ``photos`` (uint8 (H, W, 3) each, any size), class-wise: photo i hides the
    first secret of a class drawn uniformly (seeded). Returns n, size (the first photo's WxH), reveal_psnr /
    reveal_ssim, trivial_psnr, margin_db, hides, and the protected photos' mean PSNR / SSIM against the originals,
    mean |delta| and the share of values at the budget, in uint8 levels, and the share of values protect's clips
    changed (clip_share)."""
    from ..protect import GATE_MARGIN_DB

    if not photos:
        raise DeephideError("photo gate: no photos")
    rng = np.random.default_rng(seed)
    firsts = [int(bank.members(k)[0]) for k in range(bank.num_classes)]
    mean_secret = bank.images[firsts].astype(np.float64).mean(axis=0)
    se_rev = se_triv = 0.0
    count = 0
    rev_ssim, prot_psnr, prot_ssim, mean_abs, at_bound, clip = [], [], [], [], [], []
    for a in photos:
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
            raise DeephideError(f"photo gate: photos must be uint8 (H, W, 3), got {a.dtype} {a.shape}")
        h, w = a.shape[:2]
        secret = bank.images[firsts[int(rng.integers(bank.num_classes))]]
        out, st = protect_image(Image.fromarray(a, "RGB"), "RGB", hider, secret, levels=levels)
        stored = np.asarray(out)
        x = even_tensor(stored)
        ph, pw = x.shape[-2:]
        shown = hider.reveal_any_size(x).clamp(0, 1)[0, :, :h, :w].permute(1, 2, 0).numpy()
        revealed = np.round(shown * 255.0)
        # the secret resized as protect_image resized it
        truth = resize_secret(secret, pw, ph)[:h, :w].astype(np.float64)
        trivial = resize_secret(np.round(mean_secret).astype(np.uint8), pw, ph)[:h, :w].astype(np.float64)
        se_rev += float(((revealed - truth) ** 2).sum())
        se_triv += float(((trivial - truth) ** 2).sum())
        count += truth.size
        if min(h, w) >= 11:
            rev_ssim.append(float(ssim_uint8(truth.astype(np.uint8)[None], revealed.astype(np.uint8)[None])))
        prot_psnr.append(st["psnr"])
        clip.append(st["clip_share"])
        if st["ssim"] is not None:
            prot_ssim.append(st["ssim"])
        d = np.abs(stored.astype(np.int64) - a.astype(np.int64))
        mean_abs.append(float(d.mean()))
        at_bound.append(float((d == levels).mean()))
    r_psnr, t_psnr = mse_psnr(se_rev / count, 255.0), mse_psnr(se_triv / count, 255.0)
    return {"n": len(photos), "size": f"{photos[0].shape[1]}x{photos[0].shape[0]}", "levels": levels,
            "reveal_psnr": r_psnr, "reveal_ssim": float(np.mean(rev_ssim)) if rev_ssim else None,
            "trivial_psnr": t_psnr, "margin_db": r_psnr - t_psnr, "hides": bool(r_psnr - t_psnr >= GATE_MARGIN_DB),
            "gate_margin_db": GATE_MARGIN_DB, "protected_psnr": float(np.mean(prot_psnr)),
            "protected_ssim": float(np.mean(prot_ssim)) if prot_ssim else None,
            "mean_abs_levels": float(np.mean(mean_abs)), "at_bound_share": float(np.mean(at_bound)),
            "clip_share": float(np.mean(clip)), "mode": "class"}
