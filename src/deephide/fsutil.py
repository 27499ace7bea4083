"""Atomic file and directory writes: an interrupted run never leaves a half-written output.

Temporaries live beside their target as ``.<name>.<host>-<pid>.<random>.tmp``. A run killed
outright (SIGKILL, power loss) cannot remove its own; the next write of the same target removes
those whose process (on this host) is gone, so reruns leave no litter.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import DeephideError

log = logging.getLogger(__name__)


def _host() -> str:
    """This machine's name, reduced to characters that are safe in a file name."""
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:24] or "host"


def _tmp_prefix(name: str) -> str:
    return f".{name}.{_host()}-{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, someone else's
        return True
    return True


def remove_stale_temps(parent: Path, name: str) -> list[Path]:
    """Remove temporaries of ``parent/name`` left by dead processes of this host; returns them.

    Only names this module makes are touched, and only when the pid in the name is not running
    here (a temp of a live run, or of another machine on a shared disk, is left alone).
    """
    pat = re.compile(rf"\.{re.escape(name)}\.{re.escape(_host())}-(\d+)\.[A-Za-z0-9_]+\.tmp")
    removed: list[Path] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for e in entries:
        m = pat.fullmatch(e.name)
        if not m or int(m.group(1)) == os.getpid() or _pid_alive(int(m.group(1))):
            continue
        p = Path(e.path)
        with contextlib.suppress(OSError):
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
    return removed


def _why(e: OSError, path: Path) -> str:
    """A short reason for an OSError, naming a parent that is a file rather than a directory."""
    if e.errno in (errno.ENOTDIR, errno.EEXIST):
        for parent in path.parents:
            if parent.exists() and not parent.is_dir():
                return f"{parent} is a file, not a directory"
    return e.strerror or str(e)


def _make_parent(path: Path) -> Path:
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DeephideError(f"{path}: cannot write here ({_why(e, path)})") from None
    return parent


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file beside ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    parent = _make_parent(path)
    remove_stale_temps(parent, path.name)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path.name), suffix=".tmp", dir=parent)
    except OSError as e:
        raise DeephideError(f"{path}: cannot write here ({_why(e, path)})") from None
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise DeephideError(f"{path}: write failed ({_why(e, path)})") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_file(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=_json_default)
        f.write("\n")


def read_jsonl(path: str | os.PathLike, skip_bad: bool = False, complete_only: bool = False) -> list[Any]:
    """The records of a JSON-lines file, in order ([] when it does not exist); blank lines are skipped.

    A line that is not JSON is an error naming the file and the line, unless ``skip_bad`` (a log or a progress
    record that an interrupted writer may have cut): then it is left out, with a warning. ``complete_only``: a
    last line without its newline (a write cut short, even one that parses) is left out too.

    >>> import tempfile; p = Path(tempfile.mkdtemp()) / "log.jsonl"
    >>> append_jsonl(p, {"step": 1}); append_jsonl(p, {"step": 2})
    >>> [r["step"] for r in read_jsonl(p)]
    [1, 2]
    >>> _ = p.open("a").write('{"step": 3')  # cut by a kill
    >>> len(read_jsonl(p, skip_bad=True))
    2
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as e:
        raise DeephideError(f"{path}: cannot read ({e.strerror or e})") from None
    lines = data.split(b"\n")
    if complete_only and lines[-1].strip():
        log.warning("%s: ignoring a truncated last line", path)
        lines[-1] = b""
    out, bad = [], 0
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:  # UnicodeDecodeError included
            if not skip_bad:
                raise DeephideError(f"{path}: line {i} is not JSON") from None
            bad += 1
    if bad:
        log.warning("%s: ignored %d unreadable line(s)", path, bad)
    return out


def append_jsonl(path: str | os.PathLike, rec: dict[str, Any]) -> None:
    """Append one record as one line (keys sorted), making the folder if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec, sort_keys=True, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``path``; it replaces ``path`` only on success.

    An existing ``path`` is an error unless ``force`` (then it is replaced at the end). Errors
    raised while filling the directory name ``path``, not the temporary.
    """
    path = Path(path)
    if path.exists() and not force:
        raise DeephideError(f"{path}: output already exists (use --force to replace it)")
    parent = _make_parent(path)
    remove_stale_temps(parent, path.name)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(path.name), suffix=".tmp", dir=parent))
    except OSError as e:
        raise DeephideError(f"{path}: cannot write here ({_why(e, path)})") from None
    try:
        try:
            yield tmp
        except DeephideError as e:  # e.g. a nested atomic_file: name the real output, not the temp
            msg = str(e).replace(str(tmp), str(path))
            raise DeephideError(msg) from None
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DeephideError(f"{path}: write failed ({_why(e, path)})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_new_output(path: str | os.PathLike, force: bool) -> Path:
    """Refuse to overwrite an existing output unless ``force``, and a place nothing can be written.

    Called before a command does its work, so a run does not compute for hours and then fail
    to save: the nearest existing ancestor of ``path`` must be a writable directory. Nothing is
    created here.
    """
    path = Path(path)
    if path.exists() and not force:
        raise DeephideError(f"{path}: output already exists (use --force to replace it)")
    check_writable(path)
    return path


def check_writable(path: str | os.PathLike) -> None:
    """A one-line error unless ``path`` could be created (its nearest existing ancestor is a writable directory)."""
    path = Path(path)
    anc = path.parent if str(path.parent) else Path(".")
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise DeephideError(f"{path}: cannot write here ({anc} is a file, not a directory)")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise DeephideError(f"{path}: cannot write here (permission denied on {anc})")


@contextlib.contextmanager
def outputs_or_nothing(paths: Iterable[str | os.PathLike | None]) -> Iterator[None]:
    """A command writing several outputs: if the block fails, remove those it created.

    Outputs that existed before the block (replaced with --force) are left as they are; each
    single output is already atomic, so what is removed is always a complete earlier output of
    this same command.
    """
    todo = [Path(p) for p in paths if p is not None]
    existed = {p: p.exists() for p in todo}
    try:
        yield
    except BaseException:
        for p in todo:
            if not existed[p] and (p.exists() or p.is_symlink()):
                with contextlib.suppress(OSError):
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        raise


def remove_output_dir(path: str | os.PathLike, allowed: Iterable[str], what: str) -> bool:
    """For ``--force``: delete directory ``path`` only if it holds nothing but ``allowed`` entries.

    A command's own output directory (e.g. a hider directory: checkpoint/, bank/, log.jsonl,
    summary.json) may be wiped and started over; a directory with anything else in it (the user's
    photos, another tool's output) is refused with a one-line error instead of being deleted.
    Returns whether something was removed.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return False
    if path.is_symlink() or not path.is_dir():
        raise DeephideError(f"{path}: exists and is not a {what} directory; "
                            "refusing to delete it (choose another --out)")
    ok = set(allowed)
    try:
        names = sorted(os.listdir(path))
    except OSError as e:
        raise DeephideError(f"{path}: cannot read ({e.strerror or e})") from None
    foreign = [n for n in names if n not in ok and not (n.startswith(".") and n.endswith((".tmp", ".old")))]
    if foreign:
        raise DeephideError(f"{path}: holds {foreign[0]!r}, which is not part of a {what} directory; "
                            "refusing to delete it (choose another --out)")
    try:
        shutil.rmtree(path)
    except OSError as e:
        raise DeephideError(f"{path}: cannot remove ({e.strerror or e})") from None
    return True
