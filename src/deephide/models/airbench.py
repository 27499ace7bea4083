"""An airbench94-style net (Keller Jordan, 2024: 94% on CIFAR-10 in a few GPU seconds), fast on CPU.

Kept from airbench94's network: the 2x2 (unpadded) 24-channel stem conv with bias + GELU; three conv
groups ``conv3x3 - maxpool2 - BN - GELU - conv3x3 - BN - GELU`` of widths 64/256/256; a global max-pool
(airbench's ``MaxPool2d(3)`` on its 3x3 map); a bias-free linear head whose logits are scaled by 1/9.
Dropped: the patch-whitening init of the stem (it needs the training set), the frozen BN weights and
BN momentum/eps tweaks (plain learnable BN here, so it trains under any recipe), and everything in its
training recipe (lookahead, label smoothing, TTA), which belongs to the trainer, not the model.
For ``image_size >= 128`` the stem is a 7x7 stride-2 conv + 3x3 stride-2 max-pool instead.
"""

from __future__ import annotations

from torch import Tensor, nn

from .base import VictimNet, uses_imagenet_stem
from .registry import MODELS


class ConvGroup(nn.Module):
    """conv3x3 - maxpool2 - BN - GELU - conv3x3 - BN - GELU: halves H and W."""

    def __init__(self, in_planes: int, planes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.bn1(self.pool(self.conv1(x))))
        return self.act(self.bn2(self.conv2(x)))


class ScaledLinear(nn.Linear):
    """Bias-free linear layer whose output is multiplied by a constant (airbench's 1/9 logit scale)."""

    def __init__(self, in_features: int, out_features: int, scale: float) -> None:
        super().__init__(in_features, out_features, bias=False)
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) * self.scale


class AirbenchNet(VictimNet):
    """Stem + three ConvGroups; ``features``: (N, 256, 3, 3) at 32 (stem 31 -> 15 -> 7 -> 3)."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        widths: tuple[int, ...] = (64, 256, 256),
        stem_width: int = 24,
        stem: nn.Module | None = None,
    ) -> None:
        """``stem``: a module mapping the input to ``stem_width`` channels, built by the caller (before
        this call, so parameters are drawn stem first as here); None gives airbench's own stem."""
        super().__init__(num_classes, in_channels, image_size)
        if stem is not None:
            self.stem = stem
        elif uses_imagenet_stem(image_size):
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, stem_width, 7, stride=2, padding=3), nn.GELU(), nn.MaxPool2d(3, 2, 1)
            )
        else:
            self.stem = nn.Sequential(nn.Conv2d(in_channels, stem_width, 2), nn.GELU())
        groups: list[nn.Module] = []
        c = stem_width
        for w in widths:
            groups.append(ConvGroup(c, w))
            c = w
        self.layers = nn.Sequential(*groups)
        self.feature_channels = c
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = ScaledLinear(c, num_classes, scale=1 / 9)

    def body(self, x: Tensor) -> Tensor:
        return self.layers(self.stem(x))


@MODELS.register("airbench")
def airbench(num_classes: int, in_channels: int, image_size: int) -> AirbenchNet:
    """airbench94-style net (conv-BN-GELU groups 64/256/256, max-pools, 1/9-scaled head); 2.0M params, fast on CPU."""
    return AirbenchNet(num_classes, in_channels, image_size)
