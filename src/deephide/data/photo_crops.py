"""The ``photo-crops`` loader: square crops at several scales from a list of natural photographs, each with a
random class, for training a hider that needs no labels of its covers (``photo-crops:MANIFEST?size=64&n=8000``).

The manifest is a tab-separated file with a header and the columns ``role path sha256`` (more columns, e.g.
package, licence and credit, are kept in the provenance): role ``train`` photos make the train split, role
``heldout`` photos the test split, so a hider's reveal gate is measured on photographs it never saw. Every
photo's sha256 is checked, so a set is identified by the manifest, the options and the seed.

A crop: a photo drawn uniformly, a square side drawn log-uniformly between ``size`` and the photo's shorter side
(fine texture up to whole scenes), a uniform position, a horizontal flip with probability 1/2, resized to
``size`` x ``size`` (PIL's reducing resize); its class uniform in ``0..classes-1``. Class-balanced hider batches
then give every crop a random class-wise secret.

Example (two photos made here):
    >>> import tempfile, hashlib, pathlib
    >>> from PIL import Image
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> rows = ["role\\tpath\\tsha256"]
    >>> for i, role in enumerate(("train", "heldout")):
    ...     p = d / f"p{i}.png"; Image.new("RGB", (120, 90), (40 * i, 90, 200)).save(p)
    ...     rows.append(f"{role}\\t{p}\\t{hashlib.sha256(p.read_bytes()).hexdigest()}")
    >>> _ = (d / "photos.tsv").write_text("\\n".join(rows) + "\\n")
    >>> ds = photo_crops(str(d / "photos.tsv"), "train", size=32, n=20, classes=4)
    >>> ds.images.shape, ds.num_classes
    ((20, 32, 32, 3), 4)
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from ..errors import DeephideError
from .arrays import pil_guard
from .imageset import ImageSet
from .registry import DATASETS, check_split, int_option, need_path

#: a photo's longer side is reduced to this before cropping (bounds memory; owners' photos are up to ~2k-4k)
MAX_SIDE = 3072
ROLES = {"train": "train", "test": "heldout"}
REQUIRED = ("role", "path", "sha256")


def read_manifest(path: Path) -> list[dict[str, str]]:
    """The manifest's rows as dicts (header names as keys); a missing column or an empty file is a one-line error."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
    except (OSError, UnicodeDecodeError) as e:
        raise DeephideError(f"{path}: cannot read the photo manifest ({e})") from None
    if not rows:
        raise DeephideError(f"{path}: the photo manifest lists no photos")
    missing = [c for c in REQUIRED if c not in rows[0]]
    if missing:
        raise DeephideError(f"{path}: the photo manifest lacks the column(s) {', '.join(missing)} "
                            f"(tab-separated, with a header: {' '.join(REQUIRED)} ...)")
    return rows


def load_photo(path: Path, sha256: str, manifest: Path) -> np.ndarray:
    """One listed photo as uint8 RGB (H, W, 3), EXIF orientation applied, its longer side at most MAX_SIDE;
    a missing file or a sha256 other than the manifest's is a one-line error naming both files."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DeephideError(f"{manifest}: listed photo {path} cannot be read ({e.strerror}); "
                            "the Debian packages named in the manifest install the listed ones (make photos)") from None
    if hashlib.sha256(data).hexdigest() != sha256.strip().lower():
        raise DeephideError(f"{manifest}: listed photo {path} has another sha256 than the manifest's")
    with pil_guard():
        try:
            im = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
            im = im.convert("RGB")
        except Exception as e:  # noqa: BLE001 - PIL raises many types for a bad file
            raise DeephideError(f"{manifest}: listed photo {path} is not a readable image ({e})") from None
    if max(im.size) > MAX_SIDE:
        scale = MAX_SIDE / max(im.size)
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.LANCZOS)
    return np.asarray(im)


def random_crops(photos: list[np.ndarray], n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` crops (n, size, size, 3) uint8: photo uniform, side log-uniform in [size, shorter side], flip 1/2."""
    out = np.empty((n, size, size, 3), np.uint8)
    ims = [Image.fromarray(p) for p in photos]
    for i in range(n):
        im = ims[int(rng.integers(len(ims)))]
        short = min(im.size)
        side = short if short <= size else int(round(math.exp(rng.uniform(math.log(size), math.log(short)))))
        x0, y0 = int(rng.integers(im.width - side + 1)), int(rng.integers(im.height - side + 1))
        crop = im.resize((size, size), Image.Resampling.BICUBIC, box=(x0, y0, x0 + side, y0 + side),
                         reducing_gap=2.0)
        a = np.asarray(crop)
        out[i] = a[:, ::-1] if rng.random() < 0.5 else a
    return out


@DATASETS.register("photo-crops")
def photo_crops(path: str | None = None, split: str = "train", size: int = 64, n: int = 8000, classes: int = 10,
                seed: int = 0) -> ImageSet:
    """Random multi-scale square crops of the manifest's photos (train split: role ``train``; test split: role
    ``heldout``), each with a uniformly random class. Returns uint8 (n, size, size, 3)."""
    check_split(split, "photo-crops")
    size = int_option("size", size, 8, 4096)
    n = int_option("n", n, 1, 1_000_000)
    classes = int_option("classes", classes, 1, 10_000)
    seed = int_option("seed", seed, 0)
    manifest = need_path(path, "photo-crops", "photo-crops:/path/to/photos.tsv (role, path, sha256 columns)")
    rows = [r for r in read_manifest(manifest) if r["role"].strip() == ROLES[split]]
    if not rows:
        raise DeephideError(f"{manifest}: no photos with role '{ROLES[split]}' (the {split} split)")
    base = manifest.parent
    photos = []
    for r in rows:
        p = Path(r["path"].strip())
        photos.append(load_photo(p if p.is_absolute() else base / p, r["sha256"], manifest))
    # the test split draws from its own stream: a different seed gives different crops of the same photos
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    images = random_crops(photos, n, size, rng)
    labels = rng.integers(0, classes, size=n).astype(np.int64)
    prov: dict[str, Any] = {"photos": [{k: v for k, v in r.items() if k != "role"} for r in rows],
                            "crops": "side log-uniform in [size, shorter side], flip 1/2, bicubic; class uniform"}
    return ImageSet(images, labels, tuple(f"secret-{k}" for k in range(classes)), prov, source=str(manifest))
