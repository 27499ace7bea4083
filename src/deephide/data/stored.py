"""The stored ImageSet (this project's own format): ``images.npy`` + ``labels.npy`` + ``manifest.json`` with their
sha256; format 2 written (memory-mappable, written batch by batch), format 1 (one ``data.npz``) still read."""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path, PurePosixPath
from typing import Any, Iterator
import numpy as np

from ..errors import DeephideError, error_line
from ..fsutil import atomic_dir, atomic_file, write_json
from .imageset import ImageSet
from .mmap import array_sha256, release_rows, rows_per_chunk
from .arrays import json_safe, npy_header, check_images, check_labels, read_npz


FORMAT = "deephide-imageset"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
DATA_FILE = "data.npz"  # format 1
DATA_FILES = {"images": "images.npy", "labels": "labels.npy"}  # format 2


def save_imageset(ds: ImageSet, path: str | os.PathLike, force: bool = False) -> Path:
    """Write ``ds`` as a directory ``path`` (format 2: images.npy, labels.npy, manifest.json), atomically."""
    with imageset_writer(path, len(ds), ds.shape, force=force) as w:
        w.finish(ds)
    return Path(path)


def _create_npy(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """A new uint8 ``.npy`` file of ``shape``, its blocks allocated, opened as a writable memory map."""
    from numpy.lib import format as npy_format

    with open(path, "wb") as f:
        npy_format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": tuple(shape)})
        offset, size = f.tell(), math.prod(shape)
        if size:
            # real blocks now: a full disk fails here with ENOSPC, not later as SIGBUS on a mapped write
            os.posix_fallocate(f.fileno(), offset, size)
    if not size:
        return np.zeros(shape, np.uint8)  # nothing to map: the header alone is the whole (empty) file
    return np.memmap(path, dtype=np.uint8, mode="r+", offset=offset, shape=tuple(shape))


class StoredSetWriter:
    """An ImageSet being written (see ``imageset_writer``): fill ``images``, then call ``finish``."""

    def __init__(self, path: Path, tmp: Path, n: int, shape: tuple[int, int, int]) -> None:
        self.path, self.tmp, self.finished = path, tmp, False
        #: writable uint8 (N, H, W, C) backed by the output file: fill it batch by batch
        self.images = _create_npy(tmp / DATA_FILES["images"], (n, *shape))

    def finish(self, ds: ImageSet) -> None:
        """Write labels, class names and provenance of ``ds``; its images are copied in unless they are ``images``."""
        if ds.images.shape != self.images.shape:
            raise DeephideError(f"{self.path}: writer holds {self.images.shape} images, set has {ds.images.shape}")
        if ds.images is not self.images:
            step = rows_per_chunk(ds.images)
            for i in range(0, len(ds), step):
                self.images[i:i + step] = ds.images[i:i + step]
                release_rows(self.images, i, i + step)
                release_rows(ds.images, i, i + step)
        if isinstance(self.images, np.memmap):
            self.images.flush()  # msync: the data is on disk before the manifest names it
        labels = np.ascontiguousarray(ds.labels.astype("<i8"))  # fixed byte order: the hash is portable
        with atomic_file(self.tmp / DATA_FILES["labels"]) as f:
            np.save(f, labels, allow_pickle=False)
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "data_files": dict(DATA_FILES),
            "count": len(ds),
            "shape": list(ds.shape),
            "class_names": list(ds.class_names),
            "sha256": {"images": array_sha256(self.images), "labels": array_sha256(labels)},
            "provenance": json_safe(ds.provenance, str(self.path)),
        }
        write_json(self.tmp / MANIFEST, manifest)
        self.finished = True


@contextlib.contextmanager
def imageset_writer(path: str | os.PathLike, n: int, shape: tuple[int, int, int],
                    force: bool = False) -> Iterator[StoredSetWriter]:
    """Write a stored ImageSet of ``n`` images of ``shape`` (H, W, C) without holding it in memory.

    ``path`` appears only when the block ends normally after ``finish``; on any error (or a kill) the
    temporary directory beside it is removed (or cleaned by the next write there) and an existing
    ``path`` is untouched. An existing ``path`` is refused unless ``force``.
    """
    path = Path(path)
    with atomic_dir(path, force=force) as tmp:
        w = StoredSetWriter(path, tmp, n, tuple(shape))
        yield w
        if not w.finished:
            raise DeephideError(f"{path}: the set was not finished (no labels or manifest written)")


def _manifest_paths(path: Path) -> tuple[Path, Path | None]:
    """(manifest, npz-as-given) for a stored-set directory, its manifest.json or its .npz."""
    if path.is_dir():
        return path / MANIFEST, None
    if path.name == MANIFEST:
        return path, None
    return path.parent / MANIFEST, path


def _read_manifest(mpath: Path) -> dict[str, Any]:
    """Parse and type-check a manifest; any problem is a one-line error naming it."""
    if not mpath.is_file():
        raise DeephideError(f"{mpath}: no such file (a stored ImageSet needs manifest.json)")
    try:
        m = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise DeephideError(f"{mpath}: cannot read ({error_line(e, 120)})") from None
    except json.JSONDecodeError as e:
        raise DeephideError(f"{mpath}: not valid JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(m, dict):
        raise DeephideError(f"{mpath}: manifest must be a JSON object")
    if m.get("format") != FORMAT:
        raise DeephideError(f"{mpath}: unknown format {m.get('format')!r} (expected {FORMAT!r})")
    version = m.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION:
        raise DeephideError(f"{mpath}: unsupported format version {version!r} "
                            f"(this deephide reads 1..{FORMAT_VERSION})")
    _require(m, "count", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
             "a non-negative integer", mpath)
    _require(m, "shape", lambda v: isinstance(v, list) and len(v) == 3
             and all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v),
             "a list of 3 positive integers", mpath)
    _require(m, "class_names", lambda v: isinstance(v, list) and len(v) > 0 and all(isinstance(x, str) for x in v),
             "a non-empty list of strings", mpath)
    _require(m, "sha256", lambda v: isinstance(v, dict)
             and all(isinstance(v.get(k), str) for k in ("images", "labels")),
             "an object with 'images' and 'labels' hashes", mpath)
    _require(m, "provenance", lambda v: isinstance(v, dict), "an object", mpath)
    if version == 1:
        _plain_name(m.get("data_file", DATA_FILE), "data_file", mpath)
    else:
        files = m.get("data_files")
        if not isinstance(files, dict) or set(files) != set(DATA_FILES):
            raise DeephideError(f"{mpath}: 'data_files' must name the 'images' and 'labels' files")
        for key, name in files.items():
            _plain_name(name, f"data_files.{key}", mpath)
    return m


def _plain_name(name: Any, key: str, mpath: Path) -> None:
    """A data file must sit beside the manifest: no directories, no '..'."""
    if not isinstance(name, str) or PurePosixPath(name).name != name or name in ("", ".", ".."):
        raise DeephideError(f"{mpath}: '{key}' must be a plain file name, got {name!r}")


def _data_paths(mpath: Path, m: dict[str, Any]) -> list[Path]:
    """The data file(s) a checked manifest names."""
    if m["version"] == 1:
        return [mpath.parent / m.get("data_file", DATA_FILE)]
    return [mpath.parent / m["data_files"][k] for k in ("images", "labels")]


def _read_npy(path: Path, mmap: bool = False) -> np.ndarray:
    """One ``.npy`` array, its header checked before any data is read; memory-mapped if ``mmap``.

    Refused with one line: a missing or unreadable file, object dtypes (they need pickle), Fortran
    order, and a header whose declared size differs from the bytes the file holds (truncated or forged).
    """
    if not path.is_file():
        raise DeephideError(f"{path}: no such file")
    try:
        with open(path, "rb") as f:
            header = npy_header(f)
        if header is None:
            raise ValueError("unsupported .npy header version")
        shape, fortran, dtype, header_len, declared = header
        held = path.stat().st_size - header_len
    except (OSError, ValueError, EOFError, SyntaxError, TypeError) as e:
        raise DeephideError(f"{path}: not a readable .npy file ({error_line(e, 120)})") from None
    if dtype.hasobject:
        raise DeephideError(f"{path}: object array (refused: it needs pickle to load)")
    if fortran:
        raise DeephideError(f"{path}: Fortran-ordered array (deephide writes C order; the file was made elsewhere)")
    if declared != held:
        raise DeephideError(f"{path}: header declares shape {tuple(shape)} ({declared} bytes) but the file holds "
                            f"{max(held, 0)} bytes (truncated or forged header)")
    try:
        if mmap and declared:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DeephideError(f"{path}: not a readable .npy file ({error_line(e, 120)})") from None


def _require(m: dict[str, Any], key: str, ok: Any, what: str, mpath: Path) -> None:
    if key not in m:
        raise DeephideError(f"{mpath}: missing key '{key}'")
    if not ok(m[key]):
        raise DeephideError(f"{mpath}: '{key}' must be {what}")


def load_imageset(path: str | os.PathLike, mmap: bool = False) -> ImageSet:
    """Read a stored ImageSet (its directory, manifest.json or a data file) and verify it fully.

    Checks the manifest, dtype uint8, shapes against the manifest, label range and both sha256s.
    ``mmap``: map the images of a format-2 set read-only instead of reading them (for sets larger than
    memory; pages are read on use). Format-1 sets (one data.npz) are always read whole.
    """
    path = Path(path)
    mpath, given = _manifest_paths(path)
    m = _read_manifest(mpath)
    dpaths = _data_paths(mpath, m)
    if given is not None and given.resolve() not in [d.resolve() for d in dpaths]:
        raise DeephideError(f"{given}: {mpath} describes {', '.join(d.name for d in dpaths)}, not this file")
    if m["version"] == 1:
        arrays = read_npz(dpaths[0])
        for key in ("images", "labels"):
            if key not in arrays:
                raise DeephideError(f"{dpaths[0]}: missing array '{key}' (has: {', '.join(sorted(arrays)) or 'none'})")
        where = {"images": str(dpaths[0]), "labels": str(dpaths[0])}
    else:
        arrays = {"images": _read_npy(dpaths[0], mmap=mmap), "labels": _read_npy(dpaths[1])}
        where = {"images": str(dpaths[0]), "labels": str(dpaths[1])}
    images = check_images(arrays["images"], where["images"])
    n, shape = m["count"], tuple(m["shape"])
    if images.shape != (n, *shape):
        raise DeephideError(f"{where['images']}: images have shape {tuple(images.shape)} "
                            f"but {mpath.name} says {(n, *shape)}")
    labels = arrays["labels"]
    check_labels(labels, n, len(m["class_names"]), where["labels"])
    for key, a in (("labels", labels), ("images", images)):
        if array_sha256(a) != m["sha256"][key]:
            raise DeephideError(f"{where[key]}: sha256 does not match {mpath.name} (file modified or corrupt)")
    return ImageSet(images, labels.astype(np.int64), tuple(m["class_names"]), m["provenance"], str(path))


