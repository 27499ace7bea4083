"""Where a campaign's cells ran, and how much that matters: the execution kind of each cell (the device, the CPU
model and its native bf16, the thread count) and the spread of the same cell (the same key: the same training bytes
and settings) trained on different kinds.

A CPU trains the same cell to other bytes at another thread count (oneDNN's kernels split their work by thread;
benchmarks/thread_determinism.py measures it, and what the alternatives cost), and a GPU to others again; a cell's
key names what it trains, not where. So the tables
state, per row, the kinds its cells ran on, and the same cells trained again on another kind say how much that
moves a number.

>>> execution_kind({"device": "cpu", "versions": {"cpu_model": "Xeon", "cpu_bf16": True, "cpu_threads": 1}})
'CPU Xeon (bf16 True), 1 thread'
>>> execution_kind({"device": "cuda", "versions": {"gpu": "NVIDIA H200"}})
'GPU NVIDIA H200'
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

from ..stats import stat_value


def execution_kind(r: dict[str, Any]) -> str:
    """The kind of machine a cell record ran on, in words: GPU name, or CPU model, native bf16 and thread count."""
    v = r.get("versions") or {}
    if str(r.get("device") or "cpu").startswith("cuda"):
        return f"GPU {v.get('gpu', '(model not recorded)')}"
    threads = v.get("cpu_threads")
    t = "threads not recorded" if threads is None else f"{threads} thread{'s' if threads != 1 else ''}"
    cpu = f"{v['cpu_model']} (bf16 {v.get('cpu_bf16')})" if "cpu_model" in v else "(model not recorded)"
    return f"CPU {cpu}, {t}"


def kinds_by_row(records: Iterable[dict[str, Any]]) -> dict[str, Counter]:
    """row -> Counter of the execution kinds of its cells (records as the tables read them)."""
    out: dict[str, Counter] = {}
    for r in records:
        out.setdefault(r["row"], Counter())[execution_kind(r)] += 1
    return out


def same_cell_spread(records: Iterable[dict[str, Any]], stat: str = "final") -> list[dict[str, Any]]:
    """Every cell key trained on more than one execution kind: {key, record (the first), values: {kind: value}}
    (``stat`` as deephide.evaluation.stats names it: final, best, ...), in first-appearance order."""
    by_key: dict[str, dict[str, Any]] = {}
    for r in records:
        v = stat_value(r, stat)
        if v is None:
            continue
        e = by_key.setdefault(r["key"], {"key": r["key"], "record": r, "values": {}})
        e["values"].setdefault(execution_kind(r), v)
    return [e for e in by_key.values() if len(e["values"]) > 1]
