"""The dataset registry and the dataset-spec notation ``LOADER[:PATH][?key=value&...]``.

Examples: ``fashion-mnist``, ``fashion-mnist?size=28&channels=1``, ``cifar10:/data/cifar-10-batches-py``,
``folder:/imgs?size=64&classes=100``. A spec that is not a loader name but an existing path (a stored
ImageSet, an APBench/ISS PNG folder or an AVATAR npz) is loaded by the ``file`` loader, which detects
the format; for those the split is ignored (the file is the split).
"""

from __future__ import annotations

import inspect
import os
import re
from dataclasses import replace as _dc_replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import DeephideError
from ..profiles import parse_value
from ..registry import Registry
from .imageset import ImageSet

#: name -> ``fn(path: str | None, split: str, **options) -> ImageSet``
DATASETS: Registry[Callable[..., ImageSet]] = Registry("dataset")

SPLITS = ("train", "test")
#: the loader that auto-detects stored formats (registered in loaders.py)
PATH_LOADER = "file"

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")


def parse_query(query: str, spec: str) -> dict[str, Any]:
    """``key=value&key=value`` -> dict; a bare ``key`` means True; '-' in keys becomes '_'."""
    opts: dict[str, Any] = {}
    for part in query.split("&"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if not key.isidentifier():
            raise DeephideError(f"dataset spec '{spec}': bad option name '{key}'")
        opts[key] = parse_value(value) if sep else True
    return opts


# ---------------------------------------------------------------- option checks shared by the loaders


def int_option(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    """An integer option within [lo, hi], or a one-line error naming the option."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DeephideError(f"dataset option {name}={value!r}: expected an integer")
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise DeephideError(f"dataset option {name}={value}: must be {rng}")
    return int(value)


def check_split(split: str, loader: str) -> None:
    """A one-line error unless ``split`` is train or test."""
    if split not in SPLITS:
        raise DeephideError(f"{loader}: unknown split '{split}'; choose one of: {', '.join(SPLITS)}")


def need_path(path: str | None, loader: str, hint: str) -> Path:
    """The loader's path (``~`` expanded), or a one-line error with ``hint`` when the spec gave none."""
    if not path:
        raise DeephideError(f"{loader}: needs a path: {hint}")
    return Path(path).expanduser()


def _exists(path: str) -> bool:
    return os.path.exists(os.path.expanduser(path))


def _unknown(name: str, spec: str) -> DeephideError:
    return DeephideError(
        f"dataset spec '{spec}': unknown dataset '{name}' and no such path; "
        f"choose one of: {', '.join(DATASETS.names())}"
    )


def parse_spec(spec: str) -> tuple[str, str | None, dict[str, Any]]:
    """Split a dataset spec into ``(loader, path, options)``.

    A spec whose part before ':' (or '?') is a registered loader is a loader spec. Otherwise, if it
    (or the part before '?') exists on disk, it is a path for the ``file`` loader: this keeps
    ``C:\\data``-like paths and names containing ':' working. Anything else is an unknown loader.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise DeephideError("dataset spec is empty; give a loader name or a path")
    spec = spec.strip()
    m = _NAME.match(spec)
    if m and m.group(0) in DATASETS and spec[m.end():m.end() + 1] in ("", ":", "?"):
        name, rest = m.group(0), spec[m.end():]
        path: str | None = None
        query = ""
        if rest.startswith(":"):
            rest = rest[1:]
            # a '?' that is part of an existing path name is not a query
            path, query = (rest, "") if _exists(rest) else rest.partition("?")[::2]
            path = os.path.expanduser(path) if path else None
        elif rest.startswith("?"):
            query = rest[1:]
        return name, path, parse_query(query, spec)
    if _exists(spec):
        return PATH_LOADER, os.path.expanduser(spec), {}
    head, _, query = spec.partition("?")
    if head and _exists(head):
        return PATH_LOADER, os.path.expanduser(head), parse_query(query, spec)
    # name the would-be loader (the part before ':' or '?') so typos read as typos
    looks_named = m is not None and spec[m.end():m.end() + 1] in ("", ":", "?")
    raise _unknown(m.group(0) if looks_named else head, spec)


def _check_options(name: str, fn: Callable[..., ImageSet], options: dict[str, Any], spec: str) -> None:
    """Refuse options the loader does not declare, with a one-line list of the accepted ones."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [k for k in params if k not in ("path", "split")]
    bad = sorted(set(options) - set(accepted))
    if bad:
        raise DeephideError(
            f"dataset spec '{spec}': loader '{name}' has no option {', '.join(bad)}; "
            f"accepted: {', '.join(accepted) or 'none'}"
        )


def load_dataset(spec: str, split: str = "train", mmap: bool = False) -> ImageSet:
    """Load the ``split`` ("train" or "test") of the dataset named by ``spec``.

    Returns an ImageSet whose ``source`` is the spec and whose provenance records loader, path,
    split and options (a stored set keeps its own provenance and gains ``loaded_from``).
    ``mmap``: a stored ImageSet's images are memory-mapped read-only (commands that stream a set
    batch by batch, like protect and verify, ask for this; other sources are loaded as usual).
    """
    if split not in SPLITS:
        raise DeephideError(f"dataset spec '{spec}': unknown split '{split}'; choose one of: {', '.join(SPLITS)}")
    name, path, options = parse_spec(spec)
    fn = DATASETS.get(name)
    _check_options(name, fn, options, spec)
    if mmap and name == PATH_LOADER:
        options = {"mmap": True, **options}  # an explicit ?mmap=false in the spec wins
    ds = fn(path, split, **options)
    if name == PATH_LOADER:
        prov = dict(ds.provenance)
        prov["loaded_from"] = path
        return _dc_replace(ds, provenance=prov, source=str(path))
    prov = {"loader": name, "path": path, "split": split, "options": options, "spec": spec}
    prov.update(ds.provenance)  # loader-specific details (files, skipped, ...) win
    return _dc_replace(ds, provenance=prov, source=spec)


def test_spec_for(train_spec: str, train: ImageSet | None = None) -> str | None:
    """The test set that goes with the training set ``train_spec``: the spec itself when it names a registered
    loader (its test split; not the ``file`` loader, and not a path that exists on disk), else the ``test_spec``
    the stored set recorded (``train``'s provenance), else None."""
    try:
        loader, _, _ = parse_spec(train_spec)
    except DeephideError:
        loader = None
    if loader is not None and loader != PATH_LOADER and not os.path.exists(train_spec):
        return train_spec
    return train.provenance.get("test_spec") if train is not None else None
