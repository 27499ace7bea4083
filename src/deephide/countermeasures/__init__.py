"""Countermeasures a data user applies to train on protected data: one registry, name -> factory, one module per
countermeasure family, named after it: baseline (Vanilla, EarlyStop), filters (MeanF, MedianF, GaussF), bdr, gray,
jpeg (JPEG*, ISS), cutout, cutmix, mixup, noise (GaussN), ueraser, adversarial (AT).

Importing this package registers every entry (and does nothing else). Build one with
``build_countermeasure(name, **params)``; ``deephide list countermeasures`` prints the registry.

Data-stage countermeasures (filters, bdr, gray, jpeg): applied once to the uint8 training set before training.

Every transform here accepts uint8 (N, H, W, C) with C in {1, 3} and any H, W, and returns the
same shape and dtype. They are deterministic (the ``seed`` argument is accepted and unused).
Float work is done on the 0..255 scale and rounded back to the nearest integer.

Batch-stage countermeasures (cutout, cutmix, mixup, noise, ueraser): applied to every training batch
(float (N, C, H, W) in [0, 1]).

Random parameters are drawn on the CPU from the trainer's generator and then moved to the batch's
device, so a run gives the same batches on any device. Each transform is split into a sampler
(``sample_*``) and a pure function of the sampled parameters, which the tests check by hand.
"""

from __future__ import annotations

from . import adversarial, baseline, bdr, cutmix, cutout, filters, gray, jpeg, mixup, noise, ueraser  # noqa: F401  (registration)
from .base import STAGES, Countermeasure, build_countermeasure
from .registry import COUNTERMEASURES

# The paper's 13 columns (Table 1 ff.), in the paper's order, names exactly as registered.
PAPER_COLUMNS: list[str] = ["Vanilla", "Cutout", "CutMix", "Mixup", "MeanF", "MedianF", "BDR", "Gray",
                            "GaussN", "GaussF", "JPEG10", "JPEG50", "AT"]

__all__ = ["COUNTERMEASURES", "PAPER_COLUMNS", "STAGES", "Countermeasure", "build_countermeasure"]
