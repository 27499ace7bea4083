"""Baseline availability attacks ("poisons") that produce a protected ImageSet like Deep Hiding does.

An attack is registered in :data:`ATTACKS` as
``fn(train, *, eps_levels=8, profile="cpu", seed=0, device="auto", progress=True, **options) -> ImageSet``.
It returns the protected set: uint8, same labels and class names, every pixel within ``eps_levels``
of the clean one (OPS, an L0 attack, is the one exemption: exactly one pixel per image may change
arbitrarily), with a ``protection`` provenance record (method, parameters, profile and how it shortens
the published optimisation, eps, seed, wall seconds and surrogate forward/backward passes).

Profiles (see :mod:`deephide.attacks.profiles`): ``paper`` (published defaults, for a GPU), ``cpu``
(shortened to fit a 2-core CPU; every change is recorded) and ``tiny`` (tests). Any profile setting
can be overridden as an option (``EM`` with ``pgd_steps=5``).

Importing this package registers every attack and does nothing else.
"""

from __future__ import annotations

from typing import Any

from ..data import ImageSet
# attacks register themselves in ATTACKS when imported, one module each (named after the attack)
from . import ar as _ar  # noqa: F401
from . import em as _em  # noqa: F401
from . import isgan as _isgan  # noqa: F401
from . import lsp as _lsp  # noqa: F401
from . import ops as _ops  # noqa: F401
from . import pil as _pil  # noqa: F401
from . import random_noise as _random_noise  # noqa: F401
from . import rem as _rem  # noqa: F401
from . import semantic_added as _semantic_added  # noqa: F401
from .base import finish_attack, start_attack
from .profiles import ATTACK_PROFILES, attack_profile
from .registry import ATTACKS


def run_attack(name: str, train: ImageSet, **kw: Any) -> ImageSet:
    """Run the registered attack ``name`` on ``train``; ``kw`` as in the attack signature (module doc)."""
    return ATTACKS.get(name)(train, **kw)


__all__ = ["ATTACKS", "ATTACK_PROFILES", "attack_profile", "finish_attack", "run_attack", "start_attack"]
