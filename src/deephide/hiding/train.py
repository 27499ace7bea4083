"""Hider training: L_hide + w1 L_reveal + w2 L_freq + w3 L_LFC on class-balanced batches.

Layout of a hider directory (what ``deephide train-hider --out DIR`` writes, ``protect`` reads):
  DIR/checkpoint/   weights.safetensors + config.json (+ optimizer) -- see hiding.checkpoint
  DIR/bank/         the secret bank the hider was trained with (semantic.store)
  DIR/log.jsonl     one line per ``log_every`` iterations: every loss, PSNR, L-inf, reveal PSNR
  DIR/summary.json  final numbers, full profile, seed, versions, timing (+ the reveal gate, pipeline)
  DIR/snapshots/N/  weights at the profile's ``snapshot_at`` iterations (learning-curve points)

Under torchrun (``deephide.launch``) every rank draws the same class-balanced global batch and
trains on its contiguous shard (whole classes per rank, so L_LFC keeps its same-class pairs); DDP
averages the gradients, rank 0 alone writes the directory. One process runs exactly as before.
On a GPU covers and secrets are moved to the device once and stay there.
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..training import distributed
from ..data import ImageSet
from ..errors import DeephideError
from ..fsutil import write_json
from ..runtime import amp_dtype, autocast, derive_seed, pick_device, seed_everything, tune_for, versions
from ..semantic import SecretBank
from ..ops.metrics import psnr
from ..ops.budget import clipped_count, project_to_budget, quantise_within_budget
from .checkpoint import load_hider, load_training_state, read_checkpoint, save_hider
from .distortions import check_distortions, distort
from .inn import Hider
from .losses import freq_loss, hide_loss, lfc_loss, reveal_loss, total_loss, use_loss
from .hiderdir import CHECKPOINT, LOG, SNAPSHOTS, SUMMARY, SURROGATE
from .profiles import hider_config, loss_weights
from .surrogate import SurrogateVictim


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
        raw, _ = self.hider.perturbation(cover, secret)
        raw = raw.float()
        stego = cover + self.hider.bound(raw, cover)
        stored = straight_through_quantise(stego, cover, self.eps) if self.from_stored else stego
        target, seen = secret, stored
        if self.distortions:
            seen, target = distort(self.distortions, stored, secret, gen or torch.Generator())
        return raw, stored, self.hider.reveal(seen, z).float(), target


def _secret_index(bank: SecretBank, labels: np.ndarray, mode: str, rng: np.random.Generator) -> np.ndarray:
    """Class mode: each class's first secret. Sample mode: a random member of the class's group."""
    if mode == "class":
        return np.array([bank.members(int(k))[0] for k in labels])
    return np.array([rng.choice(bank.members(int(k))) for k in labels])


def train_hider(train: ImageSet, bank: SecretBank, profile: dict[str, Any], out: str | Path, mode: str = "class",
                seed: int = 0, features: Callable[[torch.Tensor], torch.Tensor] | None = None,
                device: str = "auto", progress: bool = True, time_limit_s: float | None = None,
                stop_after: int | None = None, init: str | Path | None = None) -> dict[str, Any]:
    """Train a hider on ``train`` covers and ``bank`` secrets; checkpoints and resumes in ``out``.

    train: RGB uint8 images (N, S, S, 3); bank: secrets (M, S, S, 3) grouped by class.
    profile: a hider profile (``hiding.profiles.get_hider_profile``). features: the frozen LFC
    feature network (``hiding.lfc``), required when the profile's ``lfc`` is on.
    init: a checkpoint directory to start from (a warm start: its weights, with this profile's objective, a
    fresh optimizer and step count; recorded as ``run.init``); ignored when ``out`` already holds a checkpoint.
    Returns the summary dict (also written to ``out/summary.json`` when training finishes).
    """
    out = Path(out)
    h, w, c = train.shape
    if c != 3:
        raise DeephideError(f"{train.source}: hider training needs RGB images, got {c} channel(s)")
    if bank.images.shape[1:3] != (h, w):
        raise DeephideError(f"{train.source}: secrets are {bank.images.shape[1]}x{bank.images.shape[2]} "
                            f"but images are {h}x{w}")
    if bank.num_classes != train.num_classes:
        raise DeephideError(f"{train.source}: {train.num_classes} classes but the secret bank has {bank.num_classes}")
    if mode not in ("class", "sample"):
        raise DeephideError(f"unknown protection mode '{mode}'; choose class or sample")
    if mode == "sample" and all(bank.members(k).size < 2 for k in range(bank.num_classes)):
        # one secret per class makes sample-wise hiding class-wise (and its reveal gate's trivial answer exact)
        raise DeephideError(f"{train.source}: sample-wise hiding needs several secrets per class, the bank has one "
                            "(a class-wise hider's bank? give --secrets, e.g. sig)")
    weights = loss_weights(profile)
    use_lfc = weights["lfc"] > 0
    if use_lfc and features is None:
        raise DeephideError("train-hider: the profile uses L_LFC but no feature network was given")
    dev = pick_device(device)
    world = distributed.current()
    tune_for(dev)
    use_bf16 = amp_dtype(dev, bool(profile.get("bf16")),
                         allow_fp16=False) is not None  # the INN's exp() needs bf16's range
    eps = float(profile["eps"])

    seed_everything(seed)
    hider = Hider(hider_config(profile, h, 3), init_scale=profile.get("init_scale", 0.01)).to(dev)
    opt = torch.optim.Adam(hider.parameters(), lr=profile["lr"], betas=tuple(profile["betas"]),
                           eps=profile["adam_eps"], weight_decay=profile["weight_decay"])
    run_cfg = {"profile": profile, "mode": mode, "seed": seed, "train": train.source, "n": len(train),
               "bank": bank.meta.get("source"), "lfc": use_lfc}
    if init is not None and not (out / CHECKPOINT).exists():
        src = load_hider(init, image_size=h, device=dev)
        if src.config.to_dict() != hider.config.to_dict():
            diff = sorted(k for k, v in hider.config.to_dict().items() if src.config.to_dict().get(k) != v)
            raise DeephideError(f"{init}: cannot start from this hider, its architecture differs from the profile's "
                                f"({', '.join(diff)})")
        hider.load_state_dict(src.state_dict())
        run_cfg["init"] = {"from": str(init), "iteration": read_checkpoint(init).get("training", {}).get("iteration")}
    start, rollbacks = 0, 0
    schedule: list[dict] = []  # lr schedules by the iteration they took over from (when changed on a resume)
    loss_ema: float | None = None  # running mean of the total loss over accepted steps (the spike guard)
    accepted = 0  # steps accepted so far (the guard arms after SPIKE_WARMUP of them)
    ck = out / CHECKPOINT
    if ck.exists():  # resume
        state = load_training_state(ck)
        if not _same_run(state.get("run"), run_cfg):
            raise DeephideError(f"{out}: holds a hider trained with other settings; use a new --out or --force")
        if (state.get("run") or {}).get("init"):  # a warm-started run stays one
            run_cfg["init"] = state["run"]["init"]
        hider = load_hider(ck, image_size=h, device=dev)
        opt = torch.optim.Adam(hider.parameters(), lr=profile["lr"], betas=tuple(profile["betas"]),
                               eps=profile["adam_eps"], weight_decay=profile["weight_decay"])
        load_training_state(ck, opt)
        start, rollbacks = int(state["iteration"]), int(state.get("rollbacks", 0))
        loss_ema = state.get("loss_ema")
        schedule = list(state.get("schedule") or [])
        before = {k: (schedule[-1] if schedule else state["run"]["profile"])[k] for k in SCHEDULE_KEYS}
        now = json.loads(json.dumps({k: profile[k] for k in SCHEDULE_KEYS}))
        accepted = int(state.get("accepted", 0))  # a resumed run keeps its guard as it was ...
        if before != now:  # ... unless continued with another lr schedule: recorded; the guard learns the new level
            schedule = (schedule or [{"from_iteration": 0, **before}]) + [{"from_iteration": start, **now}]
            loss_ema, accepted = None, 0
    out.mkdir(parents=True, exist_ok=True)
    if world.is_main:
        _trim_log(out / LOG, start)
    surrogate = None
    if weights["sv"] > 0:
        if world.active:
            raise DeephideError("train-hider: the surrogate-victim term (w_sv) runs in one process only")
        surrogate = SurrogateVictim(profile["sv_model"], train.num_classes, h, float(profile["sv_lr"]), dev,
                                    seed=derive_seed(seed, "surrogate_init"), views=profile.get("sv_views", ()),
                                    adv_levels=float(profile.get("sv_adv_levels", 0)))
        if ck.exists() and (out / SURROGATE).exists():  # resume: the surrogate as it was at the checkpoint
            surrogate.restore(out / SURROGATE)

    # uint8 on the device for the whole run (a no-op copy on the CPU)
    covers = torch.from_numpy(np.ascontiguousarray(train.images)).permute(0, 3, 1, 2).to(dev)
    secrets = torch.from_numpy(bank.images).permute(0, 3, 1, 2).to(dev)
    by_class = [np.flatnonzero(train.labels == k) for k in range(train.num_classes)]
    per_class = int(profile["per_class"])
    n_cls = max(1, int(profile["batch_size"]) // per_class)
    part = _rank_share(n_cls, per_class, sum(idx.size > 0 for idx in by_class), use_lfc, world)
    lfc_scale = world.world_size if profile.get("lfc_reduction", "sum") == "sum" else 1  # DDP averages; a sum adds
    # (weights, optimizer, iteration, spike-guard state): where a rollback or an interrupt returns to
    good = (copy.deepcopy(hider.state_dict()), copy.deepcopy(opt.state_dict()), start, (loss_ema, accepted),
            surrogate.state() if surrogate else None)
    acc: dict[str, list[float]] = {}
    total_it = int(profile["iterations"])
    t0, elapsed0 = time.perf_counter(), 0.0
    if ck.exists():
        elapsed0 = float(read_checkpoint(ck).get("training", {}).get("seconds", 0.0))
    snap = profile.get("snapshot_at", ())
    snapshots = snapshot_steps(snap)
    dist_names = check_distortions(profile.get("reveal_distortions", ()))
    step = distributed.wrap(HideRevealStep(hider, eps, profile.get("reveal_from", "stored") == "stored",
                                           dist_names), world)
    bar = tqdm(total=total_it, initial=start, desc="train hider", disable=not progress or not world.is_main,
               leave=False, dynamic_ncols=True)
    it = start
    stopped = None
    in_a_row = 0  # rollbacks since the last accepted step

    def forward(it: int) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                  torch.Tensor, torch.Tensor]:
        """Batch ``it`` through the step and the hider's own loss terms (the surrogate's is added by the caller):
        (terms, raw, stored, secret_hat, target, cover, y). The batch and its draws are seeded by (seed, it): the
        same on every rank and on resume."""
        rng = np.random.default_rng(derive_seed(seed, "hider_batch", it))
        idx = balanced_batch(by_class, per_class, n_cls, rng)  # the global batch: the same on every rank
        sidx = _secret_index(bank, train.labels[idx], mode, rng)
        z = None
        if profile.get("z_noise") == "gauss":  # drawn for the whole global batch: each rank keeps its rows
            gz = torch.Generator().manual_seed(derive_seed(seed, "hider_z", it))
            z = torch.randn((idx.size, hider.dwt_channels, h // 2, w // 2), generator=gz)[part].to(dev)
        idx, sidx = idx[part], sidx[part]
        cover = covers[torch.from_numpy(idx).to(dev)].float().div_(255)
        secret = secrets[torch.from_numpy(sidx).to(dev)].float().div_(255)
        y = torch.from_numpy(train.labels[idx]).to(dev)
        with autocast(dev, use_bf16):
            gd = torch.Generator().manual_seed(derive_seed(seed, "hider_distortion", it)) if dist_names else None
            raw, stored, secret_hat, target = step(cover, secret, z, gd)
        # L_hide bounds the INN's own output (before the budget map: it keeps the map out of saturation);
        # every other term sees exactly what protect stores
        terms = {"hide": hide_loss(cover + raw, cover, eps), "reveal": reveal_loss(secret_hat, target),
                 "freq": freq_loss(stored, cover)}
        if use_lfc:
            terms["lfc"] = lfc_loss(features, stored, cover, y, eps, reduction=profile.get("lfc_reduction", "sum"),
                                    repulsion=float(profile.get("lfc_repulsion", 0.0)))
            if lfc_scale != 1:  # a per-rank sum over pairs: x world size, so DDP's mean is the global sum
                terms["lfc"] = terms["lfc"] * lfc_scale
        if weights["use"] > 0:
            terms["use"] = use_loss(stored, cover, eps, float(profile["use_target"]))
        return terms, raw, stored, secret_hat, target, cover, y

    def spiking(guarded: float) -> bool:
        return loss_ema is not None and accepted >= SPIKE_WARMUP and guarded > SPIKE_FACTOR * loss_ema

    def keep(n: int, guarded: float, last: bool = False) -> None:
        """The weights after ``n`` updates, just judged sound by a forward whose guarded loss was ``guarded``: the
        only kind of state kept as the rollback target, a checkpoint or a snapshot. (The weights right after an
        update are unjudged: one such state, kept as snapshot 1,325 of a 16-block hider, revealed 11.2 dB where
        the states 25 steps before and after revealed 23.4 and 22.3, and the next step was rolled back.)"""
        nonlocal good
        healthy = loss_ema is None or guarded <= GOOD_FACTOR * loss_ema
        if (n % GOOD_EVERY == 0 and healthy) or n % profile["checkpoint_every"] == 0:
            # the state a rollback returns to: kept in memory often, so a spike costs tens of steps, not hundreds,
            # but only from a step whose loss is near its running mean (not from a blow-up under way: that made
            # every later step a rollback to the same bad state, 50 in a row)
            good = (copy.deepcopy(hider.state_dict()), copy.deepcopy(opt.state_dict()), n, (loss_ema, accepted),
                    surrogate.state() if surrogate else None)
        if n > start and world.is_main:
            elapsed = round(elapsed0 + time.perf_counter() - t0, 1)
            if n % profile["checkpoint_every"] == 0 or last:  # last: the run ends here (finished or stopped)
                _save(ck, hider, opt, run_cfg, n, rollbacks, elapsed, (loss_ema, accepted), schedule, surrogate)
            if n in snapshots:  # learning-curve points: weights only
                save_hider(out / SNAPSHOTS / str(n), hider, profile=profile.get("profile"), overwrite=True,
                           training={"iteration": n, "seconds": elapsed, "run": run_cfg})

    def restore_good() -> None:
        """Weights, optimizer and surrogate back to the last kept state."""
        hider.load_state_dict(good[0])
        opt.load_state_dict(good[1])
        if surrogate is not None:
            surrogate.load(good[4])

    def roll_back() -> None:
        nonlocal rollbacks
        restore_good()
        rollbacks += 1

    try:
        for it in range(start, total_it):
            if stop_after is not None and it >= stop_after:
                stopped = "stop_after"
                break
            if time_limit_s is not None and distributed.any_rank(time.perf_counter() - t0 > time_limit_s, world):
                stopped = "time_limit"
                break
            for g in opt.param_groups:
                g["lr"] = profile["lr"] * profile["lr_gamma"] ** (it // profile["lr_step_every"])
            terms, raw, stored, secret_hat, target, cover, y = forward(it)
            if surrogate is not None:  # min-min: the surrogate fits this stored batch, then scores it for the hider
                if int(profile["sv_reset"]) > 0 and it > 0 and it % int(profile["sv_reset"]) == 0:
                    surrogate.reset(derive_seed(seed, "surrogate_init", it))  # seeded by the step: resumes alike
                gs = torch.Generator().manual_seed(derive_seed(seed, "surrogate", it))
                vals_sv_fit = surrogate.fit(stored, y, gs)
                terms["sv"] = surrogate.loss(stored, y, gs)
            loss, vals = total_loss(terms, weights)
            # the guard watches the hider's own terms: the surrogate's cross-entropy jumps ~500x when it restarts
            # (sv_reset), which is no blow-up (counted in, every restart was rolled back and so undone)
            guarded = vals["total"] - weights["sv"] * vals["sv"] if surrogate is not None else vals["total"]
            opt.zero_grad(set_to_none=True)
            bad = distributed.any_rank(not math.isfinite(vals["total"]) or spiking(guarded), world)  # all ranks skip
            if not bad:
                loss.backward()
                gnorm = torch.nn.utils.clip_grad_norm_(hider.parameters(), profile["grad_clip"])
                bad = not bool(torch.isfinite(gnorm))
            if bad:  # the INN diverges now and then (a NaN, or a loss that jumps far above its running mean, seen
                # here: 0.006 -> 33,918 within 50 steps at lr 1e-3, raw output 81,808 levels):
                # roll back, skip this batch
                roll_back()
                in_a_row += 1
                if in_a_row > MAX_ROLLBACKS_IN_A_ROW:
                    raise DeephideError(f"{out}: hider training diverged repeatedly ({in_a_row} rollbacks in a row at "
                                        f"step {it}); continue it with a lower lr (--set lr=...)")
                keep(it, loss_ema or 0.0)  # a snapshot or checkpoint due here: the state training goes on from
                continue
            keep(it, guarded)  # this forward judged the weights as they stand, `it` updates in
            opt.step()
            accepted, in_a_row = accepted + 1, 0
            loss_ema = guarded if loss_ema is None else SPIKE_DECAY * loss_ema + (1 - SPIKE_DECAY) * guarded
            with torch.no_grad():
                vals.update(budget_stats(raw, hider.bound(raw, cover), cover, eps))
                vals.update(loss_shares(terms, weights))
                if surrogate is not None:
                    vals["sv_fit"] = vals_sv_fit
                vals.update(psnr_stego=psnr(stored, cover, cap=100.0),
                            reveal_psnr=psnr(secret_hat.clamp(0, 1), target, cap=100.0))
            for k, v in vals.items():
                acc.setdefault(k, []).append(v)
            bar.update(1)
            done = it + 1
            if done % profile["log_every"] == 0 or done == total_it:
                rec = {"iteration": done, "lr": opt.param_groups[0]["lr"], "rollbacks": rollbacks,
                       "seconds": round(elapsed0 + time.perf_counter() - t0, 1),
                       **_mean_over_ranks({k: float(np.mean(v)) for k, v in acc.items()}, world)}
                if world.is_main:
                    with open(out / LOG, "a") as f:
                        f.write(json.dumps(rec) + "\n")
                bar.set_postfix(rev=f"{rec['reveal_psnr']:.1f}dB", lv=f"{rec['mean_levels']:.2f}")
                acc = {}
        bar.close()
        if stopped is not None:
            done = it
        else:  # the loop ran to its end, or had nothing left to do (a finished hider opened again)
            done = it + 1 if total_it > start else start
        if done > start:  # the last update is judged like every other: one forward on the next batch, no update
            with torch.no_grad():
                terms = forward(done)[0]
                guarded = total_loss(terms, weights)[1]["total"]
            if distributed.any_rank(not math.isfinite(guarded) or spiking(guarded), world):
                roll_back()  # the run ends on the last kept state (its step count stays: those batches were seen)
            keep(done, guarded, last=True)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (a scheduler's limit): keep the last good state, then stop
        if world.is_main and good[2] > start:
            restore_good()
            _save(ck, hider, opt, run_cfg, good[2], rollbacks,
                  elapsed0 + time.perf_counter() - t0, good[3], schedule, surrogate)
        raise
    distributed.barrier(world)  # rank 0's last log line and checkpoint are on disk before anyone reads them
    summary = {"iterations_done": done, "iterations": total_it, "finished": done >= total_it, "stopped": stopped,
               "schedule": schedule,
               "rollbacks": rollbacks, "seconds": round(elapsed0 + time.perf_counter() - t0, 1),
               "run": run_cfg, "bf16": use_bf16, "device": str(dev), "versions": versions(),
               "parameters": hider.num_parameters(), "last_log": _last_log(out / LOG)}
    if world.active:
        summary["world_size"] = world.world_size
    if world.is_main:
        write_json(out / SUMMARY, summary)
    return summary


#: the divergence guard: a step whose total loss exceeds SPIKE_FACTOR x the running mean (decay SPIKE_DECAY per
#: accepted step, armed after SPIKE_WARMUP of them) is treated like a NaN: roll back to the last healthy state, skip
SPIKE_FACTOR, SPIKE_DECAY, SPIKE_WARMUP = 10.0, 0.98, 50
#: how often (steps) the in-memory state a rollback returns to is refreshed (and at every checkpoint)
GOOD_EVERY, GOOD_FACTOR = 25, 2.0
#: rollbacks in a row (no step accepted between them) after which training stops with an error
MAX_ROLLBACKS_IN_A_ROW = 50

#: profile keys that may change when a training is continued: its length, and when it saves and logs
RESUMABLE_KEYS = ("iterations", "checkpoint_every", "log_every", "snapshot_at", "lr", "lr_step_every", "lr_gamma")
#: profile keys added after hiders were shipped, with the value that reproduces what ran before them
ADDED_KEYS = {"w_use": 0.0, "use_target": 0.75, "w_sv": 0.0, "sv_model": "fastcnn", "sv_lr": 0.05, "sv_reset": 0,
              "sv_views": [], "sv_adv_levels": 0}
#: the lr schedule: may change when a training is continued (e.g. a lower lr once 10^-3 turns unstable); every
#: change is recorded in the checkpoint and the summary (``schedule``), and the log states each step's lr
SCHEDULE_KEYS = ("lr", "lr_step_every", "lr_gamma")


def snapshot_steps(snap: Any) -> set[int]:
    """The profile's ``snapshot_at`` as steps: a number, a list of numbers, or a comma-separated string
    (`--set snapshot_at=500`, `--set snapshot_at=[500,2000]`, `--set snapshot_at=500,2000`)."""
    items = snap.split(",") if isinstance(snap, str) else [snap] if isinstance(snap, (int, float)) else list(snap)
    try:
        return {int(str(v).strip()) for v in items if str(v).strip()}
    except ValueError:
        raise DeephideError(f"hider profile: snapshot_at must be steps such as 500,2000; got {snap!r}") from None


def _same_run(saved: dict | None, run_cfg: dict) -> bool:
    """Whether a checkpoint's run config matches this one, up to :data:`RESUMABLE_KEYS` (so a finished
    hider can be trained further: 4,000 steps now, continued to 16,000 in the next working period)."""
    if not isinstance(saved, dict) or not isinstance(saved.get("profile"), dict):
        return False
    a, b = json.loads(json.dumps(saved)), json.loads(json.dumps(run_cfg))
    a.pop("init", None)  # where a warm start came from is a record, not a setting (given again or not)
    b.pop("init", None)
    for k, v in ADDED_KEYS.items():  # a checkpoint older than a setting ran with the setting's neutral value
        a["profile"].setdefault(k, v)
    for k in RESUMABLE_KEYS:
        a["profile"].pop(k, None)
        b["profile"].pop(k, None)
    return a == b


def _rank_share(n_cls: int, per_class: int, present: int, use_lfc: bool, world: distributed.World) -> slice:
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


def _mean_over_ranks(vals: dict[str, float], world: distributed.World) -> dict[str, float]:
    """Logged numbers averaged over the ranks (each rank measured its own shard); as-is with one process."""
    if not world.active:
        return vals
    keys = sorted(vals)
    sums = distributed.all_reduce_sum([vals[k] for k in keys], world)
    return {k: v / world.world_size for k, v in zip(keys, sums)}


def _save(ck: Path, hider: Hider, opt: torch.optim.Optimizer, run_cfg: dict, done: int, rollbacks: int,
          seconds: float, guard: tuple[float | None, int] = (None, 0), schedule: list | None = None,
          surrogate: SurrogateVictim | None = None) -> None:
    """The checkpoint (weights, optimizer, training state) and, with the w_sv variant, the surrogate beside it."""
    save_hider(ck, hider, profile=run_cfg["profile"].get("profile"), optimizer=opt, overwrite=True,
               training={"iteration": done, "rollbacks": rollbacks, "seconds": round(seconds, 1), "run": run_cfg,
                         "loss_ema": guard[0], "accepted": guard[1], "schedule": schedule or []})
    if surrogate is not None:
        surrogate.save(ck.parent / SURROGATE)


def _trim_log(path: Path, upto: int) -> None:
    """Drop log lines past the resumed iteration (they will be written again)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["iteration"] <= upto:
                keep.append(line)
        except (ValueError, KeyError):
            break
    path.write_text("".join(s + "\n" for s in keep))


def _last_log(path: Path) -> dict | None:
    if not path.exists():
        return None
    lines = path.read_text().splitlines()
    return json.loads(lines[-1]) if lines else None
