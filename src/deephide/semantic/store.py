"""A secret bank on disk: ``<dir>/secrets.npz`` (uint8 images, int64 group) + ``<dir>/manifest.json``.

The manifest holds the bank's meta (source, options, class names, prompts, cluster ids, anchors,
seeds). Written atomically (a temporary directory renamed when complete); read without pickle.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DeephideError, error_line
from ..fsutil import atomic_dir, write_json
from .bank import SecretBank

FORMAT = "deephide-secret-bank"
VERSION = 1
ARRAYS = "secrets.npz"
MANIFEST = "manifest.json"


def save_bank(bank: SecretBank, out_dir: str | Path, force: bool = False) -> Path:
    """Write ``bank`` to the directory ``out_dir`` (refused if it exists, unless ``force``)."""
    out = Path(out_dir)
    with atomic_dir(out, force=force) as tmp:
        with open(tmp / ARRAYS, "wb") as f:
            np.savez_compressed(f, images=np.ascontiguousarray(bank.images, dtype=np.uint8),
                                group=bank.group.astype(np.int64))
        write_json(tmp / MANIFEST, {
            "format": FORMAT, "version": VERSION, "num_classes": int(bank.num_classes),
            "count": int(bank.images.shape[0]), "shape": list(bank.images.shape[1:]),
            "meta": bank.meta,
        })
    return out


def load_bank(in_dir: str | Path) -> SecretBank:
    """Read a bank written by ``save_bank``; any problem is a one-line DeephideError."""
    d = Path(in_dir)
    man_path, arr_path = d / MANIFEST, d / ARRAYS
    if not man_path.is_file() or not arr_path.is_file():
        raise DeephideError(f"{d}: not a secret bank (needs {MANIFEST} and {ARRAYS}; "
                            "make one with make_bank/save_bank)")
    try:
        man = json.loads(man_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DeephideError(f"{man_path}: unreadable manifest ({e})") from None
    if not isinstance(man, dict) or man.get("format") != FORMAT:
        raise DeephideError(f"{man_path}: not a {FORMAT} manifest")
    if man.get("version") != VERSION:
        raise DeephideError(f"{man_path}: bank format version {man.get('version')} not supported (expected {VERSION})")
    try:
        with np.load(arr_path, allow_pickle=False) as z:
            images, group = z["images"], z["group"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise DeephideError(f"{arr_path}: unreadable secret arrays ({error_line(e)})") from None
    if group.dtype.kind not in "iu":
        raise DeephideError(f"{arr_path}: group ids must be integers, got {group.dtype}")
    if images.shape[0] != man.get("count") or list(images.shape[1:]) != man.get("shape"):
        raise DeephideError(f"{arr_path}: arrays {images.shape} do not match the manifest "
                            f"(count {man.get('count')}, shape {man.get('shape')})")
    try:
        return SecretBank(images, group, int(man["num_classes"]), dict(man.get("meta") or {}))
    except DeephideError as e:
        raise DeephideError(f"{arr_path}: {e}") from None
