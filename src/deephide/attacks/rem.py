"""REM: robust error-minimizing noise (Fu et al., ICLR 2022); see ``minmin``."""

from __future__ import annotations

from typing import Any
import torch

from ..data import ImageSet
from ..training.augment import random_crop_flip
from .registry import ATTACKS
from .base import AttackRun, finish_attack, n_batches, samplewise, start_attack
from .surrogate import build_surrogate, freeze, input_grad, make_optimizer, train_step
from .minmin import BatchCycle, clean_images, uniform_noise


def _adversary(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, run: AttackRun) -> torch.Tensor:
    """REM's inner max: PGD ascent in the L-inf ball of radius rho_a around x (random start), model frozen."""
    s = run.settings
    r, a = s["atk_levels"] / 255.0, s["atk_step_levels"] / 255.0
    if int(s["atk_steps"]) == 0 or r == 0:
        return x.detach()
    adv = (x + uniform_noise(tuple(x.shape), r, run)).clamp(0, 1)
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
    delta = uniform_noise(tuple(x.shape), eps, run)
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
    X, Y = clean_images(run)
    n = X.shape[0]
    noise = torch.zeros((n, *X.shape[1:]), device=run.device)
    model = build_surrogate(run)
    opt = make_optimizer(model, s)
    loader = BatchCycle(n, int(s["batch_size"]), shuffle=True, run=run)
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
