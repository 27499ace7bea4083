"""Error-minimizing noise: EM / EM-C (Huang et al., ICLR 2021) and robust EM, REM (Fu et al., ICLR 2022).

EM solves min_theta min_delta CE(f_theta(x + delta), y) by alternation: train the surrogate
``train_step`` batches on the perturbed data, then run ``pgd_steps`` signed-gradient descent steps on
every noise (sample-wise) or on the class noises (class-wise: each batch sets a class's noise to the
mean of its samples' updated noises), until the surrogate's accuracy on the perturbed data reaches
``stop_acc`` (99% sample-wise, 90% class-wise in the authors' scripts).

REM solves min_theta min_delta E_T max_{||rho|| <= rho_a} CE(f(T(x + delta) + rho), y): the surrogate is
trained adversarially (PGD radius rho_a = 4/255) on augmented perturbed data, the defensive noise of the
current batch is re-optimised every ``perturb_freq`` steps with expectation over ``eot_samples`` random
crop-flips, and at the end the noise of every image is regenerated with the trained surrogate.
"""

from __future__ import annotations

from typing import Any

import torch

from ..data import ImageSet
from ..training.augment import random_crop_flip
from .registry import ATTACKS
from .base import (
    AttackRun,
    classwise,
    finish_attack,
    n_batches,
    samplewise,
    start_attack,
)
from .surrogate import (
    accuracy,
    build_surrogate,
    freeze,
    input_grad,
    make_optimizer,
    pgd_min,
    train_step,
)


def _uniform(shape: tuple[int, ...], eps: float, run: AttackRun) -> torch.Tensor:
    """U(-eps, eps) noise drawn from the run's generator (CPU), moved to the run's device."""
    return (torch.rand(shape, generator=run.gen) * 2 - 1).mul_(eps).to(run.device)


def _images(run: AttackRun) -> tuple[torch.Tensor, torch.Tensor]:
    """The clean set as uint8 (N, C, H, W) and int64 labels on the run's device."""
    return run.train.tensor(run.device), run.train.label_tensor(run.device)


class _Cycle:
    """Batches of a fixed or per-epoch-reshuffled order, cycling forever (EM's ``next(data_iter)``)."""

    def __init__(self, n: int, batch: int, shuffle: bool, run: AttackRun, drop_last: bool = True) -> None:
        self.n, self.batch, self.shuffle, self.run, self.drop_last = n, min(batch, n), shuffle, run, drop_last
        self.order = self._order()
        self.pos = 0

    def _order(self) -> torch.Tensor:
        return torch.randperm(self.n, generator=self.run.gen) if self.shuffle else torch.arange(self.n)

    def next(self) -> torch.Tensor:
        if self.pos + self.batch > self.n:
            self.order, self.pos = self._order(), 0
        idx = self.order[self.pos:self.pos + self.batch]
        self.pos += self.batch
        return idx


# ------------------------------------------------------------------ EM / EM-C


def _em(run: AttackRun, class_wise: bool) -> torch.Tensor:
    """The EM noise: (K, C, H, W) class-wise or (N, C, H, W) sample-wise, values in [-eps, eps]."""
    s, eps = run.settings, run.eps
    X, Y = _images(run)
    n, k = X.shape[0], run.train.num_classes
    noise = _uniform((k if class_wise else n, *X.shape[1:]), eps, run)
    model = build_surrogate(run)
    opt = make_optimizer(model, s)
    bs, step = int(s["batch_size"]), s["step_levels"] / 255.0

    def noisy(idx: torch.Tensor) -> torch.Tensor:
        d = noise[Y[idx]] if class_wise else noise[idx]
        return (X[idx].float().div(255) + d).clamp(0, 1)

    # the noise is optimised on a random subset class-wise (EM: --use_subset, portion 0.2), on all images sample-wise
    perm = torch.randperm(n, generator=run.gen).to(run.device)
    target = perm[:max(1, round(n * s["subset_portion"]))] if class_wise else torch.arange(n, device=run.device)
    ev = int(s["eval_subset"])
    evaluate_on = target if not ev or ev >= target.numel() else target[torch.randperm(target.numel(), generator=run.gen)[:ev].to(run.device)]
    train_batches = _Cycle(n, bs, shuffle=class_wise, run=run)  # sample-wise EM iterates in dataset order
    history: list[dict[str, Any]] = []
    stopped = "max_rounds"
    for rnd in range(1, int(s["max_rounds"]) + 1):
        batch_accs = []
        for _ in range(int(s["train_step"])):
            idx = train_batches.next().to(run.device)
            batch_accs.append(train_step(model, opt, noisy(idx), Y[idx], run))
        bar = run.bar(n_batches(target.numel(), bs), f"round {rnd} noise")
        for i in range(0, target.numel(), bs):
            idx = target[i:i + bs]
            x, y = X[idx].float().div(255), Y[idx]
            d0 = noise[y] if class_wise else noise[idx]
            eta = pgd_min(model, x, y, d0, int(s["pgd_steps"]), step, eps, run)
            if class_wise:  # EM's universal update: a class's noise becomes the mean of its samples' noises
                for c in torch.unique(y):
                    noise[c] = eta[y == c].mean(0).clamp(-eps, eps)
            else:
                noise[idx] = eta
            bar.update(1)
        bar.close()
        acc = accuracy(model, lambda a, b: (noisy(evaluate_on[a:b]), Y[evaluate_on[a:b]]), evaluate_on.numel(),
                       max(bs, 512), run)
        history.append({"round": rnd, "train_acc": round(acc, 3),
                        "batch_acc_while_training": round(sum(batch_accs) / max(1, len(batch_accs)), 3)})
        if acc >= s["stop_acc"]:
            stopped = "stop_acc"
            break
    run.log.update({"rounds": history, "stopped_by": stopped})
    return noise.detach().cpu()


@ATTACKS.register("EM", help="error-minimizing noise, sample-wise (Huang et al., ICLR 2021)")
def em(train: ImageSet, *, eps_levels: int = 8, profile: str = "cpu", seed: int = 0, device: str = "auto",
       progress: bool = True, **options: Any) -> ImageSet:
    """Sample-wise error-minimizing noise (min-min). Paper: ResNet-18 surrogate, 10 train steps per round,
    20 PGD steps of 0.8/255 per image, until the surrogate's accuracy on the perturbed set is >= 99%."""
    run = start_attack("EM", train, eps_levels, profile, seed, device, progress, options)
    return finish_attack(run, samplewise(_em(run, class_wise=False)), "sample")


@ATTACKS.register("EM-C", help="error-minimizing noise, class-wise (Huang et al., ICLR 2021)")
def em_c(train: ImageSet, *, eps_levels: int = 8, profile: str = "cpu", seed: int = 0, device: str = "auto",
         progress: bool = True, **options: Any) -> ImageSet:
    """Class-wise error-minimizing noise: one noise per class, set per batch to the class mean of the
    PGD-updated noises. Paper: 1 PGD step of 0.8/255, 20% subset, until accuracy >= 90%."""
    run = start_attack("EM-C", train, eps_levels, profile, seed, device, progress, options)
    return finish_attack(run, classwise(_em(run, class_wise=True)), "class")


# ------------------------------------------------------------------ REM


def _adversary(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, run: AttackRun) -> torch.Tensor:
    """REM's inner max: PGD ascent in the L-inf ball of radius rho_a around x (random start), model frozen."""
    s = run.settings
    r, a = s["atk_levels"] / 255.0, s["atk_step_levels"] / 255.0
    if int(s["atk_steps"]) == 0 or r == 0:
        return x.detach()
    adv = (x + _uniform(tuple(x.shape), r, run)).clamp(0, 1)
    for _ in range(int(s["atk_steps"])):
        g = input_grad(model, adv, y, run)
        adv = torch.minimum(torch.maximum(adv + a * g.sign(), x - r), x + r).clamp(0, 1)
    return adv.detach()


def _defender(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, run: AttackRun) -> torch.Tensor:
    """REM's defensive noise for a batch: min over delta of E_T[max_rho CE], signed-gradient descent.

    The gradient at the adversarial point is passed straight through to T(x + delta), as REM does
    (``(def_x * grad_adv).sum().backward()``). Returns delta (n, C, H, W) in [-eps, eps].
    """
    s, eps = run.settings, run.eps
    step = s["step_levels"] / 255.0
    delta = _uniform(tuple(x.shape), eps, run)
    model.eval()
    freeze(model, True)
    try:
        for _ in range(int(s["pgd_steps"])):
            grad = torch.zeros_like(delta)
            for _ in range(int(s["eot_samples"])):
                d = delta.detach().requires_grad_(True)
                def_x = random_crop_flip((x + d).clamp(0, 1), run.gen)
                adv = _adversary(model, def_x.detach(), y, run)
                g_adv = input_grad(model, adv, y, run)
                (gd,) = torch.autograd.grad((def_x * g_adv).sum(), [d])
                grad += gd
            delta = (delta - step * grad.sign()).clamp(-eps, eps)
    finally:
        freeze(model, False)
    return delta.detach()


def _rem(run: AttackRun) -> torch.Tensor:
    """REM noise (N, C, H, W): adversarial surrogate training with periodic batch noise, then a final pass."""
    s = run.settings
    X, Y = _images(run)
    n = X.shape[0]
    noise = torch.zeros((n, *X.shape[1:]), device=run.device)
    model = build_surrogate(run)
    opt = make_optimizer(model, s)
    loader = _Cycle(n, int(s["batch_size"]), shuffle=True, run=run)
    bar = run.bar(int(s["train_steps"]), "surrogate")
    accs: list[float] = []
    for it in range(int(s["train_steps"])):
        for g in opt.param_groups:
            g["lr"] = s["lr"] * s["lr_decay_rate"] ** (it // int(s["lr_decay_freq"]))
        idx = loader.next().to(run.device)
        x, y = X[idx].float().div(255), Y[idx]
        if (it + 1) % int(s["perturb_freq"]) == 0:
            noise[idx] = _defender(model, x, y, run)
        def_x = random_crop_flip(x + noise[idx], run.gen).clamp(0, 1)
        adv = _adversary(model, def_x, y, run)
        accs.append(train_step(model, opt, adv, y, run))
        bar.update(1)
    bar.close()
    fb = int(s["final_batch_size"])
    bar = run.bar(n_batches(n, fb), "final noise")
    for i in range(0, n, fb):
        x, y = X[i:i + fb].float().div(255), Y[i:i + fb]
        noise[i:i + fb] = _defender(model, x, y, run)
        bar.update(1)
    bar.close()
    tail = accs[-max(1, len(accs) // 10):]
    run.log.update({"surrogate_adv_train_acc_last10pct": round(sum(tail) / max(1, len(tail)), 3)})
    return noise.cpu()


@ATTACKS.register("REM", help="robust error-minimizing noise, sample-wise (Fu et al., ICLR 2022)")
def rem(train: ImageSet, *, eps_levels: int = 8, profile: str = "cpu", seed: int = 0, device: str = "auto",
        progress: bool = True, **options: Any) -> ImageSet:
    """Robust EM (min-min-max): adversarial surrogate (rho_a = 4/255), EOT over 5 crop-flips, 10 PGD steps
    of 1.6/255, 5000 surrogate steps, noise regenerated for all images at the end (paper profile)."""
    run = start_attack("REM", train, eps_levels, profile, seed, device, progress, options)
    return finish_attack(run, samplewise(_rem(run)), "sample")
