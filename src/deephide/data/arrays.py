"""Reading and checking arrays from untrusted files: bounded ``.npz``/``.npy`` reads (sizes checked against memory
before anything is loaded), PIL's decompression-bomb guard, and the image/label contracts every format shares."""

from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterator
import numpy as np
from PIL import Image

from ..errors import DeephideError, error_line


#: refuse images above this many pixels (8192 x 8192): a small file must not expand to gigabytes
MAX_PIXELS = 8192 * 8192


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


def npy_header(f: Any) -> tuple[tuple[int, ...], bool, np.dtype, int, int] | None:
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
                header = npy_header(f)
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


def _plain_array(a: Any, where: str, key: str) -> None:
    """Refuse what no format may hold: not an array, an object array, NaN or inf values."""
    if not isinstance(a, np.ndarray):
        raise DeephideError(f"{where}: '{key}' is not an array")
    if a.dtype == object:
        raise DeephideError(f"{where}: '{key}' is an object array (refused)")
    if a.dtype.kind in "fc" and not np.isfinite(a).all():
        raise DeephideError(f"{where}: '{key}' contains NaN or inf values")


def check_images(a: Any, where: str, key: str = "images") -> np.ndarray:
    """Validate ``a`` as uint8 (N, H, W, C) with C in {1, 3}; a (N, H, W) array gains C = 1."""
    _plain_array(a, where, key)
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
    _plain_array(a, where, key)
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


def json_safe(obj: Any, where: str) -> Any:
    """Round-trip ``obj`` through JSON now, so a bad provenance fails before anything is written."""
    from ..fsutil import _json_default

    try:
        return json.loads(json.dumps(obj, default=_json_default))
    except (TypeError, ValueError) as e:
        raise DeephideError(f"{where}: provenance is not JSON-serialisable ({error_line(e, 120)})") from None


