"""A hider directory (``train-hider --out``, or a shipped hider): its layout, and opening it (the hider, its bank
and its record)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import DeephideError
from .checkpoint import load_hider, read_checkpoint
from .inn import Hider


# the layout of a hider directory, the one place it is defined
CHECKPOINT = "checkpoint"      # weights + optimizer + training state (hiding.checkpoint)
BANK = "bank"                  # the secret bank it hides (semantic.store)
LOG = "log.jsonl"              # one line per logged training step
SUMMARY = "summary.json"       # the training summary and the reveal gate
SNAPSHOTS = "snapshots"        # snapshots/N: weights at step N (learning-curve points)
CARD = "card.json"             # a shipped hider's card (card.md beside it)
SURROGATE = "surrogate.safetensors"  # the surrogate victim's state (hiding.surrogate; the w_sv variant only)
#: what a train-hider output directory may hold (`--force` wipes only such a directory)
HIDER_DIR_ENTRIES = {CHECKPOINT, BANK, LOG, SUMMARY, SNAPSHOTS, SURROGATE}

#: Hiders shipped with the package (``protect --hider NAME``): one train-hider directory each, with its card.
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "hiders"


def shipped_hiders() -> dict[str, Path]:
    """Name -> directory of every hider shipped with the package (``deephide list hiders``)."""
    if not SHIPPED_DIR.is_dir():
        return {}
    return {d.name: d for d in sorted(SHIPPED_DIR.iterdir()) if (d / "checkpoint").is_dir()}


def resolve_hider(path: str | Path) -> Path:
    """``path`` itself when it exists, else the shipped hider of that name (a one-line error if neither)."""
    p = Path(path)
    if p.exists():
        return p
    shipped = shipped_hiders()
    if str(path) in shipped:
        return shipped[str(path)]
    names = ", ".join(shipped) or "none"
    raise DeephideError(f"{path}: no such hider directory, and not the name of a shipped hider ({names})")


def checkpoint_dir(path: Path) -> Path:
    """The checkpoint of a hider directory (``path/checkpoint``), or ``path`` itself (a bare checkpoint or snapshot)."""
    return path / CHECKPOINT if (path / CHECKPOINT).is_dir() else path


def open_hider(path: str | Path, image_size: int | None = None, device: str = "cpu") -> tuple[Hider, dict[str, Any]]:
    """The hider in ``path`` (a train-hider output, a bare checkpoint dir or a shipped hider's name) and a
    JSON description."""

    path = resolve_hider(path)
    ck = checkpoint_dir(path)
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
    """The secret bank saved next to a hider, if any: ``path/bank``, or for its checkpoint (``DIR/checkpoint``) or a
    snapshot (``DIR/snapshots/N``) the bank of the hider directory ``DIR`` they belong to."""

    try:
        p = resolve_hider(path)
    except DeephideError:
        return None
    owner = p.parent if p.name == CHECKPOINT else p.parent.parent if p.parent.name == SNAPSHOTS else p
    return next((d for d in (p / BANK, owner / BANK) if d.is_dir()), None)
