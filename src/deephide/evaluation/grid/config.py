"""Grid configs: the YAML schema (``GridConfig``, ``CMEntry``) and its validation; every problem is one line naming
the file and the key. The schema itself is in the package docstring (``deephide.evaluation.grid``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import DeephideError


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
    identity: str = "label"
    reuse: tuple[Path, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The config as plain JSON (written beside the results for the report)."""
        return {
            "config_file": str(self.path), "name": self.name, "out": str(self.out), "test": self.test,
            "train_sets": dict(self.train_sets), "models": list(self.models),
            "countermeasures": [{"label": c.label, "name": c.name, "params": c.params} for c in self.countermeasures],
            "seeds": list(self.seeds), "profile": self.profile, "overrides": dict(self.overrides),
            "mixtures": self.mixtures, "clean": self.clean, "resources": dict(self.resources),
            "device": self.device, "paper_table": self.paper_table, "paper_csv": self.paper_csv,
            "notes": self.notes, "identity": self.identity, "reuse": [str(p) for p in self.reuse],
        }


_REQUIRED = ("out", "test", "train_sets", "models", "countermeasures", "seeds")
_KNOWN = _REQUIRED + ("name", "profile", "overrides", "mixtures", "clean", "resources", "device",
                      "paper_table", "paper_csv", "notes", "identity", "reuse")
#: what a cell's key names its training data by: ``label`` (row label + set spec: a regenerated set at the same
#: path counts as the same) or ``content`` (the sha256 of the set's bytes: identical bytes are trained once,
#: whatever their row or path; see cells.set_identity)
IDENTITIES = ("label", "content")


def _tname(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _err(path: Path, key: str, problem: str) -> DeephideError:
    return DeephideError(f"{path}: key '{key}': {problem}")


def _want_str(path: Path, key: str, v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise _err(path, key, f"expected a non-empty string, got {_tname(v)}")
    return v.strip()


def _want_list(path: Path, key: str, v: Any, empty_ok: bool = False) -> list:
    if not isinstance(v, list) or (not v and not empty_ok):
        raise _err(path, key, f"expected a {'' if empty_ok else 'non-empty '}list, got {_tname(v)}")
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
    from ...models import MODELS

    models = [_want_str(path, "models", m) for m in _want_list(path, "models", v)]
    for m in models:
        if m not in MODELS:
            raise _err(path, "models", f"unknown model '{m}'; choose from: {', '.join(MODELS.names())}")
    _unique(path, "models", models)
    return models


def _cm_entry(path: Path, item: Any) -> CMEntry:
    """A list item: ``NAME``, ``NAME?k=v&...`` or a one-key mapping ``{label: NAME?k=v}``."""
    from ...data.registry import parse_query

    label = None
    if isinstance(item, dict):
        if len(item) != 1:
            raise _err(path, "countermeasures", f"a mapping item must have one key (label: spec), got {len(item)}")
        label, item = next(iter(item.items()))
        label = _want_str(path, "countermeasures", label)
    spec = _want_str(path, "countermeasures", item)
    name, _, query = spec.partition("?")
    try:
        params = parse_query(query, spec)
    except DeephideError as e:
        raise _err(path, "countermeasures", str(e).replace("dataset spec", "countermeasure")) from None
    return CMEntry(label or spec, name.strip(), params)


def _parse_countermeasures(path: Path, v: Any) -> list[CMEntry]:
    from ...countermeasures import COUNTERMEASURES, PAPER_COLUMNS, build_countermeasure

    if v == "paper":
        entries = [CMEntry(c, c) for c in PAPER_COLUMNS]
    elif isinstance(v, str):
        raise _err(path, "countermeasures", f"expected a list or the string 'paper', got '{v}'")
    else:
        entries = [_cm_entry(path, it) for it in _want_list(path, "countermeasures", v)]
    for e in entries:
        if e.name not in COUNTERMEASURES:
            raise _err(path, "countermeasures", f"unknown countermeasure '{e.name}'; "
                                                "see `deephide list countermeasures`")
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
    from ...profiles import get_profile

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
            raise _err(path, f"resources.{k}", f"expected a {'positive' if k == 'cpus' else 'non-negative'} number, "
                                               f"got {val!r}")
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


def _parse_identity(path: Path, v: Any) -> str:
    if v not in IDENTITIES:
        raise _err(path, "identity", f"expected one of {', '.join(IDENTITIES)}, got {v!r}")
    return v


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
        identity=_parse_identity(path, raw.get("identity", "label")),
        reuse=tuple(Path(_want_str(path, "reuse", x)) for x in _want_list(path, "reuse", raw["reuse"], empty_ok=True))
        if raw.get("reuse") is not None else (),
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


