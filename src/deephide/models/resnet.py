"""ResNets: ResNet-18/50 as in Kuang Liu's pytorch-cifar (REM's code) and He et al.'s ResNet-20.

At 32x32 the stem is a 3x3 stride-1 conv with no max-pool (CIFAR-style); for ``image_size >= 128``
it is the ImageNet 7x7 stride-2 conv + 3x3 stride-2 max-pool.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .base import VictimNet, uses_imagenet_stem
from .registry import MODELS


def _stem(in_channels: int, width: int, image_size: int) -> nn.Sequential:
    """conv-BN-ReLU stem: CIFAR (3x3, stride 1) or ImageNet (7x7 s2 + max-pool s2) by input size."""
    if uses_imagenet_stem(image_size):
        return nn.Sequential(
            nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
    )


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN with a 1x1 conv-BN projection shortcut when the shape changes."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride), 1x1 expand x4, with a projection shortcut when needed."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_planes = self.expansion * planes
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != out_planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_planes),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class ResNet(VictimNet):
    """Four stages of 64/128/256/512 planes (x expansion); ``features``: (N, 512*exp, H/8, W/8) at 32."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        num_blocks: tuple[int, int, int, int],
        num_classes: int,
        in_channels: int,
        image_size: int,
    ) -> None:
        super().__init__(num_classes, in_channels, image_size)
        self.stem = _stem(in_channels, 64, image_size)
        stages: list[nn.Module] = []
        in_planes = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), num_blocks)):
            blocks: list[nn.Module] = []
            for stride in [1 if i == 0 else 2] + [1] * (n - 1):
                blocks.append(block(in_planes, planes, stride))
                in_planes = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*stages)
        self.feature_channels = in_planes
        self.head = nn.Linear(in_planes, num_classes)

    def body(self, x: Tensor) -> Tensor:
        return self.layers(self.stem(x))


class ShortcutA(nn.Module):
    """He et al.'s parameter-free option-A shortcut: stride-2 subsampling + zero channel padding."""

    def __init__(self, in_planes: int, planes: int) -> None:
        super().__init__()
        self.pad = planes - in_planes

    def forward(self, x: Tensor) -> Tensor:
        # Pads the channel dim (third from last in F.pad's order); keeps the memory format.
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))


class BasicBlockA(BasicBlock):
    """BasicBlock with the option-A shortcut (ResNet-20/32/44/56 on CIFAR)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__(in_planes, planes, stride)
        if stride != 1 or in_planes != planes:
            self.shortcut = ShortcutA(in_planes, planes)  # type: ignore[assignment]


class CifarResNet(VictimNet):
    """He et al. (2016) section 4.2 ResNet-(6n+2): 3 stages of n blocks, 16/32/64 channels.

    ``features``: (N, 64, H/4, W/4) at 32. Kaiming-normal init as in the paper's CIFAR setup.
    """

    def __init__(self, n: int, num_classes: int, in_channels: int, image_size: int) -> None:
        super().__init__(num_classes, in_channels, image_size)
        self.stem = _stem(in_channels, 16, image_size)
        stages: list[nn.Module] = []
        in_planes = 16
        for i, planes in enumerate((16, 32, 64)):
            blocks: list[nn.Module] = []
            for stride in [1 if i == 0 else 2] + [1] * (n - 1):
                blocks.append(BasicBlockA(in_planes, planes, stride))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*stages)
        self.feature_channels = 64
        self.head = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def body(self, x: Tensor) -> Tensor:
        return self.layers(self.stem(x))


@MODELS.register("resnet18")
def resnet18(num_classes: int, in_channels: int, image_size: int) -> ResNet:
    """ResNet-18, CIFAR-style (pytorch-cifar/REM; ImageNet stem at >=128 px); 11.2M params."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, in_channels, image_size)


@MODELS.register("resnet50")
def resnet50(num_classes: int, in_channels: int, image_size: int) -> ResNet:
    """ResNet-50 (bottleneck), CIFAR-style (pytorch-cifar/REM; ImageNet stem at >=128 px); 23.5M params."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, in_channels, image_size)


@MODELS.register("resnet20")
def resnet20(num_classes: int, in_channels: int, image_size: int) -> CifarResNet:
    """ResNet-20 (He et al. CIFAR, 16/32/64 widths, option-A shortcuts); 0.27M params, fast on CPU."""
    return CifarResNet(3, num_classes, in_channels, image_size)
