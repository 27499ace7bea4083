"""Open a trained hider directory (``train-hider --out``): the hider, its bank and its record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import DeephideError
from .checkpoint import load_hider, read_checkpoint
from .inn import Hider


def open_hider(path: str | Path, image_size: int | None = None, device: str = "cpu") -> tuple[Hider, dict[str, Any]]:
    """The hider in ``path`` (a train-hider output or a bare checkpoint dir) and a JSON description."""
    from .train import CHECKPOINT, SUMMARY

    path = Path(path)
    ck = path / CHECKPOINT if (path / CHECKPOINT).is_dir() else path
    if not ck.is_dir():
        raise DeephideError(f"{path}: not a hider directory (train one with `deephide train-hider`)")
    hider = load_hider(ck, image_size=image_size, device=device)
    info: dict[str, Any] = {"path": str(path), "config": hider.config.to_dict(),
                            "training": read_checkpoint(ck).get("training", {})}
    summ = path / SUMMARY
    if summ.exists():
        try:
            info["summary"] = {k: v for k, v in json.loads(summ.read_text()).items() if k in ("iterations_done", "finished", "seconds", "last_log")}
        except ValueError:
            pass
    return hider, info


def hider_bank_dir(path: str | Path) -> Path | None:
    """The secret bank saved next to a hider, if any."""
    from .train import BANK

    d = Path(path) / BANK
    return d if d.is_dir() else None
