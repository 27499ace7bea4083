"""Per-cell accuracy statistics and their aggregation over seeds.

Every cell (one trained victim) has three accuracies: ``final`` (the last evaluation, i.e. the
end of training), ``last3`` (mean of the last three evaluations: less noisy than one evaluation)
and ``best`` (the best evaluation: what early stopping on the test set would report, an
optimistic bound). Tables report one of them, named in the caption, as mean ± sample standard
deviation (ddof = 1) over seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

from ..errors import DeephideError

#: statistic -> how a caption names it
STATS: dict[str, str] = {
    "final": "final accuracy (last evaluation)",
    "last3": "mean of the last 3 evaluations",
    "best": "best evaluation (optimistic: early stopping on the test set)",
}

#: (row label, model, countermeasure label, mixture fraction or None)
GroupKey = tuple[str, str, str, "float | None"]


@dataclass(frozen=True)
class Agg:
    """One table cell: mean and sample std (None for a single seed) over ``n`` seeds."""

    mean: float
    std: float | None
    n: int
    values: tuple[float, ...]


def check_stat(stat: str) -> str:
    """``stat`` if known, else a one-line error listing the choices."""
    if stat not in STATS:
        raise DeephideError(f"unknown statistic '{stat}'; choose one of: {', '.join(STATS)}")
    return stat


def from_history(history: list[dict[str, Any]], stat: str) -> float | None:
    """The statistic computed from an evaluation history (``test_acc`` per evaluation)."""
    accs = [float(h["test_acc"]) for h in history or [] if h.get("test_acc") is not None]
    if not accs:
        return None
    if stat == "final":
        return accs[-1]
    if stat == "last3":
        return sum(accs[-3:]) / len(accs[-3:])
    return max(accs)


def stat_value(record: dict[str, Any], stat: str) -> float | None:
    """The accuracy of one record under ``stat``.

    A countermeasure that selects the best evaluation by definition (``select == "best"``,
    e.g. EarlyStop) reports its best accuracy whatever the headline statistic.
    """
    check_stat(stat)
    if record.get("select") == "best":
        stat = "best"
    v = record.get(f"{stat}_acc")
    return float(v) if v is not None else from_history(record.get("history") or [], stat)


def mean_std(values: Iterable[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof = 1; None when there is one value)."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("mean_std of no values")
    m = sum(vals) / len(vals)
    if len(vals) < 2:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))


def group_key(record: dict[str, Any]) -> GroupKey:
    """The table cell a record belongs to."""
    mix = record.get("mixture")
    return (str(record["row"]), str(record["model"]), str(record["countermeasure"]),
            float(mix) if mix is not None else None)


def aggregate(records: Iterable[dict[str, Any]], stat: str = "final") -> dict[GroupKey, Agg]:
    """Per (row, model, countermeasure, mixture): mean ± sample std of ``stat`` over seeds.

    Records without a value (no evaluation) are left out; one record per seed is expected
    (results files are deduplicated by cell key on reading). Keys keep first-appearance order.
    """
    check_stat(stat)
    groups: dict[GroupKey, list[float]] = {}
    for rec in records:
        v = stat_value(rec, stat)
        if v is None:
            continue
        groups.setdefault(group_key(rec), []).append(v)
    out = {}
    for k, vals in groups.items():
        m, s = mean_std(vals)
        out[k] = Agg(m, s, len(vals), tuple(vals))
    return out


def caption_stat(stat: str) -> str:
    """The caption phrase stating the headline statistic."""
    return f"headline statistic: {STATS[check_stat(stat)]}; mean ± sample std (ddof=1) over seeds"
