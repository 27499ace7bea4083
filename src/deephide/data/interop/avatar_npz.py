"""The AVATAR npz: ``data`` uint8 (N, H, W, C), ``targets`` (any int dtype), optionally ``classes``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence
import numpy as np

from ...errors import DeephideError
from ...fsutil import atomic_file, check_new_output
from ..imageset import ImageSet
from ..arrays import check_images, check_labels, default_class_names, read_npz


_DATA_KEYS = ("data", "images")
_TARGET_KEYS = ("targets", "labels")
_CLASS_KEYS = ("classes", "class_names", "label_names")


def _pick(arrays: dict[str, np.ndarray], keys: Sequence[str], path: Path, what: str) -> str | None:
    for k in keys:
        if k in arrays:
            return k
    if what:
        raise DeephideError(f"{path}: missing {what} array (one of: {', '.join(keys)}; "
                            f"has: {', '.join(sorted(arrays)) or 'none'})")
    return None


def import_avatar_npz(path: str | os.PathLike) -> ImageSet:
    """Read an AVATAR-style npz: ``data`` uint8 (N, H, W, C), ``targets`` ints, optional ``classes``."""
    path = Path(path)
    arrays = read_npz(path)
    dk = _pick(arrays, _DATA_KEYS, path, "image")
    tk = _pick(arrays, _TARGET_KEYS, path, "label")
    ck = _pick(arrays, _CLASS_KEYS, path, "")
    where = str(path)
    images = check_images(arrays[dk], where, dk)
    names: tuple[str, ...] | None = None
    if ck is not None:
        c = arrays[ck]
        if c.ndim != 1 or c.dtype.kind not in "US" or c.size == 0:
            raise DeephideError(f"{where}: '{ck}' must be a non-empty 1-D string array")
        names = tuple(x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x) for x in c.tolist())
    labels = check_labels(arrays[tk], images.shape[0], len(names) if names else None, where, tk)
    prov = {"format": "avatar-npz", "path": str(path)}
    return ImageSet(images, labels, names or default_class_names(labels), prov, where)


def export_avatar_npz(ds: ImageSet, path: str | os.PathLike, force: bool = False) -> Path:
    """Write ``ds`` as an npz with ``data`` (N, H, W, C) uint8, ``targets`` int64 and ``classes`` (str)."""
    path = check_new_output(path, force)
    with atomic_file(path) as f:
        np.savez(f, data=np.ascontiguousarray(ds.images), targets=ds.labels.astype(np.int64),
                 classes=np.array(ds.class_names, dtype=str))
    return path


