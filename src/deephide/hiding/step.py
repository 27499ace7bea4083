"""One hider training step's pieces: the class-balanced batch, the differentiable store (what protect writes), the
hide-store-reveal forward, and the statistics logged with every step (budget use, loss shares)."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DeephideError
from ..ops.budget import clipped_count, project_to_budget, quantise_within_budget
from ..semantic import SecretBank
from ..training import distributed
from .distortions import distort
from .inn import Hider


def balanced_batch(labels_by_class: list[np.ndarray], per_class: int, n_classes_batch: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Indices of a class-balanced batch: ``n_classes_batch`` classes x ``per_class`` images each.

    L_LFC needs same-class pairs in every batch; drawing whole classes guarantees them.
    """
    present = [k for k, idx in enumerate(labels_by_class) if idx.size > 0]
    chosen = rng.choice(present, size=min(n_classes_batch, len(present)), replace=False)
    parts = [rng.choice(labels_by_class[k], size=per_class, replace=labels_by_class[k].size < per_class)
             for k in chosen]
    return np.concatenate(parts)


def straight_through_quantise(stego: torch.Tensor, cover: torch.Tensor, eps: float) -> torch.Tensor:
    """What ``protect`` will store (eps-projection + uint8 rounding), differentiably.

    Revealing from this instead of the raw float stego makes the hider put its message where it
    survives the budget projection and quantisation, i.e. into perturbations that are actually stored.
    """
    # the projection keeps its true gradient (zero beyond the budget: nothing to gain out there);
    # only the rounding is passed straight through
    p = project_to_budget(stego, cover, eps)
    return p + (torch.round(p * 255.0) / 255.0 - p).detach()


def budget_stats(raw: torch.Tensor, delta: torch.Tensor, cover: torch.Tensor, eps: float) -> dict[str, float]:
    """What the budget looks like this step, in uint8 levels.

    raw: the INN's perturbation before the hider's budget map; delta: after it (= raw for a hider
    without eps_levels); cover: float in [0, 1]; all (N, C, H, W).
    pre_bound_linf_levels: max |raw|; linf_levels: max |delta| (the hider's output, before any clip);
    mean_levels: mean |delta|; clip_share: share of stored values that protect's clip (eps-ball and
    0..255) changes after rounding; at_bound_share: share of stored values exactly eps away.
    """
    levels = round(eps * 255)
    clean = torch.round(cover.float() * 255).to(torch.uint8)
    stego = (cover + delta).float()
    kept = quantise_within_budget(stego, clean, levels)  # what protect stores
    return {"pre_bound_linf_levels": float(raw.abs().max()) * 255, "linf_levels": float(delta.abs().max()) * 255,
            "mean_levels": float(delta.abs().mean()) * 255, "clip_share": clipped_count(stego, kept) / stego.numel(),
            "at_bound_share": float(((kept.to(torch.int16) - clean.to(torch.int16)).abs() == levels).float().mean())}


def loss_shares(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> dict[str, float]:
    """Each weighted term's share of the weighted total (``share_hide``, ``share_reveal``, ...)."""
    w = {k: abs(float(weights.get(k, 0.0))) * abs(float(v.detach())) for k, v in terms.items()}
    tot = sum(w.values()) or 1.0
    return {f"share_{k}": v / tot for k, v in w.items()}


class HideRevealStep(torch.nn.Module):
    """One training forward: hide, (straight-through) store, reveal -- a single ``forward`` so that
    DistributedDataParallel, which only hooks ``forward``, sees every use of the hider's weights."""

    def __init__(self, hider: Hider, eps: float, from_stored: bool, distortions: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.hider, self.eps, self.from_stored = hider, eps, from_stored
        self.distortions = distortions

    def forward(self, cover: torch.Tensor, secret: torch.Tensor, z: torch.Tensor | None,
                gen: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """cover, secret: float (N, 3, S, S) in [0, 1]; z: (N, 12, S/2, S/2) or None; gen draws the
        distortion (hiding.distortions) applied between storing and revealing, if the profile lists any.
        Returns float32 (N, 3, S, S) each: (raw, stored, secret_hat, target): raw = the INN's perturbation
        before the hider's budget map; stored = what protect writes (bounded, projected, rounded with a
        straight-through gradient), the image every loss sees; secret_hat revealed from ``stored``."""
        raw, _ = self.hider.perturbation(cover, secret, residual=False)  # r is not used: not computed
        raw = raw.float()
        stego = cover + self.hider.bound(raw, cover)
        stored = straight_through_quantise(stego, cover, self.eps) if self.from_stored else stego
        target, seen = secret, stored
        if self.distortions:
            seen, target = distort(self.distortions, stored, secret, gen or torch.Generator())
        return raw, stored, self.hider.reveal(seen, z).float(), target


def secret_index(bank: SecretBank, labels: np.ndarray, mode: str, rng: np.random.Generator) -> np.ndarray:
    """Class mode: each class's first secret. Sample mode: a random member of the class's group."""
    if mode == "class":
        return np.array([bank.members(int(k))[0] for k in labels])
    return np.array([rng.choice(bank.members(int(k))) for k in labels])


def zoom_secrets(secret: torch.Tensor, share: float, rng: np.random.Generator) -> torch.Tensor:
    """``secret`` (float (N, C, S, S)) with a ``share`` of its rows replaced by a zoomed-in view: a random square of
    side S/16..S (log-uniform, at least 2 px) at a random place, resized back to S x S bilinearly. What a hider sees
    when it runs on a photo many times its training size: the class's secret upscaled, so smooth at every place.
    The draws come from ``rng`` (seeded per step by the caller: the same on resume)."""
    if share <= 0:
        return secret
    n, _, s, _ = secret.shape
    rows = np.flatnonzero(rng.random(n) < share)
    if rows.size == 0:
        return secret
    out = secret.clone()
    for i in rows:
        side = int(np.clip(round(float(np.exp(rng.uniform(np.log(max(2, s // 16)), np.log(s))))), 2, s))
        y0, x0 = int(rng.integers(s - side + 1)), int(rng.integers(s - side + 1))
        win = secret[i:i + 1, :, y0:y0 + side, x0:x0 + side]
        out[i:i + 1] = torch.nn.functional.interpolate(win, size=(s, s), mode="bilinear", align_corners=False)
    return out


def grey_some(cover: torch.Tensor, share: float, rng: np.random.Generator) -> torch.Tensor:
    """``cover`` (float (N, 3, H, W)) with a ``share`` of its rows made grey (ITU-R 601 luma in every channel): a hider
    that meets grey covers in training learns to hide in the grey perturbation it gives them (grey_covers shared),
    which colour photos alone never teach it. The draws come from ``rng`` (seeded per step by the caller)."""
    if share <= 0:
        return cover
    rows = torch.from_numpy(rng.random(cover.shape[0]) < share).to(cover.device)
    if not bool(rows.any()):
        return cover
    luma = (cover * torch.tensor([0.299, 0.587, 0.114], device=cover.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    luma = torch.round(luma * 255.0) / 255.0  # a grey image as stored: whole uint8 levels
    return torch.where(rows[:, None, None, None], luma.expand_as(cover), cover)


def rank_share(n_cls: int, per_class: int, present: int, use_lfc: bool, world: distributed.World) -> slice:
    """This rank's rows of each class-balanced batch (all rows with one process).

    L_LFC compares same-class pairs inside a rank's rows, so with it each rank needs whole classes.
    """
    if not world.active:
        return slice(None)
    classes = min(n_cls, present)
    if use_lfc and classes % world.world_size:
        raise DeephideError(f"train-hider: {classes} classes per batch cannot be split into whole classes over "
                            f"{world.world_size} processes (L_LFC needs same-class pairs on each); "
                            "change batch_size/per_class or --nproc_per_node")
    return distributed.shard(classes * per_class, world, "hider batch size")


def mean_over_ranks(vals: dict[str, float], world: distributed.World) -> dict[str, float]:
    """Logged numbers averaged over the ranks (each rank measured its own shard); as-is with one process."""
    if not world.active:
        return vals
    keys = sorted(vals)
    sums = distributed.all_reduce_sum([vals[k] for k in keys], world)
    return {k: v / world.world_size for k, v in zip(keys, sums)}
