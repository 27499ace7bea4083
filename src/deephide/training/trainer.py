"""Victim trainer: trains a model from scratch on a (possibly protected) set, reports clean test accuracy.

Speed tricks (each matters on a CPU): the whole set lives as one uint8 tensor on the device,
augmentation runs on whole batches, bf16 autocast + channels_last where the hardware has native bf16.
The same code is the GPU path: data stays on the GPU, augmentation runs there, AMP is bf16 (fp16 with
a loss scaler on GPUs without bf16), and running loss/accuracy are summed on the device (no per-step sync).
Multi-process (torchrun): see ``deephide.training.distributed``; with one process nothing of it runs.
Determinism: every random draw comes from generators seeded by (seed, epoch) or (seed, iteration),
so a run resumed from a checkpoint makes exactly the draws of an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save as st_save
from tqdm.auto import tqdm

from . import distributed
from ..data import ImageSet
from ..errors import DeephideError, error_line
from ..fsutil import atomic_file, write_json
from ..models import build_model
from ..runtime import amp_dtype, autocast, derive_seed, grad_scaler, pick_device, seed_everything, synchronize, tune_for
from ..runtime import versions
from .augment import augment_batch

CKPT_WEIGHTS = "checkpoint.safetensors"
CKPT_STATE = "state.json"


def check_compatible(train: ImageSet, test: ImageSet) -> None:
    """Train and test sets must share class count and image shape."""
    if train.num_classes != test.num_classes:
        raise DeephideError(
            f"{test.source}: test set has {test.num_classes} classes "
            f"but training set {train.source} has {train.num_classes}"
        )
    if train.shape != test.shape:
        raise DeephideError(f"{test.source}: test images are {test.shape} "
                            f"but training images {train.source} are {train.shape}")


def lr_at(it: int, prof: dict[str, Any]) -> float:
    """Learning rate at iteration ``it`` for the profile's schedule."""
    base, total = prof["lr"], prof["iterations"]
    if prof["schedule"] == "step":  # REM recipe: x gamma every step_every iterations
        return base * prof["step_gamma"] ** (it // prof["step_every"])
    if prof["schedule"] == "linear-warmup-decay":  # one-cycle-like: short warmup, linear decay to 0
        warm = max(1, int(prof["warmup_frac"] * total))
        if it < warm:
            return base * (it + 1) / warm
        return base * max(0.0, (total - it) / max(1, total - warm))
    if prof["schedule"] == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * it / total))
    raise DeephideError(f"unknown learning-rate schedule '{prof['schedule']}'")


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The sample order of ``epoch``: a permutation depending only on (seed, epoch)."""
    g = torch.Generator().manual_seed(derive_seed(seed, "epoch_order", epoch))
    return torch.randperm(n, generator=g)


def batch_indices(it: int, n: int, batch: int, seed: int, cache: dict) -> torch.Tensor:
    """Indices of the batch of iteration ``it`` (drop-last epochs of ``n // batch`` batches)."""
    per_epoch = max(1, n // batch)
    ep, k = divmod(it, per_epoch)
    if cache.get("epoch") != ep:
        cache["epoch"], cache["order"] = ep, epoch_order(n, seed, ep)
    return cache["order"][k * batch:(k + 1) * batch]


def data_fingerprint(ds: ImageSet) -> str:
    """sha256 of images and labels: ties a checkpoint to the exact data it was trained on."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(ds.images).data)
    h.update(np.ascontiguousarray(ds.labels).data)
    return h.hexdigest()[:16]


@torch.no_grad()
def count_correct(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                  use_amp: bool, channels_last: bool, amp: torch.dtype = torch.bfloat16) -> int:
    """Top-1 hits of ``model`` on uint8 images (N, C, H, W) and int labels (N,) on the model's device."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=images.device)  # summed on the device: one sync
    for i in range(0, images.shape[0], batch_size):
        x = images[i:i + batch_size].float().div_(255)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(x.device, use_amp, amp):
            pred = model(x).argmax(1)
        correct += (pred == labels[i:i + batch_size]).sum()
    model.train(was_training)
    return int(correct)


def evaluate_accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                      batch_size: int, use_bf16: bool, channels_last: bool,
                      amp: torch.dtype = torch.bfloat16) -> float:
    """Top-1 accuracy (%) of ``model`` on uint8 images (N, C, H, W) already on the model's device.

    Under torchrun every rank scores its share of the images and the counts are summed, so each
    rank returns the accuracy on all N (call it on every rank, with rank 0's BatchNorm buffers).
    """
    world = distributed.current()
    part = distributed.split(images.shape[0], world) if world.active else slice(None)
    correct = count_correct(model, images[part], labels[part], batch_size, use_bf16, channels_last, amp)
    if world.active:
        correct = int(distributed.all_reduce_sum([correct], world)[0])
    return 100.0 * correct / max(1, images.shape[0])


def _save_checkpoint(ckpt: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, state: dict) -> None:
    """Weights, momentum and run state in ONE safetensors file (state as JSON metadata), renamed
    into place atomically: a kill at any moment leaves either the previous or the new checkpoint."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for i, p in enumerate(opt.param_groups[0]["params"]):
        buf = opt.state.get(p, {}).get("momentum_buffer")
        if buf is not None:
            tensors[f"opt.{i}.momentum_buffer"] = buf.detach().cpu().contiguous()
    ckpt.mkdir(parents=True, exist_ok=True)
    with atomic_file(ckpt / CKPT_WEIGHTS) as f:
        f.write(st_save(tensors, metadata={"state": json.dumps(state)}))
    write_json(ckpt / CKPT_STATE, state)  # a readable mirror only; resume reads the metadata above


def _load_checkpoint(ckpt: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, config: dict) -> dict | None:
    from safetensors import safe_open

    wfile = ckpt / CKPT_WEIGHTS
    if not wfile.exists():
        return None
    try:
        with safe_open(str(wfile), framework="pt") as f:
            state = json.loads((f.metadata() or {})["state"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (OSError, ValueError, KeyError, Exception) as e:  # safetensors raises its own error types
        raise DeephideError(f"{wfile}: unreadable checkpoint ({error_line(e)})") from None
    if state.get("config") != json.loads(json.dumps(config)):
        raise DeephideError(f"{ckpt}: checkpoint belongs to another run (different config); use a new --checkpoint dir")
    dev = next(model.parameters()).device
    msd = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(msd, strict=True)
    except RuntimeError as e:
        raise DeephideError(f"{wfile}: weights do not fit the model ({error_line(e)})") from None
    for i, p in enumerate(opt.param_groups[0]["params"]):
        key = f"opt.{i}.momentum_buffer"
        if key in tensors:
            opt.state[p]["momentum_buffer"] = tensors[key].to(dev)
    return state


def train_victim(train: ImageSet, test: ImageSet, model_name: str, profile: dict[str, Any], seed: int = 0,
                 countermeasure: Any = None, device: str = "auto", checkpoint: str | Path | None = None,
                 progress: bool = True, stop_after: int | None = None,
                 on_eval: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Train ``model_name`` from scratch on ``train`` and track clean accuracy on ``test``.

    train/test: ImageSets of the same shape and class count (uint8, any size, 1 or 3 channels).
    profile: a victim profile dict (``deephide.profiles.get_profile("victim", name)``).
    countermeasure: a ``deephide.countermeasures.Countermeasure`` or None (vanilla training).
    checkpoint: directory for resumable checkpoints (written at every evaluation).
    stop_after: stop (as if interrupted) after this many iterations; for tests of resume.
    Returns a JSON-serialisable record: accuracies (final, best, mean of last 3 evaluations),
    the evaluation history, wall time, config, seed and versions.
    """
    check_compatible(train, test)
    run = _VictimRun(train, test, model_name, profile, seed, countermeasure, device, checkpoint)
    run.train(progress, stop_after, on_eval)
    return run.result()


class _VictimRun:
    """One victim training: the data (after a data-stage countermeasure), the model and optimizer (resumed from a
    checkpoint when there is one), the steps, the evaluations and the result record."""

    def __init__(self, train: ImageSet, test: ImageSet, model_name: str, profile: dict[str, Any], seed: int,
                 cm: Any, device: str, checkpoint: str | Path | None) -> None:
        self.train_set, self.model_name, self.profile, self.seed, self.cm = train, model_name, profile, seed, cm
        self.dev = dev = pick_device(device)
        self.world = distributed.current()
        tune_for(dev)
        self.amp = amp_dtype(dev, bool(profile.get("bf16")))  # bf16 where native; fp16 + loss scaling on older GPUs
        self.use_amp, self.use_bf16 = self.amp is not None, self.amp == torch.bfloat16
        self.amp_t = self.amp or torch.bfloat16
        self.cl = bool(profile.get("channels_last"))
        self.cm_name = getattr(cm, "name", "Vanilla") if cm is not None else "Vanilla"
        self.config = {
            "model": model_name, "profile": profile, "seed": seed, "countermeasure": self.cm_name,
            "countermeasure_params": getattr(cm, "params", {}) if cm is not None else {},
            "train": {"source": train.source, "n": len(train), "fingerprint": data_fingerprint(train)},
            "test": {"source": test.source, "n": len(test), "fingerprint": data_fingerprint(test)},
        }
        self.t0 = time.perf_counter()
        self._data(train, test)
        seed_everything(seed)
        h, w, c = train.shape
        self.model = build_model(model_name, num_classes=train.num_classes, in_channels=c, image_size=h).to(dev)
        if self.cl:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=profile["lr"], momentum=profile["momentum"],
                                   weight_decay=profile["weight_decay"], nesterov=profile["nesterov"])
        self.scaler = grad_scaler(dev, self.amp)  # a pass-through unless fp16
        self.history: list[dict] = []
        self.start_it, self.train_time = 0, 0.0
        self.ckpt = Path(checkpoint) if checkpoint else None
        if self.ckpt is not None:
            state = _load_checkpoint(self.ckpt, self.model, self.opt, self.config)
            if state is not None:
                self.start_it, self.history, self.train_time = state["iteration"], state["history"], state["train_time"]
        self.total, self.bs = profile["iterations"], profile["batch_size"]
        self.n = self.x_train.shape[0]
        if self.n < self.bs:
            raise DeephideError(f"{train.source}: {self.n} training images is fewer than one batch ({self.bs})")
        self.part = distributed.shard(self.bs, self.world) if self.world.active else slice(None)  # this rank's rows
        self.net = distributed.wrap(self.model, self.world)  # DDP (all-reduced gradients) under torchrun, or the model
        if profile.get("compile"):  # fuses elementwise chains; weights stay shared with ``model`` (eval, checkpoints)
            self.net = torch.compile(self.net)

    def _data(self, train: ImageSet, test: ImageSet) -> None:
        """The training and test images on the device; a data-stage countermeasure acts once, before training
        (on the training data only, unless it says otherwise)."""
        cm, seed, dev = self.cm, self.seed, self.dev
        tr_images, te_images = train.images, test.images
        if cm is not None and cm.stage == "data":
            tr_images = cm.apply_data(tr_images, seed=derive_seed(seed, "data_train") % (2**31))
            if getattr(cm, "test_transform", False):
                te_images = cm.apply_data(te_images, seed=derive_seed(seed, "data_test") % (2**31))
        self.x_train = torch.from_numpy(np.ascontiguousarray(tr_images)).permute(0, 3, 1, 2).contiguous().to(dev)
        self.y_train = torch.from_numpy(train.labels).to(dev)
        self.x_test = torch.from_numpy(np.ascontiguousarray(te_images)).permute(0, 3, 1, 2).contiguous().to(dev)
        self.y_test = torch.from_numpy(test.labels).to(dev)

    def step(self, it: int, order_cache: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training step ``it`` (its batch, augmentation and countermeasure seeded by (seed, it)): (loss, logits, y)."""
        p, cm, dev = self.profile, self.cm, self.dev
        idx = batch_indices(it, self.n, self.bs, self.seed, order_cache).to(dev)
        gen = torch.Generator().manual_seed(derive_seed(self.seed, "augment", it))
        torch.manual_seed(derive_seed(self.seed, "global", it))  # for anything drawing from the global RNG (AT)
        x = augment_batch(self.x_train[idx].float().div_(255), p["augment"], gen)
        y: torch.Tensor = self.y_train[idx]
        target: torch.Tensor = y
        if cm is not None and cm.stage == "batch":
            x, target = cm.apply_batch(x, y, self.train_set.num_classes, gen)
        if self.world.active:  # the whole global batch was drawn and augmented above: keep this rank's rows
            x, y, target = x[self.part], y[self.part], target[self.part]
        if self.cl:
            x = x.contiguous(memory_format=torch.channels_last)
        if cm is not None and cm.stage == "step":
            with autocast(dev, self.use_amp, self.amp_t):  # the attack's passes dominate AT's cost: same precision
                x = cm.perturb(self.model, x, y).float()  # the bare model: input gradients need no DDP sync
        for g in self.opt.param_groups:
            g["lr"] = lr_at(it, p)
        with autocast(dev, self.use_amp, self.amp_t):
            logits = self.net(x)
        loss = F.cross_entropy(logits.float(), target, label_smoothing=p.get("label_smoothing", 0.0))
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        return loss, logits, y

    def train(self, progress: bool, stop_after: int | None, on_eval: Callable[[dict], None] | None) -> None:
        p, dev = self.profile, self.dev
        order_cache: dict = {}
        # running sums stay on the device (float64 keeps the old Python-float arithmetic exactly)
        run_loss = torch.zeros((), dtype=torch.float64, device=dev)
        run_correct = torch.zeros((), dtype=torch.int64, device=dev)
        run_seen = 0
        bar = tqdm(total=self.total, initial=self.start_it, desc=f"train {self.model_name}/{self.cm_name}",
                   disable=not progress or not self.world.is_main, leave=False, dynamic_ncols=True)
        self.model.train()
        t_seg = time.perf_counter()
        for it in range(self.start_it, self.total):
            if stop_after is not None and it >= stop_after:
                break
            loss, logits, y = self.step(it, order_cache)
            run_loss += loss.detach().double() * y.shape[0]
            run_correct += (logits.detach().argmax(1) == y).sum()
            run_seen += y.shape[0]
            bar.update(1)
            done = it + 1
            if done % p["eval_every"] == 0 or done == self.total:
                synchronize(dev)  # a GPU may still be running queued steps: count them as training time
                self.train_time += time.perf_counter() - t_seg
                rec = self.evaluate(done, it, (float(run_loss), int(run_correct), run_seen))
                run_loss.zero_()
                run_correct.zero_()
                run_seen = 0
                bar.set_postfix(acc=f"{rec['test_acc']:.1f}", loss=f"{rec['train_loss']:.3f}")
                if on_eval and self.world.is_main:
                    on_eval(rec)
                if self.ckpt is not None and self.world.is_main:
                    _save_checkpoint(self.ckpt, self.model, self.opt, {"config": self.config, "iteration": done,
                                                                        "history": self.history,
                                                                        "train_time": self.train_time})
                t_seg = time.perf_counter()
        bar.close()
        distributed.sync_buffers(self.model, self.world)  # the returned model is the same on every rank

    def evaluate(self, done: int, it: int, running: tuple[float, int, int]) -> dict[str, Any]:
        """Clean test accuracy after ``done`` steps, with the training loss and accuracy since the last evaluation
        (summed over ranks); appended to the history."""
        p = self.profile
        distributed.sync_buffers(self.model, self.world)  # rank 0's BatchNorm statistics on every rank
        acc = evaluate_accuracy(self.model, self.x_test, self.y_test, p["eval_batch_size"], self.use_amp, self.cl,
                                self.amp_t)
        sums = distributed.all_reduce_sum(list(running), self.world)
        rec = {"iteration": done, "epoch": round(done * self.bs / self.n, 3), "test_acc": acc,
               "train_loss": sums[0] / max(1, sums[2]), "train_acc": 100.0 * sums[1] / max(1, sums[2]),
               "lr": lr_at(it, p), "time": round(self.train_time, 2)}
        self.history.append(rec)
        return rec

    def result(self) -> dict[str, Any]:
        history, cm = self.history, self.cm
        finished = bool(history) and history[-1]["iteration"] == self.total
        accs = [r["test_acc"] for r in history]
        select = getattr(cm, "select", "final") if cm is not None else "final"
        amp = self.amp
        result = {
            "config": self.config, "versions": versions(), "device": str(self.dev), "bf16": self.use_bf16,
            "amp": str(amp).replace("torch.", "") if amp is not None else None,
            "world_size": self.world.world_size,
            "finished": finished, "history": history,
            "final_acc": accs[-1] if accs else None,
            "best_acc": max(accs) if accs else None,
            "last3_acc": float(np.mean(accs[-3:])) if accs else None,
            "select": select,
            "train_time_s": round(self.train_time, 2),
            "wall_time_s": round(time.perf_counter() - self.t0, 2),
            "model_state": self.model,  # removed by callers that serialise; kept for in-process use
        }
        result["acc"] = result["best_acc"] if select == "best" else result["final_acc"]
        return result


def result_record(result: dict[str, Any]) -> dict[str, Any]:
    """The JSON-serialisable part of a ``train_victim`` result."""
    return {k: v for k, v in result.items() if k != "model_state"}
