"""A data owner's folder, read before anything is written: which files are images, their class, and every file that
cannot be protected (and why).

A folder ``DIR`` holds images at any depth; an image's class is its first folder level under ``DIR`` (``DIR/cats/a.jpg``
is class ``cats``; an image directly in ``DIR`` has the class ``.``), or the ``label`` column of a ``--labels`` CSV
(``path,label``, paths relative to ``DIR``). Every image is decoded whole here, under the decompression-bomb guard,
so a truncated, corrupt, oversized or unsupported file is found before the first output byte.

>>> import tempfile, pathlib
>>> from PIL import Image
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> (d / "cats").mkdir(); Image.new("RGB", (40, 30)).save(d / "cats" / "a.png")
>>> _ = (d / "notes.txt").write_text("hi")
>>> s = scan_folder(d)
>>> [(e.rel, e.label, e.size, e.mode) for e in s.images], s.others, s.bad
([('cats/a.png', 'cats', (40, 30), 'RGB')], ['notes.txt'], [])
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from PIL import Image, ImageOps, UnidentifiedImageError

from ..data.arrays import pil_guard
from ..errors import DeephideError, error_line

#: PIL modes written back in the same mode (values in 8 bits, or 16 for I;16), and what the others become
KEPT_MODES = ("L", "LA", "RGB", "RGBA", "I;16")
CONVERTED = {"1": "L", "P": "RGB", "PA": "RGBA", "CMYK": "RGB", "YCbCr": "RGB", "I;16B": "I;16", "I;16L": "I;16"}
#: file extensions taken as images (others are listed as not images and not copied)
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
#: the EXIF tag of the orientation (1: as stored)
ORIENTATION = 0x0112
#: the smallest side the INN can work on (one Haar level)
MIN_SIDE = 2


@dataclass(frozen=True)
class ImageEntry:
    """One image of the folder: its path relative to the root (POSIX), class label, size (w, h), PIL mode as read,
    the mode it is written in, file format, and whether its EXIF orientation turns it."""

    rel: str
    label: str
    size: tuple[int, int]
    mode: str
    out_mode: str
    format: str
    rotated: bool = False


@dataclass
class FolderScan:
    """The folder as read: its images (sorted by path), the classes (sorted), other files, and bad files (path, why)."""

    root: Path
    labels_csv: Path | None = None
    images: list[ImageEntry] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    others: list[str] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)

    def bad_lines(self) -> str:
        return "\n".join(f"  {rel}: {why}" for rel, why in self.bad)


def out_mode(mode: str) -> str | None:
    """The mode an image of PIL ``mode`` is written in, or None when it cannot carry a perturbation (refused)."""
    if mode in KEPT_MODES:
        return mode
    return CONVERTED.get(mode)


def open_image(path: Path) -> tuple[Image.Image, str, bool]:
    """(image, format, turned): the image at ``path`` decoded whole with its EXIF orientation applied, its file format
    (PNG, JPEG, ...) and whether the orientation turned it; PIL's errors (and bombs) pass through."""
    with pil_guard(), Image.open(path) as im:
        im.load()
        fmt = (im.format or path.suffix.lstrip(".")).upper()
        if im.getexif().get(ORIENTATION, 1) in (1, None):
            return im.copy(), fmt, False
        turned = ImageOps.exif_transpose(im)
        turned.load()
        return turned, fmt, True


def _read_labels(root: Path, labels_csv: Path) -> dict[str, str]:
    try:
        with open(labels_csv, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DeephideError(f"{labels_csv}: not readable ({error_line(e, 120)})") from None
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise DeephideError(f"{labels_csv}: expected a CSV with the columns path,label")
    out = {}
    for r in rows:
        rel = PurePosixPath(str(r["path"]).replace("\\", "/")).as_posix()
        if rel.startswith("/") or ".." in PurePosixPath(rel).parts:
            raise DeephideError(f"{labels_csv}: path {r['path']!r} is not relative to {root}")
        out[rel] = str(r["label"]).strip()
    return out


def scan_folder(root: str | os.PathLike, labels_csv: str | os.PathLike | None = None) -> FolderScan:
    """Read every file under ``root`` (hidden files and folders skipped): images are decoded and checked, each bad
    one recorded with the reason. A missing root or a folder without images is a one-line DeephideError."""
    root = Path(root)
    if not root.is_dir():
        raise DeephideError(f"{root}: no such folder")
    labels = _read_labels(root, Path(labels_csv)) if labels_csv else None
    scan = FolderScan(root=root, labels_csv=Path(labels_csv) if labels_csv else None)
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
    for p in files:
        rel = p.relative_to(root).as_posix()
        if p.suffix.lower() not in IMAGE_EXTS:
            scan.others.append(rel)
            continue
        try:
            im, fmt, turned = open_image(p)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            scan.bad.append((rel, "too many pixels (a decompression bomb?)"))
            continue
        except UnidentifiedImageError:
            scan.bad.append((rel, "not an image PIL can read"))
            continue
        except (OSError, ValueError, SyntaxError) as e:  # truncated, corrupt, unreadable
            scan.bad.append((rel, f"cannot be decoded ({error_line(e, 100)})"))
            continue
        w, h = im.size
        mode = out_mode(im.mode)
        if mode is None:
            scan.bad.append((rel, f"unsupported image mode {im.mode}"))
        elif min(w, h) < MIN_SIDE:
            scan.bad.append((rel, f"too small ({w}x{h}; at least {MIN_SIDE}x{MIN_SIDE})"))
        elif labels is not None and rel not in labels:
            scan.bad.append((rel, f"no label in {labels_csv}"))
        else:
            label = labels[rel] if labels is not None else (rel.split("/")[0] if "/" in rel else ".")
            scan.images.append(ImageEntry(rel, label, (w, h), im.mode, mode, fmt, rotated=turned))
    if not scan.images and not scan.bad:
        raise DeephideError(f"{root}: no image files ({', '.join(IMAGE_EXTS)})")
    scan.classes = sorted({e.label for e in scan.images})
    return scan
