"""make_bank: the one entry point the CLI and the pipeline call to build a secret bank."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DeephideError
from .registry import SEMANTIC_SOURCES
from .bank import SecretBank

if TYPE_CHECKING:
    from ..data.imageset import ImageSet

MODES = ("class", "sample")
DEFAULT_SOURCE = "sig"


def make_bank(source: str, train: "ImageSet", mode: str, size: int, seed: int = 0, **options: Any) -> SecretBank:
    """Build the secrets for ``train`` with the registered ``source``.

    mode: "class" (one secret per class) or "sample" (a group of ``per_class`` secrets per class).
    size: side of the square secrets (e.g. 32, 64, 224); returns uint8 (M, size, size, 3).
    The bank's meta records source, mode, size, seed, the source's options and the time taken.
    """
    if mode not in MODES:
        raise DeephideError(f"unknown protection mode '{mode}'; choose class or sample")
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or not 8 <= int(size) <= 4096:
        raise DeephideError(f"secret size {size!r}: must be an integer in [8, 4096]")
    fn = SEMANTIC_SOURCES.get(source)
    t0 = time.perf_counter()
    bank = fn(train, mode, int(size), int(seed), **options)
    if bank.num_classes != train.num_classes or bank.images.shape[1:] != (size, size, 3):
        raise DeephideError(f"semantic source '{source}': returned a bank of the wrong shape {bank.images.shape}")
    meta = dict(bank.meta)
    meta.update({"source": source, "mode": mode, "size": int(size), "seed": int(seed),
                 "seconds": round(time.perf_counter() - t0, 3)})
    return SecretBank(bank.images, bank.group, bank.num_classes, meta)


def parse_source_options(pairs: "list[str] | tuple[str, ...]") -> dict[str, str]:
    """Command-line ``key=value`` pairs -> dict of strings (each source converts and checks types).

    '-' in keys becomes '_' (``per-class=8`` == ``per_class=8``); a value may contain '='.
    """
    out: dict[str, str] = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise DeephideError(f"semantic option '{p}': expected key=value (e.g. per_class=16)")
        out[key] = value
    return out


def make_secrets(data: str, out: str, source: str = DEFAULT_SOURCE, mode: str = "sample",
                 size: int | None = None, seed: int = 0, options: "dict[str, Any] | None" = None,
                 force: bool = False, sheets: str | None = None) -> dict[str, Any]:
    """Body of a ``deephide secrets`` command: build the bank for dataset spec ``data`` and save it.

    size None -> the training images' side (the hider needs secrets the size of the covers).
    The bank's meta gains its pixel-feature statistics and library versions. ``sheets``: also
    write one contact-sheet PNG per class there. Returns a JSON-able summary.
    """
    from ..data import load_dataset
    from ..runtime import versions
    from .stats import semantic_stats, write_contact_sheets
    from .store import save_bank

    train = load_dataset(data)
    side = int(size) if size is not None else int(train.shape[0])
    bank = make_bank(source, train, mode, side, seed, **(options or {}))
    stats = semantic_stats(bank)
    meta = dict(bank.meta, data=data, stats_pixels=stats, versions=versions())
    bank = SecretBank(bank.images, bank.group, bank.num_classes, meta)
    path = save_bank(bank, out, force=force)
    summary: dict[str, Any] = {"out": str(path), "source": source, "mode": mode, "size": side,
                               "secrets": int(bank.images.shape[0]), "classes": bank.num_classes,
                               "stats_pixels": stats}
    if sheets:
        summary["sheets"] = [str(p) for p in write_contact_sheets(bank, sheets)]
    return summary


def bank_for(train: "ImageSet", secrets: str, mode: str, seed: int, **options: Any) -> SecretBank:
    """A secret bank for ``train``: the saved bank directory ``secrets``, or one made by the registered source of
    that name (``mode`` class or sample, ``seed``, the source's ``options``); else a one-line error naming both."""
    from .store import load_bank

    if Path(secrets).is_dir():
        return load_bank(secrets)
    if secrets not in SEMANTIC_SOURCES:
        raise DeephideError(f"--secrets: '{secrets}' is neither a bank directory nor a semantic source "
                            f"({', '.join(SEMANTIC_SOURCES.names())})")
    return make_bank(secrets, train, mode, train.shape[0], seed, **options)
