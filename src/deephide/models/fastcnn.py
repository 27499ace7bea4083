"""A CPU-scale victim for 32x32 grids: a 2x2 stride-2 "patchify" stem, then two airbench conv groups.

Why it exists: an evaluation grid is hundreds of victim trainings. On a 2-core CPU, ResNet-20 needs
~210 core-seconds for 91.7% on Fashion-MNIST; this net reaches ~90% in 2 epochs at ~50 core-seconds,
because the stem halves the resolution at once (the 32x32 stages dominate a CIFAR-style net's cost)
and it has 5 convolutions instead of 19 (elementwise BN/activation passes, not matmuls, bound small
nets on a CPU). It still sees every pixel: the stem is a learned 2x2 conv, not a subsampling, so a
perturbation of any pixel reaches the features. Layout (at 32x32): stem 32ch @16 -> group 64 @8 ->
group 128 @4 -> global max-pool -> 1/9-scaled linear head. For ``image_size >= 128`` the stem is a
4x4 stride-4 conv instead, so large images stay cheap too.
"""

from __future__ import annotations

from torch import nn

from .airbench import AirbenchNet
from .base import uses_imagenet_stem
from .registry import MODELS


class FastCNN(AirbenchNet):
    """Patchify stem + airbench ConvGroups; ``features``: (N, widths[-1], H/8, W/8) (H/16 with the large-image stem)."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int,
                 widths: tuple[int, ...] = (64, 128), stem_width: int = 32) -> None:
        k = 4 if uses_imagenet_stem(image_size) else 2
        stem = nn.Sequential(nn.Conv2d(in_channels, stem_width, k, stride=k, bias=False),
                             nn.BatchNorm2d(stem_width), nn.GELU())
        super().__init__(num_classes, in_channels, image_size, widths, stem_width, stem=stem)


@MODELS.register("fastcnn")
def fastcnn(num_classes: int, in_channels: int, image_size: int) -> FastCNN:
    """CPU-scale grid victim: 2x2 stride-2 stem + conv groups 64/128 (airbench-style); 0.28M params."""
    return FastCNN(num_classes, in_channels, image_size)
