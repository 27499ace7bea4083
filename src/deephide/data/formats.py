"""Which format a path holds and loading it (the ``file`` loader). The on-disk formats of an ImageSet, all exact
(uint8, lossless) and written atomically.

- stored ImageSet: a directory with ``images.npy`` (uint8 (N, H, W, C)), ``labels.npy`` (int64 (N,))
  and ``manifest.json`` (format, version, class names, shape, count, provenance, sha256 of the arrays).
  Format 2 (written now) keeps the arrays as plain ``.npy`` files so a set larger than memory can be
  memory-mapped, written batch by batch (``imageset_writer``) and hashed in chunks; format 1 (one
  ``data.npz``) is still read;
- PNG folder (APBench/ISS layout): ``<root>/data/<index>.png`` in dataset order (0.png, 1.png, ...),
  ``<root>/labels.txt`` (one int per line) and ``<root>/classes.txt`` (one name per line);
- AVATAR npz: one ``.npz`` with ``data`` uint8 (N, H, W, C) and ``targets`` (any int dtype), optionally
  ``classes`` (string array);
- class folders: ``<root>/<class name>/<file name>.png`` (writes a set back in its original layout).

Every reader validates what it reads and raises a one-line DeephideError naming the file.

Modules: ``stored`` (this project's), ``interop.png_folder``, ``interop.avatar_npz``, ``interop.class_folders``;
``arrays`` (bounded reads and checks) and ``mmap`` (streaming) below them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import DeephideError
from .imageset import ImageSet
from .stored import DATA_FILE, DATA_FILES, MANIFEST, load_imageset
from .interop.png_folder import import_png_folder
from .interop.avatar_npz import import_avatar_npz


def detect_format(path: str | os.PathLike) -> str:
    """'imageset', 'png-folder' or 'npz' for an existing path; a one-line error otherwise."""
    p = Path(path)
    if p.is_dir():
        if (p / MANIFEST).is_file():
            return "imageset"
        if (p / "data").is_dir():
            return "png-folder"
        raise DeephideError(
            f"{p}: not a stored ImageSet (manifest.json + images.npy/labels.npy) "
            "nor a PNG folder (data/<i>.png + labels.txt); "
            f"for one subfolder per class use folder:{p}"
        )
    if not p.is_file():
        raise DeephideError(f"{p}: no such file or directory")
    if p.name == MANIFEST:
        return "imageset"
    sibling = p.parent / MANIFEST
    if sibling.is_file():
        try:
            m = json.loads(sibling.read_text(encoding="utf-8"))
            names = [m.get("data_file", DATA_FILE)] + list((m.get("data_files") or {}).values())
        except (OSError, ValueError, AttributeError):
            names = [DATA_FILE, *DATA_FILES.values()]  # a broken manifest is reported by load_imageset
        if p.name in names:
            return "imageset"
    return "npz"


def load_any(path: str | os.PathLike, mmap: bool = False) -> ImageSet:
    """Load a stored ImageSet, a PNG folder or an AVATAR npz, whichever ``path`` is.

    ``mmap``: memory-map a stored ImageSet's images (see ``load_imageset``); other formats are decoded.
    """
    kind = detect_format(path)
    if kind == "imageset":
        return load_imageset(path, mmap=mmap)
    if kind == "png-folder":
        return import_png_folder(path)
    return import_avatar_npz(path)


