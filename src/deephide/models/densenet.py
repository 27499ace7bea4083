"""DenseNet-121, CIFAR variant of Kuang Liu's pytorch-cifar (REM's code): growth 32, blocks 6/12/24/16,
compression 0.5, a 3x3 stem of 64 channels; for ``image_size >= 128`` the ImageNet 7x7 s2 + max-pool stem.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import VictimNet, uses_imagenet_stem
from .registry import MODELS


class DenseLayer(nn.Module):
    """BN-ReLU-conv1x1 (4*growth) -> BN-ReLU-conv3x3 (growth), concatenated in front of the input."""

    def __init__(self, in_planes: int, growth: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([out, x], 1)


class Transition(nn.Module):
    """BN-ReLU-conv1x1 (compression) then 2x2 average pooling."""

    def __init__(self, in_planes: int, out_planes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_planes)
        self.conv = nn.Conv2d(in_planes, out_planes, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class DenseNet(VictimNet):
    """Dense blocks joined by transitions; ``features`` = final BN-ReLU map (N, 1024, H/8, W/8) at 32."""

    def __init__(
        self,
        num_blocks: tuple[int, ...],
        growth: int,
        num_classes: int,
        in_channels: int,
        image_size: int,
        reduction: float = 0.5,
    ) -> None:
        super().__init__(num_classes, in_channels, image_size)
        planes = 2 * growth
        if uses_imagenet_stem(image_size):
            # torchvision's DenseNet stem (conv-BN-ReLU-pool): brings 224 down to 56 before block 1.
            self.stem: nn.Module = nn.Sequential(
                nn.Conv2d(in_channels, planes, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(planes),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, stride=2, padding=1),
            )
        else:
            # pytorch-cifar: a bare conv, since every dense layer starts with its own BN-ReLU.
            self.stem = nn.Conv2d(in_channels, planes, 3, padding=1, bias=False)
        stages: list[nn.Module] = []
        for i, n in enumerate(num_blocks):
            for _ in range(n):
                stages.append(DenseLayer(planes, growth))
                planes += growth
            if i < len(num_blocks) - 1:
                out_planes = int(math.floor(planes * reduction))
                stages.append(Transition(planes, out_planes))
                planes = out_planes
        self.layers = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(planes)
        self.feature_channels = planes
        self.head = nn.Linear(planes, num_classes)

    def body(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.layers(self.stem(x))))


@MODELS.register("densenet121")
def densenet121(num_classes: int, in_channels: int, image_size: int) -> DenseNet:
    """DenseNet-121, CIFAR variant (pytorch-cifar/REM; growth 32, ImageNet stem at >=128 px); 7.0M params."""
    return DenseNet((6, 12, 24, 16), 32, num_classes, in_channels, image_size)
