"""PIL: Perturbation-Induced Linearization (Liu, Chen & Zhang, ICLR 2026), unlearnable examples from a linear
surrogate alone.

1. A bias-free linear classifier f(x) = x W1 W2 (W1: d x K, W2: K x K, as the authors' model) is trained on the
   clean images (SGD, momentum 0.9, no weight decay, cosine schedule, no augmentation).
2. Each image's noise n (|n| <= eps, from U(-eps, eps)) takes ``steps`` signed-gradient steps of ``step_levels``
   on  lmd * CE(f(n), y) + (1 - lmd) * KL(uniform || softmax(f(x - n))):  the noise alone says the class to a
   linear model (the shortcut) while the image without it says nothing (semantic obfuscation).
3. The stored image is x - n (clipped to [0, 1] and quantised within the budget): sample-wise, class-structured.

Settings are the authors' defaults (their README: 30 surrogate epochs at lr 0.003, 30 steps of eps/10, lmd 0.9,
batch 512); a linear surrogate is cheap enough that the ``cpu`` profile keeps them unchanged.
"""

from __future__ import annotations

from typing import Any

import torch

from ..data import ImageSet
from .base import AttackRun, finish_attack, n_batches, samplewise, start_attack
from ..training.linear import LinearSurrogate, fit_linear, linearization_loss
from .minmin import clean_images, uniform_noise
from .registry import ATTACKS


def train_linear(run: AttackRun, X: torch.Tensor, Y: torch.Tensor) -> tuple[LinearSurrogate, float]:
    """The linear surrogate fitted on the clean images (uint8 X, labels Y; training.linear); its training accuracy."""
    s = run.settings
    bar = run.bar(int(s["surrogate_epochs"]) * n_batches(X.shape[0], int(s["batch_size"])), "linear surrogate")

    def counted(n: int) -> None:
        run.cost.forward(n)
        run.cost.backward(n)
        bar.update()

    model, acc = fit_linear(X, Y, run.train.num_classes, int(s["surrogate_epochs"]), float(s["lr"]),
                            int(s["batch_size"]), run.gen, counted)
    bar.close()
    return model, acc


def pil_noise(run: AttackRun, model: LinearSurrogate, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """The noise n (N, C, H, W) in [-eps, eps] of every image (the stored image is x - n)."""
    s, eps = run.settings, run.eps
    lmd, step, bs = float(s["lmd"]), float(s["step_levels"]) / 255.0, int(s["batch_size"])
    out = torch.empty(X.shape, dtype=torch.float32, device=run.device)
    bar = run.bar(n_batches(X.shape[0], bs), "noise")
    for i in range(0, X.shape[0], bs):
        x, y = X[i:i + bs].float().div(255), Y[i:i + bs]
        noise = uniform_noise(tuple(x.shape), eps, run)
        for _ in range(int(s["steps"])):
            noise.requires_grad_(True)
            grad, = torch.autograd.grad(linearization_loss(model, noise, x - noise, y, lmd), noise)
            run.cost.forward(2 * x.shape[0])
            run.cost.backward(2 * x.shape[0])
            noise = (noise.detach() - step * grad.sign()).clamp_(-eps, eps)
        out[i:i + bs] = noise.detach()
        bar.update()
    bar.close()
    return out


@ATTACKS.register("PIL", help="perturbation-induced linearization, a linear surrogate (Liu et al., ICLR 2026)")
def pil(train: ImageSet, *, eps_levels: int = 8, profile: str = "cpu", seed: int = 0, device: str = "auto",
        progress: bool = True, **options: Any) -> ImageSet:
    """PIL (module doc): a bias-free linear classifier trained on the clean set, then per-image noise that makes the
    noise alone predict the label and the image without it uninformative; each image stored as x - noise."""
    run = start_attack("PIL", train, eps_levels, profile, seed, device, progress, options)
    X, Y = clean_images(run)
    model, acc = train_linear(run, X, Y)
    noise = pil_noise(run, model, X, Y)
    with torch.no_grad():  # the two objectives as the linear surrogate sees them (accuracy, %)
        pred = lambda t: torch.cat([model(t(i)).argmax(1) for i in range(0, len(Y), 4096)])  # noqa: E731
        alone = float((pred(lambda i: noise[i:i + 4096]) == Y).float().mean() * 100)
        stored = float((pred(lambda i: X[i:i + 4096].float().div(255) - noise[i:i + 4096]) == Y).float().mean() * 100)
    return finish_attack(run, samplewise(-noise.cpu()), "sample",
                         extra={"surrogate_train_acc": round(acc, 2), "linear_acc_noise_alone": round(alone, 2),
                                "linear_acc_image_minus_noise": round(stored, 2)})
