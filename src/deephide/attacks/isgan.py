"""ISGAN hider (Zhang, Dong & Liu, "Invisible steganography via generative adversarial networks", MTAP 2019),
the alternative hiding network of the Deep Hiding paper's Table H ablation.

ISGAN hides a *grayscale* secret in the luminance (Y of YCrCb) of a colour cover: the encoder sees the
cover's Y and the secret and outputs a new Y; Cr and Cb are kept. Since Y = 0.299R + 0.587G + 0.114B and
the inverse YCrCb transform adds a change of Y to R, G and B alike, the stego image is
``cover + dY`` broadcast over channels. The decoder reveals the secret from the stego image's Y.

Kept from ISGAN: Y-channel embedding, inception-style encoder blocks (parallel 1x1 / 3x3 / 5x5 convs)
in a small U-Net, conv decoder, loss ``alpha * (1 - SSIM) + (1 - alpha) * MSE`` on both the cover and the
revealed secret (ISGAN also adds an MS-SSIM term, meaningless at 32 px, dropped here).
Omitted: ISGAN's steganalyser discriminator; it buys undetectability, which unlearnability does not
need, and would double the training cost. Added: Deep Hiding's L_hide (the budget-overflow penalty),
so the hider learns to live inside the eps-ball that protection then enforces by projection.
The secrets come from the same banks as Deep Hiding (``deephide.semantic``; class-wise by default).
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import ImageSet
from ..errors import DeephideError
from ..ops.metrics import mse_psnr, ssim_map
from ..runtime import autocast
from .registry import ATTACKS
from .base import AttackRun, finish_attack, start_attack
from .semantic_added import LUMA, secret_bank

MODES = ("class", "sample")


def luma(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, 1, H, W): BT.601 Y for RGB, the image itself for one channel."""
    if x.shape[1] == 1:
        return x
    return (x * torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)


def _cbr(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class Inception(nn.Module):
    """ISGAN's inception block: 1x1, 3x3 and 5x5 conv-BN-ReLU branches concatenated, fused by a 1x1 conv."""

    def __init__(self, c: int) -> None:
        super().__init__()
        b = max(1, c // 2)
        self.b1, self.b3, self.b5 = _cbr(c, b, 1), _cbr(c, b, 3), _cbr(c, b, 5)
        self.fuse = _cbr(3 * b, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fuse(torch.cat([self.b1(x), self.b3(x), self.b5(x)], 1))


class ISGANEncoder(nn.Module):
    """(cover Y, secret Y), each (N, 1, H, W) in [0, 1] -> dY (N, 1, H, W); a two-level U-Net of inception blocks.

    The output conv starts at zero, so the untrained encoder returns the cover unchanged (as DH's INN does).
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        w = width
        self.enc1 = nn.Sequential(_cbr(2, w), Inception(w))
        self.enc2 = nn.Sequential(_cbr(w, 2 * w, stride=2), Inception(2 * w))
        self.dec = nn.Sequential(_cbr(3 * w, w), Inception(w))
        self.out = nn.Conv2d(w, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, cover_y: torch.Tensor, secret_y: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(torch.cat([cover_y, secret_y], 1) - 0.5)
        e2 = F.interpolate(self.enc2(e1), size=e1.shape[-2:], mode="nearest")
        return self.out(self.dec(torch.cat([e1, e2], 1)))


class ISGANDecoder(nn.Module):
    """Stego (N, C, H, W) in [0, 1] -> revealed secret Y (N, 1, H, W) in [0, 1]; conv-BN-ReLU x3 + conv + sigmoid."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(_cbr(1, width), _cbr(width, width), _cbr(width, width),
                                 nn.Conv2d(width, 1, 3, padding=1))

    def forward(self, stego: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(luma(stego) - 0.5))


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM (Gaussian window, 11 px or the largest odd size that fits), differentiable; (N, 1, H, W)."""
    return ssim_map(a, b).mean()


def mixed_loss(a: torch.Tensor, b: torch.Tensor, alpha: float) -> torch.Tensor:
    """ISGAN's image loss: alpha * (1 - SSIM) + (1 - alpha) * MSE."""
    return alpha * (1 - ssim(a, b)) + (1 - alpha) * F.mse_loss(a, b)


def _stego(enc: ISGANEncoder, cover: torch.Tensor, secret_y: torch.Tensor,
           run: AttackRun | None = None) -> torch.Tensor:
    """cover (N, C, H, W) + dY broadcast over channels (Cr, Cb kept), clipped to the pixel range.

    With a ``run``, the encoder's convolutions follow its bf16 / channels-last settings; dY is float32.
    """
    cy, sy = luma(cover), secret_y
    if run is None:
        return (cover + enc(cy, sy)).clamp(0, 1)
    if run.settings.get("channels_last"):
        cy, sy = cy.contiguous(memory_format=torch.channels_last), sy.contiguous(memory_format=torch.channels_last)
    with autocast(run.device, run.bf16):
        dy = enc(cy, sy)
    return (cover + dy.float()).clamp(0, 1)


def _reveal(dec: ISGANDecoder, stego: torch.Tensor, run: AttackRun) -> torch.Tensor:
    if run.settings.get("channels_last"):
        stego = stego.contiguous(memory_format=torch.channels_last)
    with autocast(run.device, run.bf16):
        return dec(stego).float()


def train_isgan(run: AttackRun, secrets_y: torch.Tensor,
                assign: torch.Tensor) -> tuple[ISGANEncoder, ISGANDecoder, dict]:
    """Train encoder + decoder on (training image, its assigned secret) pairs; returns them and a log."""
    from ..hiding.losses import hide_loss

    s = run.settings
    width = int(s["width"])
    enc, dec = ISGANEncoder(width).to(run.device), ISGANDecoder(width).to(run.device)
    if s.get("channels_last"):
        enc, dec = enc.to(memory_format=torch.channels_last), dec.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=s["lr"])
    X = run.train.tensor(run.device)
    n, bs = X.shape[0], min(int(s["batch_size"]), X.shape[0])
    alpha = float(s["alpha"])
    log: dict[str, Any] = {}
    enc.train()
    dec.train()
    bar = run.bar(int(s["iterations"]), "train hider")
    for _ in range(int(s["iterations"])):
        idx = torch.randint(0, n, (bs,), generator=run.gen).to(run.device)
        cover = X[idx].float().div(255)
        sec = secrets_y[assign[idx]]
        stego = _stego(enc, cover, sec, run)
        rev = _reveal(dec, stego, run)
        l_cover = mixed_loss(luma(stego), luma(cover), alpha)
        l_reveal = mixed_loss(rev, sec, alpha)
        l_hide = hide_loss(stego, cover, run.eps)
        loss = l_cover + s["reveal_weight"] * l_reveal + s["hide_weight"] * l_hide
        if not torch.isfinite(loss):
            raise DeephideError("attack ISGAN: training diverged (non-finite loss); lower lr=")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        run.cost.forward(bs)
        run.cost.backward(bs)
        log = {k: float(v.detach()) for k, v in (("loss", loss), ("cover", l_cover),
                                                 ("reveal", l_reveal), ("hide", l_hide))}
        bar.update(1)
        bar.set_postfix(loss=f"{log['loss']:.4f}")
    bar.close()
    return enc.eval(), dec.eval(), {k: round(v, 6) for k, v in log.items()}


@torch.no_grad()
def reveal_psnr_after_budget(run: AttackRun, enc: ISGANEncoder, dec: ISGANDecoder, secrets_y: torch.Tensor,
                             assign: torch.Tensor, n: int = 256) -> float:
    """PSNR (dB) of secrets revealed from the first ``n`` *projected, quantised* protected images."""
    from ..ops.budget import quantise_within_budget

    c = run.train.tensor(run.device)[:n]
    sec = secrets_y[assign[:c.shape[0]]]
    q = quantise_within_budget(_stego(enc, c.float().div(255), sec, run), c, run.levels).float().div(255)
    mse = float(F.mse_loss(_reveal(dec, q, run), sec))
    return round(mse_psnr(mse), 3)


@ATTACKS.register("ISGAN", help="ISGAN hider (Y-channel steganography, Zhang et al. 2019) instead of the INN (Table H)")
def isgan(train: ImageSet, *, eps_levels: int = 8, profile: str = "cpu", seed: int = 0, device: str = "auto",
          progress: bool = True, **options: Any) -> ImageSet:
    """Train an ISGAN encoder/decoder on the training set + a secret bank (``mode`` class|sample, ``source``
    default sig), then protect every image through the same budget projection as Deep Hiding."""
    run = start_attack("ISGAN", train, eps_levels, profile, seed, device, progress, options)
    mode = run.settings["mode"]
    if mode not in MODES:
        raise DeephideError(f"attack ISGAN: option mode={mode!r}; choose class or sample")
    bank = secret_bank(run, mode)
    secrets_y = luma(torch.from_numpy(bank.images).permute(0, 3, 1, 2).float().div(255)).to(run.device)
    assign = torch.from_numpy(bank.assign(train.labels, mode, run.seed)).to(run.device)
    t0 = time.perf_counter()
    enc, dec, log = train_isgan(run, secrets_y, assign)
    run.log["hider_train_seconds"] = round(time.perf_counter() - t0, 3)
    run.log.update({"hider_final_losses": log, "discriminator": "omitted (see deephide.attacks.isgan)",
                    "reveal_psnr_after_budget": reveal_psnr_after_budget(run, enc, dec, secrets_y, assign),
                    "secrets": bank.meta})

    @torch.no_grad()
    def fn(x: torch.Tensor, y: torch.Tensor, start: int) -> torch.Tensor:
        sec = secrets_y[assign[start:start + x.shape[0]]]
        run.cost.forward(x.shape[0])
        return _stego(enc, x.to(run.device), sec, run)

    return finish_attack(run, fn, mode, batch_size=int(run.settings["protect_batch_size"]))
