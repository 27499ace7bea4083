"""The paper's own numbers (``paper-tables.csv``: table,setting,variant,column,value): where the file is, reading
it, and the paper rows a report adds beside ours."""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path
from typing import Any

from ...errors import DeephideError


PAPER_CSV_ENV = "DEEPHIDE_PAPER_TABLES"
PAPER_FIELDS = ("table", "setting", "variant", "column", "value")


def default_paper_csv() -> Path | None:
    """``$DEEPHIDE_PAPER_TABLES``, else the copy shipped in this package, else ``../shared/spec/paper-tables.csv``."""
    env = os.environ.get(PAPER_CSV_ENV)
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[4]  # src/deephide/evaluation/report/paper.py -> repository root
    packaged = Path(__file__).with_name("paper-tables.csv")  # a copy of the spec's table ships with the package
    for cand in (packaged, repo.parent / "shared" / "spec" / "paper-tables.csv",
                 repo / "shared" / "spec" / "paper-tables.csv"):
        if cand.is_file():
            return cand
    return None


def load_paper_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of paper-tables.csv with ``value`` as float."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise DeephideError(f"{path}: cannot read the paper's tables ({e.strerror or e})") from None
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != PAPER_FIELDS:
        raise DeephideError(f"{path}: expected columns {','.join(PAPER_FIELDS)}, "
                            f"got {','.join(reader.fieldnames or [])}")
    rows = []
    for i, r in enumerate(reader, 2):
        try:
            rows.append({**r, "value": float(r["value"])})
        except (TypeError, ValueError):
            raise DeephideError(f"{path}: line {i}: value '{r.get('value')}' is not a number") from None
    return rows


def parse_paper_refs(spec: Any) -> list[tuple[str, str, str | None, str | None]]:
    """Config/CLI form -> [(table, setting, variant or None, our row label or None)].

    ``"K,class-wise"`` (every variant), a list of such strings, or a mapping
    ``{our row label: "T,SETTING,VARIANT"}`` (the paper row goes right below ours).
    """
    if spec is None:
        return []
    items = spec.items() if isinstance(spec, dict) else [(None, s) for s in ([spec] if isinstance(spec, str) else spec)]
    refs = []
    for ours, text in items:
        parts = [p.strip() for p in str(text).split(",", 2)]
        if len(parts) < 2 or not all(parts):
            raise DeephideError(f"paper reference '{text}': expected TABLE,SETTING[,VARIANT]")
        refs.append((parts[0], parts[1], parts[2] if len(parts) > 2 else None, ours))
    return refs


def _paper_column(col: str) -> str:
    """The paper's column name in our naming (JPEG_quality=4 -> JPEG4, ue_fraction=20% -> 20%)."""
    m = re.fullmatch(r"JPEG_quality=(\d+)", col)
    if m:
        return f"JPEG{m.group(1)}"
    m = re.fullmatch(r"ue_fraction=([\d.]+)%", col)
    if m:
        return f"{float(m.group(1)):g}%"
    return col


def paper_rows(refs: list[tuple[str, str, str | None, str | None]], data: list[dict[str, Any]],
               source: str) -> list[tuple[str | None, str, dict[str, float]]]:
    """[(our row label or None, display name, {paper column in our naming: value})] for ``refs``."""
    out = []
    for table, setting, variant, ours in refs:
        sel = [r for r in data if r["table"] == table and r["setting"] == setting]
        if not sel:
            have = sorted({f"{r['table']},{r['setting']}" for r in data})
            raise DeephideError(f"{source}: no paper rows for table {table}, setting '{setting}'; "
                                f"have: {'; '.join(have)}")
        variants = list(dict.fromkeys(r["variant"] for r in sel))
        if variant is not None:
            if variant not in variants:
                raise DeephideError(f"{source}: table {table} {setting} has no variant '{variant}'; "
                                    f"have: {'; '.join(variants)}")
            variants = [variant]
        for v in variants:
            vals = {_paper_column(r["column"]): r["value"] for r in sel if r["variant"] == v}
            out.append((ours, f"paper {table} {setting}: {v}", vals))
    return out


