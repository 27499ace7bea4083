"""``KEY=VALUE`` options of the command line (``--set``, ``--secret-option``): the one parser."""

from __future__ import annotations

import json

from ..errors import DeephideError


def parse_kv(items: list[str] | None, what: str) -> dict:
    """``key=value`` pairs (values parsed as JSON where possible: numbers, true/false)."""
    out = {}
    for it in items or []:
        if "=" not in it:
            raise DeephideError(f"{what}: expected key=value, got '{it}'")
        k, v = it.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except ValueError:
            out[k.strip()] = v
    return out
