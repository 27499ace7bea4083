"""Semantic images: the secret banks hidden by Deep Hiding, as a registry of sources.

A source is ``fn(train: ImageSet, mode: str, size: int, seed: int, **options) -> SecretBank``.
"""

# sources register themselves in SEMANTIC_SOURCES when imported
from . import ablation as _ablation  # noqa: F401
from . import logo as _logo  # noqa: F401
from . import sig as _sig  # noqa: F401
from .api import bank_for, make_bank, make_secrets, parse_source_options
from .bank import SecretBank
from .registry import SEMANTIC_SOURCES
from .stats import semantic_stats, write_contact_sheets
from .store import load_bank, save_bank

__all__ = ["SecretBank", "SEMANTIC_SOURCES", "bank_for", "make_bank", "save_bank", "load_bank", "semantic_stats",
           "write_contact_sheets", "make_secrets", "parse_source_options"]
