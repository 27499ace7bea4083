"""Victim model zoo: one registry of architectures, all sharing one contract.

``build_model(name, num_classes, in_channels=3, image_size=32)`` returns a :class:`VictimNet`:

- input: float (N, C, H, W), pixels in [0, 1]; the model subtracts 0.5 itself (the paper's
  [-0.5, 0.5] scaling), so every consumer feeds plain [0, 1] images;
- ``model(x)``: logits (N, num_classes);
- ``model.features(x)``: the last conv stage before global pooling, (N, C', h, w), with
  ``model.feature_channels == C'`` (ViT: its final normed patch tokens as a map, see ``vit.py``);
- ``image_size`` only picks the stem: CIFAR-style below 128 px, ImageNet-style (stride 4) at
  >= 128 px. CNNs then accept any H, W; the ViT needs exactly ``image_size``.

A factory is ``fn(num_classes, in_channels, image_size) -> VictimNet``; its docstring's first line is
what ``deephide list models`` shows.
"""

from __future__ import annotations

import operator

from ..errors import DeephideError
# model files register their factories in MODELS when imported
from . import airbench as _airbench  # noqa: F401
from . import densenet as _densenet  # noqa: F401
from . import fastcnn as _fastcnn  # noqa: F401
from . import resnet as _resnet  # noqa: F401
from . import vgg as _vgg  # noqa: F401
from . import vit as _vit  # noqa: F401
from .base import IMAGENET_STEM_MIN_SIZE, VictimNet, count_parameters, uses_imagenet_stem
from .registry import MODELS

# Below this, a CIFAR-style net's feature map would shrink under one pixel (ResNet-18: /8, airbench: /~10).
MIN_IMAGE_SIZE = 16


def build_model(name: str, num_classes: int, in_channels: int = 3, image_size: int = 32) -> VictimNet:
    """A freshly initialised (uses torch's global RNG) victim model ``name``; see the module docstring.

    ``num_classes`` >= 1, ``in_channels`` >= 1 (1 grey, 3 RGB), ``image_size`` >= 16 pixels per side.
    """
    factory = MODELS.get(name)
    n_cls = _int_at_least(name, "num_classes", num_classes, 1)
    n_ch = _int_at_least(name, "in_channels", in_channels, 1)
    size = _int_at_least(name, "image_size", image_size, MIN_IMAGE_SIZE)
    return factory(n_cls, n_ch, size)


def _int_at_least(model: str, arg: str, value: object, low: int) -> int:
    """``value`` as an int >= ``low``, else a one-line DeephideError naming the model and argument."""
    # operator.index admits numpy integers but not floats (10.5 would silently truncate); bools are refused.
    try:
        out = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        out = None
    if out is None or isinstance(value, bool) or out < low:
        raise DeephideError(f"model {model}: {arg} must be an integer >= {low}, got {value!r}")
    return int(out)


__all__ = [
    "MODELS",
    "build_model",
    "VictimNet",
    "count_parameters",
    "uses_imagenet_stem",
    "IMAGENET_STEM_MIN_SIZE",
    "MIN_IMAGE_SIZE",
]
