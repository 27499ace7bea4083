"""Streaming a set too large for memory: chunked sha256 of an array, rows per chunk, and releasing the pages of a
memory-mapped array once a batch is done (so memory stays flat in N)."""

from __future__ import annotations

import contextlib
import hashlib
import math
import mmap as _mmap
from typing import Any
import numpy as np


#: bytes of image data hashed, copied or released per step when a whole set is streamed
CHUNK_BYTES = 32 << 20


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


