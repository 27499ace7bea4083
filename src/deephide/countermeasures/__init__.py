"""Countermeasures a data user applies to train on protected data: one registry, name -> factory.

Importing this package registers every entry (and does nothing else). Build one with
``build_countermeasure(name, **params)``; ``deephide list countermeasures`` prints the registry.
"""

from __future__ import annotations

from . import adversarial, augment, pixel  # noqa: F401  (registration)
from .base import STAGES, Countermeasure, build_countermeasure
from .registry import COUNTERMEASURES

# The paper's 13 columns (Table 1 ff.), in the paper's order, names exactly as registered.
PAPER_COLUMNS: list[str] = ["Vanilla", "Cutout", "CutMix", "Mixup", "MeanF", "MedianF", "BDR", "Gray",
                            "GaussN", "GaussF", "JPEG10", "JPEG50", "AT"]

__all__ = ["COUNTERMEASURES", "PAPER_COLUMNS", "STAGES", "Countermeasure", "build_countermeasure"]
