"""Semantic images: the secret banks hidden by Deep Hiding, as a registry of sources.

A source is ``fn(train: ImageSet, mode: str, size: int, seed: int, **options) -> SecretBank``.
"""

from ..registry import Registry
from .bank import SecretBank

SEMANTIC_SOURCES: Registry = Registry("semantic source")

__all__ = ["SecretBank", "SEMANTIC_SOURCES"]
