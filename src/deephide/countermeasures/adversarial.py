"""Step-stage countermeasure: PGD adversarial training (Madry et al. 2018).

The trainer calls ``perturb(model, x, y)`` on every batch and trains on the returned images.
The model is called on [0, 1] images, exactly as the trainer calls it (any normalisation lives
inside the model), so eps and the step size are in [0, 1] pixel units.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import DeephideError
from .base import Countermeasure
from .registry import COUNTERMEASURES


def pgd_linf(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int,
             gen: torch.Generator | None = None) -> torch.Tensor:
    """L-inf PGD maximising cross-entropy: x float (N, C, H, W) in [0, 1], y int64 (N,) -> x_adv.

    Random start uniform in the eps-ball, then ``steps`` signed-gradient ascent steps of ``alpha``,
    each projected onto the eps-ball around x and onto [0, 1]. The random start comes from ``gen``
    (drawn on the CPU) when given, else from the global RNG of x's device. The model's mode is
    left as the caller set it; parameter gradients are neither computed nor accumulated.
    Returns a detached tensor with x's shape, |x_adv - x| <= eps, values in [0, 1].
    """
    x = x.detach()
    if steps <= 0 or eps <= 0:
        return x.clone()
    if gen is not None:
        noise = torch.rand(x.shape, generator=gen, dtype=x.dtype).to(x.device)
    else:
        noise = torch.rand_like(x)
    x_adv = (x + (2 * noise - 1) * eps).clamp_(0.0, 1.0)
    lo, hi = (x - eps).clamp(min=0.0), (x + eps).clamp(max=1.0)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv).float(), y)
        # grad w.r.t. the input only: autograd skips the weight gradients, and .grad stays untouched
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = torch.minimum(torch.maximum(x_adv.detach() + alpha * grad.sign(), lo), hi)
    return x_adv.detach()


@COUNTERMEASURES.register("AT")
class AdversarialTraining(Countermeasure):
    """PGD adversarial training, L-inf, random start, model in eval mode while attacking (step);
    params: eps=8/255, alpha=2/255, steps=10."""

    name = "AT"
    stage = "step"

    def __init__(self, eps: float = 8 / 255, alpha: float = 2 / 255, steps: int = 10) -> None:
        if not eps >= 0 or not alpha > 0 or not isinstance(steps, int) or steps < 0:
            raise DeephideError(f"AT: need eps >= 0, alpha > 0, integer steps >= 0; got {eps!r}, {alpha!r}, {steps!r}")
        super().__init__(eps=float(eps), alpha=float(alpha), steps=steps)
        self.eps, self.alpha, self.steps = float(eps), float(alpha), steps

    def perturb(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                gen: torch.Generator | None = None) -> torch.Tensor:
        """x_adv for this training step; the model's train/eval mode is restored afterwards.

        The attack runs with the model in eval mode, as in REM's PGD attacker (and torchattacks'
        default): BatchNorm uses running statistics and is not updated by the attack passes; the
        trainer's own forward pass then runs in train mode on x_adv.
        """
        was_training = model.training
        model.eval()
        try:
            return pgd_linf(model, x, y, self.eps, self.alpha, self.steps, gen)
        finally:
            model.train(was_training)
