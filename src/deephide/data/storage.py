"""On-disk formats of an ImageSet, all exact (uint8, lossless) and written atomically.

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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import mmap as _mmap
import os
import re
import warnings
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DeephideError, error_line
from ..fsutil import atomic_dir, atomic_file, check_new_output, write_json
from .imageset import ImageSet

log = logging.getLogger("deephide")

FORMAT = "deephide-imageset"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
DATA_FILE = "data.npz"  # format 1
DATA_FILES = {"images": "images.npy", "labels": "labels.npy"}  # format 2
#: bytes of image data hashed, copied or released per step when a whole set is streamed
CHUNK_BYTES = 32 << 20
#: refuse images above this many pixels (8192 x 8192): a small file must not expand to gigabytes
MAX_PIXELS = 8192 * 8192

_INDEX_PNG = re.compile(r"(\d+)\.png", re.IGNORECASE)
_LABEL_FILES = ("labels.txt", "labels.npy", "labels.json")


# ---------------------------------------------------------------- shared helpers


@contextlib.contextmanager
def pil_guard() -> Iterator[None]:
    """Bound PIL's decompression-bomb limit to MAX_PIXELS and make its warning an error."""
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS if old is None else min(old, MAX_PIXELS)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def array_sha256(a: np.ndarray) -> str:
    """sha256 (hex) of an array's raw C-order bytes (dtype and shape are checked separately).

    Hashed in chunks of rows; the pages of a memory-mapped array are released after each chunk, so
    hashing a set larger than memory keeps the process's resident memory flat.
    """
    h = hashlib.sha256()
    if a.ndim == 0:
        h.update(np.ascontiguousarray(a).data)
        return h.hexdigest()
    step = rows_per_chunk(a)
    for i in range(0, a.shape[0], step):
        h.update(np.ascontiguousarray(a[i:i + step]).data)
        release_rows(a, i, i + step)
    return h.hexdigest()


def rows_per_chunk(a: np.ndarray, nbytes: int = CHUNK_BYTES) -> int:
    """How many leading-axis rows of ``a`` make about ``nbytes`` (at least one)."""
    row = a.itemsize * math.prod(a.shape[1:]) if a.ndim > 1 else a.itemsize
    return max(1, nbytes // max(1, row))


def _mapping_of(a: np.ndarray) -> _mmap.mmap | None:
    """The mmap under ``a`` (an np.memmap, np.load(mmap_mode=...) or a view of one), else None."""
    b: Any = a
    while b is not None:
        if isinstance(b, _mmap.mmap):
            return b
        b = getattr(b, "base", None)
    return None


def release_rows(a: np.ndarray, start: int, stop: int) -> None:
    """Drop the resident pages of rows ``start:stop`` of a memory-mapped, C-contiguous ``a``.

    The data stays in the file (and the page cache; written pages of a shared mapping are not lost)
    and is paged in again if touched. Without this, every page of a mapped set that was read or
    written counts in the process's resident memory until the end. No-op for in-memory arrays.
    """
    mm = _mapping_of(a)
    if mm is None or not a.flags.c_contiguous or not hasattr(mm, "madvise") or stop <= start:
        return
    stop = min(stop, a.shape[0])
    row = a.itemsize * math.prod(a.shape[1:])
    base = np.frombuffer(mm, dtype=np.uint8).ctypes.data
    lo = a.ctypes.data - base + start * row
    hi = a.ctypes.data - base + stop * row
    lo -= lo % _mmap.PAGESIZE
    with contextlib.suppress(OSError, ValueError):  # advice only: a refusal changes nothing
        mm.madvise(_mmap.MADV_DONTNEED, lo, min(hi, len(mm)) - lo)


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, loaded with ``allow_pickle=False``.

    Object arrays (which need pickle), a non-npz file or a corrupt archive raise DeephideError.
    """
    path = Path(path)
    if not path.is_file():
        raise DeephideError(f"{path}: no such file")
    try:
        if zipfile.is_zipfile(path):
            _check_npz_sizes(path)
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise DeephideError(f"{path}: not an .npz archive (a single .npy array)")
        with z:
            return {k: z[k] for k in z.files}
    except DeephideError:
        raise
    except ValueError as e:
        text = str(e).lower()
        if "object arrays" in text:
            raise DeephideError(f"{path}: contains object arrays (refused: they need pickle to load)") from None
        if "pickle" in text:
            raise DeephideError(f"{path}: is a pickle, not an .npz archive (refused)") from None
        raise DeephideError(f"{path}: not a readable .npz archive ({error_line(e, 120)})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise DeephideError(f"{path}: not a readable .npz archive ({error_line(e, 120)})") from None


def _memory_bytes() -> int | None:
    """Physical memory of this machine in bytes (None when the platform does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def _npy_header(f: Any) -> tuple[tuple[int, ...], bool, np.dtype, int, int] | None:
    """(shape, fortran_order, dtype, header length, declared data bytes) of an open .npy stream,
    read without touching the data; None for header versions newer than 2.0."""
    from numpy.lib import format as npy_format

    version = npy_format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = npy_format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = npy_format.read_array_header_2_0(f)
    else:
        return None
    return tuple(shape), fortran, dtype, f.tell(), math.prod(int(d) for d in shape) * dtype.itemsize


def _check_npz_sizes(path: Path) -> None:
    """Read every member's .npy header (not its data) and refuse what cannot be loaded safely.

    Refused: object dtypes (they need pickle), a header declaring more data than the member holds
    (a forged header makes numpy allocate the declared size before it notices), and arrays that
    together would not fit in this machine's memory (a small compressed file can expand enormously).
    """
    total = 0
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            key = info.filename[:-4]
            with zf.open(info) as f:
                header = _npy_header(f)
            if header is None:  # (3, 0) and later: let np.load judge them
                continue
            shape, _, dtype, header_len, declared = header
            if dtype.hasobject:
                raise DeephideError(f"{path}: '{key}' is an object array (refused: it needs pickle to load)")
            held = info.file_size - header_len
            if declared > held:
                raise DeephideError(f"{path}: '{key}' declares shape {tuple(shape)} ({declared} bytes) "
                                    f"but holds {max(held, 0)} bytes (truncated or forged header)")
            total += declared
    mem = _memory_bytes()
    if mem is not None and total > mem:
        raise DeephideError(f"{path}: arrays would need {total / 2**30:.1f} GiB to load, more than this "
                            f"machine's {mem / 2**30:.1f} GiB of memory (refused)")


def check_images(a: Any, where: str, key: str = "images") -> np.ndarray:
    """Validate ``a`` as uint8 (N, H, W, C) with C in {1, 3}; a (N, H, W) array gains C = 1."""
    if not isinstance(a, np.ndarray):
        raise DeephideError(f"{where}: '{key}' is not an array")
    if a.dtype == object:
        raise DeephideError(f"{where}: '{key}' is an object array (refused)")
    if a.dtype.kind in "fc" and not np.isfinite(a).all():
        raise DeephideError(f"{where}: '{key}' contains NaN or inf values")
    if a.dtype != np.uint8:
        raise DeephideError(f"{where}: '{key}' must be uint8, got {a.dtype}")
    if a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4 or a.shape[3] not in (1, 3):
        raise DeephideError(f"{where}: '{key}' has shape {tuple(a.shape)}; expected (N, H, W, C) with C in (1, 3)")
    if 0 in a.shape:
        raise DeephideError(f"{where}: '{key}' holds no images (shape {tuple(a.shape)})")
    return a


def check_labels(a: Any, n: int, num_classes: int | None, where: str, key: str = "labels") -> np.ndarray:
    """Validate ``a`` as n integer labels in [0, num_classes) and return them as int64 (N,)."""
    if not isinstance(a, np.ndarray):
        raise DeephideError(f"{where}: '{key}' is not an array")
    if a.dtype == object:
        raise DeephideError(f"{where}: '{key}' is an object array (refused)")
    if a.dtype.kind in "fc" and not np.isfinite(a).all():
        raise DeephideError(f"{where}: '{key}' contains NaN or inf values")
    if a.dtype.kind not in "iu":
        raise DeephideError(f"{where}: '{key}' must be integers, got {a.dtype}")
    if a.ndim != 1 or a.shape[0] != n:
        raise DeephideError(f"{where}: '{key}' has shape {tuple(a.shape)}; expected ({n},)")
    if n and (a.min() < 0 or (num_classes is not None and a.max() >= num_classes)):
        bound = f"[0, {num_classes})" if num_classes is not None else "[0, ...)"
        raise DeephideError(f"{where}: '{key}' out of range {bound}: found {int(a.min())}..{int(a.max())}")
    return a.astype(np.int64, copy=False)


def default_class_names(labels: np.ndarray) -> tuple[str, ...]:
    """class_0 .. class_{max label} for sets that carry no names."""
    k = int(labels.max()) + 1 if labels.size else 1
    return tuple(f"class_{i}" for i in range(k))


def _json_safe(obj: Any, where: str) -> Any:
    """Round-trip ``obj`` through JSON now, so a bad provenance fails before anything is written."""
    from ..fsutil import _json_default

    try:
        return json.loads(json.dumps(obj, default=_json_default))
    except (TypeError, ValueError) as e:
        raise DeephideError(f"{where}: provenance is not JSON-serialisable ({error_line(e, 120)})") from None


# ---------------------------------------------------------------- stored ImageSet


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
            "provenance": _json_safe(ds.provenance, str(self.path)),
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
        raise DeephideError(f"{mpath}: unsupported format version {version!r} (this deephide reads 1..{FORMAT_VERSION})")
    _require(m, "count", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a non-negative integer", mpath)
    _require(m, "shape", lambda v: isinstance(v, list) and len(v) == 3
             and all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v), "a list of 3 positive integers", mpath)
    _require(m, "class_names", lambda v: isinstance(v, list) and len(v) > 0 and all(isinstance(x, str) for x in v),
             "a non-empty list of strings", mpath)
    _require(m, "sha256", lambda v: isinstance(v, dict) and all(isinstance(v.get(k), str) for k in ("images", "labels")),
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
            header = _npy_header(f)
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
        raise DeephideError(f"{where['images']}: images have shape {tuple(images.shape)} but {mpath.name} says {(n, *shape)}")
    labels = arrays["labels"]
    check_labels(labels, n, len(m["class_names"]), where["labels"])
    for key, a in (("labels", labels), ("images", images)):
        if array_sha256(a) != m["sha256"][key]:
            raise DeephideError(f"{where[key]}: sha256 does not match {mpath.name} (file modified or corrupt)")
    return ImageSet(images, labels.astype(np.int64), tuple(m["class_names"]), m["provenance"], str(path))


# ---------------------------------------------------------------- PNG folder (APBench / ISS)


def export_png_folder(ds: ImageSet, root: str | os.PathLike, force: bool = False) -> Path:
    """Write ``<root>/data/<i>.png`` (i = dataset index, not zero-padded), labels.txt, classes.txt."""
    root = Path(root)
    with atomic_dir(root, force=force) as tmp:
        (tmp / "data").mkdir()
        gray = ds.images.shape[3] == 1
        for i, img in enumerate(ds.images):
            # PNG is lossless: L for one channel, RGB for three, so the round trip is bitwise
            Image.fromarray(img[..., 0] if gray else img, "L" if gray else "RGB").save(tmp / "data" / f"{i}.png", compress_level=4)
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
        msg = "contains object arrays (refused)" if "pickle" in str(e).lower() else f"not readable ({error_line(e, 120)})"
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
_LOSSY_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F", "CMYK", "LA", "La", "PA", "RGBA", "RGBa", "YCbCr", "LAB", "HSV")


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


# ---------------------------------------------------------------- AVATAR npz

_DATA_KEYS = ("data", "images")
_TARGET_KEYS = ("targets", "labels")
_CLASS_KEYS = ("classes", "class_names", "label_names")


def _pick(arrays: dict[str, np.ndarray], keys: Sequence[str], path: Path, what: str) -> str | None:
    for k in keys:
        if k in arrays:
            return k
    if what:
        raise DeephideError(f"{path}: missing {what} array (one of: {', '.join(keys)}; has: {', '.join(sorted(arrays)) or 'none'})")
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


# ---------------------------------------------------------------- class folders


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
        names = files if isinstance(files, list) and len(files) == n and all(isinstance(x, str) for x in files) else None
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


# ---------------------------------------------------------------- format detection


def detect_format(path: str | os.PathLike) -> str:
    """'imageset', 'png-folder' or 'npz' for an existing path; a one-line error otherwise."""
    p = Path(path)
    if p.is_dir():
        if (p / MANIFEST).is_file():
            return "imageset"
        if (p / "data").is_dir():
            return "png-folder"
        raise DeephideError(
            f"{p}: not a stored ImageSet (manifest.json + images.npy/labels.npy) nor a PNG folder (data/<i>.png + labels.txt); "
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
