"""What every attack shares: argument checks, settings, cost counting, and the one budget guard.

``start_attack`` validates the call and resolves the profile; the attack computes its perturbation;
``finish_attack`` applies it batch by batch, quantises to uint8 *within* the budget (the same
``quantise_within_budget`` as Deep Hiding's protect), checks the result again and writes the
``protection`` provenance record. No attack writes images any other way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data import ImageSet
from ..errors import DeephideError
from ..ops.budget import quantise_within_budget
from ..runtime import bf16_supported, pick_device, seed_everything, tune_for, versions
from .profiles import attack_profile

#: ``perturb(x, y, start) -> x'``: x float (n, C, H, W) clean images in [0, 1], y int64 (n,) labels,
#: start = index of x[0] in the dataset; returns the float perturbed images (clipping happens after).
PerturbFn = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


@dataclass
class Cost:
    """Surrogate passes: calls (batches) and images, forward and backward, counted where they happen."""

    forward_passes: int = 0
    backward_passes: int = 0
    forward_images: int = 0
    backward_images: int = 0

    def forward(self, n: int) -> None:
        self.forward_passes += 1
        self.forward_images += int(n)

    def backward(self, n: int) -> None:
        self.backward_passes += 1
        self.backward_images += int(n)


@dataclass
class AttackRun:
    """One attack call: its validated inputs, resolved settings, device, RNG and running cost."""

    name: str
    train: ImageSet
    levels: int
    profile: str
    settings: dict[str, Any]
    seed: int
    device: torch.device
    progress: bool
    gen: torch.Generator
    cost: Cost = field(default_factory=Cost)
    t0: float = field(default_factory=time.perf_counter)
    log: dict[str, Any] = field(default_factory=dict)

    @property
    def eps(self) -> float:
        """The budget in [0, 1] pixel units (8 levels -> 8/255)."""
        return self.levels / 255.0

    @property
    def bf16(self) -> bool:
        """bf16 autocast when the profile asks for it and the hardware does it natively."""
        return bool(self.settings.get("bf16")) and bf16_supported(self.device)

    def bar(self, total: int, desc: str) -> tqdm:
        return tqdm(total=total, desc=f"{self.name}: {desc}", disable=not self.progress, leave=False,
                    dynamic_ncols=True)


def start_attack(name: str, train: ImageSet, eps_levels: int, profile: str, seed: int, device: str,
                 progress: bool, options: dict[str, Any]) -> AttackRun:
    """Check the arguments every attack takes, resolve its settings and seed every RNG."""
    if not isinstance(train, ImageSet):
        raise DeephideError(f"attack {name}: train must be an ImageSet, got {type(train).__name__}")
    if len(train) == 0:
        raise DeephideError(f"{train.source}: attack {name} needs at least one training image")
    if isinstance(eps_levels, bool) or not isinstance(eps_levels, (int, np.integer)) or not 1 <= eps_levels <= 255:
        raise DeephideError(f"attack {name}: eps_levels must be an integer in 1..255 (8 = 8/255), got {eps_levels!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise DeephideError(f"attack {name}: seed must be an integer, got {seed!r}")
    settings = attack_profile(name, profile, options)
    gen = seed_everything(int(seed))
    dev = pick_device(device)
    tune_for(dev)
    return AttackRun(name, train, int(eps_levels), profile, settings, int(seed), dev, bool(progress), gen)


def classwise(noise: torch.Tensor) -> PerturbFn:
    """A PerturbFn adding ``noise[label]`` (K, C, H, W) to each image (class-wise perturbation)."""
    def fn(x: torch.Tensor, y: torch.Tensor, start: int) -> torch.Tensor:
        return x + noise.to(x.device, x.dtype)[y]
    return fn


def samplewise(noise: torch.Tensor | np.ndarray) -> PerturbFn:
    """A PerturbFn adding ``noise[i]`` (N, C, H, W) to image i (sample-wise perturbation)."""
    def fn(x: torch.Tensor, y: torch.Tensor, start: int) -> torch.Tensor:
        d = noise[start:start + x.shape[0]]
        d = torch.from_numpy(np.ascontiguousarray(d)) if isinstance(d, np.ndarray) else d
        return x + d.to(x.device, x.dtype)
    return fn


def _l0_changed(out: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """Number of changed pixel positions (any channel) per image, (N,)."""
    return (out != clean).any(axis=3).reshape(out.shape[0], -1).sum(axis=1)


def finish_attack(run: AttackRun, perturb: PerturbFn, mode: str, l0: int | None = None,
                  extra: dict[str, Any] | None = None, batch_size: int = 4096) -> ImageSet:
    """Apply ``perturb`` to the whole set, quantise within budget, verify, and record provenance.

    mode: "class" or "sample" (recorded). l0: None for the L-inf budget of ``run.levels``; an integer k
    for an L0 attack (OPS): then values may change arbitrarily but at most k pixel positions per image.
    Returns uint8 images of the clean set's shape with its labels and class names.
    """
    ds = run.train
    clean = ds.images
    out = np.empty_like(clean)
    quant_levels = 255 if l0 is not None else run.levels
    n = len(ds)
    labels = torch.from_numpy(ds.labels)
    for i in range(0, n, batch_size):
        c = torch.from_numpy(np.ascontiguousarray(clean[i:i + batch_size])).permute(0, 3, 1, 2)
        x = c.float().div(255)
        xp = perturb(x, labels[i:i + batch_size], i).detach().float().cpu()
        if xp.shape != x.shape:
            raise DeephideError(f"attack {run.name}: perturbation has shape {tuple(xp.shape)}, images {tuple(x.shape)}")
        out[i:i + batch_size] = quantise_within_budget(xp, c, quant_levels).permute(0, 2, 3, 1).numpy()
    diff = np.abs(out.astype(np.int16) - clean.astype(np.int16))
    linf = int(diff.max(initial=0))
    record: dict[str, Any] = {}
    if l0 is None:
        if linf > run.levels:  # cannot happen by construction; never return a set that breaks the contract
            raise DeephideError(f"{ds.source}: attack {run.name} violated the budget ({linf} > {run.levels} levels); "
                                "output discarded")
        budget = f"Linf={run.levels}/255"
    else:
        changed = _l0_changed(out, clean)
        if int(changed.max(initial=0)) > l0:
            raise DeephideError(f"{ds.source}: attack {run.name} changed {int(changed.max())} pixels in an image "
                                f"(L0 budget {l0}); output discarded")
        budget = f"L0={l0}"
        record["unchanged_images"] = int((changed == 0).sum())  # pixel already had the shortcut colour
    seconds = time.perf_counter() - run.t0
    settings = {k: v for k, v in run.settings.items() if k != "shortening"}
    record.update({
        "method": run.name, "mode": mode, "params": settings, "profile": run.profile,
        "shortening": run.settings["shortening"], "eps_levels": run.levels, "eps": f"{run.levels}/255",
        "budget": budget, "seed": run.seed, "linf_levels": linf, "mean_abs_levels": round(float(diff.mean()), 4),
        "cost": {"seconds": round(seconds, 3), **vars(run.cost)}, "device": str(run.device), "bf16": run.bf16,
        "versions": versions(), **run.log, **(extra or {}),
    })
    note = f"attack {run.name} ({mode}-wise, {budget}, profile {run.profile})"
    return ds.replace(images=out, note=note, protection=record)


def batches(n: int, batch_size: int) -> range:
    """Start indices of consecutive batches over ``n`` items."""
    return range(0, n, max(1, batch_size))


def n_batches(n: int, batch_size: int) -> int:
    return math.ceil(n / max(1, batch_size))


def run_rng(run: AttackRun, tag: int) -> np.random.Generator:
    """A numpy generator for one purpose of one run (stable across versions of the calling code)."""
    return np.random.default_rng([run.seed % (2**32), tag])


def scale_noise(noise: np.ndarray, how: str, l2: float, linf: float) -> np.ndarray:
    """Per-image scaling of (n, ...) noise: ``l2`` to that L2 norm, ``linf`` to that L-inf norm."""
    flat = noise.reshape(noise.shape[0], -1)
    if how == "l2":
        norm = np.linalg.norm(flat, axis=1)
        target = l2
    elif how == "linf":
        norm = np.abs(flat).max(axis=1)
        target = linf
    else:
        raise DeephideError(f"noise scaling '{how}': choose l2 or linf")
    norm = np.where(norm > 0, norm, 1.0)
    return (flat * (target / norm)[:, None]).reshape(noise.shape)
