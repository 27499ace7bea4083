"""The countermeasure registry: name -> ``fn(**params) -> Countermeasure`` (``countermeasures.base``). A leaf that
every countermeasure module imports to register itself; importing ``deephide.countermeasures`` fills it."""

from __future__ import annotations

from typing import Callable

from ..registry import Registry

COUNTERMEASURES: Registry[Callable] = Registry("countermeasure")
