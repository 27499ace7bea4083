"""Surrogate models and the gradient steps shared by the model-based attacks (EM, EM-C, REM).

Every surrogate takes float (N, C, H, W) pixels in [0, 1] (the victim-model contract). Names are any
``deephide.models`` architecture (the papers use ``resnet18``) or ``small-cnn``, a 3-stage conv net
used by the CPU profiles because even ResNet-20 is too slow for min-min optimisation over 60k images
on 2 cores (measured: ~250 img/s forward+backward under load, vs ~900 for small-cnn of width 16).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DeephideError
from ..models import MODELS, build_model
from ..runtime import autocast
from .base import AttackRun

SMALL_CNN = "small-cnn"


class SmallCNN(nn.Module):
    """conv-BN-ReLU-maxpool x3 (widths w, 2w, 4w), global average pool, linear; input [0, 1] -> [-0.5, 0.5]."""

    def __init__(self, num_classes: int, in_channels: int, width: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for w in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            c = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> logits (N, num_classes)."""
        return self.head(F.adaptive_avg_pool2d(self.body(x - 0.5), 1).flatten(1))


def build_surrogate(run: AttackRun) -> nn.Module:
    """The profile's surrogate for ``run.train`` (fresh weights from the seeded global RNG), on the device."""
    s = run.settings
    h, _, c = run.train.shape
    name = s["surrogate"]
    if name == SMALL_CNN:
        if h < 8:
            raise DeephideError(f"{run.train.source}: images of {h} px are too small for the {SMALL_CNN} surrogate")
        model: nn.Module = SmallCNN(run.train.num_classes, c, int(s["surrogate_width"]))
    elif name in MODELS:
        model = build_model(name, run.train.num_classes, in_channels=c, image_size=h)
    else:
        raise DeephideError(f"attack {run.name}: unknown surrogate '{name}'; choose {SMALL_CNN} or one of: "
                            f"{', '.join(MODELS.names())}")
    model = model.to(run.device)
    if s.get("channels_last"):
        model = model.to(memory_format=torch.channels_last)
    return model


def make_optimizer(model: nn.Module, s: dict) -> torch.optim.SGD:
    """SGD with the profile's lr / momentum / weight decay (all three papers: 0.1 / 0.9 / 5e-4)."""
    return torch.optim.SGD(model.parameters(), lr=s["lr"], momentum=s["momentum"], weight_decay=s["weight_decay"])


def _layout(x: torch.Tensor, run: AttackRun) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if run.settings.get("channels_last") else x


def logits(model: nn.Module, x: torch.Tensor, run: AttackRun) -> torch.Tensor:
    """Forward pass (counted), under bf16 autocast where the profile asks; float32 logits."""
    run.cost.forward(x.shape[0])
    with autocast(run.device, run.bf16):
        return model(_layout(x, run)).float()


def train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               run: AttackRun) -> float:
    """One SGD step of the surrogate on (x, y); returns the batch accuracy (%)."""
    model.train()
    out = logits(model, x, run)
    loss = F.cross_entropy(out, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    run.cost.backward(x.shape[0])
    opt.step()
    return 100.0 * float((out.detach().argmax(1) == y).float().mean())


def freeze(model: nn.Module, frozen: bool) -> None:
    """Switch parameter gradients off while optimising inputs (PGD cost: no weight gradients)."""
    for p in model.parameters():
        p.requires_grad_(not frozen)


def input_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor, run: AttackRun) -> torch.Tensor:
    """d CE(model(x), y) / dx for a batch, model in eval mode (counted: one forward, one backward)."""
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(logits(model, x, run), y)
    (g,) = torch.autograd.grad(loss, [x])
    run.cost.backward(x.shape[0])
    return g


def pgd_min(model: nn.Module, x: torch.Tensor, y: torch.Tensor, delta: torch.Tensor, steps: int,
            step: float, eps: float, run: AttackRun) -> torch.Tensor:
    """EM's min-min inner loop: ``steps`` signed-gradient *descent* steps on the loss w.r.t. the noise.

    x: clean float (n, C, H, W) in [0, 1]; delta: starting noise of the same shape in [-eps, eps].
    Each step: delta <- clip_eps(clip_[0,1](x + delta - step * sign(grad)) - x). Returns the new delta.
    """
    model.eval()
    freeze(model, True)
    try:
        for _ in range(steps):
            xp = (x + delta).clamp(0, 1)
            g = input_grad(model, xp, y, run)
            delta = ((xp - step * g.sign()).clamp(0, 1) - x).clamp(-eps, eps)
    finally:
        freeze(model, False)
    return delta.detach()


@torch.no_grad()
def accuracy(model: nn.Module, images: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]], n: int,
             batch_size: int, run: AttackRun) -> float:
    """Top-1 accuracy (%) of ``model`` (eval mode) over ``n`` items served by ``images(start, stop)``."""
    model.eval()
    correct = 0
    for i in range(0, n, batch_size):
        x, y = images(i, min(n, i + batch_size))
        correct += int((logits(model, x, run).argmax(1) == y).sum())
    return 100.0 * correct / max(1, n)
