"""Protection with a trained hider: unlearnable examples (class- or sample-wise), reveal, verify.

The budget is a guarantee, not a hope: the hider's output is projected onto the eps-ball and the
[0, 1] box, quantised to uint8 within ``levels`` of the clean pixel, and checked again before return.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from .data import ImageSet
from .data.mmap import release_rows
from .errors import DeephideError
from .ops.budget import clipped_count, quantise_within_budget
from .ops.metrics import correlation, mse_psnr, psnr, ssim_uint8
from .runtime import autocast, full_fp32, over_cores, pick_device, tune_for
from .semantic import SecretBank


def secrets_tensor(bank: SecretBank, shape: tuple[int, int, int], where: str) -> torch.Tensor:
    """The bank as float (M, 3, H, W) in [0, 1], checked against the data's (H, W, C)."""
    h, w, c = shape
    if c != 3:
        raise DeephideError(f"{where}: images have {c} channel(s); "
                            "the hider works on RGB (use the RGB view, e.g. fashion-mnist default)")
    if bank.images.shape[1:3] != (h, w):
        raise DeephideError(f"{where}: secrets are {bank.images.shape[1]}x{bank.images.shape[2]} "
                            f"but images are {h}x{w}")
    return torch.from_numpy(bank.images).permute(0, 3, 1, 2).float().div_(255)


def _check_hider_fits(hider: torch.nn.Module, shape: tuple[int, int, int], where: str) -> None:
    size = getattr(getattr(hider, "config", None), "image_size", None)
    if size is not None and size != shape[0]:
        raise DeephideError(f"{where}: hider trained for {size}x{size} images, data is {shape[0]}x{shape[1]}")


def channels_last(hider: torch.nn.Module) -> torch.nn.Module:
    """``hider`` with channels-last conv weights (in place; same values).

    The dense subnets concatenate growing channel stacks: channels-last makes each ``cat`` a strided
    copy along the fastest axis and lets oneDNN skip layout reorders around every conv (~+10-25%
    on this CPU in bf16). The uint8 (N, H, W, C) input permuted to NCHW is channels-last already.
    """
    return hider.to(memory_format=torch.channels_last)


def _inference(fn: Callable[[slice], torch.Tensor], n: int, dev: torch.device, bf16: bool = False) -> torch.Tensor:
    """``fn(slice)`` over ``n`` items, without gradient and under ``bf16`` autocast, each CPU core computing its own
    share (runtime.over_cores: the same bytes, 1.2-1.3x faster for the INN); the shares concatenated in order."""
    def share(s: slice) -> torch.Tensor:
        with torch.no_grad(), autocast(dev, bf16):  # thread-local: set in the thread that runs the share
            return fn(s)

    parts = over_cores(share, n, dev)
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def hide_batch(hider: torch.nn.Module, cover: torch.Tensor, secret: torch.Tensor, dev: torch.device,
               bf16: bool = False) -> torch.Tensor:
    """The hider's raw stego images for one batch, as ``protect`` computes them (before the budget's projection).

    cover, secret: float (N, 3, H, W) in [0, 1] on ``dev`` (channels-last, as protect holds them). Returns (N, 3, H, W),
    fp32 or bf16 under ``bf16`` autocast; no gradient; each CPU core hides its own share of the batch.
    """
    return _inference(lambda s: hider.stego(cover[s], secret[s]), len(cover), dev, bf16)


@torch.no_grad()
def protect(ds: ImageSet, hider: torch.nn.Module, bank: SecretBank, mode: str, levels: int = 8, seed: int = 0,
            batch_size: int = 256, device: str = "auto", bf16: bool = False, progress: bool = True,
            hider_info: dict | None = None, out: np.ndarray | None = None) -> ImageSet:
    """Hide a secret of each image's class group in every image of ``ds``.

    ds: uint8 (N, H, W, 3) images with labels. bank: secrets (M, H, W, 3) grouped by class.
    mode: ``class`` (one secret per class) or ``sample`` (one per image, from its class group).
    levels: the L-inf budget in uint8 levels (8 = 8/255). Every output pixel is within
    ``levels`` of the clean one (checked). Memory: float work is done one batch at a time.
    out: a writable uint8 array shaped like ``ds.images`` to fill (e.g. ``imageset_writer(...).images``,
    a file-backed map), so neither set has to fit in memory; by default a new in-memory array.
    Returns the protected ImageSet (same labels, class names), provenance recording everything.
    """
    if bank.num_classes != ds.num_classes:
        raise DeephideError(f"{ds.source}: {ds.num_classes} classes "
                            f"but the secret bank was made for {bank.num_classes}")
    secrets = secrets_tensor(bank, ds.shape, ds.source)
    _check_hider_fits(hider, ds.shape, ds.source)
    assign = bank.assign(ds.labels, mode, seed)
    dev = pick_device(device)
    tune_for(dev)
    hider = channels_last(hider.to(dev).eval())
    if out is None:
        out = np.empty(ds.images.shape, np.uint8)
    elif out.shape != ds.images.shape or out.dtype != np.uint8:
        raise DeephideError(f"{ds.source}: output array {out.shape} {out.dtype} "
                            f"does not match the images {ds.images.shape}")
    t0 = time.perf_counter()
    n = len(ds)
    linf = clipped = 0
    with full_fp32(dev):  # entered once for the whole set, not per batch
        for i in tqdm(range(0, n, batch_size), total=math.ceil(n / batch_size), desc=f"protect ({mode})",
                      disable=not progress, leave=False, dynamic_ncols=True):
            clean = torch.from_numpy(np.array(ds.images[i:i + batch_size])).to(dev).permute(0, 3, 1, 2)
            cover = clean.float().div(255)
            secret = secrets[torch.from_numpy(assign[i:i + batch_size])].to(dev).contiguous(
                memory_format=torch.channels_last)
            stego = hide_batch(hider, cover, secret, dev, bf16)
            q = quantise_within_budget(stego.float(), clean, levels)
            # how much the hard guarantee had to do: values the clip (eps-ball, 0..255) moved after rounding
            clipped += clipped_count(stego, q)
            # checked per batch: a whole-set int16 difference would cost 4x the set's size in memory
            linf = max(linf, int((q.to(torch.int16) - clean.to(torch.int16)).abs().max()))
            out[i:i + batch_size] = q.permute(0, 2, 3, 1).cpu().numpy()
            # a mapped input or output keeps no pages resident once done: memory stays flat in N
            release_rows(ds.images, i, i + batch_size)
            release_rows(out, i, i + batch_size)
    if linf > levels:  # cannot happen by construction; refuse to return a set that breaks the contract
        raise DeephideError(f"{ds.source}: budget violated ({linf} > {levels} levels); output discarded")
    elapsed = time.perf_counter() - t0
    prov = {
        "protection": {"method": "deep-hiding", "mode": mode, "eps_levels": levels, "eps": f"{levels}/255",
                       "seed": seed, "hider": hider_info or {}, "secrets": bank.meta, "linf_levels": linf,
                       "clip_share": clipped / max(1, ds.images.size),
                       "seconds": round(elapsed, 3), "images_per_s": round(n / max(elapsed, 1e-9), 1),
                       "bf16": bf16, "assignment": assign.tolist() if n <= 100_000 else None},
    }
    return ds.replace(images=out, note=f"deep-hiding {mode}-wise eps {levels}/255", **prov)


@torch.no_grad()
def reveal(ds: ImageSet, hider: torch.nn.Module, batch_size: int = 256, device: str = "auto",
           progress: bool = True) -> np.ndarray:
    """Recover hidden images from protected ones with the INN inverse (z = 0). Returns uint8 (N, H, W, 3)."""
    if ds.shape[2] != 3:
        raise DeephideError(f"{ds.source}: reveal needs RGB images")
    _check_hider_fits(hider, ds.shape, ds.source)
    dev = pick_device(device)
    tune_for(dev)
    hider = channels_last(hider.to(dev).eval())
    out = np.empty_like(ds.images)
    for i in tqdm(range(0, len(ds), batch_size), desc="reveal", disable=not progress, leave=False):
        x = torch.from_numpy(np.array(ds.images[i:i + batch_size])).to(dev).permute(0, 3, 1, 2).float().div(255)
        r = _inference(lambda s: hider.reveal(x[s]), len(x), dev).clamp(0, 1).mul(255).round().to(torch.uint8)
        out[i:i + batch_size] = r.permute(0, 2, 3, 1).cpu().numpy()
    return out


def ssim(a: np.ndarray, b: np.ndarray, batch: int = 1024) -> float:
    """Mean SSIM (11x11 Gaussian window, kornia) between uint8 (N, H, W, C) arrays; a mapped set's pages are
    released as it goes."""
    def release(i: int, j: int) -> None:
        release_rows(a, i, j)
        release_rows(b, i, j)

    return ssim_uint8(a, b, batch, after_batch=release)


def _l0_budget(protected: ImageSet) -> int | None:
    """k when the set's provenance records an L0 budget ``L0=k`` (OPS), else None (L-inf applies)."""
    budget = str((protected.provenance.get("protection") or {}).get("budget", ""))
    if not budget.startswith("L0="):
        return None
    try:
        return int(budget[3:])
    except ValueError:
        raise DeephideError(f"{protected.source}: unreadable budget '{budget}' in the manifest") from None


def verify(clean: ImageSet, protected: ImageSet, levels: int = 8, max_listed: int = 20,
           chunk: int = 4096) -> dict[str, Any]:
    """Recompute the budget and quality of ``protected`` against ``clean``; list violations.

    The L-inf budget is ``levels`` unless the set's manifest records an L0 budget (``L0=k``, OPS): then
    at most k pixel positions per image may differ. Returns linf (levels), mean |delta| (levels), L2 per image
    (in [0,1] units), PSNR, SSIM, label agreement and up to ``max_listed`` violating images (index, linf).
    """
    if clean.images.shape != protected.images.shape:
        raise DeephideError(f"{protected.source}: shape {protected.images.shape} "
                            f"differs from clean {clean.images.shape}")
    if len(clean) == 0:
        raise DeephideError(f"{protected.source}: no images to verify")
    n, l0 = len(clean), _l0_budget(protected)
    per_img = np.empty(n, dtype=np.int16)   # L-inf per image (levels)
    changed = np.empty(n, dtype=np.int64)   # changed pixel positions per image (for an L0 budget)
    l2 = np.empty(n, dtype=np.float64)      # L2 norm per image, [0, 1] units
    abs_sum = at_bound = sq_sum = 0
    for i in range(0, n, chunk):  # chunked: a whole-set int16 difference would cost several times the set's size
        d = protected.images[i:i + chunk].astype(np.int16) - clean.images[i:i + chunk].astype(np.int16)
        a = np.abs(d)
        per_img[i:i + chunk] = a.reshape(a.shape[0], -1).max(axis=1)
        changed[i:i + chunk] = (d != 0).any(axis=-1).reshape(d.shape[0], -1).sum(axis=1)
        sq = (d.astype(np.int64) ** 2).reshape(d.shape[0], -1).sum(axis=1)
        l2[i:i + chunk] = np.sqrt(sq) / 255.0
        abs_sum += int(a.sum(dtype=np.int64))
        at_bound += int((a == levels).sum())
        sq_sum += int(sq.sum())
        release_rows(protected.images, i, i + chunk)
        release_rows(clean.images, i, i + chunk)
    size = clean.images.size
    mse = sq_sum / size
    if l0 is None:
        bad = np.flatnonzero(per_img > levels)
        budget: dict[str, Any] = {"budget": f"Linf={levels}/255", "budget_levels": levels}
    else:  # an L0 attack (OPS) declares how many pixel positions per image it may change, by any amount
        bad = np.flatnonzero(changed > l0)
        budget = {"budget": f"L0={l0}", "budget_levels": None, "max_changed_pixels": int(changed.max(initial=0))}
    labels_equal = bool(np.array_equal(clean.labels, protected.labels))
    return {
        "n": n, **budget, "linf_levels": int(per_img.max(initial=0)),
        "mean_abs_levels": abs_sum / size,
        "frac_at_bound": at_bound / size,
        "l2_mean": float(l2.mean()),
        "psnr": mse_psnr(mse, 255.0),
        "ssim": ssim(clean.images, protected.images),
        "labels_equal": labels_equal,
        "violations": int(bad.size),
        "violating": [{"index": int(i), "linf": int(per_img[i])} for i in bad[:max_listed]],
        "ok": bool(bad.size == 0 and labels_equal),
    }


#: A hider "hides" when its reveal PSNR beats the best answer that reads nothing from the image by this much.
GATE_MARGIN_DB = 8.0


def reveal_gate(covers: ImageSet, hider: torch.nn.Module, bank: SecretBank, mode: str, levels: int = 8,
                seed: int = 0, limit: int | None = 2000, device: str = "auto", batch_size: int = 256,
                progress: bool = False) -> dict[str, Any]:
    """Does the hider hide? Reveal quality from *stored* uint8 images against answers that read nothing.

    covers: held-out clean images (e.g. the test split: never seen in hider training), uint8 (N, S, S, 3)
    with labels; the first ``limit`` are protected with ``hider`` exactly as ``protect`` would, revealed
    from the uint8 result with z = 0 and compared with the secrets they hide.
    Trivial answers (the best constant guesses in MSE, given what the label alone tells): class mode, the
    mean of all the bank's secrets; sample mode, the mean of the image's class group.
    Returns reveal_psnr / reveal_ssim, trivial_psnr / trivial_ssim, margin_db (reveal - trivial), hides
    (margin >= GATE_MARGIN_DB), corr_own: per class, the Pearson correlation of the class-mean stored
    perturbation with the mean secret it hides, corr_own_mean, and corr_other_mean (the same against the
    other classes' secrets: the level a perturbation unrelated to its secret reaches).

    Example (a fresh hider is the identity, so it reveals nothing):
        reveal_gate(load_dataset("fashion-mnist", "test"), hider, bank, "class")["hides"]  # False
    """

    if limit is not None and limit < len(covers):
        # a stratified-enough prefix: held-out splits are not sorted by class
        covers = covers.subset(np.arange(limit), note=f"first {limit}")
    if len(covers) == 0:
        raise DeephideError(f"{covers.source}: no images for the reveal gate")
    prot = protect(covers, hider, bank, mode, levels=levels, seed=seed, batch_size=batch_size, device=device,
                   progress=progress)
    revealed = reveal(prot, hider, batch_size=batch_size, device=device, progress=progress)
    assign = bank.assign(covers.labels, mode, seed)
    truth = bank.images[assign]
    if mode == "class":
        guess_per_secret = np.broadcast_to(bank.images.astype(np.float64).mean(axis=0), bank.images.shape)
    else:
        guess_per_secret = np.empty(bank.images.shape, np.float64)
        for k in range(bank.num_classes):
            members = bank.members(k)
            guess_per_secret[members] = bank.images[members].astype(np.float64).mean(axis=0)
    trivial = np.round(guess_per_secret[assign]).astype(np.uint8)
    r_psnr, t_psnr = psnr(revealed, truth), psnr(trivial, truth)
    delta = np.asarray(prot.images, np.float64) - np.asarray(covers.images, np.float64)
    present = [k for k in range(covers.num_classes) if (covers.labels == k).any()]
    d_means = np.stack([delta[covers.labels == k].mean(axis=0) for k in present])
    cors = np.stack([correlation(d_means, truth[covers.labels == k].astype(np.float64).mean(axis=0))
                     for k in present], axis=1)  # [i, j]: class i's mean perturbation vs class j's mean secret
    own = [float(c) for c in np.diag(cors)]
    other = [float(c) for c in cors[~np.eye(len(present), dtype=bool)]]
    return {"n": len(covers), "mode": mode, "levels": levels, "covers": covers.source,
            "reveal_psnr": r_psnr, "reveal_ssim": ssim(revealed, truth),
            "trivial_psnr": t_psnr, "trivial_ssim": ssim(trivial, truth),
            "margin_db": r_psnr - t_psnr, "hides": bool(r_psnr - t_psnr >= GATE_MARGIN_DB),
            "clip_share": prot.provenance["protection"]["clip_share"],
            "mean_abs_levels": float(np.abs(delta).mean()), "at_bound_share": float((np.abs(delta) == levels).mean()),
            "gate_margin_db": GATE_MARGIN_DB,
            "corr_own": [round(c, 4) for c in own], "corr_own_mean": float(np.mean(own)) if own else 0.0,
            "corr_other_mean": float(np.mean(other)) if other else 0.0}
