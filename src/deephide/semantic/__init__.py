"""Semantic images: the secret banks hidden by Deep Hiding, as a registry of sources.

A source is ``fn(train: ImageSet, mode: str, size: int, seed: int, **options) -> SecretBank``.
"""

from ..registry import Registry
from .bank import SecretBank

SEMANTIC_SOURCES: Registry = Registry("semantic source")

__all__ = ["SecretBank", "SEMANTIC_SOURCES"]

# sources register themselves on import (SEMANTIC_SOURCES above must exist first)
from . import sig as _sig  # noqa: E402,F401
from . import ablation as _ablation  # noqa: E402,F401
from . import logo as _logo  # noqa: E402,F401
from .api import make_bank  # noqa: E402
from .stats import semantic_stats, write_contact_sheets  # noqa: E402
from .store import load_bank, save_bank  # noqa: E402

__all__ += ["make_bank", "save_bank", "load_bank", "semantic_stats", "write_contact_sheets"]
from .api import make_secrets, parse_source_options  # noqa: E402

__all__ += ["make_secrets", "parse_source_options"]
