"""Experiment grid: one YAML config -> cells (train set x model x countermeasure x seed [x mixture]).

Each cell trains one victim model (``train_victim``) and appends one JSON line to the results file.
A cell's key is a hash of everything that defines it, so a rerun of the same config skips every
cell already in the file: an interrupted grid resumes where it stopped. Two executors: ``local``
(cells one after another in this process) and ``ray`` (one Ray task per cell; the driver is the
only writer and appends each line as its task finishes).

Config keys (YAML mapping; unknown keys and wrong types are errors naming the file and key)::

    name: main-cpu                 # optional, default: the file's stem
    out: results/main-cpu.jsonl    # results (JSONL); a sidecar <out stem>.config.json records the config
    test: fashion-mnist            # test set spec (loaded with split "test")
    train_sets: {Clean: fashion-mnist, DH-C: runs/dh-class}   # row label -> set spec (split "train")
    models: [resnet20]
    countermeasures: paper         # or a list: names, NAME?k=v, or {label: NAME?k=v}
    seeds: [0, 1, 2]
    profile: cpu                   # victim profile (deephide.profiles)
    overrides: {iterations: 700}   # optional profile settings
    mixtures: [0.2, 0.8]           # optional: fraction of protected images (Tables F/G) ...
    clean: fashion-mnist           # ... mixed with the clean images of this set (required with mixtures)
    resources: {cpus: 1, gpus: 0}  # optional, per Ray task
    device: auto                   # optional
    paper_table: "K,class-wise"    # optional: paper rows for the report (see report.py)
    paper_csv: path/to/paper-tables.csv   # optional
    notes: free text shown in the report

Relative paths (``out``, set paths) are relative to the current directory, not to the config file.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import DeephideError, error_line
from ..fsutil import _json_default, write_json

log = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")
#: how many loaded datasets one process keeps (a CIFAR-sized set is ~150 MB)
DATA_CACHE_SIZE = 8


# ---------------------------------------------------------------------------------------------
# config


@dataclass(frozen=True)
class CMEntry:
    """One countermeasure column: its label in tables, registered name and parameters."""

    label: str
    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GridConfig:
    """A validated grid config (see the module docstring for the keys)."""

    path: Path
    name: str
    out: Path
    test: str
    train_sets: dict[str, str]
    models: list[str]
    countermeasures: list[CMEntry]
    seeds: list[int]
    profile: str
    overrides: dict[str, Any]
    mixtures: list[float] | None
    clean: str | None
    resources: dict[str, float]
    device: str
    paper_table: Any
    paper_csv: str | None
    notes: str

    def to_json(self) -> dict[str, Any]:
        """The config as plain JSON (written beside the results for the report)."""
        return {
            "config_file": str(self.path), "name": self.name, "out": str(self.out), "test": self.test,
            "train_sets": dict(self.train_sets), "models": list(self.models),
            "countermeasures": [{"label": c.label, "name": c.name, "params": c.params} for c in self.countermeasures],
            "seeds": list(self.seeds), "profile": self.profile, "overrides": dict(self.overrides),
            "mixtures": self.mixtures, "clean": self.clean, "resources": dict(self.resources),
            "device": self.device, "paper_table": self.paper_table, "paper_csv": self.paper_csv,
            "notes": self.notes,
        }


_REQUIRED = ("out", "test", "train_sets", "models", "countermeasures", "seeds")
_KNOWN = _REQUIRED + ("name", "profile", "overrides", "mixtures", "clean", "resources", "device",
                      "paper_table", "paper_csv", "notes")


def _tname(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _err(path: Path, key: str, problem: str) -> DeephideError:
    return DeephideError(f"{path}: key '{key}': {problem}")


def _want_str(path: Path, key: str, v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise _err(path, key, f"expected a non-empty string, got {_tname(v)}")
    return v.strip()


def _want_list(path: Path, key: str, v: Any) -> list:
    if not isinstance(v, list) or not v:
        raise _err(path, key, f"expected a non-empty list, got {_tname(v)}")
    return v


def _want_map(path: Path, key: str, v: Any, empty_ok: bool = False) -> dict:
    if not isinstance(v, dict) or (not v and not empty_ok):
        raise _err(path, key, f"expected a {'' if empty_ok else 'non-empty '}mapping, got {_tname(v)}")
    return v


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _unique(path: Path, key: str, items: list) -> None:
    seen: set = set()
    for x in items:
        if x in seen:
            raise _err(path, key, f"'{x}' appears twice")
        seen.add(x)


def _parse_train_sets(path: Path, v: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for label, spec in _want_map(path, "train_sets", v).items():
        if not isinstance(label, str) or not label.strip():
            raise _err(path, "train_sets", f"row labels must be strings, got {_tname(label)}")
        out[label.strip()] = _want_str(path, f"train_sets.{label}", spec)
    return out


def _parse_models(path: Path, v: Any) -> list[str]:
    from ..models import MODELS

    models = [_want_str(path, "models", m) for m in _want_list(path, "models", v)]
    for m in models:
        if m not in MODELS:
            raise _err(path, "models", f"unknown model '{m}'; choose from: {', '.join(MODELS.names())}")
    _unique(path, "models", models)
    return models


def _cm_entry(path: Path, item: Any) -> CMEntry:
    """A list item: ``NAME``, ``NAME?k=v&...`` or a one-key mapping ``{label: NAME?k=v}``."""
    from ..data.registry import parse_options

    label = None
    if isinstance(item, dict):
        if len(item) != 1:
            raise _err(path, "countermeasures", f"a mapping item must have one key (label: spec), got {len(item)}")
        label, item = next(iter(item.items()))
        label = _want_str(path, "countermeasures", label)
    spec = _want_str(path, "countermeasures", item)
    name, _, query = spec.partition("?")
    try:
        params = parse_options(query, spec)
    except DeephideError as e:
        raise _err(path, "countermeasures", str(e).replace("dataset spec", "countermeasure")) from None
    return CMEntry(label or spec, name.strip(), params)


def _parse_countermeasures(path: Path, v: Any) -> list[CMEntry]:
    from ..countermeasures import COUNTERMEASURES, PAPER_COLUMNS, build_countermeasure

    if v == "paper":
        entries = [CMEntry(c, c) for c in PAPER_COLUMNS]
    elif isinstance(v, str):
        raise _err(path, "countermeasures", f"expected a list or the string 'paper', got '{v}'")
    else:
        entries = [_cm_entry(path, it) for it in _want_list(path, "countermeasures", v)]
    for e in entries:
        if e.name not in COUNTERMEASURES:
            raise _err(path, "countermeasures", f"unknown countermeasure '{e.name}'; see `deephide list countermeasures`")
        try:  # builds are cheap; this catches bad parameters before any training starts
            build_countermeasure(e.name, **e.params)
        except DeephideError as err:
            raise _err(path, "countermeasures", str(err)) from None
    _unique(path, "countermeasures", [e.label for e in entries])
    return entries


def _parse_seeds(path: Path, v: Any) -> list[int]:
    seeds = _want_list(path, "seeds", v)
    for s in seeds:
        if not _is_int(s) or s < 0:
            raise _err(path, "seeds", f"expected non-negative integers, got {s!r}")
    _unique(path, "seeds", seeds)
    return list(seeds)


def _parse_overrides(path: Path, profile: str, v: Any) -> dict[str, Any]:
    from ..profiles import get_profile

    ov = _want_map(path, "overrides", v, empty_ok=True)
    try:
        base = get_profile("victim", profile)
    except DeephideError as e:
        raise _err(path, "profile", str(e)) from None
    for k, val in ov.items():
        if k not in base:
            raise _err(path, f"overrides.{k}", f"unknown victim setting; known: {', '.join(sorted(base))}")
        ref = base[k]
        ok = (isinstance(val, bool) if isinstance(ref, bool) else _is_int(val) if _is_int(ref)
              else _is_num(val) if isinstance(ref, float) else isinstance(val, type(ref)))
        if not ok:
            raise _err(path, f"overrides.{k}", f"expected {type(ref).__name__}, got {_tname(val)} {val!r}")
    return dict(ov)


def _parse_mixtures(path: Path, v: Any) -> list[float] | None:
    if v is None:
        return None
    mix = _want_list(path, "mixtures", v)
    for p in mix:
        if not _is_num(p) or not 0.0 <= p <= 1.0:
            raise _err(path, "mixtures", f"expected fractions in [0, 1], got {p!r}")
    out = [float(p) for p in mix]
    _unique(path, "mixtures", out)
    return out


def _parse_resources(path: Path, v: Any) -> dict[str, float]:
    res = {"cpus": 1.0, "gpus": 0.0}
    for k, val in _want_map(path, "resources", v if v is not None else {}, empty_ok=True).items():
        if k not in res:
            raise _err(path, f"resources.{k}", "unknown; known: cpus, gpus")
        if not _is_num(val) or val < 0 or (k == "cpus" and val == 0):
            raise _err(path, f"resources.{k}", f"expected a {'positive' if k == 'cpus' else 'non-negative'} number, got {val!r}")
        res[k] = float(val)
    return res


def _parse_paper_table(path: Path, v: Any) -> Any:
    """``"T,SETTING"``, a list of them, or a mapping row label -> ``"T,SETTING,VARIANT"``."""
    if v is None:
        return None
    if isinstance(v, str):
        return _want_str(path, "paper_table", v)
    if isinstance(v, list):
        return [_want_str(path, "paper_table", x) for x in _want_list(path, "paper_table", v)]
    if isinstance(v, dict):
        return {_want_str(path, "paper_table", k): _want_str(path, f"paper_table.{k}", x) for k, x in v.items()}
    raise _err(path, "paper_table", f"expected a string, list or mapping, got {_tname(v)}")


def parse_config(raw: Any, path: str | os.PathLike) -> GridConfig:
    """Validate a config mapping (as read from YAML) from file ``path``."""
    path = Path(path)
    if not isinstance(raw, dict):
        raise DeephideError(f"{path}: expected a YAML mapping of config keys, got {_tname(raw)}")
    for k in raw:
        if k not in _KNOWN:
            raise _err(path, str(k), f"unknown key; known: {', '.join(_KNOWN)}")
    for k in _REQUIRED:
        if k not in raw:
            raise _err(path, k, "missing (required)")
    profile = _want_str(path, "profile", raw.get("profile", "cpu"))
    mixtures = _parse_mixtures(path, raw.get("mixtures"))
    clean = _want_str(path, "clean", raw["clean"]) if raw.get("clean") is not None else None
    if mixtures and clean is None:
        raise _err(path, "clean", "required with 'mixtures' (the clean set the protected images are mixed with)")
    return GridConfig(
        path=path,
        name=_want_str(path, "name", raw.get("name", path.stem)),
        out=Path(_want_str(path, "out", raw["out"])),
        test=_want_str(path, "test", raw["test"]),
        train_sets=_parse_train_sets(path, raw["train_sets"]),
        models=_parse_models(path, raw["models"]),
        countermeasures=_parse_countermeasures(path, raw["countermeasures"]),
        seeds=_parse_seeds(path, raw["seeds"]),
        profile=profile,
        overrides=_parse_overrides(path, profile, raw.get("overrides") or {}),
        mixtures=mixtures,
        clean=clean,
        resources=_parse_resources(path, raw.get("resources")),
        device=_want_str(path, "device", raw.get("device", "auto")),
        paper_table=_parse_paper_table(path, raw.get("paper_table")),
        paper_csv=_want_str(path, "paper_csv", raw["paper_csv"]) if raw.get("paper_csv") is not None else None,
        notes=str(raw.get("notes") or "").strip(),
    )


def load_config(path: str | os.PathLike) -> GridConfig:
    """Read and validate a grid config YAML file."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DeephideError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DeephideError(f"{path}: cannot read config ({getattr(e, 'strerror', None) or e})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise DeephideError(f"{path}: not valid YAML{at} ({getattr(e, 'problem', None) or 'parse error'})") from None
    return parse_config(raw, path)


# ---------------------------------------------------------------------------------------------
# cells


def cell_key(description: dict[str, Any]) -> str:
    """A stable 16-hex key: sha256 of the cell's description as canonical JSON."""
    blob = json.dumps(description, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def expand(cfg: GridConfig) -> list[dict[str, Any]]:
    """All cells of ``cfg`` in config order: train_sets x models x countermeasures x seeds (x mixtures).

    A cell is a JSON-able dict; ``key`` hashes its description (everything but ``key``, ``order``,
    ``device``, ``grid`` and ``resolved``: where or how it runs does not change what it measures).
    """
    from ..profiles import get_profile

    prof = get_profile("victim", cfg.profile, **cfg.overrides)
    mixes: list[float | None] = list(cfg.mixtures) if cfg.mixtures else [None]
    cells = []
    for ri, (row, spec) in enumerate(cfg.train_sets.items()):
        for mi, model in enumerate(cfg.models):
            for ci, cm in enumerate(cfg.countermeasures):
                for si, seed in enumerate(cfg.seeds):
                    for xi, mix in enumerate(mixes):
                        desc = {
                            "row": row, "train": spec, "test": cfg.test, "model": model,
                            "countermeasure": cm.label, "countermeasure_name": cm.name,
                            "countermeasure_params": dict(cm.params), "seed": seed,
                            "profile": cfg.profile, "profile_settings": prof,
                            "mixture": mix, "clean": cfg.clean if mix is not None else None,
                        }
                        cells.append({"key": cell_key(desc), **desc, "grid": cfg.name, "device": cfg.device,
                                      "order": [ri, mi, ci, si, xi]})
    return cells


def resolve_spec(spec: str) -> str:
    """``spec`` with a relative path made absolute (Ray workers may run in another directory)."""
    from ..data.registry import PATH_LOADER, parse_spec

    name, path, _ = parse_spec(spec)
    if path is None or os.path.isabs(path):
        return spec
    if name == PATH_LOADER:
        if os.path.exists(os.path.expanduser(spec)):
            return os.path.abspath(os.path.expanduser(spec))
        head, _, query = spec.partition("?")
        return os.path.abspath(os.path.expanduser(head)) + "?" + query
    rest = spec[len(name) + 1:]
    if os.path.exists(os.path.expanduser(rest)):
        return f"{name}:{os.path.abspath(os.path.expanduser(rest))}"
    p, _, query = rest.partition("?")
    return f"{name}:{os.path.abspath(os.path.expanduser(p))}?{query}"


def _resolve_cell_specs(cfg: GridConfig, cells: list[dict[str, Any]]) -> None:
    """Check every set spec of the cells to run (exists, known loader) and record absolute forms."""
    memo: dict[str, str] = {}

    def res(spec: str, key: str) -> str:
        if spec not in memo:
            try:
                memo[spec] = resolve_spec(spec)
            except DeephideError as e:
                raise _err(cfg.path, key, str(e)) from None
        return memo[spec]

    for c in cells:
        label = f"train_sets.{c['row']}"
        c["resolved"] = {"train": res(c["train"], label), "test": res(c["test"], "test"),
                         "clean": res(c["clean"], "clean") if c["clean"] else None}


# ---------------------------------------------------------------------------------------------
# data for one cell (cached per process)

_DATA_CACHE: dict[tuple[str, str], Any] = {}


def cached_dataset(spec: str, split: str) -> Any:
    """``load_dataset(spec, split)``, kept for later cells of this process (FIFO, DATA_CACHE_SIZE sets)."""
    from ..data import load_dataset

    k = (spec, split)
    if k not in _DATA_CACHE:
        if len(_DATA_CACHE) >= DATA_CACHE_SIZE:
            _DATA_CACHE.pop(next(iter(_DATA_CACHE)))
        _DATA_CACHE[k] = load_dataset(spec, split)
    return _DATA_CACHE[k]


def mixture_indices(n: int, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of the ``round(fraction * n)`` samples that take the protected image.

    The choice depends on ``seed`` only through one permutation, so the protected subsets of
    one seed are nested (the 20 % subset lies inside the 40 % one): curves over fractions compare like with like.
    """
    perm = np.random.default_rng([int(seed), 0x6D6978]).permutation(n)
    return np.sort(perm[: int(round(fraction * n))])


def mix_sets(protected: Any, clean: Any, fraction: float, seed: int) -> Any:
    """A training set whose ``fraction`` of samples are protected images, the rest clean ones.

    Both sets must hold the same samples in the same order (same length, shape and labels).
    """
    where = f"mixture of {protected.source} and {clean.source}"
    if len(protected) != len(clean) or protected.shape != clean.shape:
        raise DeephideError(f"{where}: sets differ in size or image shape ({len(protected)}x{protected.shape} "
                            f"vs {len(clean)}x{clean.shape})")
    if not np.array_equal(protected.labels, clean.labels):
        raise DeephideError(f"{where}: labels differ; the clean set must be the one the protected set was made from")
    idx = mixture_indices(len(clean), fraction, seed)
    images = clean.images.copy()
    images[idx] = protected.images[idx]
    prov = {"mixture": {"protected": protected.source, "clean": clean.source, "fraction": fraction,
                        "seed": seed, "protected_count": int(idx.size)}}
    return replace(clean.replace(images=images, note=f"mixture p={fraction:g} seed={seed}", **prov),
                   source=f"mix({protected.source}, {clean.source}, p={fraction:g})")


# ---------------------------------------------------------------------------------------------
# one cell

#: fields of a ``result_record`` copied into the results line (the bulky config is summarised)
_KEEP = ("final_acc", "last3_acc", "best_acc", "acc", "select", "finished", "history", "train_time_s",
         "wall_time_s", "device", "bf16", "versions")


def run_cell(cell: dict[str, Any], progress: bool = False,
             trainer: Callable[..., dict[str, Any]] | None = None) -> dict[str, Any]:
    """Train the victim of one cell and return its results line (a JSON-able dict)."""
    from ..countermeasures import build_countermeasure
    from ..training.trainer import result_record, train_victim

    trainer = trainer or train_victim
    specs = cell.get("resolved") or {"train": cell["train"], "test": cell["test"], "clean": cell["clean"]}
    train = cached_dataset(specs["train"], "train")
    test = cached_dataset(specs["test"], "test")
    if cell["mixture"] is not None:
        train = mix_sets(train, cached_dataset(specs["clean"], "train"), cell["mixture"], cell["seed"])
    name = cell["countermeasure_name"]
    cm = None if name == "Vanilla" and not cell["countermeasure_params"] else \
        build_countermeasure(name, **cell["countermeasure_params"])
    res = result_record(trainer(train, test, cell["model"], dict(cell["profile_settings"]), seed=cell["seed"],
                                countermeasure=cm, device=cell.get("device", "auto"), progress=progress))
    line = {k: v for k, v in cell.items() if k != "resolved"}
    line.update({k: res.get(k) for k in _KEEP})
    cfg = res.get("config", {})
    line["data"] = {"train": cfg.get("train"), "test": cfg.get("test")}
    line["finished_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return line


def _ray_cell(cell: dict[str, Any]) -> dict[str, Any]:
    """Ray task body: one cell, no progress bar (workers' output would interleave)."""
    return run_cell(cell, progress=False)


# ---------------------------------------------------------------------------------------------
# results file


def read_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every complete, valid line of a results file, first occurrence of each key.

    A last line without its newline (a write cut short) is ignored, so are unparsable lines
    (with a warning): a damaged file never stops a report or a resume.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as e:
        raise DeephideError(f"{path}: cannot read results ({e.strerror or e})") from None
    lines = data.split(b"\n")
    if lines and lines[-1].strip():
        log.warning("%s: ignoring a truncated last line", path)
    out, seen, bad = [], set(), 0
    for raw in lines[:-1]:
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except ValueError:
            bad += 1
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("key"), str):
            bad += 1
            continue
        if rec["key"] not in seen:
            seen.add(rec["key"])
            out.append(rec)
    if bad:
        log.warning("%s: ignored %d unreadable line(s)", path, bad)
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


# ---------------------------------------------------------------------------------------------
# executors


@dataclass
class GridSummary:
    """What a ``run_grid`` call did."""

    out: Path
    total: int
    skipped: int = 0
    ran: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (key, one-line error)


def _describe(cell: dict[str, Any]) -> str:
    mix = f" p={cell['mixture']:g}" if cell["mixture"] is not None else ""
    return f"{cell['row']} {cell['model']} {cell['countermeasure']} seed {cell['seed']}{mix}"


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def _run_local(cells: list[dict[str, Any]], writer: ResultsWriter, summary: GridSummary, progress: bool) -> None:
    for i, cell in enumerate(cells, 1):
        t0 = time.perf_counter()
        try:
            line = run_cell(cell, progress=progress)
        except DeephideError as e:
            summary.failed.append((cell["key"], str(e)))
            _say(progress, f"[{i}/{len(cells)}] {_describe(cell)}: FAILED: {e}")
            continue
        writer.append(line)
        summary.ran += 1
        _say(progress, f"[{i}/{len(cells)}] {_describe(cell)}: {line['acc']:.2f}% ({time.perf_counter() - t0:.0f} s)")


def _host_port(address: str | None) -> tuple[str, int] | None:
    """(host, port) of a plain ``host:port`` address; None for ``auto``, ``local``, ``ray://`` or none."""
    if not address or "://" in address or ":" not in address:
        return None
    host, _, port = address.rpartition(":")
    return (host.strip("[]"), int(port)) if port.isdigit() else None


def _check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Fail fast on an unreachable head (ray.init would retry for many minutes)."""
    import socket

    hp = _host_port(address)
    if hp is None:
        return
    try:
        with socket.create_connection(hp, timeout=timeout):
            pass
    except OSError as e:
        raise DeephideError(f"ray: no cluster answers at {address} ({e.strerror or e})") from None


def _loopback_ray(address: str | None) -> None:
    """Keep a driver of a loopback-only head on loopback.

    On Linux Ray replaces 127.0.0.1 by the machine's network address when it dials the head;
    a head started with ``--node-ip-address=127.0.0.1`` listens on loopback only, so the driver
    would retry for minutes. Ray's own switch for loopback-only nodes turns that off.
    """
    hp = _host_port(address)
    if hp is None or hp[0] not in ("127.0.0.1", "localhost", "::1"):
        return
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        import ray._private.ray_constants as rc  # read at import time: set the constant too

        rc.ENABLE_RAY_CLUSTER = False
    except (ImportError, AttributeError):  # another Ray layout: the variable alone must do
        pass


def _match_head_auth(address: str | None) -> None:
    """Send the cluster token when one is configured, as ``ray start --head`` does.

    Since Ray 2.59 a head started where a token exists (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or
    ``~/.ray/auth_token``) requires it, but a driver given an explicit address never turns token mode on
    by itself and is refused (InvalidAuthToken). An explicit ``RAY_AUTH_MODE`` is always respected.
    """
    if address in (None, "auto", "local") or os.environ.get("RAY_AUTH_MODE"):
        return
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token authentication: nothing to match
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _run_ray(cells: list[dict[str, Any]], writer: ResultsWriter, summary: GridSummary, cfg: GridConfig,
             address: str | None, progress: bool) -> None:
    try:
        import ray
    except ImportError:
        raise DeephideError("executor 'ray' needs the ray package (pip install ray)") from None
    started = not ray.is_initialized()
    if started:
        _check_reachable(address)
        _loopback_ray(address)
        _match_head_auth(address)
        kw: dict[str, Any] = {"address": address, "logging_level": logging.WARNING, "log_to_driver": False}
        if address is None:  # a fresh local cluster: no dashboard to serve
            kw["include_dashboard"] = False
        try:
            ray.init(**kw)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise DeephideError(f"ray: cannot connect to cluster at {address or '(new local cluster)'}: "
                                f"{error_line(e, 300, with_type=True)}") from None
    try:
        res = cfg.resources
        opts: dict[str, Any] = {"num_cpus": res["cpus"], "max_retries": 1}
        if res["gpus"] > 0:
            opts["num_gpus"] = res["gpus"]
        task = ray.remote(**opts)(_ray_cell)
        refs = {task.remote(c): c for c in cells}
        pending = list(refs)
        done_n = 0
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    cell, done_n = refs[ref], done_n + 1
                    try:
                        line = ray.get(ref)
                    except Exception as e:  # a task's error arrives wrapped; record it, keep the others going
                        summary.failed.append((cell["key"], error_line(e, 300, with_type=True)))
                        _say(progress, f"[{done_n}/{len(cells)}] {_describe(cell)}: FAILED: {error_line(e, 300, with_type=True)}")
                        continue
                    writer.append(line)
                    summary.ran += 1
                    _say(progress, f"[{done_n}/{len(cells)}] {_describe(cell)}: {line['acc']:.2f}% "
                                   f"({line['wall_time_s']:.0f} s)")
        except BaseException:
            for ref in pending:  # do not leave the cluster busy with cells nobody will record
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise
    finally:
        if started:
            ray.shutdown()


def run_grid(config_path: str | os.PathLike, executor: str = "local", address: str | None = None,
             progress: bool = True) -> GridSummary:
    """Run every cell of the config at ``config_path`` not yet in its results file.

    executor: ``local`` (sequential, this process) or ``ray`` (``ray.init(address=address)``; one task
    per cell with the config's ``resources``; address None starts a local cluster). Set paths are
    made absolute before tasks are sent, so workers need the same filesystem (one machine or a
    shared disk). A loopback head (``ray start --head --node-ip-address=127.0.0.1``, started with
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) is reached on loopback. Results are appended to ``out`` as cells finish; a
    failed cell is reported and left out (rerun to retry), and the call then raises DeephideError.
    """
    if executor not in EXECUTORS:
        raise DeephideError(f"unknown executor '{executor}'; choose one of: {', '.join(EXECUTORS)}")
    cfg = load_config(config_path)
    cells = expand(cfg)
    summary = GridSummary(out=cfg.out, total=len(cells))
    with ResultsWriter(cfg.out) as writer:
        write_json(sidecar_path(cfg.out), {**cfg.to_json(), "cell_keys": [c["key"] for c in cells]})
        done = {r["key"] for r in read_results(cfg.out)}
        todo = [c for c in cells if c["key"] not in done]
        summary.skipped = len(cells) - len(todo)
        _say(progress, f"grid {cfg.name}: {len(cells)} cells, {summary.skipped} already in {cfg.out}, "
                       f"{len(todo)} to run ({executor})")
        if todo:
            _resolve_cell_specs(cfg, todo)
            if executor == "local":
                _run_local(todo, writer, summary, progress)
            else:
                _run_ray(todo, writer, summary, cfg, address, progress)
    if summary.failed:
        key, msg = summary.failed[0]
        raise DeephideError(f"{cfg.out}: {len(summary.failed)} of {len(todo)} cells failed (rerun to retry); "
                            f"first ({key}): {msg}")
    return summary


def grid_status(config_path: str | os.PathLike) -> list[tuple[dict[str, Any], bool]]:
    """Every cell of the config with whether its result is already in the results file."""
    cfg = load_config(config_path)
    done = {r["key"] for r in read_results(cfg.out)}
    return [(c, c["key"] in done) for c in expand(cfg)]
