"""A bias-free linear classifier fitted on clean images: the surrogate of PIL (Liu, Chen & Zhang, ICLR 2026) and of
the hider's linear-shortcut term L_lin (hiding.losses.linear_shortcut_loss).

f(x) = flatten(x) W1 W2 with W1: d x K and W2: K x K and no bias anywhere (the authors' model: with no bias, f of a
perturbation alone is meaningful, and f(x - n) = f(x) - f(n)). Fitted by SGD (momentum 0.9, no weight decay, a
cosine schedule over ``epochs``, batches of ``batch_size``, no augmentation) from a seeded generator.

>>> import torch
>>> x = torch.rand(64, 3, 4, 4); y = (x[:, 0].mean((1, 2)) > 0.5).long()
>>> f, acc = fit_linear(x.mul(255).to(torch.uint8), y, 2, epochs=20, lr=0.5, gen=torch.Generator().manual_seed(0))
>>> f(x).shape, acc > 80, all(lin.bias is None for lin in (f.w1, f.w2))
(torch.Size([64, 2]), True, True)
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F


class LinearSurrogate(torch.nn.Module):
    """x (N, C, H, W) float in [0, 1] -> logits (N, K) = flatten(x) W1 W2, no bias."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.w1 = torch.nn.Linear(dim, num_classes, bias=False)
        self.w2 = torch.nn.Linear(num_classes, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(self.w1(x.flatten(1)))


def linearization_loss(linear: Callable[[torch.Tensor], torch.Tensor], noise: torch.Tensor, image: torch.Tensor,
                       labels: torch.Tensor, lmd: float = 0.9) -> torch.Tensor:
    """PIL's objective: ``lmd * CE(linear(noise), y) + (1 - lmd) * KL(uniform || softmax(linear(image)))``.

    linear: logits (N, K) of a bias-free linear model; noise: the perturbation alone, image: the picture without it
    (PIL stores ``image = x - noise``), both float (N, C, H, W); labels: int64 (N,). The noise alone names the class
    to the linear model (a shortcut) while the image tells it nothing (obfuscation). Used by the PIL attack and by
    the hider's L_lin (hiding.losses.linear_shortcut_loss).
    """
    shortcut = F.cross_entropy(linear(noise).float(), labels)
    logp = F.log_softmax(linear(image).float(), dim=1)
    log_uniform = torch.full((1, logp.shape[1]), -math.log(logp.shape[1]), device=logp.device)
    obfuscate = (log_uniform.exp() * (log_uniform - logp)).sum(1).mean()
    return lmd * shortcut + (1 - lmd) * obfuscate


def fit_linear(images: torch.Tensor, labels: torch.Tensor, num_classes: int, epochs: int = 30, lr: float = 0.003,
               batch_size: int = 512, gen: torch.Generator | None = None,
               on_batch: Callable[[int], None] | None = None) -> tuple[LinearSurrogate, float]:
    """A LinearSurrogate fitted on ``images`` (uint8 (N, C, H, W), on the device it trains on) and int64 ``labels``;
    returned frozen in eval mode with its last epoch's training accuracy (%). ``on_batch(n)`` is told each batch's
    size (progress, cost counting)."""
    n = images.shape[0]
    model = LinearSurrogate(math.prod(images.shape[1:]), num_classes)
    with torch.no_grad():  # PyTorch's default init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn from ``gen``
        for lin in (model.w1, model.w2):
            lin.weight.copy_((torch.rand(lin.weight.shape, generator=gen) * 2 - 1) / math.sqrt(lin.in_features))
    model = model.to(images.device)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    correct = 0
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen).to(images.device)
        correct = 0
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            logits = model(images[idx].float().div(255))
            loss = F.cross_entropy(logits, labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            correct += int((logits.argmax(1) == labels[idx]).sum())
            if on_batch is not None:
                on_batch(idx.numel())
        sched.step()
    return model.eval().requires_grad_(False), 100.0 * correct / n
