"""The semantic-source registry: name -> ``fn(train: ImageSet, mode: str, size: int, seed: int, **options) ->
SecretBank``. A leaf that every source module imports to register itself; importing ``deephide.semantic`` fills it."""

from ..registry import Registry

SEMANTIC_SOURCES: Registry = Registry("semantic source")
