"""EM / EM-C: error-minimizing noise, sample-wise and class-wise (Huang et al., ICLR 2021); see ``minmin``."""

from __future__ import annotations

from typing import Any
import torch

from ..data import ImageSet
from .registry import ATTACKS
from .base import AttackRun, classwise, finish_attack, n_batches, samplewise, start_attack
from .surrogate import accuracy, build_surrogate, make_optimizer, pgd_min, train_step
from .minmin import BatchCycle, clean_images, uniform_noise


def _em(run: AttackRun, class_wise: bool) -> torch.Tensor:
    """The EM noise: (K, C, H, W) class-wise or (N, C, H, W) sample-wise, values in [-eps, eps]."""
    s, eps = run.settings, run.eps
    X, Y = clean_images(run)
    n, k = X.shape[0], run.train.num_classes
    noise = uniform_noise((k if class_wise else n, *X.shape[1:]), eps, run)
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
    evaluate_on = target if not ev or ev >= target.numel() \
        else target[torch.randperm(target.numel(), generator=run.gen)[:ev].to(run.device)]
    train_batches = BatchCycle(n, bs, shuffle=class_wise, run=run)  # sample-wise EM iterates in dataset order
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


