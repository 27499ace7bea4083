"""The APBench / ISS PNG folder: ``<root>/data/<index>.png`` in dataset order, ``labels.txt`` (one int per line)
and ``classes.txt``; read (modes converted to 8-bit RGB and counted) and written."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any
import numpy as np
from PIL import Image, UnidentifiedImageError

from ...errors import DeephideError, error_line
from ...fsutil import atomic_dir
from ..imageset import ImageSet
from ..arrays import check_labels, default_class_names, pil_guard


log = logging.getLogger("deephide")

_INDEX_PNG = re.compile(r"(\d+)\.png", re.IGNORECASE)
_LABEL_FILES = ("labels.txt", "labels.npy", "labels.json")


def export_png_folder(ds: ImageSet, root: str | os.PathLike, force: bool = False) -> Path:
    """Write ``<root>/data/<i>.png`` (i = dataset index, not zero-padded), labels.txt, classes.txt."""
    root = Path(root)
    with atomic_dir(root, force=force) as tmp:
        (tmp / "data").mkdir()
        gray = ds.images.shape[3] == 1
        for i, img in enumerate(ds.images):
            # PNG is lossless: L for one channel, RGB for three, so the round trip is bitwise
            Image.fromarray(img[..., 0] if gray else img, "L" if gray else "RGB").save(tmp / "data" / f"{i}.png",
                                                                                       compress_level=4)
        (tmp / "labels.txt").write_text("".join(f"{int(v)}\n" for v in ds.labels), encoding="utf-8")
        (tmp / "classes.txt").write_text("".join(f"{_one_line(c)}\n" for c in ds.class_names), encoding="utf-8")
    return root


def _one_line(name: str) -> str:
    """A class name that fits on one line of classes.txt."""
    return " ".join(str(name).splitlines()) or "_"


def _read_label_file(root: Path) -> tuple[np.ndarray, Path]:
    """Labels of a PNG folder from labels.txt (one int per line), labels.npy or labels.json."""
    for name in _LABEL_FILES:
        p = root / name
        if p.is_file():
            break
    else:
        raise DeephideError(f"{root}: no labels file (expected one of: {', '.join(_LABEL_FILES)})")
    try:
        if p.suffix == ".npy":
            a = np.load(p, allow_pickle=False)
        elif p.suffix == ".json":
            a = np.asarray(json.loads(p.read_text(encoding="utf-8")))
        else:
            a = _parse_label_lines(p)
    except DeephideError:
        raise
    except ValueError as e:
        msg = "contains object arrays (refused)" if "pickle" in str(e).lower() \
            else f"not readable ({error_line(e, 120)})"
        raise DeephideError(f"{p}: {msg}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DeephideError(f"{p}: not readable ({error_line(e, 120)})") from None
    return a, p


def _parse_label_lines(p: Path) -> np.ndarray:
    lines = p.read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    out = np.empty(len(lines), dtype=np.int64)
    for i, line in enumerate(lines):
        try:
            out[i] = int(line.strip())
        except (ValueError, OverflowError):  # OverflowError: does not fit int64
            raise DeephideError(f"{p}: line {i + 1} is not an integer label: {line.strip()[:40]!r}") from None
    return out


def _png_index(data: Path) -> list[Path]:
    """The PNGs of ``data/`` ordered by their integer name, which must be exactly 0..N-1."""
    found: dict[int, Path] = {}
    for p in data.iterdir():
        m = _INDEX_PNG.fullmatch(p.name)
        if not m:
            continue
        i = int(m.group(1))
        if i in found:
            raise DeephideError(f"{p}: duplicate index {i} (also {found[i].name})")
        found[i] = p
    if not found:
        raise DeephideError(f"{data}: no <index>.png files")
    n = len(found)
    if max(found) != n - 1:
        missing = next(i for i in range(n) if i not in found)
        raise DeephideError(f"{data}: indices must be 0..{n - 1} without gaps; {missing}.png is missing")
    return [found[i] for i in range(n)]


#: modes a PNG folder may hold whose conversion to uint8 L/RGB loses information
_LOSSY_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F", "CMYK", "LA", "La", "PA",
                "RGBA", "RGBa", "YCbCr", "LAB", "HSV")


def _png_array(p: Path) -> tuple[np.ndarray, str]:
    """One image as uint8 (H, W, C) and its original mode.

    L/1/I;16 -> C=1, RGB/P/RGBA -> C=3 (alpha dropped: colour values stay exact).
    """
    try:
        with Image.open(p) as im:
            im.load()
            mode = im.mode
            if mode in ("L", "RGB"):
                a = np.asarray(im)
            elif mode == "1":
                a = np.asarray(im.convert("L"))
            elif mode.startswith("I"):
                a = to_uint8_gray(im)
            elif mode in ("LA", "La"):
                a = np.asarray(im)[..., 0]
            elif mode in ("RGBA", "RGBa", "RGBX"):
                a = np.asarray(im)[..., :3]
            else:
                a = np.asarray(im.convert("RGB"))
    except DeephideError:
        raise
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as e:
        raise DeephideError(f"{p}: unreadable image ({error_line(e, 120)})") from None
    return (a[..., None] if a.ndim == 2 else a), mode


def conversion_note(counts: dict[str, int], first: dict[str, str], where: str, kept: int) -> str | None:
    """One warning line for lossy mode conversions (None when there were none)."""
    lossy = {m: c for m, c in counts.items() if m in _LOSSY_MODES}
    if not lossy:
        return None
    n = sum(lossy.values())
    modes = ", ".join(f"{m} x{c}" for m, c in sorted(lossy.items()))
    one = first[sorted(lossy)[0]]
    return (f"{where}: converted {n} of {kept} image(s) to 8-bit (alpha dropped, depth or colour space "
            f"reduced: {modes}; e.g. {one}); counted in provenance 'converted'")


def to_uint8_gray(im: Image.Image) -> np.ndarray:
    """16/32-bit grayscale -> uint8 by keeping the high byte of the 16-bit range (rounded)."""
    a = np.asarray(im).astype(np.int64)
    if im.mode.startswith("I;16") or a.max(initial=0) > 255:
        a = (np.clip(a, 0, 65535) * 255 + 32767) // 65535
    return np.clip(a, 0, 255).astype(np.uint8)


def import_png_folder(root: str | os.PathLike) -> ImageSet:
    """Read an APBench/ISS PNG folder back; our own exports round-trip bitwise."""
    root = Path(root)
    data = root / "data"
    if not data.is_dir():
        raise DeephideError(f"{root}: not a PNG folder (no data/ directory)")
    files = _png_index(data)
    raw, lpath = _read_label_file(root)
    classes = _read_classes(root)
    labels = check_labels(raw, len(files), len(classes) if classes else None, str(lpath))
    with pil_guard():
        read = [_png_array(p) for p in files]
    arrays = [a for a, _ in read]
    counts: dict[str, int] = {}
    first: dict[str, str] = {}
    for p, (_, mode) in zip(files, read):
        if mode not in ("L", "RGB"):
            counts[mode] = counts.get(mode, 0) + 1
            first.setdefault(mode, str(p))
    h, w = arrays[0].shape[:2]
    channels = max(a.shape[2] for a in arrays)
    images = np.empty((len(arrays), h, w, channels), dtype=np.uint8)
    for p, a, out in zip(files, arrays, images):
        if a.shape[:2] != (h, w):
            raise DeephideError(f"{p}: size {a.shape[1]}x{a.shape[0]} differs from {files[0].name} ({w}x{h})")
        out[...] = a  # a gray image in an RGB set is replicated exactly by broadcasting
    names = classes or default_class_names(labels)
    prov: dict[str, Any] = {"format": "png-folder", "path": str(root), "labels_file": lpath.name}
    if counts:
        prov["converted"] = counts
        note = conversion_note(counts, first, str(root), len(files))
        if note:
            log.warning("%s", note)
    return ImageSet(images, labels, names, prov, str(root))


def _read_classes(root: Path) -> tuple[str, ...] | None:
    p = root / "classes.txt"
    if not p.is_file():
        return None
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DeephideError(f"{p}: not readable ({error_line(e, 120)})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DeephideError(f"{p}: no class names")
    return tuple(lines)


