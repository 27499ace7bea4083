"""Vanilla (no countermeasure) and EarlyStop (the Vanilla run read at its best evaluation: no extra training)."""

from __future__ import annotations

from .base import Countermeasure
from .registry import COUNTERMEASURES


@COUNTERMEASURES.register("Vanilla")
class Vanilla(Countermeasure):
    """No countermeasure (identity); no parameters."""

    name = "Vanilla"
    stage = "data"

    def __init__(self) -> None:
        super().__init__()


@COUNTERMEASURES.register("EarlyStop")
class EarlyStop(Countermeasure):
    """Early stopping: data unchanged, the trainer reports the best evaluation's accuracy; no parameters."""

    name = "EarlyStop"
    stage = "data"
    select = "best"

    def __init__(self) -> None:
        super().__init__()


