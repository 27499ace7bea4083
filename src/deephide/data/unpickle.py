"""A restricted unpickler for dataset pickles (CIFAR's "python version" batches).

Nothing untrusted is unpickled with the stock ``pickle.load``: only what numpy needs to rebuild an
array (plus the plain containers, strings, bytes and numbers that pickle builds without looking up
any global) is admitted. Every other global (``os.system``, ``builtins.eval``, ...) is refused
*before* it is called, so a malicious file cannot run code.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

from ..errors import DeephideError


def _multiarray() -> Any:
    """numpy's multiarray module under its current name (numpy 2 moved it to numpy._core)."""
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray


def _frombuffer() -> Any:
    """numpy's protocol-5 array rebuilder (arrays pickled with protocol 5 refer to it)."""
    try:
        from numpy._core.numeric import _frombuffer as fb  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.numeric import _frombuffer as fb  # type: ignore[no-redef]
    return fb


def _allowed() -> dict[tuple[str, str], Any]:
    """(module, name) -> object for every global a numpy array pickle may reference."""
    import numpy as np

    ma = _multiarray()
    fb = _frombuffer()
    table: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    # Old files (CIFAR was pickled by numpy 1.x under Python 2) say numpy.core; new ones numpy._core.
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "_reconstruct")] = ma._reconstruct
        table[(mod, "scalar")] = ma.scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        table[(mod, "_frombuffer")] = fb
    # Python 3 writes bytes in protocol-2 pickles as _codecs.encode(text, "latin1")
    table[("_codecs", "encode")] = _latin1_encode
    return table


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """The one codec call protocol-2 pickles of bytes make; any other codec is refused."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose ``find_class`` admits only numpy array reconstruction (and latin1 bytes)."""

    def __init__(self, file: io.BufferedIOBase, source: str, **kwargs: Any):
        super().__init__(file, **kwargs)
        self.source = source
        self._table = _allowed()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._table[(module, name)]
        except KeyError:
            raise DeephideError(
                f"{self.source}: refused to unpickle {module}.{name} "
                "(only arrays and plain containers are allowed)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:  # persistent ids would hand objects in from outside
        raise DeephideError(f"{self.source}: refused to unpickle a persistent id "
                            "(only arrays and plain containers are allowed)")


def restricted_loads(data: bytes, source: str = "<bytes>", encoding: str = "bytes") -> Any:
    """Unpickle ``data`` admitting only plain containers and numpy arrays.

    ``encoding="bytes"`` keeps Python-2 ``str`` objects (CIFAR's keys and names) as ``bytes``.
    Any refused global or malformed stream raises a one-line DeephideError naming ``source``.
    """
    try:
        return RestrictedUnpickler(io.BytesIO(data), source, encoding=encoding).load()
    except DeephideError:
        raise
    except MemoryError:
        raise DeephideError(f"{source}: pickle too large to load into memory") from None
    except Exception as e:  # UnpicklingError, EOFError, ValueError, TypeError, ... from a corrupt file
        raise DeephideError(f"{source}: not a readable pickle ({type(e).__name__}: {_short(e)})") from None


def load_pickle(path: str | os.PathLike, encoding: str = "bytes") -> Any:
    """Read one pickle file through :class:`RestrictedUnpickler`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DeephideError(f"{path}: cannot read ({e.strerror or e})") from None
    return restricted_loads(data, str(path), encoding)


def load_pickle_dict(path: str | os.PathLike) -> dict[str, Any]:
    """Read a pickled dict (CIFAR batch/meta) and decode its ``bytes`` keys to ``str``."""
    obj = load_pickle(path)
    if not isinstance(obj, dict):
        raise DeephideError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def _short(e: BaseException, limit: int = 120) -> str:
    """First line of an exception message, cut to ``limit`` characters (messages stay one line)."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return text[:limit]
