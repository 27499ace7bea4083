"""The ``folder`` loader: a labelled image folder (one subfolder per class) as a square-resized ImageSet, for
experiments (``folder:/imgs?size=64``). A data owner's folder protected at its own sizes is deephide.owner.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import DeephideError
from .arrays import pil_guard
from .imageset import ImageSet
from .interop.png_folder import conversion_note, to_uint8_gray
from .registry import DATASETS, check_split, int_option, need_path

log = logging.getLogger("deephide")


#: unreadable files named one line each, up to this many (all are listed in the provenance)
_WARN_FILES = 20


def _image_exts() -> set[str]:
    return {e.lower() for e in Image.registered_extensions()}


def _class_root(root: Path, split: str) -> Path:
    """``root/train`` / ``root/test`` (or ``root/val``) when the folder is split, else ``root``."""
    held = {p.name for p in root.iterdir() if p.is_dir()}
    if "train" in held and ({"test", "val"} & held):
        return root / ("train" if split == "train" else ("test" if "test" in held else "val"))
    return root


def _list_images(class_dir: Path, exts: set[str]) -> list[Path]:
    """Image files (by extension, hidden ones skipped) under ``class_dir``, in sorted walk order."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(class_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(Path(dirpath) / f for f in sorted(filenames)
                   if not f.startswith(".") and os.path.splitext(f)[1].lower() in exts)
    return out


def to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB: alpha composited on white, 16/32-bit gray scaled to 8 bits, CMYK/P converted."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode.startswith("I") or mode == "F":
        arr = np.asarray(im)
        if mode == "F":
            arr = np.clip(np.nan_to_num(arr) * (255.0 if arr.max(initial=0) <= 1.0 else 1.0),
                          0, 255).round().astype(np.uint8)
        else:
            arr = to_uint8_gray(im)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode == "P" and "transparency" in im.info:
        im, mode = im.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # transparent pixels carry arbitrary colours: show them as a viewer would, on white
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def resize_crop(im: Image.Image, size: int) -> Image.Image:
    """Resize so the short side is ``size`` (bicubic, antialiased), then centre-crop size x size."""
    w, h = im.size
    if (w, h) == (size, size):
        return im  # keep exact pixels (e.g. an exported 32x32 set)
    s = size / min(w, h)
    nw, nh = max(size, round(w * s)), max(size, round(h * s))
    im = im.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    return im.crop((left, top, left + size, top + size))


def _load_square(path: Path, size: int) -> tuple[np.ndarray, str]:
    """One file -> (uint8 (size, size, 3), its original mode); raises whatever PIL raises for a bad file."""
    with Image.open(path) as im:
        if im.format == "JPEG":
            im.draft(None, (size, size))  # let libjpeg decode at 1/2..1/8 scale: much faster for big photos
        im.load()
        return np.asarray(resize_crop(to_rgb(im), size).convert("RGB")), im.mode


@DATASETS.register("folder")
def folder(path: str | None = None, split: str = "train", size: int = 32, classes: int | None = None) -> ImageSet:
    """Labelled image folder (one subfolder per class, sorted); resize short side + centre crop to size,
    classes=K keeps the first K.

    A photo collection is taken as it is: an unreadable file (truncated, empty, not an image, a
    decompression bomb over arrays.MAX_PIXELS) is skipped with a warning naming it, and any other
    mode (gray, palette, CMYK, 16-bit, alpha composited on white) is converted to 8-bit RGB, lossy
    conversions with one warning line. Both are counted in the provenance (``skipped``,
    ``converted``), which a stored set keeps in its manifest.
    """
    check_split(split, "folder")
    size = int_option("size", size, 1, 4096)
    root = need_path(path, "folder", "folder:/path/to/images (one subfolder per class)")
    if not root.is_dir():
        raise DeephideError(f"{root}: no such directory")
    croot = _class_root(root, split)
    all_classes = sorted(p.name for p in croot.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not all_classes:
        raise DeephideError(f"{croot}: no class subfolders (expected {croot}/<class>/<image>)")
    k = len(all_classes) if classes is None else int_option("classes", classes, 1, len(all_classes))
    names = tuple(all_classes[:k])
    exts = _image_exts()
    files = [(p, y) for y, c in enumerate(names) for p in _list_images(croot / c, exts)]
    if not files:
        raise DeephideError(f"{croot}: no image files in the class subfolders")
    images = np.empty((len(files), size, size, 3), dtype=np.uint8)
    labels = np.empty(len(files), dtype=np.int64)
    kept: list[str] = []
    skipped: list[str] = []
    converted: dict[str, int] = {}
    first: dict[str, str] = {}
    with pil_guard():
        for p, y in files:
            rel = p.relative_to(croot).as_posix()
            try:
                images[len(kept)], mode = _load_square(p, size)
            except Exception as e:  # noqa: BLE001 - PIL plugins raise many types for a bad file; skip it
                skipped.append(rel)
                if len(skipped) <= _WARN_FILES:
                    log.warning("%s: skipped unreadable image (%s: %s)", p, type(e).__name__,
                                " ".join(str(e).split())[:80])
                continue
            if mode != "RGB":
                converted[mode] = converted.get(mode, 0) + 1
                first.setdefault(mode, str(p))
            labels[len(kept)] = y
            kept.append(rel)
    if not kept:
        raise DeephideError(f"{croot}: none of the {len(files)} image files could be read")
    if len(skipped) > 1:  # one skip is already named by its own line
        more = f", {len(skipped) - _WARN_FILES} not listed above" if len(skipped) > _WARN_FILES else ""
        log.warning("%s: skipped %d unreadable image(s) of %d%s; listed in provenance 'skipped'",
                    croot, len(skipped), len(files), more)
    note = conversion_note(converted, first, str(croot), len(kept))
    if note:
        log.warning("%s", note)
    n = len(kept)
    prov: dict[str, Any] = {"root": str(croot), "size": size, "files": kept,
                            "skipped": {"count": len(skipped), "files": skipped[:1000]},
                            "converted": converted}
    if k < len(all_classes):
        prov["classes_total"] = len(all_classes)
    return ImageSet(images[:n].copy() if n < len(files) else images, labels[:n].copy(), names, prov, str(croot))
