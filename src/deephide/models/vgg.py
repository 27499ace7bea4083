"""VGG-19 with BatchNorm, as in Kuang Liu's pytorch-cifar (REM's code): 16 conv3x3-BN-ReLU, 5 max-pools.

``features`` is the last conv-BN-ReLU output, before the fifth max-pool: (N, 512, H/16, W/16), i.e.
(N, 512, 2, 2) at 32 and (N, 512, 14, 14) at 224. The pooling is that max-pool then a global average,
which at 32x32 is exactly pytorch-cifar's ``MaxPool2d(2)`` + flatten. The same layers serve 224x224
(the standard VGG-19-BN trunk); only the 4096-wide ImageNet classifier is replaced by one linear layer.
"""

from __future__ import annotations

from torch import Tensor, nn

from .base import VictimNet
from .registry import MODELS

# Conv widths; "M" is a 2x2 max-pool. The final "M" lives in ``pool`` so ``features`` keeps the map.
VGG19_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512,
)


class VGG(VictimNet):
    """VGG with BN: conv3x3(bias)-BN-ReLU stacks, max-pool + global average, one linear layer."""

    def __init__(self, cfg: tuple[int | str, ...], num_classes: int, in_channels: int, image_size: int) -> None:
        super().__init__(num_classes, in_channels, image_size)
        layers: list[nn.Module] = []
        c = in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, stride=2))
            else:
                assert isinstance(v, int)
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                c = v
        self.layers = nn.Sequential(*layers)
        self.feature_channels = c
        # ceil_mode: a 1x1 map (inputs below 32, e.g. 28x28 Fashion-MNIST) survives the last pool.
        self.pool = nn.Sequential(nn.MaxPool2d(2, stride=2, ceil_mode=True), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(c, num_classes)

    def body(self, x: Tensor) -> Tensor:
        return self.layers(x)


@MODELS.register("vgg19")
def vgg19(num_classes: int, in_channels: int, image_size: int) -> VGG:
    """VGG-19 with BatchNorm (pytorch-cifar/REM; one linear head); 20.0M params."""
    return VGG(VGG19_CFG, num_classes, in_channels, image_size)
