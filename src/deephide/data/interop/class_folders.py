"""Class folders: ``<root>/<class name>/<file name>.png``, to write a set back in its original layout."""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import Sequence
from PIL import Image

from ...errors import DeephideError
from ...fsutil import atomic_dir
from ..imageset import ImageSet


def export_class_folders(ds: ImageSet, root: str | os.PathLike, names: Sequence[str] | None = None,
                         force: bool = False) -> Path:
    """Write each image to ``<root>/<class name>/<file name>.png`` (lossless PNG, whatever the source).

    names: one relative file name per sample; default ``provenance["files"]`` (the folder loader's
    record, relative to its root, e.g. ``cat/img1.jpg``) when it has one entry per sample, else
    ``<index>.png``. A leading component equal to the class folder is dropped, the extension becomes
    ``.png`` (JPEG would destroy a perturbation), and unsafe names (absolute, '..') fall back to the
    index. Class folders are written in the set's class order, so a ``folder:`` reload sorts them by
    name: the labels match only when the names already sort in label order.
    """
    root = Path(root)
    n = len(ds)
    if names is None:
        files = ds.provenance.get("files")
        names = files if isinstance(files, list) and len(files) == n and all(isinstance(x, str) for x in files) \
            else None
    elif len(names) != n:
        raise DeephideError(f"{root}: {len(names)} file names given for {n} images")
    dirs = _class_dirs(ds.class_names)
    with atomic_dir(root, force=force) as tmp:
        used: set[str] = set()
        gray = ds.images.shape[3] == 1
        for i, (img, y) in enumerate(zip(ds.images, ds.labels)):
            rel = _safe_rel(names[i] if names is not None else None, dirs[y], i)
            key = f"{dirs[y]}/{rel}"
            if key in used:  # e.g. a.jpg and a.png in one folder both become a.png
                rel = str(PurePosixPath(rel).with_name(f"{PurePosixPath(rel).stem}_{i}.png"))
                key = f"{dirs[y]}/{rel}"
            used.add(key)
            out = tmp / dirs[y] / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img[..., 0] if gray else img, "L" if gray else "RGB").save(out, compress_level=4)
    return root


def _class_dirs(class_names: Sequence[str]) -> list[str]:
    """A distinct, path-safe folder name per class."""
    out: list[str] = []
    for k, c in enumerate(class_names):
        d = re.sub(r"[/\\\x00]", "_", str(c)).strip()
        if d in ("", ".", "..") or d in out:
            d = f"{d or 'class'}_{k}" if d not in ("", ".", "..") else f"class_{k}"
        out.append(d)
    return out


def _safe_rel(name: str | None, class_dir: str, index: int) -> str:
    """A relative PNG path under the class folder, or ``<index>.png`` when ``name`` is unsafe."""
    if not name:
        return f"{index}.png"
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts]
    if not parts or PurePosixPath(name).is_absolute() or any(p in ("..", ".", "") or p.startswith("/") for p in parts):
        return f"{index}.png"
    if len(parts) > 1 and parts[0] == class_dir:
        parts = parts[1:]
    rel = PurePosixPath(*parts)
    return str(rel.with_suffix(".png")) if rel.stem else f"{index}.png"


