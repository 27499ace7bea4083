"""Grid cells: a config expanded into cells with content keys, the data a cell trains on (cached per process,
mixtures of protected and clean images) and one cell run (``run_cell``: one victim, one results line)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ...errors import DeephideError
from ...fsutil import _json_default
from .config import GridConfig, _err


def cell_key(description: dict[str, Any]) -> str:
    """A stable 16-hex key: sha256 of the cell's description as canonical JSON."""
    blob = json.dumps(description, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


#: a file a stored set may hold to name the set it stands for (written by a campaign that regenerated a set on
#: another machine and found it within tolerance of the committed one): {"canonical": fingerprint, ...}
IDENTITY_FILE = "identity.json"
_IDENTITY_CACHE: dict[str, str] = {}


def set_identity(spec: str) -> str:
    """``sha256:<16 hex>``: the training bytes of ``spec`` (images and labels of split "train", the fingerprint the
    trainer records), or the canonical fingerprint named by the set's ``identity.json``. Cached per process."""
    from ...data.registry import PATH_LOADER, load_dataset, parse_spec
    from ...training.trainer import data_fingerprint

    if spec not in _IDENTITY_CACHE:
        name, path, _ = parse_spec(spec)
        ident = Path(os.path.expanduser(path)) / IDENTITY_FILE if path is not None and name == PATH_LOADER else None
        if ident is not None and ident.is_file():
            try:
                fp = json.loads(ident.read_text())["canonical"]
            except (ValueError, KeyError, TypeError):
                raise DeephideError(f"{ident}: expected a JSON object with a 'canonical' fingerprint") from None
        else:  # memory-mapped: hashing a set does not load it into the training cache
            fp = data_fingerprint(load_dataset(spec, "train", mmap=True))
        _IDENTITY_CACHE[spec] = f"sha256:{fp}"
    return _IDENTITY_CACHE[spec]


def expand(cfg: GridConfig) -> list[dict[str, Any]]:
    """All cells of ``cfg`` in config order: train_sets x models x countermeasures x seeds (x mixtures).

    A cell is a JSON-able dict; ``key`` hashes its description (everything but ``key``, ``order``,
    ``device``, ``grid`` and ``resolved``: where or how it runs does not change what it measures). With
    ``identity: content`` the description names the training (and mixture's clean) data by
    :func:`set_identity` instead of row label and spec, so each set must exist; the cell still carries both.
    """
    from ...profiles import get_profile

    prof = get_profile("victim", cfg.profile, **cfg.overrides)
    mixes: list[float | None] = list(cfg.mixtures) if cfg.mixtures else [None]
    content = cfg.identity == "content"
    cells = []
    for ri, (row, spec) in enumerate(cfg.train_sets.items()):
        for mi, model in enumerate(cfg.models):
            for ci, cm in enumerate(cfg.countermeasures):
                for si, seed in enumerate(cfg.seeds):
                    for xi, mix in enumerate(mixes):
                        clean = cfg.clean if mix is not None else None
                        desc = {
                            "row": row, "train": spec, "test": cfg.test, "model": model,
                            "countermeasure": cm.label, "countermeasure_name": cm.name,
                            "countermeasure_params": dict(cm.params), "seed": seed,
                            "profile": cfg.profile, "profile_settings": prof,
                            "mixture": mix, "clean": clean,
                        }
                        named = _by_content(desc, _content(cfg, row, spec), clean and _content(cfg, "clean", clean)) \
                            if content else desc
                        cells.append({"key": cell_key(named), **desc, "grid": cfg.name, "device": cfg.device,
                                      "order": [ri, mi, ci, si, xi]})
    return cells


#: what a cell's description holds (expand); with ``identity: content`` all but the labels name the cell
_DESCRIPTION = ("row", "train", "test", "model", "countermeasure", "countermeasure_name", "countermeasure_params",
                "seed", "profile", "profile_settings", "mixture", "clean")
_LABELS = ("row", "countermeasure")


def _by_content(desc: dict[str, Any], train: str, clean: str | None) -> dict[str, Any]:
    """The ``identity: content`` description: the labels are presentation; the bytes (``train``/``clean``
    identities) and what is done to them are the cell."""
    return {**{k: desc.get(k) for k in _DESCRIPTION if k not in _LABELS}, "train": train, "clean": clean}


def content_key(record: dict[str, Any]) -> str | None:
    """The ``identity: content`` key of a finished cell's record from what it recorded (its description and the
    fingerprint of the bytes it trained on); None for a mixture (its recorded set is the mix, not the protected set)
    or a record without a fingerprint."""
    fp = ((record.get("data") or {}).get("train") or {}).get("fingerprint")
    if fp is None or record.get("mixture") is not None:
        return None
    return cell_key(_by_content(record, f"sha256:{fp}", None))


def _content(cfg: GridConfig, key: str, spec: str) -> str:
    try:
        return set_identity(spec)
    except DeephideError as e:
        raise _err(cfg.path, f"train_sets.{key}" if key != "clean" else "clean", f"identity: content: {e}") from None


def resolve_spec(spec: str) -> str:
    """``spec`` with a relative path made absolute (Ray workers may run in another directory)."""
    from ...data.registry import PATH_LOADER, parse_spec

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


#: how many loaded datasets one process keeps (a CIFAR-sized set is ~150 MB)
DATA_CACHE_SIZE = 8
_DATA_CACHE: dict[tuple[str, str], Any] = {}


def cached_dataset(spec: str, split: str) -> Any:
    """``load_dataset(spec, split)``, kept for later cells of this process (FIFO, DATA_CACHE_SIZE sets)."""
    from ...data import load_dataset

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


#: fields of a ``result_record`` copied into the results line (the bulky config is summarised)
_KEEP = ("final_acc", "last3_acc", "best_acc", "acc", "select", "finished", "history", "train_time_s",
         "wall_time_s", "device", "bf16", "versions")


def run_cell(cell: dict[str, Any], progress: bool = False,
             trainer: Callable[..., dict[str, Any]] | None = None) -> dict[str, Any]:
    """Train the victim of one cell and return its results line (a JSON-able dict)."""
    from ...countermeasures import build_countermeasure
    from ...training.trainer import result_record, train_victim

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


def _worker_cell(cell: dict[str, Any]) -> dict[str, Any]:
    """A worker's body (a Ray task or a pool process): one cell, no progress bar (workers' output would interleave)."""
    return run_cell(cell, progress=False)


