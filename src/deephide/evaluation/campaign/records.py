"""A campaign's cells as its tables read them: each cell under the row whose current set it trained on.

Cells are found by their training bytes, not their label: a row shares the cells of any row that had the same set
(the reference campaign's DH-C-paper: the set DH-C had before its hider changed), and cells of refused or
superseded sets count for no row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..grid import load_config, read_results
from .declaration import Campaign


def row_fingerprints(ledger: list[dict[str, Any]]) -> dict[str, set[str]]:
    """row -> the fingerprints of its accepted sets (canonical and equivalent) under its current recipe
    (``ledger`` as ledger.current_ledger gives it)."""
    out: dict[str, set[str]] = {}
    for r in ledger:
        if r["current"] and r["verdict"] != "refused":
            out.setdefault(r["row"], set()).add(r["fingerprint"])
    return out


def ledger_row(label: str, spec: str) -> str:
    """The ledger's name for a config row: the set's own name where the spec is a campaign set (the weights table
    labels set w1x10-C "w1 x10 (10)"), else the label."""
    path = Path(spec)
    return path.name if path.parent.name == "sets" else label


def grid_records(c: Campaign, name: str, row_fps: dict[str, set[str]]) -> tuple[Any, list[dict[str, Any]], int]:
    """(config NAME, its records: one per cell, each under the row whose current set it trained on, cells planned)."""
    cfg = load_config(c.configs / f"{name}.yaml")
    labels = {m.label for m in cfg.countermeasures}
    # a mixture cell trained on mixed bytes, so its fingerprint names no set; its key (the content identities of the
    # protected and the clean set) does: the keys the grid planned on its last run, from the sets then current
    planned_file = c.results / f"{name}.config.json"
    planned_keys = set(json.loads(planned_file.read_text()).get("cell_keys") or []) if planned_file.exists() else set()
    seen, out = set(), []
    recs = read_results(c.root / cfg.out)
    # a row whose set was superseded has mixture cells of both sets among the planned keys (the sidecar keeps the
    # keys planned before): its latest cells are of the current set (a superseded set is never trained on again)
    recs = [r for r in recs if r.get("mixture") is None] + sorted(
        (r for r in recs if r.get("mixture") is not None), key=lambda r: r.get("finished_at") or "", reverse=True)
    for r in recs:
        fp = ((r.get("data") or {}).get("train") or {}).get("fingerprint")
        if not (r["model"] in cfg.models and r["countermeasure"] in labels and r["seed"] in cfg.seeds
                and r.get("profile") == cfg.profile):
            continue
        for row, spec in cfg.train_sets.items():
            ident = (row, r["model"], r["countermeasure"], r["seed"], r.get("mixture"))
            if r.get("mixture") is not None:
                ours = r.get("train") == spec and r.get("key") in planned_keys
            else:
                ours = fp in row_fps.get(ledger_row(row, spec), ())
            if ours and ident not in seen:
                seen.add(ident)
                out.append({**r, "row": row})
    planned = len(cfg.train_sets) * len(cfg.models) * len(labels) * len(cfg.seeds) * len(cfg.mixtures or [None])
    return cfg, out, planned
