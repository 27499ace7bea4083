"""The victim-model registry: name -> ``fn(num_classes, in_channels, image_size) -> VictimNet`` (the contract in
``deephide.models``; the docstring's first line is what ``deephide list models`` shows). A leaf that every model
file imports to register its factories; importing ``deephide.models`` fills it."""

from ..registry import Registry

MODELS: Registry = Registry("model")
