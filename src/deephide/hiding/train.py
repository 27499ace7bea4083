"""Hider training: L_hide + w1 L_reveal + w2 L_freq + w3 L_LFC (+ the terms not in the paper: L_use, L_sv, L_lin)
on class-balanced batches, into a hider directory (its layout: hiding.hiderdir; ``protect`` reads it).

Under torchrun (``deephide.launch``) every rank draws the same class-balanced global batch and
trains on its contiguous shard (whole classes per rank, so L_LFC keeps its same-class pairs); DDP
averages the gradients, rank 0 alone writes the directory. One process runs exactly as before.
On a GPU covers and secrets are moved to the device once and stay there.

The jobs of a training, one place each: step.py (the batch, the hide-store-reveal forward, the logged statistics),
resume.py (what a checkpoint records and which settings may change on a resume), and here: ``train_hider`` and
``_HiderRun`` (setting up or resuming a run, the spike guard's rollbacks, the loop, the summary).
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
from .checkpoint import load_hider, load_training_state, read_checkpoint, save_hider
from .distortions import check_distortions
from .inn import Hider
from .losses import (bdr_linear_shortcut_loss, class_loss, freq_loss, hide_loss, lfc_loss, linear_shortcut_loss,
                     quiet_loss, reveal_loss, smooth_loss, total_loss, use_loss)
from .hiderdir import CHECKPOINT, LOG, SNAPSHOTS, SUMMARY, SURROGATE
from .profiles import hider_config, loss_weights
from .resume import ADDED_KEYS, RESUMABLE_KEYS, SCHEDULE_KEYS, last_log, same_run, save_state, snapshot_steps, trim_log
from .step import (HideRevealStep, balanced_batch, budget_stats, grey_some, loss_shares, mean_over_ranks,
                   rank_share, secret_index, straight_through_quantise, zoom_secrets)
from .surrogate import SurrogateVictim, cover_linear

__all__ = ["ADDED_KEYS", "HideRevealStep", "RESUMABLE_KEYS", "SCHEDULE_KEYS", "balanced_batch", "budget_stats",
           "loss_shares", "snapshot_steps", "straight_through_quantise", "train_hider"]


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
    _check_inputs(train, bank, profile, mode, features)
    run = _HiderRun(train, bank, profile, Path(out), mode, seed, features, device, init)
    return run.train(progress, time_limit_s, stop_after)


def _check_inputs(train: ImageSet, bank: SecretBank, profile: dict[str, Any], mode: str,
                  features: Callable | None) -> None:
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
    if loss_weights(profile)["lfc"] > 0 and features is None:
        raise DeephideError("train-hider: the profile uses L_LFC but no feature network was given")


class _HiderRun:
    """One hider training in ``out``: set up from scratch, a warm start or a checkpoint, then trained step by step
    with the spike guard (a NaN or a loss far above its running mean rolls back to the last kept state)."""

    def __init__(self, train: ImageSet, bank: SecretBank, profile: dict[str, Any], out: Path, mode: str, seed: int,
                 features: Callable | None, device: str, init: str | Path | None) -> None:
        self.train_set, self.bank, self.profile, self.out, self.mode, self.seed = train, bank, profile, out, mode, seed
        self.features = features
        self.h, self.w, _ = train.shape
        self.weights = loss_weights(profile)
        self.use_lfc = self.weights["lfc"] > 0
        self.dev = pick_device(device)
        self.world = distributed.current()
        tune_for(self.dev)
        self.use_bf16 = amp_dtype(self.dev, bool(profile.get("bf16")),
                                  allow_fp16=False) is not None  # the INN's exp() needs bf16's range
        self.eps = float(profile["eps"])
        self.ck = out / CHECKPOINT
        seed_everything(seed)
        self.hider = Hider(hider_config(profile, self.h, 3), init_scale=profile.get("init_scale", 0.01)).to(self.dev)
        self.opt = self._adam()
        self.run_cfg = {"profile": profile, "mode": mode, "seed": seed, "train": train.source, "n": len(train),
                        "bank": bank.meta.get("source"), "lfc": self.use_lfc}
        if init is not None and not self.ck.exists():
            self._warm_start(init)
        self.start, self.rollbacks = 0, 0
        self.schedule: list[dict] = []  # lr schedules by the iteration they took over from (when changed on resume)
        self.loss_ema: float | None = None  # running mean of the total loss over accepted steps (the spike guard)
        self.accepted = 0  # steps accepted so far (the guard arms after SPIKE_WARMUP of them)
        if self.ck.exists():
            self._resume()
        out.mkdir(parents=True, exist_ok=True)
        if self.world.is_main:
            trim_log(out / LOG, self.start)
        self.surrogate = self._make_surrogate()
        self._batches()
        self.linear = cover_linear(self.covers, self.train_set, self.seed) \
            if self.weights["lin"] > 0 or self.weights["lin_bdr"] > 0 else None
        # (weights, optimizer, iteration, spike-guard state): where a rollback or an interrupt returns to
        self.good = self._state(self.start)
        self.t0, self.elapsed0 = time.perf_counter(), 0.0
        if self.ck.exists():
            self.elapsed0 = float(read_checkpoint(self.ck).get("training", {}).get("seconds", 0.0))
        self.snapshots = snapshot_steps(profile.get("snapshot_at", ()))
        self.dist_names = check_distortions(profile.get("reveal_distortions", ()))
        from_stored = profile.get("reveal_from", "stored") == "stored"
        self.step = distributed.wrap(HideRevealStep(self.hider, self.eps, from_stored, self.dist_names), self.world)

    def _adam(self) -> torch.optim.Optimizer:
        p = self.profile
        return torch.optim.Adam(self.hider.parameters(), lr=p["lr"], betas=tuple(p["betas"]), eps=p["adam_eps"],
                                weight_decay=p["weight_decay"])

    def _warm_start(self, init: str | Path) -> None:
        src = load_hider(init, image_size=self.h, device=self.dev)
        if src.config.to_dict() != self.hider.config.to_dict():
            diff = sorted(k for k, v in self.hider.config.to_dict().items() if src.config.to_dict().get(k) != v)
            raise DeephideError(f"{init}: cannot start from this hider, its architecture differs from the profile's "
                                f"({', '.join(diff)})")
        self.hider.load_state_dict(src.state_dict())
        self.run_cfg["init"] = {"from": str(init),
                                "iteration": read_checkpoint(init).get("training", {}).get("iteration")}

    def _resume(self) -> None:
        state = load_training_state(self.ck)
        if not same_run(state.get("run"), self.run_cfg):
            raise DeephideError(f"{self.out}: holds a hider trained with other settings; use a new --out or --force")
        if (state.get("run") or {}).get("init"):  # a warm-started run stays one
            self.run_cfg["init"] = state["run"]["init"]
        self.hider = load_hider(self.ck, image_size=self.h, device=self.dev)
        self.opt = self._adam()
        load_training_state(self.ck, self.opt)
        self.start, self.rollbacks = int(state["iteration"]), int(state.get("rollbacks", 0))
        self.loss_ema = state.get("loss_ema")
        self.schedule = list(state.get("schedule") or [])
        before = {k: (self.schedule[-1] if self.schedule else state["run"]["profile"])[k] for k in SCHEDULE_KEYS}
        now = json.loads(json.dumps({k: self.profile[k] for k in SCHEDULE_KEYS}))
        self.accepted = int(state.get("accepted", 0))  # a resumed run keeps its guard as it was ...
        if before != now:  # ... unless continued with another lr schedule: recorded; the guard learns the new level
            self.schedule = (self.schedule or [{"from_iteration": 0, **before}]) + \
                [{"from_iteration": self.start, **now}]
            self.loss_ema, self.accepted = None, 0

    def _make_surrogate(self) -> SurrogateVictim | None:
        if self.weights["sv"] <= 0:
            return None
        if self.world.active:
            raise DeephideError("train-hider: the surrogate-victim term (w_sv) runs in one process only")
        p = self.profile
        surrogate = SurrogateVictim(p["sv_model"], self.train_set.num_classes, self.h, float(p["sv_lr"]), self.dev,
                                    seed=derive_seed(self.seed, "surrogate_init"), views=p.get("sv_views", ()),
                                    adv_levels=float(p.get("sv_adv_levels", 0)))
        if self.ck.exists() and (self.out / SURROGATE).exists():  # resume: the surrogate as it was at the checkpoint
            surrogate.restore(self.out / SURROGATE)
        return surrogate

    def _batches(self) -> None:
        """Covers and secrets as uint8 on the device for the whole run (a no-op copy on the CPU); the batch shape."""
        train = self.train_set
        self.covers = torch.from_numpy(np.ascontiguousarray(train.images)).permute(0, 3, 1, 2).to(self.dev)
        self.secrets = torch.from_numpy(self.bank.images).permute(0, 3, 1, 2).to(self.dev)
        self.by_class = [np.flatnonzero(train.labels == k) for k in range(train.num_classes)]
        self.per_class = int(self.profile["per_class"])
        self.n_cls = max(1, int(self.profile["batch_size"]) // self.per_class)
        self.part = rank_share(self.n_cls, self.per_class, sum(idx.size > 0 for idx in self.by_class), self.use_lfc,
                                self.world)
        # DDP averages; a sum adds
        self.lfc_scale = self.world.world_size if self.profile.get("lfc_reduction", "sum") == "sum" else 1

    def _state(self, n: int) -> tuple:
        return (copy.deepcopy(self.hider.state_dict()), copy.deepcopy(self.opt.state_dict()), n,
                (self.loss_ema, self.accepted), self.surrogate.state() if self.surrogate else None)

    def _elapsed(self) -> float:
        return round(self.elapsed0 + time.perf_counter() - self.t0, 1)

    def forward(self, it: int) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor,
                                        torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batch ``it`` through the step and the hider's own loss terms (the surrogate's is added by the caller):
        (terms, raw, stored, secret_hat, target, cover, y). The batch and its draws are seeded by (seed, it): the
        same on every rank and on resume."""
        p, train, dev, seed = self.profile, self.train_set, self.dev, self.seed
        rng = np.random.default_rng(derive_seed(seed, "hider_batch", it))
        idx = balanced_batch(self.by_class, self.per_class, self.n_cls, rng)  # the global batch: the same on every rank
        sidx = secret_index(self.bank, train.labels[idx], self.mode, rng)
        z = None
        if p.get("z_noise") == "gauss":  # drawn for the whole global batch: each rank keeps its rows
            gz = torch.Generator().manual_seed(derive_seed(seed, "hider_z", it))
            z = torch.randn((idx.size, self.hider.dwt_channels, self.h // 2, self.w // 2), generator=gz)[self.part]
            z = z.to(dev)
        idx, sidx = idx[self.part], sidx[self.part]
        cover = self.covers[torch.from_numpy(idx).to(dev)].float().div_(255)
        secret = self.secrets[torch.from_numpy(sidx).to(dev)].float().div_(255)
        if p.get("grey_share", 0.0) > 0:  # seeded by (seed, step): the same draws on resume
            cover = grey_some(cover, float(p["grey_share"]), np.random.default_rng(derive_seed(seed, "hider_grey", it)))
        if p.get("secret_zoom", 0.0) > 0:  # seeded by (seed, step): the same draws on resume
            zr = np.random.default_rng(derive_seed(seed, "hider_secret_zoom", it))
            secret = zoom_secrets(secret, float(p["secret_zoom"]), zr)
        y = torch.from_numpy(train.labels[idx]).to(dev)
        with autocast(dev, self.use_bf16):
            gd = torch.Generator().manual_seed(derive_seed(seed, "hider_distortion", it)) if self.dist_names else None
            raw, stored, secret_hat, target = self.step(cover, secret, z, gd)
        # L_hide bounds the INN's own output (before the budget map: it keeps the map out of saturation);
        # every other term sees exactly what protect stores
        terms = {"hide": hide_loss(cover + raw, cover, self.eps), "reveal": reveal_loss(secret_hat, target),
                 "freq": freq_loss(stored, cover)}
        if self.use_lfc:
            terms["lfc"] = lfc_loss(self.features, stored, cover, y, self.eps,
                                    reduction=p.get("lfc_reduction", "sum"),
                                    repulsion=float(p.get("lfc_repulsion", 0.0)))
            if self.lfc_scale != 1:  # a per-rank sum over pairs: x world size, so DDP's mean is the global sum
                terms["lfc"] = terms["lfc"] * self.lfc_scale
        if self.weights["use"] > 0:
            terms["use"] = use_loss(stored, cover, self.eps, float(p["use_target"]))
        if self.weights["quiet"] > 0:
            terms["quiet"] = quiet_loss(stored, cover, self.eps, float(p["quiet_target"]))
        if self.weights["smooth"] > 0:
            terms["smooth"] = smooth_loss(stored, cover, self.eps, float(p["smooth_sigma"]))
        if self.weights["class"] > 0:
            terms["class"] = class_loss(stored, cover, y, self.eps)
        if self.linear is not None:
            terms["lin"] = linear_shortcut_loss(self.linear, stored, cover, y, float(p.get("lin_lmd", 0.9)))
        if self.weights["lin_bdr"] > 0:
            terms["lin_bdr"] = bdr_linear_shortcut_loss(self.linear, stored, cover, y, float(p.get("lin_lmd", 0.9)))
        return terms, raw, stored, secret_hat, target, cover, y

    def spiking(self, guarded: float) -> bool:
        return self.loss_ema is not None and self.accepted >= SPIKE_WARMUP and guarded > SPIKE_FACTOR * self.loss_ema

    def keep(self, n: int, guarded: float, last: bool = False) -> None:
        """The weights after ``n`` updates, just judged sound by a forward whose guarded loss was ``guarded``: the
        only kind of state kept as the rollback target, a checkpoint or a snapshot. (The weights right after an
        update are unjudged: one such state, kept as snapshot 1,325 of a 16-block hider, revealed 11.2 dB where
        the states 25 steps before and after revealed 23.4 and 22.3, and the next step was rolled back.)"""
        healthy = self.loss_ema is None or guarded <= GOOD_FACTOR * self.loss_ema
        every = self.profile["checkpoint_every"]
        if (n % GOOD_EVERY == 0 and healthy) or n % every == 0:
            # the state a rollback returns to: kept in memory often, so a spike costs tens of steps, not hundreds,
            # but only from a step whose loss is near its running mean (not from a blow-up under way: that made
            # every later step a rollback to the same bad state, 50 in a row)
            self.good = self._state(n)
        if n > self.start and self.world.is_main:
            elapsed = self._elapsed()
            if n % every == 0 or last:  # last: the run ends here (finished or stopped)
                save_state(self.ck, self.hider, self.opt, self.run_cfg, n, self.rollbacks, elapsed,
                           (self.loss_ema, self.accepted), self.schedule, self.surrogate)
            if n in self.snapshots:  # learning-curve points: weights only
                save_hider(self.out / SNAPSHOTS / str(n), self.hider, profile=self.profile.get("profile"),
                           overwrite=True, training={"iteration": n, "seconds": elapsed, "run": self.run_cfg})

    def restore_good(self) -> None:
        """Weights, optimizer and surrogate back to the last kept state."""
        self.hider.load_state_dict(self.good[0])
        self.opt.load_state_dict(self.good[1])
        if self.surrogate is not None:
            self.surrogate.load(self.good[4])

    def roll_back(self) -> None:
        self.restore_good()
        self.rollbacks += 1

    def update(self, it: int) -> dict[str, float] | None:
        """Step ``it``: its forward, the surrogate's fit (min-min), then the update unless the guard rolls back; the
        logged values of an accepted step, None after a rollback."""
        p, w = self.profile, self.weights
        for g in self.opt.param_groups:
            g["lr"] = p["lr"] * p["lr_gamma"] ** (it // p["lr_step_every"])
        terms, raw, stored, secret_hat, target, cover, y = self.forward(it)
        if self.surrogate is not None:  # min-min: the surrogate fits this stored batch, then scores it for the hider
            if int(p["sv_reset"]) > 0 and it > 0 and it % int(p["sv_reset"]) == 0:
                self.surrogate.reset(derive_seed(self.seed, "surrogate_init", it))  # seeded by the step: resumes alike
            gs = torch.Generator().manual_seed(derive_seed(self.seed, "surrogate", it))
            sv_fit = self.surrogate.fit(stored, y, gs)
            terms["sv"] = self.surrogate.loss(stored, y, gs)
        loss, vals = total_loss(terms, w)
        # the guard watches the hider's own terms: the surrogate's cross-entropy jumps ~500x when it restarts
        # (sv_reset), which is no blow-up (counted in, every restart was rolled back and so undone)
        guarded = vals["total"] - w["sv"] * vals["sv"] if self.surrogate is not None else vals["total"]
        self.opt.zero_grad(set_to_none=True)
        bad = distributed.any_rank(not math.isfinite(vals["total"]) or self.spiking(guarded), self.world)
        if not bad:
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(self.hider.parameters(), p["grad_clip"])
            bad = not bool(torch.isfinite(gnorm))
        if bad:  # the INN diverges now and then (a NaN, or a loss that jumps far above its running mean, seen
            # here: 0.006 -> 33,918 within 50 steps at lr 1e-3, raw output 81,808 levels): roll back, skip this batch
            self.roll_back()
            self.in_a_row += 1
            if self.in_a_row > MAX_ROLLBACKS_IN_A_ROW:
                raise DeephideError(f"{self.out}: hider training diverged repeatedly ({self.in_a_row} rollbacks in a "
                                    f"row at step {it}); continue it with a lower lr (--set lr=...)")
            self.keep(it, self.loss_ema or 0.0)  # a snapshot or checkpoint due here: the state training goes on from
            return None
        self.keep(it, guarded)  # this forward judged the weights as they stand, `it` updates in
        self.opt.step()
        self.accepted, self.in_a_row = self.accepted + 1, 0
        self.loss_ema = guarded if self.loss_ema is None else \
            SPIKE_DECAY * self.loss_ema + (1 - SPIKE_DECAY) * guarded
        with torch.no_grad():
            vals.update(budget_stats(raw, self.hider.bound(raw, cover), cover, self.eps))
            vals.update(loss_shares(terms, w))
            if self.surrogate is not None:
                vals["sv_fit"] = sv_fit
            vals.update(psnr_stego=psnr(stored, cover, cap=100.0),
                        reveal_psnr=psnr(secret_hat.clamp(0, 1), target, cap=100.0))
        return vals

    def train(self, progress: bool, time_limit_s: float | None, stop_after: int | None) -> dict[str, Any]:
        """Train from ``start`` to the profile's iterations (or the time limit / ``stop_after``); the summary."""
        total_it = int(self.profile["iterations"])
        bar = tqdm(total=total_it, initial=self.start, desc="train hider",
                   disable=not progress or not self.world.is_main, leave=False, dynamic_ncols=True)
        acc: dict[str, list[float]] = {}
        it, stopped, self.in_a_row = self.start, None, 0  # in_a_row: rollbacks since the last accepted step
        try:
            for it in range(self.start, total_it):
                if stop_after is not None and it >= stop_after:
                    stopped = "stop_after"
                    break
                if time_limit_s is not None and distributed.any_rank(time.perf_counter() - self.t0 > time_limit_s,
                                                                     self.world):
                    stopped = "time_limit"
                    break
                vals = self.update(it)
                if vals is None:
                    continue
                for k, v in vals.items():
                    acc.setdefault(k, []).append(v)
                bar.update(1)
                done = it + 1
                if done % self.profile["log_every"] == 0 or done == total_it:
                    rec = self._log(done, acc)
                    bar.set_postfix(rev=f"{rec['reveal_psnr']:.1f}dB", lv=f"{rec['mean_levels']:.2f}")
                    acc = {}
            bar.close()
            done = it if stopped is not None else (it + 1 if total_it > self.start else self.start)
            # (the loop ran to its end, or had nothing left to do: a finished hider opened again)
            if done > self.start:  # the last update is judged like every other: one forward on the next batch
                with torch.no_grad():
                    guarded = total_loss(self.forward(done)[0], self.weights)[1]["total"]
                if distributed.any_rank(not math.isfinite(guarded) or self.spiking(guarded), self.world):
                    self.roll_back()  # ends on the last kept state (its step count stays: its batches were seen)
                self.keep(done, guarded, last=True)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM (a scheduler's limit): keep the last good state, then stop
            if self.world.is_main and self.good[2] > self.start:
                self.restore_good()
                save_state(self.ck, self.hider, self.opt, self.run_cfg, self.good[2], self.rollbacks,
                           self.elapsed0 + time.perf_counter() - self.t0, self.good[3], self.schedule, self.surrogate)
            raise
        return self._summary(done, total_it, stopped)

    def _log(self, done: int, acc: dict[str, list[float]]) -> dict[str, Any]:
        rec = {"iteration": done, "lr": self.opt.param_groups[0]["lr"], "rollbacks": self.rollbacks,
               "seconds": self._elapsed(),
               **mean_over_ranks({k: float(np.mean(v)) for k, v in acc.items()}, self.world)}
        if self.world.is_main:
            with open(self.out / LOG, "a") as f:
                f.write(json.dumps(rec) + "\n")
        return rec

    def _summary(self, done: int, total_it: int, stopped: str | None) -> dict[str, Any]:
        distributed.barrier(self.world)  # rank 0's last log line and checkpoint are on disk before anyone reads them
        summary = {"iterations_done": done, "iterations": total_it, "finished": done >= total_it, "stopped": stopped,
                   "schedule": self.schedule,
                   "rollbacks": self.rollbacks, "seconds": self._elapsed(),
                   "run": self.run_cfg, "bf16": self.use_bf16, "device": str(self.dev), "versions": versions(),
                   "parameters": self.hider.num_parameters(), "last_log": last_log(self.out / LOG)}
        if self.world.active:
            summary["world_size"] = self.world.world_size
        if self.world.is_main:
            write_json(self.out / SUMMARY, summary)
        return summary


#: the divergence guard: a step whose total loss exceeds SPIKE_FACTOR x the running mean (decay SPIKE_DECAY per
#: accepted step, armed after SPIKE_WARMUP of them) is treated like a NaN: roll back to the last healthy state, skip
SPIKE_FACTOR, SPIKE_DECAY, SPIKE_WARMUP = 10.0, 0.98, 50
#: how often (steps) the in-memory state a rollback returns to is refreshed (and at every checkpoint)
GOOD_EVERY, GOOD_FACTOR = 25, 2.0
#: rollbacks in a row (no step accepted between them) after which training stops with an error
MAX_ROLLBACKS_IN_A_ROW = 50
