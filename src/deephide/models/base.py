"""The shared shape of every victim model: ``forward(x) = head(flatten(pool(features(x))))``.

Inputs are float (N, C, H, W) in [0, 1]; ``features`` maps them to [-0.5, 0.5] first (the paper's
scaling) so trainers, adversarial training and feature extractors all feed plain [0, 1] pixels.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

# At or above this input size a model uses an ImageNet-style stem (stride 4 before the first stage)
# so that 224x224 costs about what ImageNet models cost, not 49x a CIFAR forward pass.
IMAGENET_STEM_MIN_SIZE = 128


def uses_imagenet_stem(image_size: int) -> bool:
    """True when ``image_size`` (pixels per side) calls for the downsampling ImageNet stem."""
    return image_size >= IMAGENET_STEM_MIN_SIZE


class VictimNet(nn.Module):
    """Base class: subclasses build ``body`` (features of [-0.5, 0.5] input), ``pool`` and ``head``.

    Attributes every model sets: ``num_classes``, ``in_channels``, ``image_size`` (the size it was
    built for) and ``feature_channels`` (C' of ``features``).
    """

    num_classes: int
    in_channels: int
    image_size: int
    feature_channels: int
    head: nn.Module  # (N, feature_channels) -> (N, num_classes)

    def __init__(self, num_classes: int, in_channels: int, image_size: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.image_size = image_size
        # The default global pooling; VGG and airbench override it.
        self.pool: nn.Module = nn.AdaptiveAvgPool2d(1)

    def body(self, x: Tensor) -> Tensor:
        """(N, C, H, W) in [-0.5, 0.5] -> (N, C', h, w) last-stage feature map."""
        raise NotImplementedError

    def features(self, x: Tensor) -> Tensor:
        """(N, C, H, W) pixels in [0, 1] -> (N, C', h, w): the last conv stage, before global pooling."""
        return self.body(x - 0.5)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) pixels in [0, 1] -> logits (N, num_classes)."""
        return self.head(torch.flatten(self.pool(self.features(x)), 1))


def count_parameters(model: nn.Module) -> int:
    """Number of scalars in ``model.parameters()`` (trainable or not)."""
    return sum(p.numel() for p in model.parameters())
