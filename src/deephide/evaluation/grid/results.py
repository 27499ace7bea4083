"""The results file: JSON lines appended by one writer (locked, fsynced, a truncated last line dropped), read back
with the first occurrence of each cell key; and the config sidecar beside it."""

from __future__ import annotations

import fcntl
import json
import logging
import os
from pathlib import Path
from typing import Any

from ...errors import DeephideError
from ...fsutil import _json_default, read_jsonl


log = logging.getLogger(__name__)


def read_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every complete, valid line of a results file, first occurrence of each key.

    A last line without its newline (a write cut short) is ignored, so are unparsable lines
    (with a warning): a damaged file never stops a report or a resume.
    """
    out, seen, bad = [], set(), 0
    for rec in read_jsonl(path, skip_bad=True, complete_only=True):
        if not isinstance(rec, dict) or not isinstance(rec.get("key"), str):
            bad += 1
        elif rec["key"] not in seen:
            seen.add(rec["key"])
            out.append(rec)
    if bad:
        log.warning("%s: ignored %d line(s) that are not cell records", path, bad)
    return out


class ResultsWriter:
    """The single writer of a results file: holds ``<out>.lock`` and appends whole lines.

    On open it drops a truncated last line (left by a killed writer), so new lines start clean.
    Each append is one ``write`` of one full line on an O_APPEND descriptor, then fsync.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock_fd: int | None = None

    def __enter__(self) -> "ResultsWriter":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise DeephideError(f"{self.path}: cannot write results here ({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise DeephideError(f"{self.path}: another grid run is writing this results file") from None
        self._lock_fd = fd
        self._repair()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _repair(self) -> None:
        """Cut the file back to its last newline (a partial line is an unfinished write)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            log.warning("%s: dropping a truncated last line (%d bytes)", self.path, len(data) - keep)
            with open(self.path, "r+b") as f:
                f.truncate(keep)
                f.flush()
                os.fsync(f.fileno())

    def append(self, line: dict[str, Any]) -> None:
        """Append one record as one line, durably."""
        blob = (json.dumps(line, separators=(",", ":"), default=_json_default) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(blob)
            while view:  # a regular file takes it in one write; the loop covers the rare short write
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as e:
            raise DeephideError(f"{self.path}: append failed ({e.strerror or e})") from None
        finally:
            os.close(fd)


def sidecar_path(out: str | os.PathLike) -> Path:
    """Where the grid's config is recorded beside its results: ``<out stem>.config.json``."""
    return Path(out).with_suffix(".config.json")


