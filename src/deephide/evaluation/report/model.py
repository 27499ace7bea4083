"""The table model of a report: rows (ours: mean ± std aggregates; the paper's: floats) and a table with its
columns, caption and notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


MEAN = "Mean"
DASH = "–"


@dataclass
class Row:
    """One table row: ours (values are Agg) or the paper's (values are floats)."""

    label: str
    values: dict[str, Any]
    paper: str | None = None  # "K class-wise: method=ours" for a paper row
    group: tuple = ()  # (row, model, countermeasure or None) for our rows


@dataclass
class Table:
    """A rendered-format-independent table."""

    name: str
    caption: str
    columns: list[str]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    head: str = "Train set"


