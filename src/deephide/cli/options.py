"""``KEY=VALUE`` options of the command line (``--set``, ``--secret-option``, ``attack --option``): the one parser
(a dataset spec's ``?key=value&...`` query is data.registry.parse_query)."""

from __future__ import annotations

import json
from typing import Any

from ..errors import DeephideError


def parse_kv(items: list[str] | None, what: str, typed: bool = True) -> dict[str, Any]:
    """``KEY=VALUE`` strings -> dict. typed: values parsed as JSON where they are (numbers, true/false, lists), else
    kept as strings (``--set``, ``--secret-option``); untyped: every value a stripped string, each consumer types
    it (``attack --option``, checked against the attack's profile). A one-line error names ``what``.

    >>> parse_kv(["lr=0.001", 'views=["none"]', "name=x"], "--set")
    {'lr': 0.001, 'views': ['none'], 'name': 'x'}
    >>> parse_kv(["pgd_steps= 5"], "--option", typed=False)
    {'pgd_steps': '5'}
    """
    out: dict[str, Any] = {}
    for it in items or []:
        key, sep, value = it.partition("=")
        key = key.strip()
        if not sep or not key:
            raise DeephideError(f"{what}: expected KEY=VALUE, got '{it}'")
        if not typed:
            out[key] = value.strip()
            continue
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out
