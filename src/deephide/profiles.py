"""Named settings for each stage: ``paper`` (the paper's hyperparameters, for a GPU),
``cpu`` (fits a 2-core machine), ``tiny`` (tests). One dict per stage and profile.

The one profile mechanism: every stage's table (victims here, hiders in ``hiding.profiles``, attacks in
``attacks.profiles``, the demo's one dict in ``pipeline``) is a ``{name: {setting: default}}`` dict read with
:func:`pick_profile`, which applies overrides typed by :func:`coerce_setting` and refuses unknown keys in one line.
"""

from __future__ import annotations

import copy
import math
import re
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


_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?|[+-]?(inf|nan)", re.IGNORECASE)


def parse_value(text: str) -> int | float | bool | str:
    """A command-line value as int, float or bool when it looks like one, else the string."""
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if _INT.fullmatch(low):
        return int(low)
    if _FLOAT.fullmatch(low):
        return float(low)
    return text


def coerce_setting(where: str, key: str, value: Any, default: Any) -> Any:
    """``value`` (maybe a command-line string) as the type of the setting's ``default``.

    bool, int, float and str defaults are checked (an int is a float; a bool is no number; NaN is refused);
    other defaults (tuples, lists, dicts, None) take the value as given: their users parse it.
    """
    if isinstance(value, str) and not isinstance(default, str):
        value = parse_value(value)
    bad = DeephideError(f"{where}: {key}={value!r} must be {type(default).__name__}")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise bad
        return float(value)
    if isinstance(default, str):
        return str(value)
    return value


def pick_profile(table: dict[str, dict[str, Any]], stage: str, name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``table[name]`` with ``overrides`` applied (typed by :func:`coerce_setting`; None values ignored,
    unknown keys refused naming the known ones)."""
    if name not in table:
        raise DeephideError(f"unknown {stage} profile '{name}'; choose one of: {', '.join(sorted(table))}")
    prof = copy.deepcopy(table[name])
    for k, v in overrides.items():
        if v is None:
            continue
        if k not in prof:
            raise DeephideError(f"unknown {stage} setting '{k}'; known: {', '.join(sorted(prof))}")
        prof[k] = coerce_setting(f"{stage} {name}", k, v, prof[k])
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
