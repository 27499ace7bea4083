"""Named settings for each stage: ``paper`` (the paper's hyperparameters, for a GPU),
``cpu`` (fits a 2-core machine), ``tiny`` (tests). One dict per stage and profile."""

from __future__ import annotations

import copy
from typing import Any

from .errors import DeephideError

# Victim training (evaluation protocol). Iteration counts are optimizer steps.
VICTIM: dict[str, dict[str, Any]] = {
    "paper": {
        # REM's recipe: ResNet-18, SGD 0.1, momentum 0.9, wd 5e-4, batch 128, 40k iterations, x0.1 every 16k
        "iterations": 40_000, "batch_size": 128, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4,
        "nesterov": False, "schedule": "step", "step_every": 16_000, "step_gamma": 0.1,
        "label_smoothing": 0.0, "augment": "crop-flip", "eval_every": 2_000, "bf16": False,
        "channels_last": True, "eval_batch_size": 512, "compile": False,
    },
    "cpu": {
        # Few epochs with a one-cycle-like schedule reach near-converged accuracy fast on a CPU;
        # bf16 + channels_last roughly triple conv throughput where the CPU has native bf16.
        "iterations": 1_400, "batch_size": 128, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4,
        "nesterov": True, "schedule": "linear-warmup-decay", "warmup_frac": 0.15,
        "label_smoothing": 0.0, "augment": "crop-flip", "eval_every": 235, "bf16": True,
        "channels_last": True, "eval_batch_size": 256, "compile": False,
    },
    "tiny": {
        "iterations": 12, "batch_size": 32, "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4,
        "nesterov": True, "schedule": "linear-warmup-decay", "warmup_frac": 0.2,
        "label_smoothing": 0.0, "augment": "crop-flip", "eval_every": 4, "bf16": False,
        "channels_last": False, "eval_batch_size": 256, "compile": False,
    },
}

# The CPU reference grid's protocol (results/reference-fmnist): the `cpu` recipe cut to ~2 epochs of a 60k
# set, for the fastcnn victim: ~50 core-seconds per cell, ~90% clean on Fashion-MNIST (measured: 90.03, 90.15 %).
VICTIM["fast"] = dict(VICTIM["cpu"], iterations=937)

# "compile": torch.compile the training forward/backward. It fuses the BatchNorm/ReLU/add chains that
# dominate narrow nets on a CPU (ResNet-20: about +20% images/s) but costs ~40 s of compilation per run,
# so it pays off only for runs of several minutes; off by default.

PROFILES: dict[str, dict[str, dict[str, Any]]] = {"victim": VICTIM}


def pick_profile(table: dict[str, dict[str, Any]], stage: str, name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``table[name]`` with ``overrides`` applied (None values ignored, unknown keys refused)."""
    if name not in table:
        raise DeephideError(f"unknown {stage} profile '{name}'; choose one of: {', '.join(sorted(table))}")
    prof = copy.deepcopy(table[name])
    for k, v in overrides.items():
        if v is None:
            continue
        if k not in prof:
            raise DeephideError(f"unknown {stage} setting '{k}'; known: {', '.join(sorted(prof))}")
        prof[k] = v
    prof["profile"] = name
    return prof


def get_profile(stage: str, name: str, **overrides: Any) -> dict[str, Any]:
    """A copy of profile ``name`` for ``stage`` with ``overrides`` applied (unknown keys refused)."""
    table = PROFILES.get(stage)
    if table is None:
        raise DeephideError(f"unknown stage '{stage}'")
    return pick_profile(table, stage, name, overrides)


def profile_names() -> list[str]:
    return sorted(VICTIM)
